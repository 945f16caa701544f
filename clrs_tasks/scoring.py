"""CLRS scoring of model predictions, by dm-clrs's own ``clrs.evaluate``.

The metrics are not re-implemented: targets are turned back into dm-clrs arrays with the same
decoder :func:`~clrs_tasks.convert.to_clrs` uses, predictions are turned into dm-clrs's hard
predictions (what ``clrs.decoders.postprocess(..., hard=True)`` gives), the whole split is
pooled, and ``clrs.evaluate`` scores it: F1 for masks, argmax accuracy for mask_one and
categorical, index accuracy for pointers (permutation pointers fused with their mask first),
mean squared error for scalars; the score is the mean over output probes.

Predictions are a dict ``output name -> tensor`` in the graph layout of the batch:

======================  ====================================================================
probe (location, type)  accepted prediction
======================  ====================================================================
node scalar             ``[num_nodes]`` values
node mask               ``[num_nodes]`` logits (``mask_format="probs"``: probabilities)
node mask_one           ``[num_nodes]`` logits; the argmax within each graph is chosen
node categorical        ``[num_nodes, C]`` logits
node pointer,           integer ``[num_nodes]``: the pointed-to node's index in the batch; or
permutation_pointer     float ``[num_pairs]``: logits over all ordered pairs, row ``i * n + j``
                        scoring "i points to j" (a batch's pairs are concatenated per graph); or
                        float ``[num_edges]``: logits on ``edge_index`` (edge ``(i, j)`` scores
                        "i points to j"), argmax over each node's out-edges
edge scalar/mask/...    as the node case with ``num_pairs`` rows
edge pointer            integer ``[num_pairs]`` node indices, or float ``[sum n^3]``: per pair
                        ``(i, j)`` logits over the ``n`` nodes, flattened
graph scalar/mask       ``[num_graphs]``
graph categorical       ``[num_graphs, C]``
======================  ====================================================================

A permutation output (``pred`` with ``pred_mask``) is scored exactly as dm-clrs does: the
argmax of each row of the pointer prediction (apply Sinkhorn first if your model uses it), the
argmax of the mask, fused into one node pointer.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable, Mapping

import numpy as np
import torch
from torch_geometric.data import Data

from clrs_tasks._clrs import clrs
from clrs_tasks.convert import Field, GraphSpec, _decode_field, graph_sizes, spec_of


class PredictionError(ValueError):
    """Predictions that do not match the batch or the probe's type."""


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().float().cpu().numpy() if t.is_floating_point() else t.detach().cpu().numpy()


def _one_hot_argmax(x: np.ndarray) -> np.ndarray:
    return np.eye(x.shape[-1], dtype=np.float64)[x.argmax(-1)]


def _edge_argmax(scores: torch.Tensor, edge_index: torch.Tensor, num_nodes: int) -> np.ndarray:
    """For each node, the target of its highest-scoring out-edge (ties: lowest target), or -1."""
    src, dst = edge_index
    best = torch.full((num_nodes,), float("-inf"), dtype=scores.dtype, device=scores.device)
    best = best.scatter_reduce(0, src, scores, reduce="amax")
    is_best = scores == best[src]
    big = torch.full((num_nodes,), num_nodes, dtype=torch.long, device=scores.device)
    choice = big.scatter_reduce(0, src[is_best], dst[is_best], reduce="amin")
    choice[choice == num_nodes] = -1
    return choice.cpu().numpy()


class _Layout:
    """Row ranges of every graph of a batch, per location."""

    def __init__(self, batch: Data):
        self.offsets, self.sizes = graph_sizes(batch)
        self.pair_offsets = np.concatenate([[0], np.cumsum(self.sizes**2)])
        self.cube_offsets = np.concatenate([[0], np.cumsum(self.sizes**3)])
        self.num_nodes = int(self.sizes.sum())
        self.num_pairs = int(self.pair_offsets[-1])
        self.num_graphs = len(self.sizes)

    def rows(self, location: str, g: int) -> slice:
        if location == "node":
            o = int(self.offsets[g])
            return slice(o, o + int(self.sizes[g]))
        if location == "edge":
            return slice(int(self.pair_offsets[g]), int(self.pair_offsets[g + 1]))
        return slice(g, g + 1)


