"""scripts/summarize_paper_cpu.py: the paper-profile CPU table is built from the run files as they are.

The runs are written by hand here in the layout `dear train` / `dear evaluate` leave (only the
fields the script reads), so the test checks the arithmetic and the pairing of files, not training.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from script_helpers import load_script


def _module():
    return load_script("summarize_paper_cpu")


def _write_run(run_dir: Path, score: float, ms: float, iters: float, *, tol: float | None = None) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    result = {"tol": tol, "git_commit": "abc", "hardware": {"cpu_model": "x"},
              "results": {"64": {"score": score, "seconds_per_sample": ms / 1000,
                                 "iterations": {"mean": iters, "max": 2 * iters},
                                 "true_steps": {"mean": 7.0, "max": 7}}}}
    name = "results.json" if tol is None else f"results_tol{tol}.json"
    (run_dir / name).write_text(json.dumps(result))
    if tol is None:
        (run_dir / "train_summary.json").write_text(json.dumps(
            {"steps": 31200, "best": {"step": 100, "score": 0.9}, "seconds_this_call": 7200}))


def test_rows_pair_dear_with_nar_and_report_other_tolerances(tmp_path, capsys):
    sp = _module()
    folder = tmp_path / "paper-cpu"
    _write_run(folder / "algo_a" / "dear" / "seed0", 0.55, 60.0, 12.4)
    _write_run(folder / "algo_a" / "dear" / "seed0", 0.82, 170.0, 32.4, tol=0.01)
    _write_run(folder / "algo_a" / "dear" / "seed0", 0.27, 45.0, 7.5, tol=0.2)
    _write_run(folder / "algo_a" / "dear" / "seed0", 0.87, 130.0, 22.1, tol=0.05)
    _write_run(folder / "algo_a" / "nar" / "seed0", 0.96, 30.0, 6.0)
    _write_run(folder / "algo_b" / "dear" / "seed0", 0.9, 10.0, 3.0)  # no NAR yet
    _write_run(folder / "algo_a" / "dear" / "seed1", 0.60, 60.0, 11.0)
    _write_run(folder / "algo_a" / "nar" / "seed1", 0.95, 30.0, 6.0)
    _write_run(folder / "algo_a" / "dear" / "seed2", 0.70, 60.0, 11.0)  # its NAR not finished: not listed
    for seed, score in ((10, 0.50), (2, 0.65)):  # numeric order: seed 2 before seed 10
        _write_run(folder / "algo_a" / "dear" / f"seed{seed}", score, 60.0, 11.0)
        _write_run(folder / "algo_a" / "nar" / f"seed{seed}", 0.95, 30.0, 6.0)
    # a DEAR variant trained at another tolerance, beside the plain run
    _write_run(folder / "algo_a" / "dear-tol0.05" / "seed0", 0.88, 100.0, 21.0)
    (folder / "algo_a" / "dear" / "seed0" / "config.json").write_text(json.dumps({"tol": 0.1, "seed": 0, "steps": 31200}))
    (folder / "algo_a" / "dear-tol0.05" / "seed0" / "config.json").write_text(json.dumps({"tol": 0.05, "seed": 0, "steps": 31200}))
    _write_run(folder / "algo_a" / "dear-unfinished" / "seed0", 0.1, 1.0, 1.0, tol=0.2)  # no results.json: skipped
    # the worst-node stopping rule at the trained tolerance and at 0.2; the validation choices
    run0 = folder / "algo_a" / "dear" / "seed0"
    for name, tol, score in (("results_stopnode.json", 0.1, 0.89), ("results_stopnode_tol0.2.json", 0.2, 0.88)):
        (run0 / name).write_text(json.dumps({"tol": tol, "stop_mode": "node", "results": {"64": {
            "score": score, "seconds_per_sample": 0.1, "iterations": {"mean": 20.0, "max": 90},
            "true_steps": {"mean": 7.0, "max": 7}}}}))
    for name, tol, test in (("tol_on_validation.json", 0.1, 55.0), ("tol_on_validation_stopnode.json", 0.2, 88.0)):
        (run0 / name).write_text(json.dumps({"chosen_tol": tol, "test_score_at_chosen": test,
                                             "sweep": [{"tol": 0.2}, {"tol": 0.1}]}))
    (folder / "algo_a" / "dear" / "seed1" / "tol_on_validation_stopnode.json").write_text(json.dumps(
        {"chosen_tol": 0.05, "test_score_at_chosen": 80.0, "sweep": [{"tol": 0.1}, {"tol": 0.05}]}))
    (folder / "paired_timing.json").write_text(json.dumps({"pairs": {"algo_a": {"dear_speedup_median": 0.4777}}}))

    assert sp.main(["--dir", str(folder)]) == 0
    summary = json.loads((folder / "summary.json").read_text())
    row = summary["rows"]["algo_a"]
    assert row["dear_minus_nar"] == pytest.approx(-41.0)
    assert row["speedup_per_graph"] == pytest.approx(0.5)
    assert row["paired_speedup"] == pytest.approx(0.48)
    tols = row["dear"]["other_tolerances"]
    assert list(tols) == ["0.01", "0.05", "0.2"]  # numeric order, not the files' name order
    assert tols["0.01"] == {"test_score": 82.0, "iterations": {"mean": 32.4, "max": 64.8}}
    assert row["dear"]["train_hours"] == pytest.approx(2.0) and row["dear"]["resumed_from"] is None
    assert summary["incomplete"] == ["algo_b"]
    assert list(row["other_seeds"]) == ["1", "2", "10"]
    assert row["other_seeds"]["1"] == {
        "dear": 60.0, "nar": 95.0, "dear_minus_nar": -35.0, "dear_iterations": 11.0, "other_tolerances": {},
        "node_stop": {}, "validation_choice": {"node": {"tol": 0.05, "test_score": 80.0, "tols_tried": [0.1, 0.05]}}}
    means = row["over_seeds"]
    assert means["seeds"] == ["0", "1", "2", "10"]
    assert means["dear"] == pytest.approx((55 + 60 + 65 + 50) / 4) and means["nar"] == pytest.approx((96 + 95 * 3) / 4)
    # validation-chosen means pair the same seeds: rel has seed 0 only (no mean), node has seeds 0 and 1
    assert list(means["validation_chosen"]) == ["node"]
    node_mean = means["validation_chosen"]["node"]
    assert node_mean["seeds"] == ["0", "1"] and node_mean["tols"] == [0.2, 0.05]
    assert node_mean["dear"] == pytest.approx(84.0) and node_mean["nar"] == pytest.approx(95.5)
    assert node_mean["dear_minus_nar"] == pytest.approx(-11.5)
    assert row["other_seeds"]["2"]["dear_minus_nar"] == pytest.approx(-30.0)
    assert list(row["variants"]) == ["dear-tol0.05"]
    variant = row["variants"]["dear-tol0.05"]
    assert variant["changed"] == {"tol": 0.05}  # seed and steps equal the plain run's: not named
    assert variant["test_score"] == pytest.approx(88.0) and variant["dear_minus_nar"] == pytest.approx(-8.0)
    out = capsys.readouterr().out
    assert "| algo_a | 55.0 | 96.0 | -41.0 |" in out and "0.01: 82.0 (32.4); 0.05: 87.0 (22.1); 0.2: 27.0 (7.5) |" in out
    assert "(left out): algo_b" in out
    assert "algo_a, seed 1: DEAR 60.0, NAR 95.0, DEAR - NAR -35.0 (11.0 iterations)" in out
    assert "algo_a, dear-tol0.05 (tol 0.05), seed 0: DEAR 88.0, DEAR - NAR -8.0 (21.0 iterations)" in out
    assert list(row["dear"]["node_stop"]) == ["0.1", "0.2"]
    assert row["dear"]["node_stop"]["0.2"]["test_score"] == pytest.approx(88.0)
    assert row["dear"]["validation_choice"]["node"] == {"tol": 0.2, "test_score": 88.0, "tols_tried": [0.2, 0.1]}
    assert "worst-node rule (--stop-mode node): 0.1: 89.0 (20.0); 0.2: 88.0 (20.0)" in out
    assert "tolerance chosen on validation, rel rule: 0.1 (test 55.0)" in out
    assert "algo_a, seed 1, tolerance chosen on validation, node rule: 0.05 (test 80.0)" in out
    assert "algo_a, seeds 0, 1, tolerance chosen on validation (node rule: 0.2, 0.05): DEAR 84.0, NAR 95.5, DEAR - NAR -11.5" in out
    assert "algo_a, seeds 0, 1, 2, 10: DEAR 57.5, NAR 95.2, DEAR - NAR -37.8" in out
    # a run resumed after an interruption: its summary times the last call only, so no total is claimed
    summary_path = folder / "algo_a" / "nar" / "seed0" / "train_summary.json"
    resumed = {**json.loads(summary_path.read_text()), "resumed_from": 15652}
    summary_path.write_text(json.dumps(resumed))
    assert sp.main(["--dir", str(folder)]) == 0
    nar = json.loads((folder / "summary.json").read_text())["rows"]["algo_a"]["nar"]
    assert nar["train_hours"] is None and nar["resumed_from"] == 15652 and nar["last_call_hours"] == pytest.approx(2.0)


def test_missing_folder_is_one_error_line(tmp_path, capsys):
    assert _module().main(["--dir", str(tmp_path / "nowhere")]) == 2
    assert capsys.readouterr().err.startswith("error: ")
