"""Encoders: one small linear map per probe, chosen by its (location, type), no per-algorithm code.

Every probe is first turned into a *dense* float form (:func:`dense_from_data` for stored
targets, :func:`dense_from_prediction` for a decoder's own predictions fed back as hints), and
the encoder maps that form to features that are **summed** into node, edge and graph features
(as in dm-clrs ``encoders.py``):

===========  =======================  ============================  ===============================
location     type                     dense form                    features (width ``H``)
===========  =======================  ============================  ===============================
node         scalar, mask, mask_one   ``[N]``                       node += ``Linear(1, H)``
node         categorical              ``[N, C]``                    node += ``Linear(C, H)``
node         pointer,                 ``[E]`` probability that      edge ``(i, j)`` +=
             permutation_pointer      edge ``(i, j)`` is            ``Linear(1, H)(p_ij)``; node
                                      ``i -> ptr(i)``               ``i`` += ``Linear(2, H)([p_ii,
                                                                    min(1, sum_k p_ki)])``
edge         scalar, mask             ``[P]`` on all pairs          edge += ``Linear(1, H)``
edge         categorical              ``[P, C]``                    edge += ``Linear(C, H)``
edge         pointer                  ``[sum n^3]``: per pair       pair ``(a, b)`` +=
             (pair -> node)           ``(i, j)`` a probability      ``Linear(2, H)([mean_i p_iab,
                                      per node ``k``                mean_j p_ajb])``
graph        scalar, mask             ``[B]``                       graph += ``Linear(1, H)``
graph        categorical              ``[B, C]``                    graph += ``Linear(C, H)``
===========  =======================  ============================  ===============================

Why pointers go on edges: a pointer ``i -> ptr(i)`` is a relation between two nodes, so it is
the feature of edge ``(i, ptr(i))`` (CLRS encodes the one-hot ``[n, n]`` matrix the same way).
Batched graphs store pointers as *batch* node indices, so the comparison with ``edge_index``
is correct in any batch. Under the ``adjacency`` edge policy a pointer whose target is not an
edge of the graph has no edge to sit on; the node features (``p_ii``: points to itself;
``min(1, in-mass)``: is pointed to) keep part of it, and ``docs/reasoners.md`` lists which CLRS
probes are affected. Edge pointers use dm-clrs's two-way encoding: pair ``(a, b)`` sees how
often ``b`` is the answer for pairs ``(., a)`` and for pairs ``(a, .)``.

Edge-located data live on all ``n * n`` pairs; features are computed on the message-passing
edges (rows ``edge_pair``) and, when a decoder needs them, on all pairs too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch
from torch import Tensor, nn
from torch_geometric.utils import scatter

from clrs_tasks import Field

from .layout import BatchLayout, grouped_softmax

__all__ = [
    "Encoding",
    "FieldEncoder",
    "ProbeEncoder",
    "SUPPORTED",
    "check_supported",
    "dense_from_data",
    "dense_from_prediction",
]

POINTERS = ("pointer", "permutation_pointer")

#: (location, type) combinations the reasoners handle: every one CLRS-30 uses.
SUPPORTED: dict[str, tuple[str, ...]] = {
    "node": ("scalar", "mask", "mask_one", "categorical", "pointer", "permutation_pointer"),
    "edge": ("scalar", "mask", "categorical", "pointer"),
    "graph": ("scalar", "mask", "categorical"),
}


def check_supported(field: Field) -> None:
    """Raise ``ValueError`` naming the probe if its (location, type) is not handled."""
    if field.type_ not in SUPPORTED.get(field.location, ()):
        valid = "; ".join(f"{loc}: {', '.join(ts)}" for loc, ts in SUPPORTED.items())
        raise ValueError(
            f"probe {field.key!r} has unsupported location/type ({field.location}, {field.type_}); "
            f"supported: {valid}"
        )


def _width(field: Field) -> int:
    """Number of classes of a categorical probe (its trailing dimension), else 1."""
    if field.type_ == "categorical":
        if len(field.trailing) != 1:
            raise ValueError(f"categorical probe {field.key!r} must have one trailing class axis, got {field.trailing}")
        return int(field.trailing[0])
    return 1


def dense_from_data(field: Field, value: Tensor, layout: BatchLayout, dtype: torch.dtype) -> Tensor:
    """A stored probe value (one time step for hints) in the dense float form encoders read.

    Pointers become one-hot probabilities over the message-passing edges (node pointers) or
    over each pair's nodes (edge pointers); everything else is cast to ``dtype``.
    """
    if field.location == "node" and field.type_ in POINTERS:
        src, dst = layout.edge_index
        return (value.long().index_select(0, src) == dst).to(dtype)
    if field.location == "edge" and field.type_ == "pointer":
        return (value.long().index_select(0, layout.triple_pair) == layout.triple_node).to(dtype)
    return value.to(dtype)


def dense_from_prediction(field: Field, pred: Tensor, layout: BatchLayout) -> Tensor:
    """A decoder's raw output in the same dense form (soft: probabilities, not argmaxes).

    This is dm-clrs's ``postprocess(hard=False)``: sigmoid for masks, softmax over the graph's
    nodes for mask_one, softmax over classes for categoricals, and the already normalised
    pointer log-probabilities exponentiated. (For a permutation-pointer hint dm-clrs would run
    25 more Sinkhorn steps first; no CLRS-30 hint is one, see ``docs/reasoners.md``.)
    """
    if field.type_ == "scalar":
        return pred
    if field.type_ == "mask":
        return torch.sigmoid(pred)
    if field.type_ == "mask_one":
        return grouped_softmax(pred, layout.batch, layout.num_graphs)
    if field.type_ == "categorical":
        return torch.softmax(pred, dim=-1)
    if field.type_ in POINTERS:
        return pred.exp()
    raise ValueError(f"no dense form for {field.key!r} ({field.location}, {field.type_})")


@dataclass
class Encoding:
    """Summed features of a batch: node ``[N, H]``, edge ``[E, H]`` (message-passing edges),
    graph ``[B, H]`` and, when a decoder needs them, pair ``[P, H]`` (all ordered pairs)."""

    node: Tensor
    edge: Tensor
    graph: Tensor
    pair: Tensor | None = None

    def __add__(self, other: "Encoding") -> "Encoding":
        pair = None
        if self.pair is not None and other.pair is not None:
            pair = self.pair + other.pair
        return Encoding(self.node + other.node, self.edge + other.edge, self.graph + other.graph, pair)

    def where(self, node_mask: Tensor, edge_mask: Tensor, graph_mask: Tensor, pair_mask: Tensor | None,
              other: "Encoding") -> "Encoding":
        """Rows from ``self`` where the mask holds, from ``other`` elsewhere (per location)."""
        pair = None
        if self.pair is not None and other.pair is not None and pair_mask is not None:
            pair = torch.where(pair_mask[:, None], self.pair, other.pair)
        return Encoding(
            torch.where(node_mask[:, None], self.node, other.node),
            torch.where(edge_mask[:, None], self.edge, other.edge),
            torch.where(graph_mask[:, None], self.graph, other.graph),
            pair,
        )


class FieldEncoder(nn.Module):
    """The encoder of one probe (see the module table). ``forward`` returns ``enc`` with this
    probe's features added (out of place, so autograd sees every contribution)."""

    def __init__(self, field: Field, hidden: int) -> None:
        super().__init__()
        check_supported(field)
        self.field = field
        loc, t = field.location, field.type_
        if loc == "node" and t in POINTERS:
            self.edge_lin = nn.Linear(1, hidden)
            self.node_lin = nn.Linear(2, hidden)
        elif loc == "edge" and t == "pointer":
            self.pair_lin = nn.Linear(2, hidden)
        else:
            self.lin = nn.Linear(_width(field), hidden)

    def forward(self, dense: Tensor, layout: BatchLayout, enc: Encoding) -> Encoding:
        f = self.field
        loc, t = f.location, f.type_
        node, edge, graph, pair = enc.node, enc.edge, enc.graph, enc.pair
        if loc == "node" and t in POINTERS:
            src, dst = layout.edge_index
            p = dense
            edge = edge + self.edge_lin(p[:, None])
            n = layout.num_nodes
            self_mass = scatter(torch.where(src == dst, p, torch.zeros_like(p)), src, dim=0, dim_size=n, reduce="sum")
            in_mass = scatter(p, dst, dim=0, dim_size=n, reduce="sum").clamp(max=1.0)
            node = node + self.node_lin(torch.stack([self_mass, in_mass], dim=-1))
            if pair is not None:
                p_pair = p.new_zeros(layout.num_pairs).index_copy(0, layout.edge_pair, p)
                pair = pair + self.edge_lin(p_pair[:, None])
        elif loc == "edge" and t == "pointer":
            # dm-clrs's two-way encoding: for each triple (i, j, k) with probability p,
            # pair (j, k) collects p / n ("k answers (., j)") and pair (i, k) collects p / n.
            tp, tk = layout.triple_pair, layout.triple_node
            n_of = layout.sizes.index_select(0, layout.batch.index_select(0, tk)).to(dense.dtype)
            w = dense / n_of
            jk = layout.pair_row(layout.pair_dst.index_select(0, tp), tk)
            ik = layout.pair_row(layout.pair_src.index_select(0, tp), tk)
            counts = torch.stack([
                scatter(w, jk, dim=0, dim_size=layout.num_pairs, reduce="sum"),
                scatter(w, ik, dim=0, dim_size=layout.num_pairs, reduce="sum"),
            ], dim=-1)
            feats = self.pair_lin(counts)
            edge = edge + feats.index_select(0, layout.edge_pair)
            if pair is not None:
                pair = pair + feats
        else:
            x = dense if t == "categorical" else dense[:, None]
            if loc == "node":
                node = node + self.lin(x)
            elif loc == "graph":
                graph = graph + self.lin(x)
            else:  # edge: data on all pairs
                edge = edge + self.lin(x.index_select(0, layout.edge_pair))
                if pair is not None:
                    pair = pair + self.lin(x)
        return Encoding(node, edge, graph, pair)


