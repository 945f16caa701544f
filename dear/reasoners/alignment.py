r"""Alignment of a DEAR solver trajectory to a frozen NAR's unrolled trajectory (DEAR paper).

A no-hint NAR run for a graph's true number of steps visits states :math:`g_1, \dots, g_T`;
the DEAR solver visits :math:`d_1, \dots, d_K` (:math:`d_k = P(x_k)`, the processor's image of
the solver's :math:`k`-th iterate, so :math:`d_1 = P(0)` like :math:`g_1`). The regulariser
matches each DEAR state to one NAR state under the paper's rule:

* the first states are matched to each other and so are the last ones;
* the matching moves forward only: when the solver takes no more steps than the NAR
  (:math:`K \le T`, the usual case) each DEAR state gets a *later* NAR state than the one
  before it, never revisiting one; when it takes more, consecutive DEAR states may share a NAR
  state, but the matching still never goes back.

Among all such matchings the cheapest is found by dynamic programming on the detached costs
(a prefix minimum per row, so one vectorised step per DEAR state over every graph of the batch),
and the loss is the mean cost of the chosen pairs with the gradient flowing into the DEAR states
only. The cost of a pair is the mean over the graph's nodes of the squared distance per hidden
unit. Everything is per graph: graphs in a batch have their own :math:`K` and :math:`T`.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.utils import scatter

__all__ = ["alignment_cost", "alignment_loss", "monotone_alignment"]


def alignment_cost(dear_states: Tensor, nar_states: Tensor, batch: Tensor, num_graphs: int) -> Tensor:
    """Pairwise costs ``[B, K, T]``: mean over each graph's nodes of ``||d_i - g_j||^2 / H``.

    Args:
        dear_states: ``[K, N, H]``.
        nar_states: ``[T, N, H]`` (same nodes, same width).
        batch: ``[N]`` graph of each node.
    """
    if dear_states.dim() != 3 or nar_states.dim() != 3 or dear_states.shape[1:] != nar_states.shape[1:]:
        raise ValueError(f"states must be [steps, nodes, hidden] with the same nodes and width; got "
                         f"{tuple(dear_states.shape)} and {tuple(nar_states.shape)}")
    h = dear_states.shape[-1]
    sq_d = dear_states.pow(2).sum(-1)  # [K, N]
    sq_t = nar_states.pow(2).sum(-1)  # [T, N]
    cross = torch.einsum("knh,tnh->ktn", dear_states, nar_states)
    per_node = (sq_d[:, None, :] + sq_t[None, :, :] - 2.0 * cross).clamp_min(0.0) / h  # [K, T, N]
    per_graph = scatter(per_node, batch, dim=2, dim_size=num_graphs, reduce="mean")  # [K, T, B]
    return per_graph.permute(2, 0, 1)


@torch.no_grad()
def monotone_alignment(cost: Tensor, dear_len: Tensor, nar_len: Tensor) -> Tensor:
    """The cheapest forward-only matching of every DEAR state to a NAR state, per graph.

    Args:
        cost: ``[B, K, T]`` pair costs (only ``[:K_b, :T_b]`` of graph ``b`` is read).
        dear_len: ``[B]`` number of DEAR states ``K_b`` (``1 <= K_b <= K``).
        nar_len: ``[B]`` number of NAR states ``T_b`` (``1 <= T_b <= T``).

    Returns:
        ``[B, K]`` long: the NAR state matched to each DEAR state (``-1`` past ``K_b``).
        ``0`` for the first state, ``T_b - 1`` for the last; strictly increasing when
        ``K_b <= T_b``, non-decreasing otherwise. A graph with ``K_b = 1`` matches its only
        state to the NAR's last (the end states must agree).
    """
    b, k_max, t_max = cost.shape
    dev = cost.device
    dear_len = dear_len.to(dev).long()
    nar_len = nar_len.to(dev).long()
    if bool((dear_len < 1).any() or (dear_len > k_max).any() or (nar_len < 1).any() or (nar_len > t_max).any()):
        raise ValueError("trajectory lengths must lie in [1, K] and [1, T]")
    inf = torch.tensor(float("inf"), dtype=torch.float64, device=dev)
    j_idx = torch.arange(t_max, device=dev)
    valid_j = j_idx[None, :] < nar_len[:, None]  # [B, T]
    c = torch.where(valid_j[:, None, :], cost.detach().double(), inf)  # [B, K, T]
    strict = dear_len <= nar_len  # [B]

    d = torch.full((b, k_max, t_max), float("inf"), dtype=torch.float64, device=dev)
    d[:, 0, 0] = c[:, 0, 0]
    for i in range(1, k_max):
        incl = torch.cummin(d[:, i - 1], dim=1).values
        excl = torch.cat([torch.full((b, 1), float("inf"), dtype=torch.float64, device=dev), incl[:, :-1]], dim=1)
        d[:, i] = c[:, i] + torch.where(strict[:, None], excl, incl)

    out = torch.full((b, k_max), -1, dtype=torch.long, device=dev)
    j_cur = nar_len - 1
    for i in range(k_max - 1, 0, -1):
        here = i < dear_len  # graphs whose trajectory reaches state i
        if not bool(here.any()):
            continue
        out[:, i] = torch.where(here, j_cur, out[:, i])
        limit = torch.where(strict, j_cur, j_cur + 1)  # allowed predecessors: j' < limit
        prev = torch.where(j_idx[None, :] < limit[:, None], d[:, i - 1], inf)
        j_cur = torch.where(here, prev.argmin(dim=1), j_cur)
    out[:, 0] = torch.where(dear_len == 1, nar_len - 1, torch.zeros_like(nar_len))
    return out


def alignment_loss(dear_states: Tensor, nar_states: Tensor, batch: Tensor, num_graphs: int,
                   dear_len: Tensor, nar_len: Tensor) -> Tensor:
    """Mean over graphs of the mean cost of the cheapest forward-only matching.

    Gradients reach ``dear_states`` (and whatever produced them); ``nar_states`` are treated as
    fixed targets. See :func:`alignment_cost` for shapes and :func:`monotone_alignment` for the rule.
    """
    cost = alignment_cost(dear_states, nar_states.detach(), batch, num_graphs)  # [B, K, T]
    match = monotone_alignment(cost, dear_len, nar_len)  # [B, K]
    used = match >= 0
    picked = cost.gather(2, match.clamp_min(0).unsqueeze(-1)).squeeze(-1)  # [B, K]
    per_graph = (picked * used).sum(1) / used.sum(1).clamp_min(1)
    return per_graph.mean()
