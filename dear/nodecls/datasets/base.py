"""Shared machinery of the node-classification loaders: where data and caches live, the
missing-dataset error, source-file identity, the on-disk cache and the dataset fingerprint.

Every loader follows one pattern: parse the publisher's files once into a dict of tensors,
store it in the cache (keyed by everything that determines it), and derive the returned
:class:`~torch_geometric.data.Data` (splits, validation draw) from the cached tensors, which is
cheap. The split and seed are therefore not part of the cache key, but they are part of the
fingerprint recorded on the returned data.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from filelock import FileLock
from torch import Tensor

from dear.io import atomic_torch_save

log = logging.getLogger(__name__)

#: Environment variable naming the data directory (the folder holding ``amgcn/``, ...).
ENV_DATA = "DEAR_DATA"
#: Environment variable naming the cache directory.
ENV_CACHE = "DEAR_CACHE"

#: Bump when what a loader stores changes: old cache files are then rebuilt, and the
#: fingerprint of every dataset changes with it.
FORMAT_VERSION = 1

# dear/nodecls/datasets/base.py -> parents[3] is the repository root.
_REPO_ROOT = Path(__file__).resolve().parents[3]


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's files are not where the loader looks for them.

    The message is one line naming the missing files, the folder to place them in and where
    to obtain them, so the CLI can print it as is.
    """


# --------------------------------------------------------------------------------- paths


def default_data_dir() -> Path:
    """``../shared/data`` beside the repository checkout.

    Only this repository's tests and CI rely on it; users set ``DEAR_DATA`` or pass ``root``.
    """
    return _REPO_ROOT.parent / "shared" / "data"


def resolve_data_dir(root: str | os.PathLike[str] | None = None) -> Path:
    """The data directory: ``root`` if given, else ``$DEAR_DATA``, else :func:`default_data_dir`."""
    if root is None:
        root = os.environ.get(ENV_DATA) or default_data_dir()
    return Path(root).expanduser().resolve()


