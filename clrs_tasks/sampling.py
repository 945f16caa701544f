"""Drawing traces from dm-clrs samplers and applying dm-clrs's own processing.

The samples of a split are exactly what ``clrs.build_sampler(name, num_samples, length=...,
seed=...).next()`` returns (the same sampler class, algorithm, spec and arguments), followed by
dm-clrs's ``process_random_pos`` (where the protocol asks), ``process_pred_as_input`` and
``process_permutations``, in the order dm-clrs's reference pipeline applies them. A split with
several sizes draws each sample's size from the split seed and runs one sampler per size.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import numpy as np
from tqdm.auto import tqdm

from clrs_tasks._clrs import clrs
from clrs_tasks.progress import progress_bar
from clrs_tasks.protocols import SplitConfig
from clrs_tasks.registry import Task

Spec = dict[str, tuple[str, str, str]]


def size_groups(cfg: SplitConfig) -> list[tuple[int, int, int]]:
    """(size, count, sampler seed) per size present in the split, in increasing size.

    One size: the split seed is the sampler seed, so ``official`` matches dm-clrs exactly.
    Several: sizes are drawn uniformly with the split seed, and each size gets its own
    sampler seed derived from (split seed, size).
    """
    if len(cfg.sizes) == 1:
        return [(cfg.sizes[0], cfg.num_samples, cfg.seed)]
    drawn = np.random.RandomState(cfg.seed).choice(np.asarray(cfg.sizes), size=cfg.num_samples)
    groups = []
    for size in cfg.sizes:
        count = int(np.sum(drawn == size))
        if count:
            sub_seed = int(np.random.SeedSequence([cfg.seed, size]).generate_state(1)[0])
            groups.append((size, count, sub_seed))
    return groups


def _counting(algorithm: Callable[..., Any], bar: tqdm | None) -> Callable[..., Any]:
    """The algorithm unchanged, ticking a progress bar once per trace."""
    if bar is None:
        return algorithm

    @functools.wraps(algorithm)
    def run(*args: Any, **kwargs: Any) -> Any:
        out = algorithm(*args, **kwargs)
        bar.update(1)
        return out

    return run


def draw(task: Task, size: int, count: int, seed: int, sampler_kwargs: dict[str, Any],
         bar: tqdm | None = None):
    """Raw ``Feedback`` of ``count`` traces at one size, as ``clrs.build_sampler(...).next()``."""
    clrs()
    try:
        sampler = task.sampler_class(
            _counting(task.algorithm, bar), dict(task.spec), count, seed=seed, length=size, **sampler_kwargs
        )
    except ValueError as e:
        # dm-clrs's own messages name neither the task nor the size (kmp_matcher at size 2: "a must
        # be greater than 0 unless no samples are taken"); small sizes are the usual cause.
        raise ValueError(f"sampling {task.name} at size {size} failed: {e}") from e
    return sampler.next()


def process(task: Task, cfg: SplitConfig, feedback, pos_rng: np.random.RandomState | None) -> tuple[Spec, Any]:
    """Apply dm-clrs's processing to one batched ``Feedback``; returns (spec, feedback)."""
    c = clrs()
    spec: Spec = dict(task.spec)
    it = iter([feedback])
    if pos_rng is not None and any(k == "pos" and v[0] == "input" for k, v in spec.items()):
        it = c.process_random_pos(it, pos_rng)
    if cfg.pred_as_input:
        spec, it = c.process_pred_as_input(spec, it)
    spec, it = c.process_permutations(spec, it, cfg.enforce_permutations)
    return {k: tuple(str(x) for x in v) for k, v in spec.items()}, next(it)


def sample_split(task: Task, cfg: SplitConfig, progress: bool = True) -> tuple[Spec, list[Any]]:
    """All traces of a split as processed dm-clrs ``Feedback`` batches, one per size."""
    kwargs = dict(cfg.sampler_kwargs)
    pos_rng = (
        np.random.RandomState(int(np.random.SeedSequence([cfg.seed, 0x706F73]).generate_state(1)[0]))
        if cfg.random_pos else None
    )
    bar = progress_bar(total=cfg.num_samples, desc=f"{cfg.task} {cfg.protocol}/{cfg.split}", unit="trace",
                       disable=not progress, leave=False)
    spec: Spec = {}
    batches = []
    try:
        for size, count, seed in size_groups(cfg):
            raw = draw(task, size, count, seed, kwargs, bar)
            spec, fb = process(task, cfg, raw, pos_rng)
            batches.append(fb)
    finally:
        bar.close()
    return spec, batches
