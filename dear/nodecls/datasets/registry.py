"""Name -> loader registry and the one public entry point, :func:`load_dataset`.

A loader is a function ``loader(ctx, **options) -> Data``; its keyword-only options (with
defaults) are the dataset's knobs. Registering one from outside the package needs no edit
here::

    @register_dataset("mydata", description="...", default_split="official")
    def load_mydata(ctx: LoadContext, *, val_size: int = 500) -> Data: ...
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch_geometric.data import Data

from dear.nodecls.datasets.base import resolve_cache_dir, resolve_data_dir

Split = int | float | str


@dataclass(frozen=True)
class LoadContext:
    """What every loader receives besides its own options.

    Attributes:
        name: the registered (lower-case) dataset name.
        root: resolved data directory (``root=`` / ``$DEAR_DATA`` / ``../shared/data``).
        cache_dir: resolved cache directory (``cache_dir=`` / ``$DEAR_CACHE`` / ``~/.cache/dear``).
        split: the requested split, already checked against the dataset's choices.
        seed: seed of every random draw the loader makes (validation split, synthetic graph).
    """

    name: str
    root: Path
    cache_dir: Path
    split: Split
    seed: int


Loader = Callable[..., Data]


@dataclass(frozen=True)
class DatasetSpec:
    """A registered dataset.

    Attributes:
        name: lower-case name used by :func:`load_dataset`.
        loader: ``loader(ctx, **options) -> Data``.
        description: one line for listings.
        default_split: used when ``split=None``.
        splits: the named or fixed ``split`` values accepted.
        per_class: whether any positive int ``k`` is also accepted, meaning ``k`` training
            labels per class drawn with the seed.
    """

    name: str
    loader: Loader
    description: str
    default_split: Split
    splits: tuple[Split, ...]
    per_class: bool

    def options(self) -> dict[str, Any]:
        """The loader's keyword options and their defaults."""
        params = inspect.signature(self.loader).parameters.values()
        return {p.name: p.default for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY}


_REGISTRY: dict[str, DatasetSpec] = {}


def register_dataset(
    name: str,
    *,
    description: str,
    default_split: Split,
    splits: tuple[Split, ...] = (),
    per_class: bool = False,
) -> Callable[[Loader], Loader]:
    """Decorator registering ``loader`` under ``name`` (case-insensitive).

    See :class:`DatasetSpec` for the arguments; ``default_split`` is always accepted.

    Raises:
        ValueError: if the name is already registered.
    """
    key = name.lower()

    def decorate(loader: Loader) -> Loader:
        if key in _REGISTRY:
            raise ValueError(f"dataset {key!r} is already registered")
        allowed = splits if default_split in splits else (default_split, *splits)
        _REGISTRY[key] = DatasetSpec(key, loader, description, default_split, allowed, per_class)
        return loader

    return decorate


def available_datasets() -> list[str]:
    """Sorted names accepted by :func:`load_dataset`."""
    return sorted(_REGISTRY)


def get_spec(name: str) -> DatasetSpec:
    """The spec registered under ``name``.

    Raises:
        ValueError: for an unknown name, listing the valid ones.
    """
    spec = _REGISTRY.get(str(name).strip().lower())
    if spec is None:
        raise ValueError(
            f"unknown dataset {name!r}; valid names: {', '.join(available_datasets())}"
        )
    return spec


def check_dataset_options(name: str, options: dict[str, Any]) -> DatasetSpec:
    """Check dataset options before loading: every name must be one of the loader's keyword
    options and every value of the type its annotation says (``num_nodes=300.5`` or
    ``feature_signal=null`` would otherwise fail deep inside the generator, and a string
    ``"False"`` would count as true). Returns the dataset's spec.

    Raises:
        ValueError: unknown dataset or option, or a value of the wrong type (naming it).
    """
    from dear.config import check_option_types  # noqa: PLC0415

    spec = get_spec(name)
    valid = spec.options()
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(
            f"{spec.name}: unknown option(s) {', '.join(unknown)}; "
            f"valid: {', '.join(sorted(valid)) or 'none'}"
        )
    check_option_types(spec.loader, options, f"{spec.name}: dataset")
    return spec


def resolve_split(name: str, split: Split | None) -> Split:
    """The split ``load_dataset(name, split=split)`` uses: the dataset's default for ``None``,
    named splits lower-cased; ``ValueError`` for one the dataset does not accept."""
    return _check_split(get_spec(name), split)


def _check_split(spec: DatasetSpec, split: Split | None) -> Split:
    if split is None:
        return spec.default_split
    if isinstance(split, str):
        split = split.lower()
    if split in spec.splits and not isinstance(split, bool):
        return split
    if spec.per_class and isinstance(split, int) and not isinstance(split, bool) and split > 0:
        return split
    extra = " or a positive int (training labels per class)" if spec.per_class else ""
    raise ValueError(
        f"{spec.name}: unknown split {split!r}; valid: {', '.join(map(repr, spec.splits))}{extra}"
    )


def load_dataset(
    name: str,
    root: str | os.PathLike[str] | None = None,
    split: Split | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    seed: int = 0,
    **kwargs: Any,
) -> Data:
    """Load a node-classification dataset as one PyG :class:`~torch_geometric.data.Data`.

    Args:
        name: a name from :func:`available_datasets` (case-insensitive), e.g. ``"amgcn:citeseer"``,
            ``"planetoid:citeseer"``, ``"ogbn-arxiv"``, ``"sbm"``.
        root: data directory holding each source's folder (``amgcn/``, ``planetoid/``, ...);
            default ``$DEAR_DATA``, else ``../shared/data`` beside this repository (for its tests).
        split: which split; ``None`` is the dataset's standard one (60 labels per class for
            the AM-GCN datasets, as in the IGNN-Solver paper). See ``docs/nodecls-datasets.md``.
        cache_dir: cache directory; default ``$DEAR_CACHE``, else ``~/.cache/dear``.
        seed: seed of the validation draw and of synthetic graphs.
        **kwargs: dataset options (e.g. ``val_size``, ``num_nodes``); unknown ones are an error.

    Returns:
        ``Data`` with ``x`` (``None`` for featureless graphs), ``edge_index``, ``y``, boolean
        ``train_mask``/``val_mask``/``test_mask``, ``name``, ``num_classes``, ``fingerprint``
        and ``provenance``.

    Raises:
        ValueError: unknown name, split or option, an option value of the wrong type.
        DatasetNotFoundError: (a ``FileNotFoundError``) the source files are missing; the
            message says which files to place where and where to get them.
    """
    spec = check_dataset_options(name, kwargs)
    ctx = LoadContext(
        name=spec.name,
        root=resolve_data_dir(root),
        cache_dir=resolve_cache_dir(cache_dir),
        split=_check_split(spec, split),
        seed=int(seed),
    )
    return spec.loader(ctx, **kwargs)
