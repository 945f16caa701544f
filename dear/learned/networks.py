r"""The networks of the learned (IGNN-Solver) fixed-point solver: initializer, storage
compression, graph sparsification and the tiny alpha/beta predictor.

Lin et al. (2024), "IGNN-Solver: A Graph Neural Solver for Implicit Graph Neural Networks",
Sec. 4.1. The solver itself (the Anderson-style update that uses these networks) is
:class:`dear.solvers.learned.LearnedSolver`; its training loop is :mod:`dear.learned.training`.

Every network here is *per graph* in the engine's sense: node rows plus PyG's ``batch``
vector, message passing only along edges inside a graph, pooling per graph. So one batch of
CLRS graphs gets one ``(alpha, beta)`` per graph, exactly as the classic per-graph Anderson of
:mod:`dear.solvers.anderson` gets one least-squares ``alpha`` per graph.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dear.sparse_ops import mean_operator, spmm

__all__ = [
    "SPARSIFIERS",
    "AlphaBetaPredictor",
    "Initializer",
    "ResidualCompressor",
    "sparsify_edges",
]

SPARSIFIERS = ("resistance", "random", "none")


# ----------------------------------------------------------------------------- sparsification


def _pair_hash(a: Tensor, b: Tensor) -> Tensor:
    """A deterministic pseudo-random number in ``[0, 1)`` per unordered node pair.

    Used to break ties (and, for ``"random"``, as the sampling order) identically for the two
    directions of an undirected edge, so a symmetric graph stays symmetric after sparsifying,
    and identically on every call, so a saved model reproduces its outputs exactly.
    """
    lo, hi = torch.minimum(a, b), torch.maximum(a, b)
    key = (lo * 1_000_003 + hi) % 2_147_483_647
    # Knuth's multiplicative hash; int64 arithmetic, then the low 31 bits.
    return ((key * 2_654_435_761) % 2_147_483_648).to(torch.float64) / 2_147_483_648.0


def sparsify_edges(edge_index: Tensor, num_nodes: int, keep: float = 0.5,
                   method: str = "resistance") -> Tensor:
    r"""The sparse subgraph :math:`\hat A_s = \varsigma(\hat A, \text{keep})` the tiny GNN runs on.

    ``method="resistance"`` (default) scores each edge :math:`(u, v)` by
    :math:`1/d_u + 1/d_v`, the leading term of its effective resistance on sparse graphs
    (Spielman-Srivastava sampling keeps edges with probability proportional to resistance),
    and keeps the top ``keep`` fraction of edges; ties break by a fixed hash of the pair.
    Edges at low-degree nodes (bridges, leaves: the only route to a node) score high and
    stay; edges between hubs, which are redundant for spreading residual information, go
    first. Every node that had an incoming edge keeps its best one, so no node becomes
    isolated, and a kept edge keeps its reverse where the graph has it. ``method="random"`` keeps a hash-chosen ``keep`` fraction (the public IGNN-Solver
    code keeps a random 80%), ``"none"`` keeps all. Self loops are dropped (the GNN has its own
    self term). Deterministic: no RNG, the same graph gives the same subgraph.

    Why not RPI-Graph (the paper's choice): it solves an information-theoretic optimisation
    per graph, whose cost is of the order of the fixed-point solve the predictor is meant to
    shorten; a degree score is ``O(E log E)`` once per graph and is cached by the solver.

    Args:
        edge_index: ``[2, E]`` source -> target edges (both directions for undirected graphs).
        num_nodes: number of nodes.
        keep: fraction of (non-self-loop) edges to keep, in ``(0, 1]``: the sparsity knob.
        method: ``"resistance"``, ``"random"`` or ``"none"``.

    Returns:
        ``[2, E_s]`` the kept edges (a subset of ``edge_index``, original order).
    """
    if method not in SPARSIFIERS:
        raise ValueError(f"unknown sparsifier {method!r}; valid: {', '.join(SPARSIFIERS)}")
    if not 0.0 < float(keep) <= 1.0:
        raise ValueError(f"sparsifier keep fraction must lie in (0, 1], got {keep!r}")
    src, dst = edge_index[0], edge_index[1]
    edge_index = edge_index[:, src != dst]
    e = edge_index.shape[1]
    if method == "none" or keep >= 1.0 or e == 0:
        return edge_index
    src, dst = edge_index[0], edge_index[1]
    tie = _pair_hash(src, dst)
    if method == "random":
        score = tie
    else:
        deg = torch.zeros(num_nodes, dtype=torch.float64, device=edge_index.device)
        deg.index_add_(0, dst, torch.ones(e, dtype=torch.float64, device=edge_index.device))
        deg = deg.clamp_min(1.0)
        score = 1.0 / deg[src] + 1.0 / deg[dst] + 1e-9 * tie
    n_keep = max(1, int(math.ceil(keep * e)))
    order = torch.argsort(score, descending=True, stable=True)
    mask = torch.zeros(e, dtype=torch.bool, device=edge_index.device)
    mask[order[:n_keep]] = True
    # Each target keeps its best incoming edge: scatter-max of the score per target node.
    best = torch.full((num_nodes,), -1.0, dtype=score.dtype, device=score.device)
    best = best.scatter_reduce(0, dst, score, reduce="amax")
    mask |= score == best[dst]
    # Keep both directions of a kept edge where the graph has both (undirected stays undirected).
    key = src * num_nodes + dst
    mask |= torch.isin(dst * num_nodes + src, key[mask])
    return edge_index[:, mask]


# ------------------------------------------------------------------------------- networks


class Initializer(nn.Module):
    r"""The initializer :math:`h_\phi`: layer input features to a starting state.

    .. math::
        Z^{[0]} = \sigma\big(W_2 (W_1 u) + s \odot u + t\big)

    ``Linear(in, d') -> Linear(d', state)`` with a low intermediate dimension ``d'`` (the
    paper's; its public code is Linear-Linear-ReLU) plus, when the input and state widths
    match, a per-feature affine skip ``s * u + t``: for IGNN the input is the injection
    :math:`\Omega(X)` and :math:`Z^\star = \phi(\hat A Z^\star W^\top + \Omega(X))` starts
    close to :math:`\phi(\Omega(X))`, which the skip represents exactly; a rank-``d'`` map
    alone could not. The output layer starts at zero, so an untrained initializer is that
    skip (for IGNN: one free Picard step from zero).

    Args:
        in_dim: input feature width. state_dim: state width.
        bottleneck: ``d'``. (default: ``32``)
        activation: ``"relu"`` (IGNN's states are non-negative) or ``"none"`` (DEAR's states
            are LayerNorm outputs). (default: ``"relu"``)
    """

    def __init__(self, in_dim: int, state_dim: int, bottleneck: int = 32, activation: str = "relu") -> None:
        super().__init__()
        if activation not in ("relu", "none"):
            raise ValueError(f"initializer activation must be relu or none, got {activation!r}")
        self.activation = activation
        self.lin1 = nn.Linear(in_dim, bottleneck, bias=False)
        self.lin2 = nn.Linear(bottleneck, state_dim)
        nn.init.zeros_(self.lin2.weight)
        nn.init.zeros_(self.lin2.bias)
        self.skip = in_dim == state_dim
        if self.skip:
            self.scale = nn.Parameter(torch.ones(state_dim))
            self.shift = nn.Parameter(torch.zeros(state_dim))

    def forward(self, u: Tensor) -> Tensor:
        if not torch.is_grad_enabled():
            # Inference (every solve's start): the same sum in three passes over [N, state]
            # instead of five (shift folded into the bias, skip and activation in place); on
            # BlogCatalog the passes were a tenth of a one-evaluation forward.
            bias = self.lin2.bias + self.shift if self.skip else self.lin2.bias
            out = torch.addmm(bias, self.lin1(u), self.lin2.weight.t())
            if self.skip:
                out.addcmul_(u, self.scale)
            return out.relu_() if self.activation == "relu" else out
        out = self.lin2(self.lin1(u))
        if self.skip:
            out = out + u * self.scale + self.shift
        return F.relu(out) if self.activation == "relu" else out


class ResidualCompressor(nn.Module):
    r"""Storage compression: each stored residual row ``[D] -> [p]`` by a two-layer MLP.

    Residuals shrink by orders of magnitude during a solve; each one is divided by its own
    per-graph RMS before compression (its scale is passed to the predictor separately, as
    log-norm ratios), so the network always sees inputs of unit size.
    """

    def __init__(self, state_dim: int, channels: int = 16, hidden: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(state_dim, hidden), nn.ReLU(), nn.Linear(hidden, channels))

    def forward(self, r: Tensor, row_scale: Tensor | None = None) -> Tensor:
        """Compress ``r * row_scale[:, None]`` (``row_scale`` ``[N]``; ``None``: 1). The first
        layer is linear, so the scale is applied to its ``hidden``-wide output instead of the
        ``D``-wide input: one pass over ``[N, hidden]`` rather than a scaled copy of ``r``."""
        if row_scale is None:
            return self.net(r)
        first = self.net[0]
        h = F.linear(r, first.weight)
        # A half-precision state's scale is float32 (its norms are); scale in float32, back to
        # the state's dtype (a no-op otherwise) so the next layer gets its own dtype.
        h = (h * row_scale.unsqueeze(1)).to(h.dtype)
        if first.bias is not None:
            h = h + first.bias
        return self.net[2](F.relu(h))


def _mean_aggregate(h: Tensor, edge_index: Tensor, num_nodes: int) -> Tensor:
    """Mean of in-neighbour rows (zero for nodes without in-edges)."""
    return spmm(mean_operator(edge_index, num_nodes, h.dtype), h)


class AlphaBetaPredictor(nn.Module):
    r"""The tiny predictor :math:`s_\xi`: stored (compressed) residuals -> per-graph
    :math:`\alpha^{[k]}` (``m_k + 1`` weights summing to 1) and :math:`\beta^{[k]}`.

    Node input: the ``m + 1`` compressed residuals of the window (``p`` channels each,
    right-aligned so the newest is last; empty slots are zero) and the slot-validity mask.
    With ``graph=True`` (IGNN-Solver) ``layers`` mean-aggregation GNN layers
    :math:`h' = \mathrm{ReLU}(W_s h + W_n \operatorname{mean}_{j \to i} h_j)` run on the
    sparsified graph; with ``graph=False`` (the paper's ``NN`` ablation) there is no message
    passing. Node states are pooled per graph (mean and max) and, with ``gram_features``,
    joined with the window's per-graph Gram matrix (normalised by the newest residual's
    squared norm) and log-norm ratios, which is what least-squares Anderson itself looks at.
    A two-layer head gives ``m + 1`` offsets :math:`\delta` and a :math:`\beta` logit:

    .. math::
        \alpha = a + P(\delta_{\max} \tanh \delta), \qquad \beta = \beta_{\max}\,\sigma(\ell + c),

    where :math:`P` projects onto ``{sum 0}`` over the valid slots (so
    :math:`\mathbf 1^\top\alpha = 1` for every ``m_k``, negative weights allowed: Anderson's
    extrapolation needs them), ``a`` is the base weight vector given by the solver (the newest
    slot, i.e. a plain step, or least-squares Anderson's weights), and ``c`` makes
    :math:`\beta = 1` when the head outputs zero. The head's last layer starts at zero, so an
    untrained predictor reproduces its base method exactly.
    """

    def __init__(self, m: int, channels: int, hidden: int = 32, layers: int = 1, graph: bool = True,
                 gram_features: bool = True, beta_max: float = 2.0, delta_max: float = 0.5) -> None:
        super().__init__()
        if beta_max <= 1.0:
            raise ValueError(f"beta_max must be > 1 (beta = 1 must be reachable), got {beta_max!r}")
        self.m, self.graph, self.gram_features = m, graph, gram_features
        self.beta_max = float(beta_max)
        if not delta_max > 0:
            raise ValueError(f"delta_max must be > 0, got {delta_max!r}")
        self.delta_max = float(delta_max)
        self.beta_offset = math.log(1.0 / (beta_max - 1.0))  # sigmoid(offset) * beta_max == 1
        w = m + 1
        self.inp = nn.Linear(w * channels + w, hidden)
        self.self_lins = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(layers if graph else 0))
        self.nb_lins = nn.ModuleList(nn.Linear(hidden, hidden, bias=False) for _ in range(layers if graph else 0))
        extra = (w * w + w) if gram_features else 0
        self.head = nn.Sequential(nn.Linear(2 * hidden + extra, hidden), nn.ReLU(), nn.Linear(hidden, w + 1))
        nn.init.zeros_(self.head[2].weight)
        nn.init.zeros_(self.head[2].bias)

    def input_layer(self, comps: Sequence[Tensor]) -> Tensor:
        """``ReLU(inp(row))`` of each node's input row ``[c_1 .. c_{m+1} | valid mask]`` (empty
        slots zero), computed slot by slot, ``b + sum_s W_s c_s + sum_valid w_v``, without
        building the ``[N, (m+1) p + m + 1]`` row every step (three copies of the window per
        step before). Same seconds within noise on a 100,000-node graph
        (``leaderboards/runs/learned/sbm_100000/predictor_input_ab.json``), less memory."""
        w, k = self.m + 1, len(comps)
        p = comps[0].shape[1]
        pad = w - k
        weight = self.inp.weight  # [hidden, w p + w]: slot s in columns s p .. (s+1) p, then the mask
        bias = self.inp.bias + weight[:, w * p + pad:].sum(dim=1)  # mask columns of the filled slots
        h = torch.addmm(bias, comps[0], weight[:, pad * p:(pad + 1) * p].t())
        inplace = not torch.is_grad_enabled()
        for j in range(1, k):
            wj = weight[:, (pad + j) * p:(pad + j + 1) * p].t()
            h = h.addmm_(comps[j], wj) if inplace else torch.addmm(h, comps[j], wj)
        return F.relu(h)

    def forward(self, comps: Sequence[Tensor], base: Tensor, edge_index: Tensor | None, batch: Tensor,
                num_graphs: int, gram: Tensor | None = None, log_norms: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``comps``: the window's compressed residuals, oldest first, ``[N, p]`` each (at most
        ``m + 1``; they fill the newest slots, the older ones are empty); ``base`` ``[B, m+1]``
        (zero on empty slots, sums to 1); ``gram`` ``[B, m+1, m+1]``, ``log_norms`` ``[B, m+1]``
        (zero where empty). Returns ``alpha [B, m+1]`` and ``beta [B]``."""
        w, k = self.m + 1, len(comps)
        if not 1 <= k <= w:
            raise ValueError(f"the window holds 1..{w} compressed residuals, got {k}")
        n = comps[0].shape[0]
        vmask = (torch.arange(w, device=base.device) >= w - k).to(base.dtype)
        h = self.input_layer(comps)
        for lin_s, lin_n in zip(self.self_lins, self.nb_lins):
            h = F.relu(lin_s(h) + lin_n(_mean_aggregate(h, edge_index, n)))
        cnt = h.new_zeros(num_graphs).index_add_(0, batch, h.new_ones(n)).clamp_min(1.0)
        mean = h.new_zeros(num_graphs, h.shape[1]).index_add_(0, batch, h) / cnt.unsqueeze(1)
        mx = h.new_zeros(num_graphs, h.shape[1]).scatter_reduce(0, batch.unsqueeze(1).expand_as(h), h, "amax",
                                                                  include_self=False)
        feats = [mean, mx]
        if self.gram_features:
            feats += [gram.flatten(1), log_norms]
        out = self.head(torch.cat(feats, dim=1))
        delta = self.delta_max * torch.tanh(out[:, :-1]) * vmask
        delta = delta - (delta.sum(dim=1, keepdim=True) / vmask.sum()) * vmask
        alpha = base + delta
        beta = self.beta_max * torch.sigmoid(out[:, -1] + self.beta_offset)
        return alpha, beta