class ProbeEncoder(nn.Module):
    """Encoders of a set of probes (e.g. all inputs, or all hints), summed.

    Args:
        fields: the probes to encode (one :class:`FieldEncoder` each).
        hidden: feature width ``H``.
    """

    def __init__(self, fields: tuple[Field, ...], hidden: int) -> None:
        super().__init__()
        self.hidden = hidden
        self.fields = tuple(fields)
        self.encoders = nn.ModuleDict({f.key: FieldEncoder(f, hidden) for f in self.fields})

    def zeros(self, layout: BatchLayout, dtype: torch.dtype, with_pairs: bool) -> Encoding:
        """An all-zero :class:`Encoding` for ``layout``."""
        dev, h = layout.device, self.hidden
        return Encoding(
            torch.zeros(layout.num_nodes, h, dtype=dtype, device=dev),
            torch.zeros(layout.num_edges, h, dtype=dtype, device=dev),
            torch.zeros(layout.num_graphs, h, dtype=dtype, device=dev),
            torch.zeros(layout.num_pairs, h, dtype=dtype, device=dev) if with_pairs else None,
        )

    def forward(self, dense: Mapping[str, Tensor], layout: BatchLayout, with_pairs: bool = False,
                base: Encoding | None = None) -> Encoding:
        """Sum the features of every probe in ``dense`` (``key -> dense form``) onto ``base``
        (zeros if ``None``). Every probe of :attr:`fields` must be present."""
        enc = base
        for f in self.fields:
            if f.key not in dense:
                raise KeyError(f"missing probe {f.key!r} to encode")
            if enc is None:
                enc = self.zeros(layout, dense[f.key].dtype, with_pairs)
            enc = self.encoders[f.key](dense[f.key], layout, enc)
        if enc is None:
            raise ValueError("nothing to encode: no probes")
        return enc

    def dense_inputs(self, data: Any, layout: BatchLayout, dtype: torch.dtype, step: int | None = None) -> dict[str, Tensor]:
        """Dense forms of this encoder's probes read from ``data`` (``step``: the time index of
        hints)."""
        out = {}
        for f in self.fields:
            value = data[f.key]
            if step is not None:
                value = value[:, step]
            out[f.key] = dense_from_data(f, value, layout, dtype)
        return out
