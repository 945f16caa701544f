"""`dear pareto` keeps each finished unit (a seed of a nodecls sweep, a run's tolerance point of a
DEAR sweep) in `pareto.partial.json`, so an interrupted sweep resumes without measuring them
again and ends with what an uninterrupted one measures (dear.resume.PartialResults)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dear.resume import PartialResults


def _measured(curves: dict) -> dict:
    """What does not depend on the clock: accuracy, evaluations, residual per point."""
    return {name: [(p.get("tol"), p.get("test_accuracy", p.get("score")), p.get("nfe", p.get("iterations_mean")))
                   for p in pts] for name, pts in curves.items()}


def test_partial_results_keep_units_and_set_aside_other_settings(tmp_path: Path, capsys) -> None:
    path = tmp_path / "p.partial.json"
    first = PartialResults(path, {"tols": (0.1, 0.2)})
    assert first.get("a") is None
    first.put("a", {"x": (1, 2)})
    again = PartialResults(path, {"tols": [0.1, 0.2]})  # a tuple and a list are the same setting
    assert again.get("a") == {"x": [1, 2]} and again.resumed == ["a"]
    assert "resuming from" in capsys.readouterr().err
    other = PartialResults(path, {"tols": [0.3]})
    assert other.get("a") is None and not path.exists() and (tmp_path / "p.partial.json.old").is_file()
    assert "set aside" in capsys.readouterr().err
    path.write_text("{not json")
    assert PartialResults(path, {}).units == {}
    other.put("b", 1)
    other.done()
    assert not path.exists()


def test_nodecls_pareto_resumes_after_an_interruption(tmp_path: Path, monkeypatch) -> None:
    import dear.nodecls.train as nodecls_train
    from dear.cli import main
    from dear.pareto import nodecls_pareto

    run = tmp_path / "run"
    assert main(["nodecls", "train", "--dataset", "sbm", "--data-opt", "num_nodes=120", "--data-opt", "num_classes=3",
                 "--data-opt", "num_features=8", "--data-opt", "val_size=20", "--split", "10", "--hidden", "8",
                 "--seeds", "2", "--epochs", "3", "--timing-repeats", "1", "--quiet", "--out", str(run)]) == 0
    opts = dict(solvers=("picard", "learned_nn"), tols=(1e-2, 1e-5), repeats=1, warmup=0, plot=False, progress=False,
                solver_training={"first_steps": 2})
    whole = nodecls_pareto(run, out=tmp_path / "whole", **opts)
    assert whole["resumed_seeds"] == [] and not (tmp_path / "whole" / "pareto.partial.json").exists()

    real, calls = nodecls_train.time_inference, []

    def interrupted(model, x, edge_index, *, warmup=3, repeats=10):
        calls.append(1)
        if len(calls) > 8:  # 4 points x (warm-up + 1 round) = seed 0; stop in seed 1's timing
            raise KeyboardInterrupt
        return real(model, x, edge_index, warmup=warmup, repeats=repeats)

    monkeypatch.setattr(nodecls_train, "time_inference", interrupted)
    with pytest.raises(KeyboardInterrupt):
        nodecls_pareto(run, out=tmp_path / "p", **opts)
    kept = json.loads((tmp_path / "p" / "pareto.partial.json").read_text())["units"]
    assert len(kept) == 1 and next(iter(kept)).startswith("seed 0, weights ")

    monkeypatch.setattr(nodecls_train, "time_inference", real)
    built = []
    import dear.pareto as pareto

    real_load = pareto._load_nodecls

    def counting_load(*a, **k):
        cfg, res, data, x, build = real_load(*a, **k)
        return cfg, res, data, x, lambda seed: (built.append(seed), build(seed))[1]

    monkeypatch.setattr(pareto, "_load_nodecls", counting_load)
    resumed = nodecls_pareto(run, out=tmp_path / "p", **opts)
    assert built == [1] and resumed["resumed_seeds"] == [0]  # seed 0 was not measured again
    assert _measured(resumed["curves"]) == _measured(whole["curves"])
    assert [r["seed"] for r in resumed["solver_training_post_hoc"]["learned_nn"]] == [0, 1]
    assert not (tmp_path / "p" / "pareto.partial.json").exists()


def test_dear_pareto_resumes_after_an_interruption(tmp_path: Path, monkeypatch, capsys) -> None:
    import dear.evaluate as evaluate
    from dear.cli import main
    from dear.config import profile_config
    from dear.training import train

    run = tmp_path / "bfs"
    cfg = profile_config("quick", algorithm="bfs", model="dear", seed=0, num_train=16, num_val=8, num_test=8,
                         steps=4, batch_size=8, hidden=16, eval_every=4, device="cpu")
    train(cfg, run, progress=False)
    real, calls = evaluate.evaluate_run, []

    def failing_second(*a, **k):
        calls.append(k.get("tol"))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(evaluate, "evaluate_run", failing_second)
    out = tmp_path / "pareto"
    args = ["pareto", "dear", str(run), "--tols", "0.3,0.1", "--repeats", "1", "--out", str(out), "--quiet"]
    assert main(args) == 130  # Ctrl-C: the command's one line, exit status 130
    assert "run the same command to resume" in capsys.readouterr().err
    assert len(json.loads((out / "pareto.partial.json").read_text())["units"]) == 1
    calls.clear()
    monkeypatch.setattr(evaluate, "evaluate_run", lambda *a, **k: (calls.append(k.get("tol")), real(*a, **k))[1])
    assert main(args) == 0
    assert calls == [0.1]  # tolerance 0.3 came from the partial file
    res = json.loads((out / "pareto.json").read_text())
    (label, pts), = res["curves"].items()
    assert label == "bfs/anderson/seed0" and [p["tol"] for p in pts] == [0.3, 0.1] and res["resumed_points"] == 1
    assert all(0.0 <= p["score"] <= 1.0 and p["seconds_per_sample"] > 0 for p in pts)
    assert not (out / "pareto.partial.json").exists()
