"""Lossless conversion between dm-clrs traces and PyTorch Geometric graphs.

Layout of one graph (``n`` nodes, trace length ``T``), for a probe ``name`` of stage ``stage``
stored under the key ``f"{stage}_{name}"`` (the key naming of dm-clrs's own TFDS dataset):

============  =====================  ==========================
location      inputs / outputs       hints (time axis second)
============  =====================  ==========================
node          ``[n, *trailing]``     ``[n, T, *trailing]``
edge          ``[n * n, *trailing]`` ``[n * n, T, *trailing]``
graph         ``[1, *trailing]``     ``[1, T, *trailing]``
============  =====================  ==========================

Edge-located probes are kept on **all** ``n * n`` ordered pairs, flattened row-major (pair
``(i, j)`` at row ``i * n + j``), whatever edge set message passing uses, so nothing is lost.
``edge_index`` is the message-passing edge set of the chosen policy (edge ``i -> j`` is
``edge_index[:, e] == (i, j)``, sorted row-major) and ``edge_pair[e] = i * n + j`` indexes the
flattened pair rows, so ``data.input_A[data.edge_pair]`` gathers weights onto edges, in a batch
too. Pointers (node and edge pointers, permutation pointers) are stored as node indices and are
offset by PyG batching (``__inc__``); a permutation pointer's one-hot ``[n, n]`` matrix is stored
as the index of its one. Masks, categoricals and integer-valued scalars are stored in the
smallest integer type that holds them exactly; other data keep their dtype. Each field records
dm-clrs's dtype, so :func:`to_clrs` gives back dm-clrs's arrays bit for bit.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import cached_property
from typing import Any, Iterable, Sequence

import numpy as np
import torch
from torch_geometric.data import Batch, Data

from clrs_tasks._clrs import clrs

FORMAT_VERSION = 3  # 2: hints stored time-major per graph; 3: pointers stored compactly
_POINTERS = ("pointer", "permutation_pointer")
_INT_TYPES = (np.int8, np.int16, np.int32, np.int64)


class ConversionError(ValueError):
    """A trace that cannot be stored losslessly, or a graph that cannot be turned back."""


@dataclass(frozen=True)
class Field:
    """One probe of a task as stored on graphs."""

    name: str
    stage: str
    location: str
    type_: str
    dtype: str  # dm-clrs's numpy dtype of the probe
    stored: str  # numpy dtype used on the graph
    trailing: tuple[int, ...]  # dims after [rows] (or [rows, T] for hints)

    @property
    def key(self) -> str:
        return f"{self.stage}_{self.name}"

    @property
    def is_hint(self) -> bool:
        return self.stage == "hint"

    @property
    def is_pointer(self) -> bool:
        return self.type_ in _POINTERS


@dataclass(frozen=True)
class GraphSpec:
    """The fields of a task's graphs, in dm-clrs's order (inputs, outputs, hints)."""

    task: str
    fields: tuple[Field, ...]

    @cached_property
    def pointer_keys(self) -> frozenset[str]:
        return frozenset(f.key for f in self.fields if f.is_pointer)

    @cached_property
    def by_key(self) -> dict[str, Field]:
        return {f.key: f for f in self.fields}

    def stage(self, stage: str) -> tuple[Field, ...]:
        return tuple(f for f in self.fields if f.stage == stage)

    def clrs_spec(self) -> dict[str, tuple[str, str, str]]:
        """The processed dm-clrs spec (name -> (stage, location, type))."""
        return {f.name: (f.stage, f.location, f.type_) for f in self.fields}

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "fields": [asdict(f) for f in self.fields]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "GraphSpec":
        return cls(d["task"], tuple(Field(**{**f, "trailing": tuple(f["trailing"])}) for f in d["fields"]))


class ClrsData(Data):
    """A CLRS trace as a PyG graph; pointers are node indices offset when batched."""

    def __inc__(self, key: str, value: Any, *args: Any, **kwargs: Any) -> Any:
        if key == "edge_pair":
            return self.num_nodes * self.num_nodes
        spec = self._store.get("clrs_spec") if hasattr(self, "_store") else None
        if spec is not None and key in spec.pointer_keys:
            return self.num_nodes
        return super().__inc__(key, value, *args, **kwargs)


# --------------------------------------------------------------------------- encoding


def _num_nodes(feedback) -> int:
    for dp in list(feedback.features.inputs) + list(feedback.outputs):
        if dp.location in ("node", "edge"):
            return int(np.asarray(dp.data).shape[1])
    raise ConversionError("a task needs at least one node- or edge-located input or output probe")


def _rows(dp, stage: str, n: int, lengths: np.ndarray) -> np.ndarray:
    """A probe's batched dm-clrs array -> its per-graph rows, concatenated over graphs.

    Inputs/outputs come as ``[B, *loc_dims, *trailing]`` and hints as
    ``[T, B, *loc_dims, *trailing]`` (zero-padded past each trace's length).
    """
    data = np.asarray(dp.data)
    b = len(lengths)
    if dp.type_ == "permutation_pointer":
        idx = data.argmax(-1)
        if not np.array_equal(np.eye(n, dtype=data.dtype)[idx], data):
            raise ConversionError(f"permutation pointer {dp.name!r} is not one-hot; cannot store it as indices")
        data = idx
    elif dp.type_ == "pointer" and not np.array_equal(data, np.trunc(data)):
        raise ConversionError(f"pointer {dp.name!r} holds non-integer node indices")
    data = _compact(data, dp.type_)
    loc_dims = {"node": 1, "edge": 2, "graph": 0}[dp.location]
    if stage != "hint":
        # [B, *loc, *tr] -> [B * prod(loc), *tr]
        return data.reshape((b * n**loc_dims,) + data.shape[1 + loc_dims:])
    t_max = data.shape[0]
    steps = lengths.astype(np.int64)
    past_end = np.arange(t_max)[:, None] >= steps[None, :]  # [T, B]
    if np.any(data[past_end] != 0):
        raise ConversionError(f"hint {dp.name!r} is non-zero past a trace's length; it would not round-trip")
    # Stored time-major per graph ([T_b, prod(loc), *tr] blocks): copying whole rows of the
    # [T, B, ...] array is cache-friendly, unlike a full transpose; graphs get [rows, T] views.
    trailing = data.shape[2 + loc_dims:]
    blocks = data.reshape((t_max, b, n**loc_dims) + trailing)
    if np.all(steps == t_max):
        return np.swapaxes(blocks, 0, 1).reshape((-1,) + trailing)
    return np.concatenate([blocks[: steps[i], i].reshape((-1,) + trailing) for i in range(b)])


def _compact(arr: np.ndarray, field_type: str) -> np.ndarray:
    """``arr`` in its smallest exact storage type: small ints for integer-valued data (pointers
    included; graphs widen them to int64), else unchanged. Casting first makes the layout pass move less memory."""
    if arr.size == 0 or arr.dtype.kind not in "fiub":
        return arr
    if arr.dtype.itemsize > 1:  # masks and most hints fit int8: try the cheapest exact cast first
        with np.errstate(invalid="ignore", over="ignore"):
            small = arr.astype(np.int8)
        if np.array_equal(small, arr):
            return small
    if arr.dtype.kind == "f":
        with np.errstate(invalid="ignore", over="ignore"):
            ints = arr.astype(np.int64)
        if not np.array_equal(ints, arr):  # non-integral, non-finite or out of range: keep as is
            return arr
    else:
        ints = arr
    lo, hi = ints.min(), ints.max()
    for t in _INT_TYPES:
        info = np.iinfo(t)
        if info.min <= lo and hi <= info.max:
            return ints.astype(t)
    return arr


@dataclass
class Encoded:
    """A split (or any list of traces) in flat storage: per-graph rows concatenated per key."""

    spec: GraphSpec
    num_nodes: np.ndarray  # [G] int64
    lengths: np.ndarray  # [G] int64
    arrays: dict[str, np.ndarray]


def encode(task: str, feedbacks: Sequence[Any]) -> Encoded:
    """Processed dm-clrs ``Feedback`` batches (each one size) -> flat storage, losslessly."""
    if not feedbacks:
        raise ConversionError("nothing to encode: no traces")
    order: list[tuple[str, Any]] = []  # (stage, DataPoint) of the first batch: dm-clrs's order
    fb0 = feedbacks[0]
    order += [("input", dp) for dp in fb0.features.inputs]
    order += [("output", dp) for dp in fb0.outputs]
    order += [("hint", dp) for dp in fb0.features.hints]
    chunks: dict[str, list[np.ndarray]] = {f"{s}_{dp.name}": [] for s, dp in order}
    nodes, lengths = [], []
    for fb in feedbacks:
        n = _num_nodes(fb)
        steps = np.asarray(fb.features.lengths)
        if not np.array_equal(steps, np.trunc(steps)) or np.any(steps < 1):
            raise ConversionError(f"trace lengths must be positive integers, got {steps[:5]}...")
        staged = ([("input", dp) for dp in fb.features.inputs] + [("output", dp) for dp in fb.outputs]
                  + [("hint", dp) for dp in fb.features.hints])
        if [(s, dp.name, dp.location, dp.type_) for s, dp in staged] != [
            (s, dp.name, dp.location, dp.type_) for s, dp in order
        ]:
            raise ConversionError("batches of one split must share their probes")
        for stage, dp in staged:
            chunks[f"{stage}_{dp.name}"].append(_rows(dp, stage, n, steps))
        nodes.append(np.full(len(steps), n, dtype=np.int64))
        lengths.append(steps.astype(np.int64))
    fields, arrays = [], {}
    for stage, dp in order:
        key = f"{stage}_{dp.name}"
        parts = chunks[key]
        dtypes = {str(np.asarray(d.data).dtype) for d in _probes(feedbacks, stage, dp.name)}
        if len(dtypes) != 1:
            raise ConversionError(f"probe {dp.name!r} has different dtypes across batches: {sorted(dtypes)}")
        trailing = {p.shape[1:] for p in parts}
        if len(trailing) != 1:
            raise ConversionError(f"probe {dp.name!r} changes its trailing shape across sizes: {sorted(trailing)}")
        stored = np.result_type(*[p.dtype for p in parts])  # groups may have compacted differently
        flat = np.concatenate([p.astype(stored, copy=False) for p in parts]) if len(parts) > 1 else parts[0]
        arrays[key] = np.ascontiguousarray(flat)
        fields.append(Field(dp.name, stage, dp.location, dp.type_, dtypes.pop(), stored.name, trailing.pop()))
    return Encoded(GraphSpec(task, tuple(fields)), np.concatenate(nodes), np.concatenate(lengths), arrays)


def _probes(feedbacks: Sequence[Any], stage: str, name: str) -> list[Any]:
    out = []
    for fb in feedbacks:
        group = {"input": fb.features.inputs, "output": fb.outputs, "hint": fb.features.hints}[stage]
        out += [dp for dp in group if dp.name == name]
    return out


# --------------------------------------------------------------------------- edge sets


def message_edges(adj: torch.Tensor | None, n: int, policy: str, undirected: bool) -> torch.Tensor:
    """Message-passing ``edge_index`` of one graph, sorted row-major, self loops included.

    ``adjacency``: the input graph (``adj[i, j] != 0`` gives edge ``i -> j``) plus self loops,
    made undirected when the task asks (DEAR's choice for DFS, SCC and DAG shortest paths);
    tasks without an ``adj`` input (arrays, strings, points) get the complete graph, as in DEAR.
    ``complete``: all ``n * n`` ordered pairs.
    """
    if policy == "complete" or adj is None:
        mask = torch.ones(n, n, dtype=torch.bool)
    elif policy == "adjacency":
        mask = adj.reshape(n, n) != 0
        if undirected:
            mask = mask | mask.T
        mask = mask.clone()
        mask.fill_diagonal_(True)
    else:
        raise ValueError(f"unknown edge policy {policy!r}; valid: adjacency, complete")
    return mask.nonzero().T.contiguous()


# --------------------------------------------------------------------------- graph store


class GraphStore:
    """A split held as flat tensors; ``store[i]`` is a :class:`ClrsData` of views (no copies)."""

    def __init__(self, spec: GraphSpec, num_nodes: torch.Tensor, lengths: torch.Tensor,
                 tensors: dict[str, torch.Tensor], edge_policy: str = "adjacency", undirected: bool = False):
        if edge_policy not in ("adjacency", "complete"):
            raise ValueError(f"unknown edge policy {edge_policy!r}; valid: adjacency, complete")
        self.spec, self.num_nodes, self.lengths, self.tensors = spec, num_nodes, lengths, tensors
        self.edge_policy, self.undirected = edge_policy, undirected
        n, t = num_nodes.long(), lengths.long()
        zero = torch.zeros(1, dtype=torch.long)
        per_loc = {"node": n, "edge": n * n, "graph": torch.ones_like(n)}
        self._offsets: dict[tuple[str, bool], torch.Tensor] = {}
        for loc, rows in per_loc.items():
            self._offsets[(loc, False)] = torch.cat([zero, rows.cumsum(0)]).tolist()
            self._offsets[(loc, True)] = torch.cat([zero, (rows * t).cumsum(0)]).tolist()
        self._n = n.tolist()
        self._t = t.tolist()
        for f in spec.fields:
            want = self._offsets[(f.location, f.is_hint)][-1]
            got = tensors[f.key].shape[0]
            if got != want:
                raise ConversionError(f"stored field {f.key!r} has {got} rows, expected {want}")

    @classmethod
    def from_encoded(cls, enc: Encoded, **kwargs: Any) -> "GraphStore":
        return cls(enc.spec, torch.from_numpy(enc.num_nodes), torch.from_numpy(enc.lengths),
                   {k: torch.from_numpy(v) for k, v in enc.arrays.items()}, **kwargs)

    def __len__(self) -> int:
        return len(self._n)

    def __getitem__(self, i: int) -> ClrsData:
        if not -len(self) <= i < len(self):
            raise IndexError(f"graph index {i} out of range for {len(self)} graphs")
        i %= len(self)
        n, t = self._n[i], self._t[i]
        out: dict[str, Any] = {}
        for f in self.spec.fields:
            off = self._offsets[(f.location, f.is_hint)]
            rows = self.tensors[f.key][off[i]: off[i + 1]]
            if f.is_hint:
                rows = rows.view((t, -1) + f.trailing).transpose(0, 1).contiguous()
            # pointers are stored compactly; graphs carry int64 so PyG can offset them
            out[f.key] = rows.long() if f.is_pointer else rows
        adj = out.get("input_adj")
        edge_index = message_edges(adj, n, self.edge_policy, self.undirected)
        return ClrsData(
            num_nodes=n,
            edge_index=edge_index,
            edge_pair=edge_index[0] * n + edge_index[1],
            length=torch.tensor([t], dtype=torch.long),
            clrs_spec=self.spec,
            **out,
        )


def from_clrs(feedback, task: str, edge_policy: str = "adjacency", undirected: bool | None = None) -> list[ClrsData]:
    """Convert a processed dm-clrs ``Feedback`` (a batch of traces of one size) to graphs.

    ``task`` names the registered task (its spec and edge settings); ``undirected`` overrides the
    task's adjacency symmetrisation.
    """
    from clrs_tasks.registry import get_task  # noqa: PLC0415

    t = get_task(task)
    store = GraphStore.from_encoded(encode(task, [feedback]), edge_policy=edge_policy,
                                    undirected=t.undirected if undirected is None else undirected)
    return [store[i] for i in range(len(store))]


# --------------------------------------------------------------------------- decoding


def graph_sizes(obj: Data) -> tuple[np.ndarray, np.ndarray]:
    """(node offsets [B], node counts [B]) of a graph or a batch."""
    if isinstance(obj, Batch):
        ptr = obj.ptr.cpu().numpy()
        return ptr[:-1], np.diff(ptr)
    return np.zeros(1, dtype=np.int64), np.array([obj.num_nodes], dtype=np.int64)


def spec_of(obj: Data) -> GraphSpec:
    """The :class:`GraphSpec` of a graph or batch; all graphs of a batch must share it."""
    spec = getattr(obj, "clrs_spec", None)
    if isinstance(spec, list):
        first = spec[0]
        if any(s is not first and s != first for s in spec[1:]):
            raise ConversionError("the batch mixes graphs of different tasks or processing")
        spec = first
    if not isinstance(spec, GraphSpec):
        raise ConversionError("not a clrs_tasks graph: it has no `clrs_spec` (build it with clrs_tasks)")
    return spec


def _decode_field(f: Field, value: torch.Tensor, offsets: np.ndarray, n: int, t_out: int) -> np.ndarray:
    b = len(offsets)
    arr = value.detach().cpu().numpy()
    rows = {"node": n, "edge": n * n, "graph": 1}[f.location]
    if f.is_hint:
        t_have = arr.shape[1]
        if t_have < t_out:
            pad = np.zeros((arr.shape[0], t_out - t_have) + arr.shape[2:], dtype=arr.dtype)
            arr = np.concatenate([arr, pad], axis=1)
        arr = arr[:, :t_out]
        arr = arr.reshape((b, rows, t_out) + f.trailing)
    else:
        arr = arr.reshape((b, rows) + f.trailing)
    if f.is_pointer:
        shift = offsets.reshape((b,) + (1,) * (arr.ndim - 1))
        arr = arr.astype(np.int64) - shift  # padded hint steps were offset too, so they return to 0
    if f.type_ == "permutation_pointer":
        arr = np.eye(n, dtype=np.dtype(f.dtype))[arr]
    if f.is_hint:
        arr = np.moveaxis(arr, 2, 0)  # [T, B, rows, *tr]
    lead = arr.shape[:2] if f.is_hint else arr.shape[:1]
    tail = arr.shape[len(lead) + 1:]
    loc_shape = {"node": (n,), "edge": (n, n), "graph": ()}[f.location]
    return arr.reshape(lead + loc_shape + tail).astype(np.dtype(f.dtype), copy=False)


def to_clrs(obj: Data | Iterable[Data], per_graph: bool = False):
    """Turn a graph, a batch or a list of graphs back into dm-clrs's ``Feedback`` layout.

    Returns ``clrs.Feedback(features=clrs.Features(inputs, hints, lengths), outputs)`` with
    ``DataPoint`` arrays exactly as dm-clrs's sampler and processing produce them: inputs and
    outputs ``[B, ...]``, hints ``[T, B, ...]`` zero-padded to the longest trace, lengths float64.
    Graphs of different sizes cannot share a dm-clrs array: pass ``per_graph=True`` to get a list
    with one ``Feedback`` per graph instead.
    """
    if not isinstance(obj, Data):
        from clrs_tasks.loader import collate  # noqa: PLC0415

        obj = collate(list(obj))
    if per_graph:
        if isinstance(obj, Batch):
            return [to_clrs(obj.get_example(i)) for i in range(obj.num_graphs)]
        return [to_clrs(obj)]
    c = clrs()
    spec = spec_of(obj)
    offsets, sizes = graph_sizes(obj)
    if len(set(sizes.tolist())) != 1:
        raise ConversionError(
            f"graphs of different sizes ({sorted(set(sizes.tolist()))}) cannot share one dm-clrs array; "
            "use to_clrs(batch, per_graph=True)"
        )
    n = int(sizes[0])
    lengths = obj.length.detach().cpu().numpy().astype(np.float64).reshape(-1)
    t_out = int(lengths.max())
    staged: dict[str, list[Any]] = {"input": [], "output": [], "hint": []}
    for f in spec.fields:
        data = _decode_field(f, obj[f.key], offsets, n, t_out)
        staged[f.stage].append(c.DataPoint(name=f.name, location=f.location, type_=f.type_, data=data))
    features = c.Features(tuple(staged["input"]), tuple(staged["hint"]), lengths)
    return c.Feedback(features, tuple(staged["output"]))
