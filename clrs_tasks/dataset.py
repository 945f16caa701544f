"""Cached PyG datasets of CLRS splits.

A split is built once (sampled with dm-clrs, processed, converted) and written to
``<cache>/<task>/<protocol>-<split>-<fingerprint[:16]>.pt``. The fingerprint hashes the task's
name, spec and origin, the *qualified names* (not the code) of its sampler and reference
implementation, the split configuration (sizes, counts, seeds, sampler kwargs, random pos,
processing), the dm-clrs version and this package's storage format version (see
:func:`fingerprint`). Files carry a header with the sha256 of their payload and the full
fingerprint, so a truncated, corrupt or stale file is detected, reported with a warning and
rebuilt, never used. For user-registered tasks the file also records a hash of the algorithm's
and sampler's source (:func:`source_digest`), so editing that code rebuilds the split too.
Writes go to a temporary file renamed into place, under a file lock, so an interrupted build
leaves nothing half-written and two processes building the same split at once build it once.

The cache directory is, in order: the ``root`` argument, the ``CLRS_TASKS_CACHE`` environment
variable, ``~/.cache/clrs_tasks``.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from filelock import FileLock
from torch_geometric.data import Dataset

from clrs_tasks import sampling
from clrs_tasks._clrs import clrs, clrs_version
from clrs_tasks.convert import FORMAT_VERSION, ClrsData, GraphSpec, GraphStore, encode
from clrs_tasks.protocols import SplitConfig, split_config
from clrs_tasks.registry import EDGE_POLICIES, Task, get_task

_MAGIC = b"CLRS_TASKS_CACHE\n"
CACHE_ENV = "CLRS_TASKS_CACHE"


class CacheWarning(UserWarning):
    """A cached split was unusable (corrupt, truncated, stale) and is being rebuilt."""


class _BadCache(Exception):
    pass


def default_cache_dir() -> Path:
    """``$CLRS_TASKS_CACHE`` if set, else ``~/.cache/clrs_tasks``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "clrs_tasks"


