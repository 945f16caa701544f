"""The extension path end to end: a task registered from outside the package (the example in
examples/custom_algorithm/) gets splits, DEAR and NAR runs, evaluation and a leaderboard entry,
at tiny size, with no edit to clrs_tasks or dear."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest

import clrs_tasks as ct
from dear.leaderboard import Board

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "custom_algorithm"


@pytest.fixture(scope="module")
def example():
    """The example's modules, imported the way `python run_example.py` imports them."""
    sys.path.insert(0, str(EXAMPLE))
    try:
        task_module = importlib.import_module("nearest_greater")
        runner = importlib.import_module("run_example")
        yield task_module, runner
    finally:
        sys.path.remove(str(EXAMPLE))
        # leave the registry as other tests expect it (CLRS-30 + built-ins only)
        if "nearest_greater" in ct.list_tasks():
            ct.unregister_task("nearest_greater")
        sys.modules.pop("nearest_greater", None)
        sys.modules.pop("run_example", None)


def test_the_example_is_outside_the_package_and_registers_a_new_task(example):
    task_module, _ = example
    task = ct.get_task("nearest_greater")
    assert not task.clrs30 and "nearest_greater" not in ct.list_tasks(clrs30_only=True)
    assert task.origin == "nearest_greater.nearest_greater"  # the user's module, not the package
    assert task.sampler_class is task_module.NearestGreaterSampler
    assert dict(task.spec) == task_module.SPEC
    for pkg in ("clrs_tasks", "dear"):  # nothing in the packages mentions it
        assert not any("nearest_greater" in p.read_text() for p in (REPO / pkg).rglob("*.py"))


def test_reference_implementation_matches_the_definition(example):
    task_module, _ = example
    rng = np.random.default_rng(0)
    for n in (1, 2, 5, 17):
        for _ in range(20):
            key = rng.random(n)
            ptr, probes = task_module.nearest_greater(key)
            assert ptr.tolist() == task_module.brute_force(key).tolist()
            assert probes["hint"]["node"]["i"]["data"].shape == (n + 1, n)  # one hint per scanned position
    # a strictly decreasing array: everyone points to the left neighbour; increasing: to itself
    assert task_module.nearest_greater(np.array([4.0, 3.0, 2.0, 1.0]))[0].tolist() == [0, 0, 1, 2]
    assert task_module.nearest_greater(np.array([1.0, 2.0, 3.0]))[0].tolist() == [0, 1, 2]


def test_splits_scoring_and_lossless_round_trip(example):
    ds = ct.load_split("nearest_greater", "train", "dear", num_samples=6, progress=False)
    batch = ct.collate(list(ds))
    assert ct.evaluate(batch, {"ng": batch.output_ng})["score"] == pytest.approx(1.0)
    wrong = batch.output_ng.clone()
    wrong[0] = (wrong[0] + 1) % int(ds[0].num_nodes)
    assert ct.evaluate(batch, {"ng": wrong})["score"] < 1.0
    # every graph's stored output is the reference implementation's output on its keys
    for g in ds:
        assert g.output_ng.tolist() == example[0].brute_force(g.input_key.numpy()).tolist()


def test_end_to_end_train_evaluate_submit_at_tiny_size(example, tmp_path, capsys):
    _, runner = example
    root = tmp_path / "leaderboards"
    entries = runner.main(["--tiny", "--quiet", "--root", str(root), "--out", str(tmp_path / "runs")])
    out = capsys.readouterr().out
    assert "registered from nearest_greater.nearest_greater" in out
    assert set(entries) == {"dear", "nar"}
    for model, entry in entries.items():
        assert entry["track"] == "user-tasks" and entry["task"] == "nearest_greater"
        assert entry["task_module"] == "examples/custom_algorithm/nearest_greater.py"
        assert entry["protocol"]["overrides"] == {"sizes": [8], "num_samples": 8}
        assert [s["seed"] for s in entry["scores"]["per_seed"]] == [0, 1, 2]
        for s, run_seed in zip(entry["scores"]["per_seed"], range(3)):
            results = json.loads((tmp_path / "runs" / model / f"seed{run_seed}" / "results.json").read_text())
            assert s["score"] == results["results"]["8"]["score"]
        assert [v["seed"] for v in entry["verification"]["seeds"]] == [0, 1, 2]
        assert entry["model"]["architecture"] == model
    table = (root / "user-tasks" / "README.md").read_text()
    assert "`nearest_greater`" in table and "| DEAR |" in table and "| NAR |" in table
    # the board validates: the task module is imported by path and the fingerprint recomputed
    report = Board(root, base=REPO).validate()
    assert report.ok, [str(p) for p in report.problems]
    assert report.checked["user-tasks"] == 2
