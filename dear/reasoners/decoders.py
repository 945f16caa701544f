r"""Decoders: one per probe, chosen by its (location, type); plus the scoring adapter.

A decoder reads the node representation :math:`z_i = [x_i \,\|\, h_i]` (encoded inputs and
processor state, width ``2H``), the encoded edge features (on message-passing edges, or on all
pairs for edge-located probes) and the graph features. Its raw output is what the losses and
:func:`clrs_tasks.evaluate` consume:

===========  ====================  ===================================  ======================
location     type                  computation                          raw output
===========  ====================  ===================================  ======================
node         scalar/mask/mask_one  ``Linear(2H, 1)(z)``                 ``[N]`` value / logit
node         categorical           ``Linear(2H, C)(z)``                 ``[N, C]`` logits
node         pointer               :math:`s_{ij} = w^\top \max(A z_i,   ``[E]`` log-probs on
                                   B z_j + C e_{ij})`, log-softmax      ``edge_index``,
                                   over each node's out-edges           normalised per source
node         permutation_pointer   the same scores, then log-space      ``[E]`` log doubly-
                                   Sinkhorn per graph                   stochastic matrix
edge         scalar/mask           ``A z_i + B z_j + C e_ij`` on        ``[P]`` (all pairs)
                                   all pairs
edge         categorical           the same with ``C`` outputs          ``[P, C]``
edge         pointer               :math:`s_{ijk} = w^\top \max(A z_i   ``[sum n^3]`` log-probs
                                   + B z_j + C e_{ij}, D z_k)`,         over ``k`` per pair
                                   log-softmax over ``k``
graph        scalar/mask           ``A max_i z_i + B g``                ``[B]``
graph        categorical           the same with ``C`` outputs          ``[B, C]``
===========  ====================  ===================================  ======================

Pointer scores follow dm-clrs's ``_decode_node_fts`` / ``_decode_edge_fts`` (max of two
projections, then a linear read-out). Node pointers are scored on the message-passing edges:
"``i`` points to ``j``" can only be predicted along an edge ``(i, j)`` of the batch, which
under the ``adjacency`` policy is the input graph plus self loops (DEAR's choice), under
``complete`` all pairs (CLRS's). Permutation pointers need every pair of a graph (the Sinkhorn
operator is defined on square matrices); CLRS's permutation outputs are on arrays, whose graphs
are complete under both policies, and anything else raises ``ValueError``.

Edge-located probes are decoded on all ``n * n`` pairs directly (their data live there), with
the pair features the encoders computed on all pairs.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import Tensor, nn
from torch_geometric.utils import scatter

from clrs_tasks import Field
from clrs_tasks.convert import spec_of

from .encoders import POINTERS, Encoding, _width, check_supported
from .layout import BatchLayout, grouped_log_softmax

__all__ = ["SCORING_SINKHORN_STEPS", "SCORING_SINKHORN_TEMPERATURE", "FieldDecoder", "ProbeDecoder", "log_sinkhorn",
           "predictions_for_scoring"]

# Triples processed at once by the edge-pointer read-out when no gradient is needed; bounds
# the [triples, H] intermediate at test sizes (n = 64: 262,144 triples per graph).
_TRIPLE_CHUNK = 1 << 18

#: dm-clrs's scoring postprocess of permutation pointers: ``BaselineModel.predict`` runs
#: ``postprocess(..., sinkhorn_temperature=0.1, sinkhorn_steps=50, hard=True)``, i.e. 50 more
#: log-Sinkhorn steps (diagonal zeroed) on the decoder's 10-step output, then the row argmax.
SCORING_SINKHORN_STEPS = 50
SCORING_SINKHORN_TEMPERATURE = 0.1


def log_sinkhorn(scores: Tensor, src: Tensor, dst: Tensor, num_nodes: int, steps: int = 10,
                 temperature: float = 0.1, zero_diagonal: bool = True,
                 gumbel: bool = False) -> Tensor:
    r"""Log-space Sinkhorn normalisation of per-edge scores, every graph at once.

    ``scores[e]`` is entry ``(src[e], dst[e])`` of each graph's square score matrix (the edge
    set must contain every ordered pair of each graph). Alternating log-softmax over rows
    (grouped by ``src``) and columns (grouped by ``dst``) is dm-clrs's ``log_sinkhorn``
    (temperature ``0.1``, ``10`` steps, diagonal pushed to :math:`-10^6`, Gumbel noise while
    training) written with grouped reductions, so graphs of different sizes need no padding.
    Returns the log of a (nearly) doubly-stochastic matrix per graph, on the same edges.
    """
    x = scores
    if gumbel:
        u = torch.rand_like(x)
        x = x - torch.log(-torch.log(u + 1e-12) + 1e-12)
    x = x / temperature
    if zero_diagonal:
        x = x - 1e6 * (src == dst).to(x.dtype)
    for _ in range(steps):
        x = grouped_log_softmax(x, src, num_nodes)
        x = grouped_log_softmax(x, dst, num_nodes)
    return x


class FieldDecoder(nn.Module):
    """The decoder of one probe (see the module table).

    Args:
        field: the probe.
        hidden: ``H``; node representations are ``2H`` wide, edge and graph features ``H``.
        sinkhorn_steps, sinkhorn_temperature, gumbel: Sinkhorn settings for permutation
            pointers (dm-clrs: ``10``, ``0.1``, Gumbel noise in training).
        edge_latents: whether the processor hands edge latents ``[E, H]`` to the decoders
            (the Triplet-GMPNN's, as dm-clrs's ``e_t = [edge_fts, tri_msgs]``). Pointer and
            edge decoders then add ``L t_ij`` to their edge term: a linear map of the
            concatenation ``[e_ij, t_ij]`` is exactly ``C e_ij + L t_ij``. (default: ``False``)
    """

    def __init__(self, field: Field, hidden: int, sinkhorn_steps: int = 10, sinkhorn_temperature: float = 0.1,
                 gumbel: bool = True, edge_latents: bool = False) -> None:
        super().__init__()
        check_supported(field)
        self.field = field
        self.latent: nn.Linear | None = None
        self.sinkhorn_steps = sinkhorn_steps
        self.sinkhorn_temperature = sinkhorn_temperature
        self.gumbel = gumbel
        z_dim = 2 * hidden
        loc, t = field.location, field.type_
        out = _width(field)
        if loc == "node" and t in POINTERS:
            self.src = nn.Linear(z_dim, hidden)
            self.dst = nn.Linear(z_dim, hidden)
            self.edge = nn.Linear(hidden, hidden, bias=False)
            self.out = nn.Linear(hidden, 1)
            if edge_latents:
                self.latent = nn.Linear(hidden, hidden, bias=False)
        elif loc == "node":
            self.out = nn.Linear(z_dim, out)
        elif loc == "edge":
            width = hidden if t == "pointer" else out
            self.src = nn.Linear(z_dim, width)
            self.dst = nn.Linear(z_dim, width, bias=False)
            self.edge = nn.Linear(hidden, width, bias=False)
            if edge_latents:
                self.latent = nn.Linear(hidden, width, bias=False)
            if t == "pointer":
                self.node = nn.Linear(z_dim, hidden)
                self.out = nn.Linear(hidden, 1)
        else:  # graph
            self.pool = nn.Linear(z_dim, out)
            self.graph = nn.Linear(hidden, out, bias=False)

    @property
    def needs_pairs(self) -> bool:
        """Whether this decoder reads pair features (edge-located probes)."""
        return self.field.location == "edge"

    def _edge_term(self, features: Tensor, latents: Tensor | None) -> Tensor:
        """``C e`` plus, with processor edge latents, ``L t`` (rows aligned with ``features``)."""
        term = self.edge(features)
        if self.latent is not None:
            if latents is None:
                raise ValueError(f"the decoder of {self.field.key!r} was built for processor edge latents; "
                                 "pass edge_latents")
            term = term + self.latent(latents)
        return term

    def forward(self, z: Tensor, enc: Encoding, layout: BatchLayout, edge_latents: Tensor | None = None) -> Tensor:
        """Raw output from node representations ``z`` ``[N, 2H]``, the encoding, and (when built
        with ``edge_latents=True``) the processor's edge latents ``[E, H]`` on ``edge_index``."""
        f = self.field
        loc, t = f.location, f.type_
        if loc == "node" and t in POINTERS:
            src, dst = layout.edge_index
            m = torch.maximum(self.src(z).index_select(0, src),
                              self.dst(z).index_select(0, dst) + self._edge_term(enc.edge, edge_latents))
            scores = self.out(m).squeeze(-1)
            if t == "pointer":
                return grouped_log_softmax(scores, src, layout.num_nodes)
            if not layout.edges_complete:
                raise ValueError(
                    f"permutation pointer {f.key!r} needs every ordered pair of each graph as a message-passing "
                    f"edge ({layout.num_edges} edges for {layout.num_pairs} pairs); load the split with "
                    "edge_policy='complete'"
                )
            return log_sinkhorn(scores, src, dst, layout.num_nodes, self.sinkhorn_steps, self.sinkhorn_temperature,
                                zero_diagonal=True, gumbel=self.gumbel and self.training)
        if loc == "node":
            out = self.out(z)
            return out if t == "categorical" else out.squeeze(-1)
        if loc == "edge":
            if enc.pair is None:
                raise ValueError(f"edge probe {f.key!r} needs pair features; encode with with_pairs=True")
            pair_latents = None
            if self.latent is not None and edge_latents is not None:  # edges -> their pair rows, 0 elsewhere
                pair_latents = edge_latents.new_zeros(layout.num_pairs, edge_latents.shape[-1]).index_copy(
                    0, layout.edge_pair, edge_latents)
            pred = (self.src(z).index_select(0, layout.pair_src) + self.dst(z).index_select(0, layout.pair_dst)
                    + self._edge_term(enc.pair, pair_latents))
            if t == "pointer":
                return self._edge_pointer(pred, self.node(z), layout)
            return pred if t == "categorical" else pred.squeeze(-1)
        pooled = scatter(z, layout.batch, dim=0, dim_size=layout.num_graphs, reduce="max")
        out = self.pool(pooled) + self.graph(enc.graph)
        return out if t == "categorical" else out.squeeze(-1)

    def _edge_pointer(self, pair_pred: Tensor, node_pred: Tensor, layout: BatchLayout) -> Tensor:
        tp, tk = layout.triple_pair, layout.triple_node
        if torch.is_grad_enabled() or tp.numel() <= _TRIPLE_CHUNK:
            logits = self.out(torch.maximum(pair_pred.index_select(0, tp), node_pred.index_select(0, tk))).squeeze(-1)
        else:
            logits = torch.cat([
                self.out(torch.maximum(pair_pred.index_select(0, tp[s:s + _TRIPLE_CHUNK]),
                                       node_pred.index_select(0, tk[s:s + _TRIPLE_CHUNK]))).squeeze(-1)
                for s in range(0, tp.numel(), _TRIPLE_CHUNK)
            ])
        return grouped_log_softmax(logits, tp, layout.num_pairs)