def _qualname(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def fingerprint_payload(task: Task, cfg: SplitConfig) -> dict[str, Any]:
    """The JSON-able description the fingerprint hashes (also stored in results files)."""
    return {
        "format_version": FORMAT_VERSION,
        "dm_clrs": clrs_version(),
        "task": {
            "name": task.name,
            "spec": {k: list(v) for k, v in task.spec.items()},
            "sampler": _qualname(task.sampler_class),
            "algorithm": _qualname(task.algorithm),
            "origin": task.origin,
        },
        "split": cfg.as_dict(),
    }


def fingerprint(task: Task, cfg: SplitConfig) -> str:
    """sha256 over :func:`fingerprint_payload`: the split's identity, as leaderboards record it.

    It covers the task's name, spec and origin, the module-qualified names of its algorithm and
    sampler, the split configuration, the dm-clrs version and the storage format version. For the
    built-in tasks that pins the data (their code comes with dm-clrs and this package). For a task
    registered with :func:`~clrs_tasks.register_task` it does **not** cover the code: after
    editing the algorithm or the sampler the fingerprint stays the same (deliberately, so that
    committed leaderboard entries stay valid), while the data may differ. The cache catches edits
    to the algorithm function and the sampler class themselves (:func:`source_digest`) and
    rebuilds; for anything else the data depends on (helpers they call, globals, files, the
    environment) rebuild by hand: ``load_split(..., rebuild=True)`` or delete ``<cache>/<task>/``.
    """
    blob = json.dumps(fingerprint_payload(task, cfg), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def source_digest(task: Task) -> str | None:
    """sha256 of the source of a user task's algorithm and sampler classes, or None.

    Stored in the cache file and compared on load, so that editing the reference implementation
    or the sampler of a task of your own rebuilds its cached splits instead of serving the old
    data. It is deliberately *not* part of :func:`fingerprint` (that would change the
    fingerprints committed leaderboard entries recorded). Covered: the source text of the
    algorithm function and of every class in the sampler's MRO below ``clrs.Sampler``. Not
    covered: helpers they call, module globals, data files, the environment. None for the
    built-in tasks (the dm-clrs version in the fingerprint pins their code) and when the source
    cannot be read (a function typed into a REPL); such splits are not checked.
    """
    if task.origin == "dm-clrs":
        return None
    objects: list[Any] = [task.algorithm]
    base = clrs().Sampler
    objects += [c for c in task.sampler_class.__mro__ if c is not base and issubclass(c, base)]
    digest = hashlib.sha256()
    for obj in objects:
        try:
            src = inspect.getsource(obj)
        except (OSError, TypeError):
            return None
        digest.update(_qualname(obj).encode() + b"\0" + src.encode() + b"\0")
    return digest.hexdigest()


def resolve_root(root: str | os.PathLike[str] | None) -> Path:
    """The cache directory for ``root`` (see the module docstring), checked to be usable.

    A ``root`` that is a file (or lies under one) would fail deep inside ``mkdir`` with
    NotADirectoryError; this says which path is wrong instead.
    """
    path = Path(root).expanduser() if root else default_cache_dir()
    for p in (path, *path.parents):
        if p.exists():
            if not p.is_dir():
                where = "" if p == path else f" ({p} is a file)"
                raise ValueError(f"cache root {path} is not a directory{where}; point root= (--root, "
                                 f"${CACHE_ENV}) at a directory")
            break
    return path


def cache_path(root: Path, cfg: SplitConfig, fp: str) -> Path:
    return root / cfg.task / f"{cfg.protocol}-{cfg.split}-{fp[:16]}.pt"


# --------------------------------------------------------------------------- file format
#
# header:  MAGIC, the full fingerprint, the sha256 of the body (one line each)
# body:    8-byte little-endian length L, L bytes of JSON ({"meta": ..., "arrays": [{key, dtype,
#          shape, offset}]}), then the raw array bytes, each 64-byte aligned.
# No pickle: loading is a read, a hash and zero-copy views into one buffer.

_ALIGN = 64


def _encode_body(meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> list[bytes | memoryview]:
    table, chunks, offset = [], [], 0
    for key, arr in arrays.items():
        arr = np.ascontiguousarray(arr)
        table.append({"key": key, "dtype": arr.dtype.str, "shape": list(arr.shape), "offset": offset})
        chunks.append(memoryview(arr).cast("B") if arr.size else b"")
        pad = -arr.nbytes % _ALIGN
        offset += arr.nbytes + pad
        chunks.append(b"\0" * pad)
    head = json.dumps({"meta": meta, "arrays": table}).encode()
    head += b" " * (-(8 + len(head)) % _ALIGN)
    return [len(head).to_bytes(8, "little"), head, *chunks]


def _write(path: Path, fp: str, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    body = _encode_body(meta, arrays)
    digest = hashlib.sha256()
    for chunk in body:
        digest.update(chunk)
    header = _MAGIC + fp.encode() + b"\n" + digest.hexdigest().encode() + b"\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(header)
            for chunk in body:
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read(path: Path, fp: str) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    try:
        with open(path, "rb") as f:
            raw = bytearray(os.fstat(f.fileno()).st_size)
            f.readinto(raw)
    except OSError as e:
        raise _BadCache(f"cannot read: {e}") from None
    if not raw.startswith(_MAGIC):
        raise _BadCache("not a clrs_tasks cache file")
    view = memoryview(raw)
    first = raw.find(b"\n", len(_MAGIC))
    second = raw.find(b"\n", first + 1)
    if first < 0 or second < 0:
        raise _BadCache("truncated header")
    if bytes(view[len(_MAGIC): first]).decode(errors="replace") != fp:
        raise _BadCache("stale: its fingerprint differs from this split's")
    body = view[second + 1:]
    if hashlib.sha256(body).hexdigest().encode() != bytes(view[first + 1: second]):
        raise _BadCache("corrupt or truncated: checksum mismatch")
    try:
        head_len = int.from_bytes(body[:8], "little")
        head = json.loads(bytes(body[8: 8 + head_len]))
        data = body[8 + head_len:]
        arrays = {}
        for entry in head["arrays"]:
            dtype = np.dtype(entry["dtype"])
            count = int(np.prod(entry["shape"], dtype=np.int64))
            arr = np.frombuffer(data, dtype=dtype, count=count, offset=entry["offset"]).reshape(entry["shape"])
            arrays[entry["key"]] = torch.from_numpy(arr)
        return head["meta"], arrays
    except (ValueError, KeyError, TypeError) as e:
        raise _BadCache(f"unreadable body: {e}") from None


# --------------------------------------------------------------------------- dataset


def _build(task: Task, cfg: SplitConfig, fp: str, progress: bool,
           source: str | None = None) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    t0 = time.perf_counter()
    _, feedbacks = sampling.sample_split(task, cfg, progress=progress)
    t1 = time.perf_counter()
    enc = encode(task.name, feedbacks)
    t2 = time.perf_counter()
    meta = {
        "fingerprint": fp,
        "fingerprint_payload": fingerprint_payload(task, cfg),
        "spec": enc.spec.to_dict(),
        "timing": {"sample_seconds": t1 - t0, "convert_seconds": t2 - t1},
    }
    if source is not None:
        meta["source_sha256"] = source
    arrays = {"__num_nodes": enc.num_nodes, "__lengths": enc.lengths, **enc.arrays}
    return meta, arrays


class ClrsDataset(Dataset):
    """One split of one CLRS task as a PyG dataset (a sequence of :class:`ClrsData`).

    Built on first use and cached (see the module docstring); later loads read the cache.
    Attributes: ``task``, ``config`` (:class:`SplitConfig`), ``fingerprint``, ``spec``
    (:class:`GraphSpec`), ``path``, ``edge_policy``, ``built`` (whether this call sampled it),
    ``timing`` (seconds spent sampling/converting when built, loading when read).
    """

    def __init__(
        self,
        task: str,
        split: str,
        protocol: str = "official",
        root: str | os.PathLike[str] | None = None,
        edge_policy: str | None = None,
        include_hints: bool = True,
        transform: Callable[[ClrsData], ClrsData] | None = None,
        progress: bool = True,
        rebuild: bool = False,
        **overrides: Any,
    ):
        self.task = get_task(task)
        self.config = split_config(self.task, split, protocol, **overrides)
        policy = self.task.edge_policy if edge_policy is None else edge_policy
        if policy not in EDGE_POLICIES:
            raise ValueError(f"unknown edge policy {policy!r}; valid: {', '.join(EDGE_POLICIES)}")
        self.edge_policy = policy
        self.include_hints = include_hints
        self.fingerprint = fingerprint(self.task, self.config)
        self.path = cache_path(resolve_root(root), self.config, self.fingerprint)
        self._source = source_digest(self.task)
        meta, tensors, self.built, self.timing = self._load_or_build(progress, rebuild)
        self.spec = GraphSpec.from_dict(meta["spec"])
        num_nodes, lengths = tensors.pop("__num_nodes"), tensors.pop("__lengths")
        if not include_hints:
            tensors = {k: v for k, v in tensors.items() if not k.startswith("hint_")}
            self.spec = GraphSpec(self.spec.task, tuple(f for f in self.spec.fields if not f.is_hint))
        self.store = GraphStore(self.spec, num_nodes, lengths, tensors,
                                edge_policy=policy, undirected=self.task.undirected)
        super().__init__(root=None, transform=transform)

    def _load_or_build(self, progress: bool, rebuild: bool):
        """(meta, tensors, built, timing). Files are only ever renamed into place whole, so a
        valid file is read without the lock; the lock serialises building (a second builder
        waits, then reads the first one's file)."""
        if not rebuild and self.path.exists():
            found = self._try_read(warn=False)
            if found is not None:
                return found
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:  # e.g. a file named like the task's folder, or a read-only root
            raise ValueError(f"cannot create the cache directory {self.path.parent}: {e.strerror or e}") from None
        with FileLock(str(self.path) + ".lock"):
            if self.path.exists() and not rebuild:
                found = self._try_read(warn=True)
                if found is not None:
                    return found
            meta, arrays = _build(self.task, self.config, self.fingerprint, progress, self._source)
            _write(self.path, self.fingerprint, meta, arrays)
            tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}
            return meta, tensors, True, dict(meta["timing"])

    def _try_read(self, warn: bool):
        t0 = time.perf_counter()
        try:
            meta, tensors = _read(self.path, self.fingerprint)
            if self._source is not None and meta.get("source_sha256") != self._source:
                # same fingerprint (it covers names, not code), but the data may differ
                raise _BadCache("stale: the task's algorithm or sampler source changed since it was built"
                                if "source_sha256" in meta else "stale: built before sources were recorded")
        except _BadCache as e:
            if warn:
                warnings.warn(f"cached split {self.path} is unusable ({e}); rebuilding it", CacheWarning, stacklevel=4)
            return None
        return meta, tensors, False, {"load_seconds": time.perf_counter() - t0}

    # PyG Dataset interface
    def len(self) -> int:
        return len(self.store)

    def get(self, idx: int) -> ClrsData:
        return self.store[idx]

    @property
    def num_nodes_per_graph(self) -> torch.Tensor:
        return self.store.num_nodes

    @property
    def lengths(self) -> torch.Tensor:
        """True trace length of every graph (dm-clrs's ``lengths``)."""
        return self.store.lengths

    def summary(self) -> dict[str, Any]:
        """Counts, sizes and trace lengths, for the CLI and results files."""
        n, t = self.store.num_nodes.float(), self.store.lengths.float()
        return {
            "task": self.task.name,
            "protocol": self.config.protocol,
            "split": self.config.split,
            "fingerprint": self.fingerprint,
            "dm_clrs": clrs_version(),
            "num_graphs": len(self.store),
            "nodes": {"min": int(n.min()), "max": int(n.max()), "mean": round(float(n.mean()), 3)},
            "trace_length": {"min": int(t.min()), "max": int(t.max()), "mean": round(float(t.mean()), 3)},
            "edge_policy": self.edge_policy,
            "bytes": sum(v.numel() * v.element_size() for v in self.store.tensors.values()),
            "path": str(self.path),
        }

    def __repr__(self) -> str:
        c = self.config
        return f"ClrsDataset({c.task!r}, {c.split!r}, protocol={c.protocol!r}, graphs={len(self)})"


def load_split(
    task: str,
    split: str,
    protocol: str = "official",
    root: str | os.PathLike[str] | None = None,
    edge_policy: str | None = None,
    **overrides: Any,
) -> ClrsDataset:
    """Load (building and caching on first use) one split of a task as a PyG dataset.

    ``overrides``: ``sizes``, ``num_samples``, ``seed``, ``sampler_kwargs``, ``random_pos``,
    ``pred_as_input``, ``enforce_permutations`` change the split's definition (and so its
    fingerprint); ``include_hints``, ``transform``, ``progress``, ``rebuild`` do not.
    """
    return ClrsDataset(task, split, protocol, root=root, edge_policy=edge_policy, **overrides)