def resolve_cache_dir(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The cache directory: ``cache_dir`` if given, else ``$DEAR_CACHE``, else ``~/.cache/dear``.

    Node-classification caches live in its ``nodecls/`` subfolder.
    """
    if cache_dir is None:
        cache_dir = os.environ.get(ENV_CACHE) or Path.home() / ".cache" / "dear"
    return Path(cache_dir).expanduser().resolve()


def require_files(
    dataset: str, folder: Path, relpaths: Iterable[str], obtain: str
) -> dict[str, Path]:
    """Return ``{relpath: path}`` for files under ``folder``, or raise one clear error.

    Args:
        dataset: registered name, for the message.
        folder: where the files must be.
        relpaths: file names relative to ``folder``.
        obtain: where users get the files (URL and any unpacking step).

    Raises:
        DatasetNotFoundError: naming every missing file, the folder and ``obtain``.
    """
    paths = {rel: folder / rel for rel in relpaths}
    missing = [rel for rel, path in paths.items() if not path.is_file()]
    if missing:
        raise DatasetNotFoundError(
            f"{dataset}: missing {', '.join(missing)} in {folder} "
            f"(obtain from {obtain}; the data directory comes from root= or ${ENV_DATA})"
        )
    return paths


# ------------------------------------------------------------------------ file identity


def sha256_file(path: Path, block: int = 1 << 22) -> str:
    """Hex sha256 of a file's content, read in blocks (sources can be gigabytes)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def stat_identity(path: Path) -> dict[str, Any]:
    """Cheap identity of a source file for cache lookup: resolved path, size, mtime.

    Content hashes are computed only when the cache is (re)built and stored with it, so a
    cached load of a multi-gigabyte dataset does not re-read its sources.
    """
    st = path.stat()
    return {"path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _digest(obj: Any) -> str:
    """sha256 of a JSON-serialisable object in canonical form."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def fingerprint(name: str, params: Mapping[str, Any], sources: Mapping[str, str]) -> str:
    """sha256 over what defines a dataset instance.

    Args:
        name: registered dataset name.
        params: every parameter that changes the returned data (split, seed, sizes, ...).
        sources: ``{file name: sha256}`` of the source files (empty for synthetic data).

    Paths are deliberately excluded: the same files elsewhere give the same fingerprint.
    """
    return _digest(
        {"name": name, "format_version": FORMAT_VERSION, "params": dict(params),
         "sources": dict(sources)}
    )


# --------------------------------------------------------------------------------- cache


@dataclass
class Parsed:
    """What a loader stores in the cache: named tensors, plus the sha256 of each source file
    (filled by :func:`cached`, recorded so cached loads can fingerprint without re-hashing)."""

    tensors: dict[str, Tensor]
    sources: dict[str, str] = field(default_factory=dict)


def _tensor_checksum(tensors: Mapping[str, Tensor]) -> str:
    """sha256 over the tensors' names, dtypes, shapes and bytes.

    ``torch.load`` does not verify its zip records' CRCs, so a flipped bit would otherwise
    load silently; this check makes any corruption a rebuild instead.
    """
    digest = hashlib.sha256()
    for key in sorted(tensors):
        t = tensors[key].detach().cpu().contiguous()
        digest.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().data if t.numel() else b"")
    return digest.hexdigest()


def _read_cache(path: Path, key: str) -> Parsed:
    """Load and verify one cache file; raise ``ValueError`` describing any problem."""
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated zip, garbage bytes, unpickling error ...
        first_line = (str(err).strip().splitlines() or [""])[0][:160]
        raise ValueError(f"unreadable: {type(err).__name__}: {first_line}") from None
    if not isinstance(blob, dict) or blob.get("format_version") != FORMAT_VERSION:
        raise ValueError("written by another format version")
    if blob.get("key") != key:
        raise ValueError("key mismatch")
    tensors = blob.get("tensors")
    if not isinstance(tensors, dict) or _tensor_checksum(tensors) != blob.get("checksum"):
        raise ValueError("checksum mismatch")
    return Parsed(tensors=tensors, sources=blob["sources"])


#: Counts cache builds (parses of source files) per loader name; tests use it to prove that
#: a cached load does not parse again.
BUILD_COUNTS: dict[str, int] = {}


def cached(
    loader: str,
    cache_dir: Path,
    sources: Mapping[str, Path],
    params: Mapping[str, Any],
    build: Callable[[], Parsed],
) -> Parsed:
    """Return the parsed form of a dataset from the cache, building it on a miss.

    Args:
        loader: stable loader id (also the cache file's name prefix).
        cache_dir: the resolved cache directory (the file goes under ``nodecls/``).
        sources: ``{name: path}`` of every source file that ``build`` reads.
        params: parse-time options that change what ``build`` produces.
        build: parses the sources. Its result's ``sources`` is filled here.

    The key covers the format version, the loader, ``params`` and each source's path, size and
    mtime. A cache file that cannot be read, has another key or fails its checksum is reported
    with a warning and rebuilt. A file lock serialises concurrent builds of one entry.
    """
    key = _digest(
        {"format_version": FORMAT_VERSION, "loader": loader, "params": dict(params),
         "sources": {name: stat_identity(p) for name, p in sources.items()}}
    )
    path = cache_dir / "nodecls" / f"{loader}-{key[:24]}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        if path.exists():
            try:
                return _read_cache(path, key)
            except ValueError as problem:
                warnings.warn(
                    f"cache file {path} is invalid ({problem}); rebuilding it from the sources",
                    RuntimeWarning,
                    stacklevel=3,
                )
        log.info("building %s from %s", loader, ", ".join(str(p) for p in sources.values()))
        BUILD_COUNTS[loader] = BUILD_COUNTS.get(loader, 0) + 1
        parsed = build()
        parsed.sources = {name: sha256_file(p) for name, p in sources.items()}
        tensors = {k: v.contiguous() for k, v in parsed.tensors.items()}
        atomic_torch_save(
            path,
            {"format_version": FORMAT_VERSION, "key": key, "tensors": tensors,
             "checksum": _tensor_checksum(tensors), "sources": parsed.sources},
        )
        return parsed


def as_long(array: np.ndarray) -> Tensor:
    """int64 tensor from any integer array (ids and labels)."""
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.int64))


# ------------------------------------------------------------------------------ features


def pack_features(x: Tensor) -> dict[str, Tensor]:
    """Cache form of a feature matrix: its non-zeros when under a quarter of it is non-zero.

    Bag-of-words features are ~99% zeros; storing them sparse makes cache files ~100x smaller
    and cached loads correspondingly faster. :func:`unpack_features` restores the matrix.
    """
    flat = x.reshape(-1)
    index = flat.nonzero().view(-1)
    if index.numel() * 4 < flat.numel():
        return pack_coo(tuple(x.shape), index, flat[index])
    return {"x": x}


def pack_coo(shape: tuple[int, int], flat_index: Tensor, value: Tensor) -> dict[str, Tensor]:
    """Cache form of a matrix given by row-major flat indices of its non-zeros."""
    return {"x_index": flat_index.long(), "x_value": value.float(), "x_shape": torch.tensor(shape)}


def unpack_features(tensors: Mapping[str, Tensor]) -> Tensor:
    """The dense float32 feature matrix from :func:`pack_features` / :func:`pack_coo` output."""
    if "x" in tensors:
        return tensors["x"].float()
    rows, cols = (int(v) for v in tensors["x_shape"])
    x = torch.zeros(rows * cols)
    x[tensors["x_index"]] = tensors["x_value"]
    return x.view(rows, cols)


# --------------------------------------------------------------------- PyG-backed loaders


@contextmanager
def pyg_root(cache_dir: Path, files: Mapping[str, Path]) -> Iterator[Path]:
    """A temporary PyG dataset root under the cache with the source files linked in.

    PyG's dataset classes read ``<root>/.../raw/`` and write ``processed/`` beside it. Linking
    the user's files into a root inside our cache keeps PyG from downloading (its raw files
    exist) and from writing into the user's (possibly read-only) data directory. The root is
    removed afterwards: our own cache holds the result.

    Args:
        cache_dir: resolved cache directory.
        files: ``{path relative to the PyG root: source file}``.
    """
    work = Path(tempfile.mkdtemp(prefix="pyg-", dir=_ensure(cache_dir / "nodecls")))
    try:
        for rel, src in files.items():
            dst = work / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            try:
                dst.symlink_to(src.resolve())
            except OSError:  # no symlinks (e.g. Windows without privileges)
                shutil.copyfile(src, dst)
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _ensure(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder
