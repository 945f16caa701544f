"""Helpers shared by the clrs_tasks tests: drawing small splits and comparing dm-clrs arrays."""

from __future__ import annotations

import numpy as np

from clrs_tasks import get_task, sampling
from clrs_tasks.convert import GraphStore, encode
from clrs_tasks.protocols import split_config


def small_split(name: str, protocol: str = "official", sizes=(6,), num_samples: int = 4, split: str = "train"):
    """(processed dm-clrs Feedback batches, graphs) of a tiny split, without the cache."""
    task = get_task(name)
    cfg = split_config(task, split, protocol, sizes=sizes, num_samples=num_samples)
    _, feedbacks = sampling.sample_split(task, cfg, progress=False)
    store = GraphStore.from_encoded(encode(name, feedbacks), undirected=task.undirected)
    return feedbacks, [store[i] for i in range(len(store))]


def assert_datapoints_equal(ours, theirs, what: str) -> None:
    assert [(d.name, d.location, d.type_) for d in ours] == [(d.name, d.location, d.type_) for d in theirs], what
    for a, b in zip(ours, theirs):
        x, y = np.asarray(a.data), np.asarray(b.data)
        assert x.dtype == y.dtype, f"{what} {a.name}: dtype {x.dtype} != {y.dtype}"
        assert x.shape == y.shape, f"{what} {a.name}: shape {x.shape} != {y.shape}"
        assert np.array_equal(x, y), f"{what} {a.name}: values differ"


def assert_feedback_equal(ours, theirs, what: str = "") -> None:
    assert_datapoints_equal(ours.features.inputs, theirs.features.inputs, f"{what} inputs")
    assert_datapoints_equal(ours.outputs, theirs.outputs, f"{what} outputs")
    assert_datapoints_equal(ours.features.hints, theirs.features.hints, f"{what} hints")
    lo, lt = np.asarray(ours.features.lengths), np.asarray(theirs.features.lengths)
    assert lo.dtype == lt.dtype and np.array_equal(lo, lt), f"{what} lengths"