def _hard_prediction(f: Field, pred: torch.Tensor, batch: Data, lay: _Layout, mask_format: str) -> list[np.ndarray]:
    """Per graph, dm-clrs's hard prediction for one output probe, shaped ``[1, ...]``."""
    rows = {"node": lay.num_nodes, "edge": lay.num_pairs, "graph": lay.num_graphs}[f.location]
    name = f.name
    if not isinstance(pred, torch.Tensor):
        raise PredictionError(f"prediction for {name!r} must be a tensor, got {type(pred).__name__}")
    out: list[np.ndarray] = []
    if f.type_ in ("pointer", "permutation_pointer"):
        if not pred.is_floating_point():
            if pred.shape != (rows,):
                raise PredictionError(f"{name!r}: integer pointer predictions must have shape [{rows}], got {list(pred.shape)}")
            flat = pred.cpu().numpy().astype(np.int64)
            per_graph = []
            for g, n in enumerate(lay.sizes.tolist()):
                idx = flat[lay.rows(f.location, g)] - int(lay.offsets[g])
                per_graph.append(idx.reshape(n, n) if f.location == "edge" else idx)
        elif f.location == "node" and pred.shape == (lay.num_pairs,):
            p = _np(pred)
            per_graph = [p[lay.rows("edge", g)].reshape(int(n), int(n)).argmax(-1) for g, n in enumerate(lay.sizes)]
        elif f.location == "node" and pred.dim() == 1 and hasattr(batch, "edge_index") and pred.shape[0] == batch.edge_index.shape[1]:
            choice = _edge_argmax(pred.detach(), batch.edge_index, lay.num_nodes)
            per_graph = [np.where(choice[lay.rows("node", g)] >= 0, choice[lay.rows("node", g)] - int(lay.offsets[g]), -1)
                         for g in range(lay.num_graphs)]
        elif f.location == "edge" and pred.shape == (int(lay.cube_offsets[-1]),):
            p = _np(pred)
            per_graph = [p[int(lay.cube_offsets[g]): int(lay.cube_offsets[g + 1])].reshape(int(n), int(n), int(n)).argmax(-1)
                         for g, n in enumerate(lay.sizes)]
        else:
            raise PredictionError(
                f"{name!r} ({f.location} {f.type_}): expected integer [{rows}] indices"
                + (f", float [{lay.num_pairs}] pair logits or float [num_edges] edge logits" if f.location == "node"
                   else f" or float [{int(lay.cube_offsets[-1])}] logits")
                + f", got {pred.dtype} {list(pred.shape)}"
            )
        for g, idx in enumerate(per_graph):
            n = int(lay.sizes[g])
            if f.type_ == "permutation_pointer":
                out.append(np.eye(n, dtype=np.float64)[np.clip(idx, 0, n - 1)][None])
            else:
                out.append(idx.astype(np.float64)[None])
        return out
    p = _np(pred)
    want_tail = f.trailing
    if f.location == "graph" and p.ndim == len(want_tail) + 2 and p.shape[1] == 1:
        p = p[:, 0]
    if p.shape != (rows,) + tuple(want_tail):
        raise PredictionError(f"{name!r} ({f.location} {f.type_}): expected shape {[rows, *want_tail]}, got {list(p.shape)}")
    if f.type_ == "mask":
        if mask_format == "logits":
            # dm-clrs's postprocess(hard=True): logit > 0. (Not sigmoid > 0.5: a logit of 0, or
            # one below 1.1e-16, has sigmoid exactly 0.5, which its F1 counts as neither class.)
            p = (p > 0).astype(np.float64)
        elif mask_format != "probs":
            raise ValueError(f"mask_format must be 'logits' or 'probs', got {mask_format!r}")
    for g in range(lay.num_graphs):
        x = p[lay.rows(f.location, g)]
        n = int(lay.sizes[g])
        if f.location == "edge":
            x = x.reshape((n, n) + x.shape[1:])
        elif f.location == "graph":
            x = x[0]
        if f.type_ in ("categorical", "mask_one"):
            x = _one_hot_argmax(x)
        out.append(np.asarray(x, dtype=np.float64)[None])
    return out


def _targets(f: Field, batch: Data, lay: _Layout) -> list[np.ndarray]:
    value = batch[f.key]
    res = []
    for g in range(lay.num_graphs):
        rows = value[lay.rows(f.location, g)]
        res.append(_decode_field(f, rows, np.array([lay.offsets[g]]), int(lay.sizes[g]), 0))
    return res


def _pool(f: Field, arrays: list[np.ndarray]) -> np.ndarray:
    """Pool per-graph arrays ``[1, ...]`` of possibly different sizes so that dm-clrs's metric
    over the pooled array equals the metric over all the split's elements."""
    shapes = {a.shape for a in arrays}
    if len(shapes) == 1:
        return np.concatenate(arrays)
    if f.location == "graph":
        return np.concatenate(arrays)
    if f.type_ == "mask_one":  # argmax over the last (node) axis: pad it with zeros
        width = max(a.shape[-1] for a in arrays)
        rows = [np.pad(a.reshape(-1, a.shape[-1]), ((0, 0), (0, width - a.shape[-1]))) for a in arrays]
        return np.concatenate(rows)
    if f.type_ == "categorical":
        return np.concatenate([a.reshape(-1, a.shape[-1]) for a in arrays])[None]
    return np.concatenate([a.reshape(-1) for a in arrays])[None]


