"""Data protocols: what a split of a task contains (sizes, counts, seeds, sampler options).

``official`` reproduces CLRS-30 exactly: the samples dm-clrs's own TFDS dataset builder draws
(train 1000 @ n=16 seed 1, val 32 @ 16 seed 2, test 32 @ 64 seed 3, val/test times the
algorithm's multiplier), then the processing dm-clrs's reference pipeline applies
(pred-as-input, permutation pointers). ``dear`` reproduces the DEAR paper's protocol: train
10,000 samples with sizes drawn uniformly from 8..16 and ER density from {0.1, ..., 0.9},
randomised ``pos`` on train and val (as dm-clrs's reference pipeline does), val 100 @ 16,
test 100 @ 64, and out-of-distribution test sizes 128, 256, 512 (``sizes=(128,)`` etc.).
"""

from __future__ import annotations

from dataclasses import dataclass
import operator
from collections.abc import Iterable
from typing import Any, Mapping

import numpy as np

from clrs_tasks.registry import Task

PROTOCOLS = ("official", "dear")
SPLITS = ("train", "val", "test")

# The ER densities dm-clrs's reference pipeline and DEAR draw from.
ER_DENSITIES = tuple(round(0.1 * i, 1) for i in range(1, 10))
# dm-clrs halves them for these algorithms, "otherwise trajectories are very long".
_HALF_DENSITY = frozenset({"articulation_points", "bridges", "mst_kruskal", "bipartite_matching"})

DEAR_OOD_SIZES = (128, 256, 512)


@dataclass(frozen=True)
class SplitConfig:
    """Everything that defines the samples of one split (and so its fingerprint).

    ``sizes`` are the sampler lengths to draw from: one size means every sample has it; several
    mean each sample's size is drawn uniformly from them with ``seed``. (For most algorithms the
    length is the number of nodes; dm-clrs's samplers for optimal_bst, bipartite_matching and
    segments_intersect derive their node count from it.)
    """

    task: str
    protocol: str
    split: str
    sizes: tuple[int, ...]
    num_samples: int
    seed: int
    sampler_kwargs: tuple[tuple[str, Any], ...] = ()
    random_pos: bool = False
    enforce_permutations: bool = True
    pred_as_input: bool = True

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly description, as recorded in fingerprints and results files."""
        return {
            "task": self.task,
            "protocol": self.protocol,
            "split": self.split,
            "sizes": list(self.sizes),
            "num_samples": self.num_samples,
            "seed": self.seed,
            "sampler_kwargs": {k: list(v) if isinstance(v, tuple) else v for k, v in self.sampler_kwargs},
            "random_pos": self.random_pos,
            "enforce_permutations": self.enforce_permutations,
            "pred_as_input": self.pred_as_input,
        }


def _densities(task: Task) -> tuple[float, ...]:
    if task.name in _HALF_DENSITY:
        return tuple(round(p / 2, 2) for p in ER_DENSITIES)
    return ER_DENSITIES


def _normalise_kwargs(task: Task, kwargs: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    accepted = task.accepted_sampler_kwargs()
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise ValueError(
            f"sampler of {task.name!r} does not accept {', '.join(unknown)}; "
            f"accepted: {', '.join(accepted) or '(none)'}"
        )
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in kwargs.items()))


# dm-clrs's samplers squeeze the node axis of a one-node sample away, so size 1 crashes the
# conversion of almost every task; it is refused for every task, up front, with a clear error.
MIN_SIZE = 2


def _as_int(value: Any, what: str) -> int:
    """``value`` as an int, refusing what ``int()`` would silently truncate or misread.

    Integers (Python or NumPy) and integral floats (``1e4``) pass; strings, bools, ``2.9`` and
    the like raise, since ``int()`` would turn ``"64"`` into a character loop upstream and
    ``2.9`` into 2 without a word.
    """
    if isinstance(value, bool) or isinstance(value, (str, bytes)):
        raise TypeError(f"{what} must be an integer, got {value!r}")
    if isinstance(value, float) or isinstance(value, np.floating):
        if not float(value).is_integer():
            raise ValueError(f"{what} must be a whole number, got {value!r}")
        return int(value)
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{what} must be an integer, got {type(value).__name__} {value!r}") from None


def _as_sizes(sizes: int | Iterable[int]) -> tuple[int, ...]:
    """One size or an iterable of sizes, as a sorted tuple of distinct integers >= MIN_SIZE."""
    if isinstance(sizes, (str, bytes)):  # iterating "64" would give sizes 6 and 4
        raise TypeError(f"sizes must be an integer or a list of integers, got the string {sizes!r}")
    if isinstance(sizes, Iterable):
        out = tuple(_as_int(s, "sizes") for s in sizes)
    else:
        out = (_as_int(sizes, "sizes"),)
    if not out or any(s < MIN_SIZE for s in out):
        raise ValueError(f"sizes must be integers >= {MIN_SIZE} (dm-clrs cannot draw one-node graphs), got {sizes!r}")
    return tuple(sorted(set(out)))


def split_config(
    task: Task,
    split: str,
    protocol: str = "official",
    *,
    sizes: int | Iterable[int] | None = None,
    num_samples: int | None = None,
    seed: int | None = None,
    sampler_kwargs: Mapping[str, Any] | None = None,
    random_pos: bool | None = None,
    enforce_permutations: bool = True,
    pred_as_input: bool | None = None,
) -> SplitConfig:
    """Resolve a (task, split, protocol) and optional overrides into a :class:`SplitConfig`."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; valid: {', '.join(PROTOCOLS)}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
    kwargs: dict[str, Any] = {}
    if protocol == "official":
        base_sizes, base_seed, rand_pos = {"train": (16,), "val": (16,), "test": (64,)}[split], {"train": 1, "val": 2, "test": 3}[split], False
        base_n = {"train": 1000, "val": 32, "test": 32}[split]
        if split != "train":
            base_n *= task.num_samples_multiplier
    else:
        base_sizes = {"train": tuple(range(8, 17)), "val": (16,), "test": (64,)}[split]
        base_seed = {"train": 1, "val": 2, "test": 3}[split]
        base_n = {"train": 10_000, "val": 100, "test": 100}[split]
        rand_pos = split != "test"
        if "p" in task.accepted_sampler_kwargs():
            kwargs["p"] = _densities(task)
    if sampler_kwargs:
        kwargs.update(sampler_kwargs)
    n = base_n if num_samples is None else _as_int(num_samples, "num_samples")
    if n < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples!r}")
    return SplitConfig(
        task=task.name,
        protocol=protocol,
        split=split,
        sizes=_as_sizes(base_sizes if sizes is None else sizes),
        num_samples=n,
        seed=base_seed if seed is None else _as_int(seed, "seed"),
        sampler_kwargs=_normalise_kwargs(task, kwargs),
        random_pos=rand_pos if random_pos is None else bool(random_pos),
        enforce_permutations=bool(enforce_permutations),
        pred_as_input=task.pred_as_input if pred_as_input is None else bool(pred_as_input) and task.pred_as_input,
    )