class ProbeDecoder(nn.Module):
    """Decoders of a set of probes; ``forward`` returns ``{probe key: raw output}``."""

    def __init__(self, fields: tuple[Field, ...], hidden: int, **options: Any) -> None:
        super().__init__()
        self.fields = tuple(fields)
        self.decoders = nn.ModuleDict({f.key: FieldDecoder(f, hidden, **options) for f in self.fields})

    @property
    def needs_pairs(self) -> bool:
        return any(d.needs_pairs for d in self.decoders.values())

    def forward(self, z: Tensor, enc: Encoding, layout: BatchLayout,
                edge_latents: Tensor | None = None) -> dict[str, Tensor]:
        return {f.key: self.decoders[f.key](z, enc, layout, edge_latents) for f in self.fields}


def predictions_for_scoring(batch_or_outputs: Any, outputs: Mapping[str, Tensor] | None = None) -> dict[str, Tensor]:
    """Decoder outputs -> the prediction dict :func:`clrs_tasks.evaluate` accepts, whose hard
    predictions are dm-clrs's.

    Call as ``predictions_for_scoring(batch, outputs)`` (what training and evaluation do) or
    ``predictions_for_scoring(outputs)``. Keeps the ``output_*`` entries, named by probe
    (``"pi"``), detached:

    * node pointers: ``[E]`` float log-probabilities on ``edge_index`` (scoring takes the
      argmax over each node's out-edges, as dm-clrs's ``postprocess(hard=True)`` takes it over
      the row);
    * permutation pointers: with the batch, dm-clrs's scoring postprocess of them, ``[E]``
      float: ``exp(log_sinkhorn(pred, 50 steps, temperature 0.1, zero diagonal))`` of the
      decoder's (already Sinkhorn-normalised) output, which ``BaselineModel.predict`` applies
      before its row argmax (:data:`SCORING_SINKHORN_STEPS`); without the batch the raw output
      (its row argmax can differ from dm-clrs's);
    * edge pointers: ``[sum n^3]`` float log-probabilities per pair over the graph's nodes;
    * masks: logits (the default ``mask_format="logits"``; scoring thresholds them at
      ``logit > 0``, as dm-clrs's hard postprocess);
    * mask_one, categorical: logits; scalars: values; edge probes on all ``sum n^2`` pairs;
      graph probes ``[B]`` / ``[B, C]``.
    """
    if outputs is None:
        batch, outputs = None, batch_or_outputs
    else:
        batch = batch_or_outputs
    if not isinstance(outputs, Mapping):
        raise TypeError(f"outputs must be the dict a reasoner returns, got {type(outputs).__name__}")
    preds = {k[len("output_"):]: v.detach() for k, v in outputs.items() if k.startswith("output_")}
    if batch is None:
        return preds
    layout: BatchLayout | None = None
    for f in spec_of(batch).stage("output"):
        p = preds.get(f.name)
        if p is None or not p.is_floating_point():
            continue
        if f.location == "node" and f.type_ == "permutation_pointer":
            layout = layout or BatchLayout(batch)
            if p.shape != (layout.num_edges,):
                continue  # another accepted format (indices, pair logits): scored as given
            if not layout.edges_complete:
                raise ValueError(f"permutation pointer {f.name!r} needs every ordered pair of each graph as a "
                                 "message-passing edge; load the split with edge_policy='complete'")
            src, dst = layout.edge_index
            preds[f.name] = log_sinkhorn(p.float(), src, dst, layout.num_nodes, SCORING_SINKHORN_STEPS,
                                         SCORING_SINKHORN_TEMPERATURE, zero_diagonal=True).exp()
    return preds