class Evaluator:
    """Accumulates a split's targets and predictions batch by batch; :meth:`result` scores them.

    ``result()`` returns dm-clrs's dict: one entry per output probe (permutation pointers fused
    with their ``_mask``) and ``score``, their mean, all pooled over everything added.
    """

    def __init__(self, mask_format: str = "logits"):
        if mask_format not in ("logits", "probs"):
            raise ValueError(f"mask_format must be 'logits' or 'probs', got {mask_format!r}")
        self.mask_format = mask_format
        self.spec: GraphSpec | None = None
        self._truth: dict[str, list[np.ndarray]] = defaultdict(list)
        self._pred: dict[str, list[np.ndarray]] = defaultdict(list)
        self.num_graphs = 0

    def add(self, batch: Data, predictions: Mapping[str, torch.Tensor]) -> None:
        spec = spec_of(batch)
        if self.spec is None:
            self.spec = spec
        elif spec != self.spec:
            raise PredictionError("all batches given to one Evaluator must come from the same task and protocol")
        lay = _Layout(batch)
        preds = {k[len("output_"):] if k.startswith("output_") else k: v for k, v in predictions.items()}
        outputs = spec.stage("output")
        missing = [f.name for f in outputs if f.name not in preds]
        if missing:
            raise PredictionError(f"missing predictions for {', '.join(missing)}; outputs: {', '.join(f.name for f in outputs)}")
        extra = sorted(set(preds) - {f.name for f in outputs})
        if extra:
            raise PredictionError(f"predictions for unknown outputs {', '.join(extra)}; outputs: {', '.join(f.name for f in outputs)}")
        for f in outputs:
            self._pred[f.name] += _hard_prediction(f, preds[f.name], batch, lay, self.mask_format)
            self._truth[f.name] += _targets(f, batch, lay)
        self.num_graphs += lay.num_graphs

    def result(self) -> dict[str, float]:
        if self.spec is None:
            raise ValueError("nothing to score: add() at least one batch first")
        c = clrs()
        from clrs._src import evaluation  # noqa: PLC0415

        outputs = self.spec.stage("output")
        mixed = len({a.shape for a in self._truth[outputs[0].name]}) > 1
        truths, preds = [], {}
        skip = set()
        for f in outputs:
            if f.name in skip:
                continue
            if mixed and f.type_ == "permutation_pointer":
                # fuse per graph (dm-clrs's own fuse) before pooling graphs of different sizes
                m = f"{f.name}_mask"
                fuse = lambda p, k: evaluation.fuse_perm_and_mask(  # noqa: E731
                    c.DataPoint(f.name, "node", "permutation_pointer", p), c.DataPoint(m, "node", "mask_one", k)).data
                t = [fuse(p, k) for p, k in zip(self._truth[f.name], self._truth[m])]
                q = [fuse(p, k) for p, k in zip(self._pred[f.name], self._pred[m])]
                pf = Field(f.name, "output", "node", "pointer", "float64", "int64", ())
                truths.append(c.DataPoint(f.name, "node", "pointer", _pool(pf, t)))
                preds[f.name] = c.DataPoint(f.name, "node", "pointer", _pool(pf, q))
                skip.add(m)
                continue
            truths.append(c.DataPoint(f.name, f.location, f.type_, _pool(f, self._truth[f.name])))
            preds[f.name] = c.DataPoint(f.name, f.location, f.type_, _pool(f, self._pred[f.name]))
        scores = c.evaluate(tuple(truths), preds)
        return {k: float(v) for k, v in scores.items()}


def evaluate(data: Data | Iterable[Data], predictions: Mapping[str, torch.Tensor] | Iterable[Mapping[str, torch.Tensor]],
             mask_format: str = "logits") -> dict[str, float]:
    """Score predictions with dm-clrs's ``clrs.evaluate``, pooled over everything given.

    ``data`` is a batch (or graph) with ``predictions`` a dict for it, or an iterable of batches
    with an iterable of dicts, one per batch (for a whole split, or use :class:`Evaluator`).
    """
    ev = Evaluator(mask_format)
    if isinstance(data, Data):
        if not isinstance(predictions, Mapping):
            raise PredictionError("one batch takes one dict of predictions")
        ev.add(data, predictions)
    else:
        # a single dict would be iterated as its keys and fail deep inside with AttributeError
        if isinstance(predictions, Mapping):
            raise PredictionError("several batches take a list of prediction dicts, one per batch; got one dict")
        batches, preds = list(data), list(predictions)  # type: ignore[arg-type]
        if len(batches) != len(preds):
            raise PredictionError(f"{len(batches)} batches but {len(preds)} prediction dicts")
        for i, (b, p) in enumerate(zip(batches, preds)):
            if not isinstance(p, Mapping):
                raise PredictionError(f"predictions for batch {i} must be a dict name -> tensor, got {type(p).__name__}")
            ev.add(b, p)
    return ev.result()
