"""Split helpers: index files to masks, seeded draws, and the final :class:`Data` assembly.

All random draws use a private ``torch.Generator`` seeded from the caller's seed, never the
global RNG, so loading a dataset neither depends on nor disturbs the caller's random state,
and the same seed gives the same split on every machine.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor
from torch_geometric.data import Data
from torch_geometric.utils import index_to_mask

from dear.nodecls.datasets.base import FORMAT_VERSION, fingerprint


def generator(seed: int) -> torch.Generator:
    """A CPU generator seeded with ``seed``, independent of the global RNG."""
    return torch.Generator().manual_seed(int(seed))


def mask_from_index(index: Tensor, num_nodes: int, what: str) -> Tensor:
    """Boolean mask from a node-id list, rejecting out-of-range and repeated ids.

    Raises:
        ValueError: naming ``what`` (e.g. ``"train60.txt"``) and the problem.
    """
    index = index.reshape(-1).long()
    if index.numel() and (int(index.min()) < 0 or int(index.max()) >= num_nodes):
        raise ValueError(f"{what}: node ids outside [0, {num_nodes})")
    mask = index_to_mask(index, size=num_nodes)
    if int(mask.sum()) != index.numel():
        raise ValueError(f"{what}: repeated node ids")
    return mask


def file_split(
    train_index: Tensor, test_index: Tensor, num_nodes: int, train_file: str, test_file: str
) -> tuple[Tensor, Tensor]:
    """Train and test masks from a dataset's shipped id files, which must not overlap.

    Raises:
        ValueError: on bad ids in either file or nodes listed in both.
    """
    train = mask_from_index(train_index, num_nodes, train_file)
    test = mask_from_index(test_index, num_nodes, test_file)
    if bool((train & test).any()):
        raise ValueError(f"{train_file} and {test_file} share nodes")
    return train, test


def draw(candidates: Tensor, size: int, gen: torch.Generator, what: str = "validation") -> Tensor:
    """Mask of ``size`` nodes drawn uniformly without replacement from a candidate mask.

    If fewer candidates exist, all are taken and a warning says so.

    Raises:
        ValueError: ``size`` is negative or not an integer (a negative slice bound would take
            all candidates but ``-size``, and leave almost nothing to test on).
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise ValueError(f"the {what} split size must be an integer >= 0, got {size!r}")
    pool = candidates.nonzero().view(-1)
    if pool.numel() < size:
        warnings.warn(
            f"only {pool.numel()} nodes available for the {what} split, {size} requested",
            RuntimeWarning,
            stacklevel=2,
        )
    chosen = pool[torch.randperm(pool.numel(), generator=gen)[:size]]
    return index_to_mask(chosen, size=candidates.numel())


def per_class(y: Tensor, candidates: Tensor, per_class_count: int, gen: torch.Generator) -> Tensor:
    """Mask of ``per_class_count`` nodes of every class, drawn uniformly from the candidates
    of that class (all of them when a class has fewer)."""
    mask = torch.zeros_like(candidates)
    order = torch.randperm(y.numel(), generator=gen)  # one permutation, then filter per class
    for c in torch.unique(y[candidates]).tolist():
        members = order[(y[order] == c) & candidates[order]]
        mask[members[:per_class_count]] = True
    return mask


def assemble(
    name: str,
    params: Mapping[str, Any],
    sources: Mapping[str, str],
    *,
    edge_index: Tensor,
    y: Tensor,
    train_mask: Tensor,
    val_mask: Tensor,
    test_mask: Tensor,
    x: Tensor | None = None,
    num_nodes: int | None = None,
    num_classes: int | None = None,
    **extra: Any,
) -> Data:
    """Build the returned :class:`Data` and record where it came from.

    Besides the usual ``x, edge_index, y`` and boolean ``train_mask``/``val_mask``/``test_mask``
    the data carries ``name``, ``num_classes``, ``multilabel`` (``y`` is a ``[N, C]`` 0/1 matrix
    rather than class ids), ``fingerprint`` (see
    :func:`dear.nodecls.datasets.base.fingerprint`) and ``provenance``, a JSON-able dict of the
    name, parameters and source hashes that results files can store verbatim.

    Raises:
        AssertionError: if the three masks overlap (a loader bug, never user input).
    """
    num_nodes = int(num_nodes if num_nodes is not None else y.size(0))
    for mask in (train_mask, val_mask, test_mask):
        assert mask.dtype == torch.bool and mask.numel() == num_nodes
    overlap = (train_mask.long() + val_mask.long() + test_mask.long()) > 1
    assert not bool(overlap.any()), f"{name}: train/val/test splits overlap"
    if num_classes is None:
        num_classes = int(y.size(1)) if y.dim() == 2 else int(y.max()) + 1
    params = dict(params)
    data = Data(x=x, edge_index=edge_index, y=y, num_nodes=num_nodes,
                train_mask=train_mask, val_mask=val_mask, test_mask=test_mask, **extra)
    data.name = name
    data.num_classes = num_classes
    data.multilabel = y.dim() == 2
    data.fingerprint = fingerprint(name, params, sources)
    data.provenance = {"name": name, "format_version": FORMAT_VERSION, "params": params,
                       "sources": dict(sources), "fingerprint": data.fingerprint}
    return data
