r"""Losses: one per (location, type), as in dm-clrs ``losses.py``, on our graph layout.

Every loss is returned as a numerator and a denominator per *decision row* (a node, a pair, a
graph), so output losses and hint losses (many steps, some past a graph's trace) share one
reduction: :math:`\sum \text{num} \cdot \text{valid} / \max(\sum \text{den} \cdot \text{valid},
\epsilon)`.

===========  ====================  ===================================================  =========
location     type                  per-row loss                                         den
===========  ====================  ===================================================  =========
any          scalar                :math:`(\hat y - y)^2`                               1
any          mask                  BCE with logits                                      ``y != -1``
node         mask_one              :math:`-y_i \log\mathrm{softmax}_{\text{graph}}(\hat y)_i`
                                                                                        ``y_i == 1``
any          categorical           :math:`-\sum_c y_c \log\mathrm{softmax}(\hat y)_c`    any ``y_c == 1``
node         pointer               :math:`-\log p_{i \to \mathrm{ptr}(i)}` (out-edge      1
                                   log-softmax from the decoder)
node         permutation_pointer   the same on the log-Sinkhorn matrix                  1
edge         pointer               :math:`-\log p_{(i,j) \to \mathrm{ptr}(i,j)}`          1
===========  ====================  ===================================================  =========

So mask_one and categorical losses are averaged over positives (dm-clrs's
``sum / count(truth == 1)``), masks over unmasked entries, the rest over rows.

**Pointer targets that are not edges.** A node-pointer loss reads the log-probability of edge
``(i, ptr(i))``. Under the ``complete`` policy it always exists. Under ``adjacency`` it exists
for the pointer outputs of the DEAR tasks except a few of SCC's ``scc_id`` (about 1% of nodes)
and for most hints, but not for e.g. topological sort's ``topo`` (about 37%), Kruskal's and
bipartite matching's union-find hints (see ``docs/reasoners.md``). ``missing="skip"`` drops
those rows from the loss (they are counted, and scoring still counts them as errors);
``missing="error"`` raises a ``ValueError`` naming the probe and the fix
(``edge_policy="complete"``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from clrs_tasks import Field

from .encoders import POINTERS, check_supported
from .layout import BatchLayout, grouped_log_softmax

__all__ = ["MISSING_MODES", "field_loss", "pointer_target_edges", "reduce_loss", "row_graph"]

MISSING_MODES = ("skip", "error")
EPS = 1e-12


def row_graph(field: Field, layout: BatchLayout) -> Tensor:
    """Graph id of each decision row of ``field`` (nodes, pairs or graphs)."""
    if field.location == "node":
        return layout.batch
    if field.location == "edge":
        return layout.pair_graph
    return torch.arange(layout.num_graphs, device=layout.device)


def pointer_target_edges(target: Tensor, layout: BatchLayout) -> Tensor:
    """Message-passing edge ``(i, target[i])`` of every node ``i`` (``-1`` where it is absent).

    ``target`` holds batch node indices (as stored); it must stay within each node's graph.
    """
    src = torch.arange(layout.num_nodes, device=layout.device)
    return layout.pair_to_edge.index_select(0, layout.pair_row(src, target.long()))


def field_loss(
    field: Field,
    pred: Tensor,
    target: Tensor,
    layout: BatchLayout,
    missing: str = "skip",
    valid: Tensor | None = None,
) -> tuple[Tensor, Tensor, int]:
    """``(num, den, n_missing)`` of one probe: per-row loss numerators and denominators (see the
    module table) and the number of pointer targets that are not message-passing edges.

    ``pred`` is the decoder's raw output for the rows of the batch, ``target`` the stored probe
    (one time step for hints). ``valid`` (``[rows]`` bool, optional) restricts the missing
    pointer-target check to rows that count (hint steps past a trace hold padding).
    """
    check_supported(field)
    if missing not in MISSING_MODES:
        raise ValueError(f"missing must be one of {', '.join(MISSING_MODES)}, got {missing!r}")
    t = field.type_
    dtype = pred.dtype
    if t == "scalar":
        y = target.to(dtype)
        return (pred - y) ** 2, torch.ones_like(pred), 0
    if t == "mask":
        y = target.to(dtype)
        keep = (y != -1).to(dtype)
        return F.binary_cross_entropy_with_logits(pred, y.clamp_min(0), reduction="none") * keep, keep, 0
    if t == "mask_one":  # node-located only (check_supported)
        y = target.to(dtype)
        logp = grouped_log_softmax(pred, layout.batch, layout.num_graphs)
        return -(y.clamp_min(0) * logp), (y == 1).to(dtype), 0
    if t == "categorical":
        y = target.to(dtype)
        logp = torch.log_softmax(pred, dim=-1)
        return -(y.clamp_min(0) * logp).sum(-1), (y == 1).any(-1).to(dtype), 0
    if field.location == "node" and t in POINTERS:
        edge = pointer_target_edges(target, layout)
        found = edge >= 0
        absent = ~found if valid is None else ~found & valid
        n_missing = int(absent.sum())
        if n_missing and missing == "error":
            raise ValueError(
                f"{n_missing} target(s) of pointer {field.key!r} are not message-passing edges of their graph "
                "(a node can only point along one of its out-edges); load the split with edge_policy='complete' "
                "or use missing='skip'"
            )
        logp = pred.index_select(0, edge.clamp_min(0))
        keep = found.to(dtype)
        return -logp * keep, keep, n_missing
    if field.location == "edge" and t == "pointer":
        n = layout.sizes.index_select(0, layout.pair_graph)
        start = layout.ptr.index_select(0, layout.pair_graph)
        row = layout.triple_ptr.index_select(0, layout.pair_graph) + (
            torch.arange(layout.num_pairs, device=layout.device) - layout.pair_ptr.index_select(0, layout.pair_graph)
        ) * n + (target.long() - start)
        logp = pred.index_select(0, row)
        return -logp, torch.ones_like(logp), 0
    raise ValueError(f"no loss for {field.key!r} ({field.location}, {t})")


def reduce_loss(num: Tensor, den: Tensor, valid: Tensor | None = None) -> Tensor:
    """``sum(num * valid) / max(sum(den * valid), eps)`` (``valid`` broadcast over rows)."""
    if valid is not None:
        v = valid.to(num.dtype)
        num, den = num * v, den * v
    return num.sum() / den.sum().clamp_min(EPS)
