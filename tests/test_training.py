"""Training runs: resumable to the same weights, validated configs, results files, the CLI."""

import json
from pathlib import Path

import pytest
import torch

from dear.cli import main
from dear.config import ConfigError, TrainConfig, learning_rate, profile_config
from dear.evaluate import SCHEMA_VERSION, evaluate_run
from dear.training import RunError, batch_indices, config_mismatch, is_complete, train


def tiny(model="dear", **kw):
    base = dict(algorithm="minimum", model=model, num_train=16, num_val=8, num_test=6, steps=6, batch_size=4,
                hidden=16, eval_every=3, device="cpu")
    base.update(kw)
    return profile_config("quick", **base)


def test_batches_are_a_function_of_seed_and_step():
    a = [batch_indices(20, 4, 0, s).tolist() for s in range(10)]
    assert a == [batch_indices(20, 4, 0, s).tolist() for s in range(10)]
    assert sorted(sum(a[:5], [])) == list(range(20))  # an epoch covers every graph once
    assert a[:5] != a[5:10]  # epochs are shuffled differently
    assert a != [batch_indices(20, 4, 1, s).tolist() for s in range(10)]


@pytest.mark.parametrize("model", ["dear", "nar"])
def test_resume_gives_the_same_weights(tmp_path, model):
    cfg = tiny(model)
    train(cfg, tmp_path / "whole", progress=False)
    part = train(cfg, tmp_path / "split", progress=False, stop_after=4)
    assert part.steps == 4 and not is_complete(tmp_path / "split")
    rest = train(cfg, tmp_path / "split", progress=False)
    assert rest.resumed_from == 4 and is_complete(tmp_path / "split")
    a = torch.load(tmp_path / "whole" / "checkpoint_last.pt", weights_only=False)
    b = torch.load(tmp_path / "split" / "checkpoint_last.pt", weights_only=False)
    for k, v in a["model"].items():
        assert torch.equal(v, b["model"][k]), k
    ha = json.loads((tmp_path / "whole" / "history.json").read_text())
    hb = json.loads((tmp_path / "split" / "history.json").read_text())
    assert [h["val_loss"] for h in ha["history"]] == [h["val_loss"] for h in hb["history"]]


def test_a_run_records_the_numerics_of_each_segment(tmp_path, monkeypatch, capsys):
    """A run resumed with other numerics (another CPU, thread count, MKL mode) says so and
    records both segments; the rebuild script then knows no single retraining reproduces it."""
    import dear.training as training
    from dear.io import numerics

    cfg = tiny("nar")
    train(cfg, tmp_path / "whole", progress=False)
    summary = json.loads((tmp_path / "whole" / "train_summary.json").read_text())
    mine = {**numerics(torch.device("cpu")), "world_size": 1}
    assert summary["numerics_segments"] == [mine]
    assert _rebuild_script().other_cpu(tmp_path / "whole") is None

    train(cfg, tmp_path / "split", progress=False, stop_after=3)
    other = {**numerics(torch.device("cpu")), "torch_threads": 99}
    monkeypatch.setattr(training, "numerics", lambda device=None: other)
    train(cfg, tmp_path / "split", progress=False)
    err = capsys.readouterr().err
    assert "note: resuming" in err and "at step 3 with other numerics" in err and "torch_threads" in err
    summary = json.loads((tmp_path / "split" / "train_summary.json").read_text())
    assert summary["numerics_segments"] == [mine, {**other, "world_size": 1}]
    assert "2 segments" in _rebuild_script().other_cpu(tmp_path / "split")


def test_cosine_schedule_is_applied_and_resumes_on_the_same_curve(tmp_path):
    cfg = tiny("nar", lr_schedule="cosine")
    assert [learning_rate(cfg, s) for s in (0, 3, 6)] == pytest.approx([cfg.lr, cfg.lr / 2, 0.0])
    assert learning_rate(tiny("nar"), 5) == cfg.lr
    train(cfg, tmp_path / "whole", progress=False)
    train(cfg, tmp_path / "split", progress=False, stop_after=2)
    train(cfg, tmp_path / "split", progress=False)
    train(tiny("nar"), tmp_path / "constant", progress=False)
    w = {d: torch.load(tmp_path / d / "checkpoint_last.pt", weights_only=False) for d in ("whole", "split", "constant")}
    for k, v in w["whole"]["model"].items():
        assert torch.equal(v, w["split"]["model"][k]), k
    assert any(not torch.equal(v, w["constant"]["model"][k]) for k, v in w["whole"]["model"].items())
    assert w["whole"]["optimizer"]["param_groups"][0]["lr"] == pytest.approx(learning_rate(cfg, cfg.steps - 1))
    with pytest.raises(ConfigError, match="unknown lr_schedule 'linear'"):
        tiny(lr_schedule="linear")


def test_a_run_dir_refuses_a_different_config(tmp_path):
    train(tiny(steps=3), tmp_path, progress=False)
    with pytest.raises(RunError, match="different config.*lr"):
        train(tiny(steps=3, lr=0.5), tmp_path, progress=False)


def test_dear_only_settings_do_not_split_baseline_runs(tmp_path):
    """A NAR run is reused when only DEAR's settings differ (compare sweeps them); a DEAR run
    is not, and neither is a NAR run under another model name or a setting NAR reads."""
    nar_dir, dear_dir = tmp_path / "nar", tmp_path / "dear"
    nar_dir.mkdir()
    tiny(model="nar").save(nar_dir / "config.json")
    changed = {"tol": 0.05, "phantom_steps": 3, "phantom_tau": 0.7, "noise": 0.0, "jac_reg": 0.0, "max_iter": 7}
    assert config_mismatch(tiny(model="nar", **changed), nar_dir) == []
    assert config_mismatch(tiny(model="nar", lr=0.5), nar_dir) == ["lr"]
    assert config_mismatch(tiny(model="nar-lt", **changed), nar_dir) == sorted(["model", *changed])
    dear_dir.mkdir()
    tiny(model="dear").save(dear_dir / "config.json")
    assert config_mismatch(tiny(model="dear", phantom_steps=2), dear_dir) == ["phantom_steps"]


def test_config_errors_name_the_choices():
    with pytest.raises(ConfigError, match="unknown model 'deer'; valid: dear, nar, nar-hints, nar-lt"):
        tiny(model="deer")
    with pytest.raises(ConfigError, match="unknown processor"):
        tiny(processor="gcn")
    with pytest.raises(ConfigError, match="steps must be >= 1"):
        tiny(steps=0)
    with pytest.raises(ConfigError, match="unknown config keys"):
        TrainConfig.from_dict({"algo": "bfs"})
    with pytest.raises(ValueError, match="unknown algorithm"):
        tiny(algorithm="bfz")
    with pytest.raises(ConfigError, match="unknown init 'haiku'; valid: torch, dmclrs"):
        tiny(init="haiku")
    with pytest.raises(ConfigError, match="`init` field"):
        tiny(extra={"init": "dmclrs"})


def test_init_reaches_the_model_and_old_configs_mean_torch(tmp_path):
    """``init`` builds the model it names; a config saved before the field existed loads as
    ``torch`` (what those runs were trained with) and resumes into the same directory."""
    from dear.training import build, load_data  # noqa: PLC0415

    cfg = tiny(init="dmclrs")
    torch.manual_seed(0)
    model = build(cfg, load_data(cfg, "train").spec)
    assert float(model.processor.lin_src.bias.detach().abs().max()) == 0.0  # Haiku: zero biases
    assert tiny().init == "dmclrs" and profile_config("paper", algorithm="bfs").init == "torch"
    train(tiny(steps=2, init="torch"), tmp_path, progress=False)
    saved = json.loads((tmp_path / "config.json").read_text())
    del saved["init"]
    (tmp_path / "config.json").write_text(json.dumps(saved))
    assert TrainConfig.load(tmp_path / "config.json").init == "torch"
    train(tiny(steps=2, init="torch"), tmp_path, progress=False)  # same config: accepted, no mismatch
    with pytest.raises(RunError, match=r"different config \(init\)"):  # the quick profile's init is not
        train(tiny(steps=2), tmp_path, progress=False)


def test_step_budget_resolution():
    """The quick profile caps optimiser steps by a processor-step budget over the mean trace
    length; an explicit ``steps`` trains exactly that many; the paper profile has no budget."""
    from dear.config import QUICK_STEP_BUDGET, resolved_steps  # noqa: PLC0415

    quick = profile_config("quick", algorithm="dfs")
    assert quick.step_budget == QUICK_STEP_BUDGET and quick.steps == 600
    assert profile_config("quick", algorithm="dfs", steps=50).step_budget is None
    assert profile_config("quick", algorithm="dfs", steps=50, step_budget=100).step_budget == 100
    assert profile_config("quick", algorithm="dfs", step_budget=0).step_budget is None
    assert profile_config("paper", algorithm="dfs").step_budget is None
    # NAR unrolls max(length - 1, 1) steps per graph: lengths 11 and 31 average 20 steps
    assert resolved_steps(quick, [11, 31]) == round(QUICK_STEP_BUDGET / 20)
    assert resolved_steps(quick, [2, 1, 3]) == 600  # short traces: the cap
    assert resolved_steps(profile_config("quick", algorithm="dfs", steps=5, step_budget=10**6), [400]) == 5
    assert resolved_steps(profile_config("quick", algorithm="dfs", step_budget=1), [400]) == 1
    assert resolved_steps(profile_config("quick", algorithm="dfs", steps=50), [400]) == 50
    with pytest.raises(ConfigError, match="step_budget must be >= 1"):
        tiny(step_budget=-3)


def test_a_step_budget_shortens_the_run_and_is_recorded(tmp_path):
    """``minimum`` traces have n steps (n = 8..16 in training, so 7..15 processor steps per
    graph): a budget of 40 processor steps per graph slot gives a few optimiser steps however
    large ``steps`` is, the same for every model; the summary, history and results say so."""
    from dear.training import load_data  # noqa: PLC0415

    cfg = tiny("nar", steps=50, step_budget=40)
    lengths = load_data(cfg, "train").lengths.tolist()
    want = round(40 / (sum(n - 1 for n in lengths) / len(lengths)))
    assert 2 <= want <= 6
    res = train(cfg, tmp_path, progress=False)
    assert res.steps == want and is_complete(tmp_path)
    summary = json.loads((tmp_path / "train_summary.json").read_text())
    assert summary["steps"] == want and summary["step_budget"] == 40
    assert json.loads((tmp_path / "config.json").read_text())["steps"] == 50  # the cap, as configured
    assert json.loads((tmp_path / "history.json").read_text())["history"][-1]["step"] == want
    assert evaluate_run(tmp_path, sizes=[8], repeats=1)["trained_steps"] == want
    assert train(cfg, tmp_path, progress=False).steps == want  # a finished run is not extended
    assert train(tiny("dear", steps=50, step_budget=40), tmp_path / "dear", progress=False).steps == want


def test_evaluate_writes_the_documented_schema(tmp_path):
    cfg = tiny("dear")
    train(cfg, tmp_path, progress=False)
    res = evaluate_run(tmp_path, sizes=[8], repeats=2)
    on_disk = json.loads((tmp_path / "results.json").read_text())
    assert on_disk["schema_version"] == SCHEMA_VERSION
    for key in ("algorithm", "model", "seed", "protocol", "results", "fingerprints", "versions", "hardware", "config"):
        assert key in on_disk
    r = on_disk["results"]["8"]
    assert 0.0 <= r["score"] <= 1.0 and "min" in r["outputs"]
    assert r["seconds_per_sample"] > 0 and len(r["timing"]["seconds"]) == 2
    assert r["iterations"]["max"] <= cfg.max_iter_test and r["true_steps"]["mean"] == 8.0
    assert res["fingerprints"]["8"] == on_disk["fingerprints"]["8"]
    # a looser tolerance takes no more solver iterations
    loose = evaluate_run(tmp_path, sizes=[8], tol=0.9, repeats=1)
    assert loose["results"]["8"]["iterations"]["mean"] <= r["iterations"]["mean"]
    assert (tmp_path / "results_tol0.9.json").exists()
    # the worst node's residual bounds more than the graph's: never fewer iterations, same tol
    node = evaluate_run(tmp_path, sizes=[8], stop_mode="node", repeats=1)
    assert node["stop_mode"] == "node" and node["config"]["stop_mode"] == "node" and on_disk["stop_mode"] == "rel"
    assert node["results"]["8"]["iterations"]["mean"] >= r["iterations"]["mean"]
    assert json.loads((tmp_path / "results_stopnode.json").read_text())["stop_mode"] == "node"
    evaluate_run(tmp_path, sizes=[8], stop_mode="node", tol=0.9, repeats=1)
    assert (tmp_path / "results_stopnode_tol0.9.json").exists()


def test_results_written_before_stop_mode_existed_still_take_new_sizes(tmp_path):
    """A results file from before ``stop_mode`` (no such key, a config without the field) is the
    same evaluation setting as a new one of the same run: more sizes are added, not a new file."""
    train(tiny("dear"), tmp_path, progress=False)
    evaluate_run(tmp_path, sizes=[8], repeats=1)
    path = tmp_path / "results.json"
    old = json.loads(path.read_text())
    del old["stop_mode"], old["config"]["stop_mode"]
    path.write_text(json.dumps(old))
    both = evaluate_run(tmp_path, sizes=[6], repeats=1)
    assert set(both["results"]) == {"6", "8"}
    # an evaluation with another stopping rule is another setting: it would replace the file
    old["stop_mode"] = "node"
    path.write_text(json.dumps(old))
    assert set(evaluate_run(tmp_path, sizes=[6], repeats=1)["results"]) == {"6"}


def test_cli_train_evaluate_and_errors(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--algorithm", "minimum", "--model", "nar", "--out", str(out), "--steps", "3", "--batch-size", "4",
            "--hidden", "16", "--num-train", "8", "--eval-every", "3", "--device", "cpu", "--quiet"]
    assert main(args) == 0
    assert main(["evaluate", str(out), "--sizes", "6", "--repeats", "1", "--warmup", "0"]) == 0
    assert "minimum / nar" in capsys.readouterr().out
    assert json.loads((out / "results.json").read_text())["results"]["6"]["timing"]["warmup"] == 0
    with pytest.raises(SystemExit):
        main(["evaluate", str(out), "--repeats", "0"])
    assert "must be >= 1" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "nowhere")]) == 2
    assert "not a run directory" in capsys.readouterr().err
    assert main(["train", "--algorithm", "bfz", "--model", "dear", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown algorithm 'bfz'" in err


def test_train_out_alone_rebuilds_a_committed_run_from_its_config(tmp_path, capsys):
    """Runs under leaderboards/runs/ are committed without their weights: `dear train --out DIR`
    alone retrains one from its config.json (same seed: same weights), and evaluate says so."""
    out = tmp_path / "run"
    args = ["train", "--algorithm", "minimum", "--model", "dear", "--seed", "3", "--out", str(out), "--steps", "4",
            "--batch-size", "4", "--hidden", "16", "--num-train", "8", "--eval-every", "2", "--device", "cpu", "--quiet"]
    assert main(args) == 0
    first = torch.load(out / "checkpoint_best.pt", weights_only=False)["model"]
    for ckpt in out.glob("*.pt"):
        ckpt.unlink()
    assert main(["evaluate", str(out)]) == 2
    err = capsys.readouterr().err
    assert "finished training but holds no checkpoint_best.pt" in err and f"dear train --out {out}" in err
    assert main(["train", "--out", str(out), "--quiet"]) == 0
    again = torch.load(out / "checkpoint_best.pt", weights_only=False)["model"]
    assert first.keys() == again.keys() and all(torch.equal(first[k], again[k]) for k in first)
    assert TrainConfig.load(out / "config.json").seed == 3
    capsys.readouterr()
    # settings cannot be mixed into a saved run's config, and a new run needs both names
    assert main(["train", "--out", str(out), "--steps", "9", "--seed", "1"]) == 2
    assert "drop --steps, --seed" in capsys.readouterr().err
    assert main(["train", "--out", str(out), "--model", "nar"]) == 2
    assert "both --algorithm and --model" in capsys.readouterr().err
    assert main(["train", "--out", str(tmp_path / "empty")]) == 2
    assert "holds no run (no config.json)" in capsys.readouterr().err


def test_demo_runs_end_to_end(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CLRS_TASKS_CACHE", str(tmp_path / "cache"))
    assert main(["demo", "--steps", "2", "--num-train", "8", "--num-test", "2", "--out", str(tmp_path / "demo")]) == 0
    out = capsys.readouterr().out
    assert "demo: DEAR vs NAR on bfs" in out and "speed-up" in out and "dear tol 0.03" in out
    table = json.loads((tmp_path / "demo" / "compare.json").read_text())["table"]["bfs"]
    assert set(table["dear"]["tol_sweep"]) == {"0.3", "0.03"} and "64" in table["nar"]
    assert table["trained_steps"] == {"dear": [2], "nar": [2]}  # the demo's explicit --steps, no budget
    summary = json.loads((tmp_path / "demo" / "compare.json").read_text())["dear_vs_nar"]["64"]
    assert summary["algorithms"] == ["bfs"] and "n=64: DEAR within 1 point(s) of NAR or better on" in out


def test_compare_summary_counts_the_dear_paper_claims():
    """`dear compare`'s closing line: DEAR within a point of NAR (or better), faster, >= 5x."""
    from dear.compare import dear_vs_nar, format_table

    def row(dear_score, nar_score, speedup):
        cell = {"score": {"mean": 0.0, "std": 0.0}, "seconds_per_sample": 1.0, "iterations_mean": 5.0,
                "true_steps_mean": 4.0}
        return {"dear": {"64": {**cell, "score": {"mean": dear_score, "std": 0.0}}},
                "nar": {"64": {**cell, "score": {"mean": nar_score, "std": 0.0}}},
                "dear_speedup_over_nar": {"64": speedup}}

    table = {"a": row(0.905, 0.914, 6.0),   # 0.9 points behind: within; 6x
             "b": row(0.80, 0.82, 2.0),     # 2 points behind; faster
             "c": row(0.99, 0.95, 0.5),     # better; slower
             "d": {"dear": row(0.5, 0.5, 1.0)["dear"]}}  # no NAR: not counted
    s = dear_vs_nar(table)["64"]
    assert s["algorithms"] == ["a", "b", "c"]
    assert s["within_margin_or_better"] == ["a", "c"] and s["faster"] == ["a", "b"] and s["at_least_5x"] == ["a"]
    text = format_table({"models": ["dear", "nar"], "table": {k: v for k, v in table.items() if k != "d"},
                         "dear_vs_nar": dear_vs_nar(table)})
    assert text.splitlines()[-1] == ("n=64: DEAR within 1 point(s) of NAR or better on 2/3, faster per sample on 2/3, "
                                     "at least 5x faster on 1/3")
    assert dear_vs_nar({"d": table["d"]}) == {}


def test_cli_regulariser_options_reach_the_config(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--algorithm", "minimum", "--model", "dear", "--out", str(out), "--steps", "1", "--batch-size", "4",
            "--hidden", "8", "--num-train", "4", "--eval-every", "1", "--device", "cpu", "--quiet",
            "--jac-reg", "0.01", "--noise", "0", "--phantom-steps", "3", "--phantom-tau", "0.5"]
    assert main(args) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["jac_reg"] == 0.01 and cfg["noise"] == 0.0
    assert cfg["phantom_steps"] == 3 and cfg["phantom_tau"] == 0.5
    base = args[:-8]
    assert main(base + ["--jac-reg", "-1", "--out", str(tmp_path / "bad")]) == 2
    assert "jac_reg must be >= 0" in capsys.readouterr().err
    assert main(base + ["--phantom-tau", "1.5", "--out", str(tmp_path / "bad2")]) == 2
    assert "phantom_tau must lie in (0, 1]" in capsys.readouterr().err
    assert main(base + ["--phantom-steps", "0", "--out", str(tmp_path / "bad3")]) == 2
    assert "phantom_steps must be >= 1" in capsys.readouterr().err


def _rebuild_script():
    """scripts/rebuild_entry_runs.py as a module (scripts/ is not a package)."""
    from script_helpers import load_script  # noqa: PLC0415

    return load_script("rebuild_entry_runs")


def test_rebuild_entry_runs_copies_only_a_bit_identical_rebuild(tmp_path, monkeypatch):
    """scripts/rebuild_entry_runs.py retrains a committed run in a scratch folder and puts its
    checkpoint beside the committed results only when the rebuild is the same model (same best
    validation step and loss); a run that rebuilds differently gets nothing."""
    script = _rebuild_script()
    run = tmp_path / "run"
    assert main(["train", "--algorithm", "minimum", "--model", "nar", "--seed", "2", "--out", str(run), "--steps", "4",
                 "--batch-size", "4", "--hidden", "16", "--num-train", "8", "--eval-every", "2", "--device", "cpu",
                 "--quiet"]) == 0
    assert main(["evaluate", str(run), "--repeats", "1", "--warmup", "0"]) == 0
    first = torch.load(run / "checkpoint_best.pt", weights_only=False)["model"]
    for ckpt in run.glob("*.pt"):
        ckpt.unlink()
    row = script.rebuild(run, tmp_path / "scratch")
    assert row["identical"] and row["rebuilt_best"] == row["committed_best"] and row["mkl_cbwr"] is None
    again = torch.load(run / "checkpoint_best.pt", weights_only=False)["model"]
    assert all(torch.equal(first[k], again[k]) for k in first)
    (run / "checkpoint_best.pt").unlink()
    summary = json.loads((run / "train_summary.json").read_text())
    summary["best"]["loss"] *= 1.001  # as if trained by other code or on another CPU
    summary["git_uncommitted"] = []  # from a clean tree, whatever the state of this checkout
    (run / "train_summary.json").write_text(json.dumps(summary))
    row = script.rebuild(run, tmp_path / "scratch")
    assert not row["identical"] and not (run / "checkpoint_best.pt").exists()
    assert row["possible_causes"] == []  # same commit, and the record names this machine's CPU flags
    summary["git_commit"], flags = "0123456789abcdef", summary["hardware"].pop("cpu_flags")
    (run / "train_summary.json").write_text(json.dumps(summary))  # as recorded by other code, before 2026-12-02
    monkeypatch.setattr("dear.io.git_commit", lambda: "fedcba9876543210")  # also where git is missing
    causes = script.rebuild(run, tmp_path / "scratch")["possible_causes"]
    assert len(causes) == 2 and "trained at commit 0123456" in causes[0] and "names no CPU flags" in causes[1]
    summary["hardware"]["cpu_flags"] = flags
    monkeypatch.undo()
    summary["hardware"]["cpu_flags"] = "0" * 12  # trained on another instruction set: not even tried
    (run / "train_summary.json").write_text(json.dumps(summary))
    row = script.rebuild(run, tmp_path / "scratch")
    assert "trained with cpu_flags 000000000000" in row["skipped"] and "seconds" not in row
    summary["hardware"].update(device="cuda:0", gpu="NVIDIA H200")  # a GPU run, and this is no such machine
    (run / "train_summary.json").write_text(json.dumps(summary))
    if not (torch.cuda.is_available() and torch.cuda.get_device_name(0) == "NVIDIA H200"):
        assert "trained on a GPU (NVIDIA H200)" in script.rebuild(run, tmp_path / "scratch")["skipped"]


@pytest.mark.slow
def test_rebuild_with_the_runs_own_code_checks_out_its_commit(tmp_path, monkeypatch):
    """A run whose training code changed since can only be rebuilt with the code it was trained
    with: ``run_code`` retrains it from a git worktree of the commit its record names (proved
    here by a marker that only that commit's code writes), keeps the weights when the record is
    reproduced, no longer blames other code when it is not, and names a commit the repository
    does not hold."""
    from code_repo_helpers import code_repo, git, record_made_at, watch_code

    from dear.leaderboard.rebuild import rebuild_run, remove_worktrees

    repo, commit = code_repo(tmp_path / "repo")
    run = tmp_path / "run"
    assert main(["train", "--algorithm", "minimum", "--model", "nar", "--seed", "1", "--out", str(run), "--steps", "4",
                 "--batch-size", "4", "--hidden", "16", "--num-train", "8", "--eval-every", "2", "--device", "cpu",
                 "--quiet"]) == 0
    first = torch.load(run / "checkpoint_best.pt", weights_only=False)["model"]
    for ckpt in run.glob("*.pt"):
        ckpt.unlink()
    summary = record_made_at(run / "train_summary.json", commit)
    marker = watch_code(monkeypatch, tmp_path / "ran_from")
    scratch = tmp_path / "scratch"
    row = rebuild_run(run, scratch, run_code=True, repo=repo)
    assert row["identical"] and row["code"] == commit, row
    assert Path(marker.read_text()) == scratch / "code" / commit / "dear" / "__init__.py"
    again = torch.load(run / "checkpoint_best.pt", weights_only=False)["model"]
    assert all(torch.equal(first[k], again[k]) for k in first)

    (run / "checkpoint_best.pt").unlink()
    summary["best"]["loss"] *= 1.001  # the record is not reproduced, though the code is the run's own
    (run / "train_summary.json").write_text(json.dumps(summary))
    row = rebuild_run(run, scratch, run_code=True, repo=repo)  # the worktree is reused
    assert not row["identical"] and not (run / "checkpoint_best.pt").exists()
    assert not any("trained at commit" in cause for cause in row["possible_causes"])
    summary["git_commit"] = "0" * 40
    (run / "train_summary.json").write_text(json.dumps(summary))
    row = rebuild_run(run, scratch, run_code=True, repo=repo)
    assert not row["identical"] and "is not in the history of" in row["error"][0] and "seconds" not in row
    assert str(scratch / "code" / commit) in git(repo, "worktree", "list", "--porcelain")
    remove_worktrees(scratch, repo)  # what `verify --rebuild` does with its temporary scratch folder
    listed = git(repo, "worktree", "list", "--porcelain")
    assert not scratch.exists() and str(scratch) not in listed and listed.count("worktree ") == 1


def test_rebuild_entry_runs_main_takes_its_share_and_skips_runs_with_weights(tmp_path, monkeypatch, capsys):
    """Worker i of n takes runs i, i + n, ... of the entries' runs, skips those whose checkpoint is
    already there (a rerun after an interruption), logs one JSON line per run it rebuilt and ends
    with a count; a run that could not be rebuilt makes it exit 1; bad input is one line."""
    script = _rebuild_script()
    runs = [tmp_path / "runs" / "algo" / "nar" / f"seed{k}" for k in range(4)]
    for run in runs:
        run.mkdir(parents=True)
    (runs[3] / "checkpoint_best.pt").write_bytes(b"weights")
    entry = tmp_path / "entry.json"
    entry.write_text(json.dumps({"track": "clrs-ood", "source": {"files": [str(r / "results.json") for r in runs]}}))
    done = []
    monkeypatch.setattr(script, "rebuild", lambda run, scratch, force, run_code: done.append(run) or {
        "run": run.name, "identical": True})
    log = tmp_path / "log.jsonl"
    assert script.main([str(entry), "--worker", "1", "--workers", "2", "--log", str(log),
                        "--scratch", str(tmp_path / "scratch")]) == 0
    assert done == [runs[1]]  # runs[3] is this worker's too, but already has its weights
    assert [json.loads(line)["run"] for line in log.read_text().splitlines()] == ["seed1"]
    assert "1 rebuilt: 1 identical, 0 different; 0 skipped; 0 error(s)" in capsys.readouterr().err
    monkeypatch.setattr(script, "rebuild", lambda run, scratch, force, run_code: {"run": run.name, "identical": False,
                                                                                  "error": ["no such commit"]})
    assert script.main([str(entry), "--worker", "0", "--workers", "2", "--scratch", str(tmp_path / "scratch")]) == 1
    assert "0 rebuilt: 0 identical, 0 different; 0 skipped; 2 error(s)" in capsys.readouterr().err  # seeds 0 and 2
    bad = tmp_path / "bad.json"
    for text, message in [(None, "no leaderboard entry at"), ("[1]", "is not a leaderboard entry"),
                          ("{}", "names no source runs"),
                          (json.dumps({"source": {"files": [str(tmp_path / "gone" / "results.json")]}}), "not in this")]:
        if text is not None:
            bad.write_text(text)
        with pytest.raises(SystemExit):
            script.main([str(bad)])
        assert message in capsys.readouterr().err
    with pytest.raises(SystemExit):
        script.main([str(entry), "--worker", "2", "--workers", "2"])
    assert "--worker must be in 0..1" in capsys.readouterr().err


def test_rebuild_entry_runs_replays_the_runs_mkl_mode(tmp_path, monkeypatch):
    """MKL's reproducibility mode (MKL_CBWR) changes the numbers a run trains to, so a rebuild
    runs under the mode the run recorded, and under none when it recorded none."""
    import subprocess

    script = _rebuild_script()
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    (run / "results.json").write_text(json.dumps({"hardware": {"torch_threads": 1}}))
    seen, real_run = [], subprocess.run

    def fake_run(cmd, *args, **kw):  # the rebuild's training subprocess; anything else runs
        if list(cmd[1:3]) != ["-m", "dear.cli"]:
            return real_run(cmd, *args, **kw)
        seen.append(kw["env"])
        return subprocess.CompletedProcess(cmd, 1, "", "error: stop here")

    monkeypatch.setattr(subprocess, "run", fake_run)
    monkeypatch.setenv("MKL_CBWR", "AVX2")  # this shell's setting must not leak into the rebuild
    for recorded in ("COMPATIBLE", None):
        (run / "train_summary.json").write_text(json.dumps({"hardware": {"mkl_cbwr": recorded}}))
        row = script.rebuild(run, tmp_path / "scratch")
        assert row["mkl_cbwr"] == recorded and seen[-1].get("MKL_CBWR") == recorded
        assert seen[-1]["CUDA_VISIBLE_DEVICES"] == "" and seen[-1]["OMP_NUM_THREADS"] == "1"  # a CPU run stays on CPU
        assert not row["identical"] and row["error"] == ["error: stop here"]


def test_rebuilding_a_committed_run_with_other_numerics_says_so(tmp_path, capsys):
    """`dear train --out DIR` on a finished run without weights (a committed run) notes when this
    machine's numerics differ from the run's record, naming the thread setting to use."""
    run = tmp_path / "run"
    args = ["train", "--algorithm", "minimum", "--model", "nar", "--out", str(run), "--steps", "2", "--batch-size",
            "4", "--hidden", "8", "--num-train", "8", "--eval-every", "2", "--device", "cpu", "--quiet"]
    assert main(args) == 0
    for ckpt in run.glob("*.pt"):
        ckpt.unlink()
    capsys.readouterr()
    assert main(["train", "--out", str(run), "--quiet"]) == 0  # same machine: no note
    assert "other numerics" not in capsys.readouterr().err
    for ckpt in run.glob("*.pt"):
        ckpt.unlink()
    summary = json.loads((run / "train_summary.json").read_text())
    summary["hardware"]["torch_threads"] = 99
    (run / "train_summary.json").write_text(json.dumps(summary))
    assert main(["train", "--out", str(run), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "was trained with other numerics than this machine's (torch_threads 99 ->" in err
    assert "OMP_NUM_THREADS=99" in err


@pytest.mark.parametrize("model", ["nar", "nar-hints", "nar-lt"])
def test_train_refuses_dear_settings_for_unrolled_models(tmp_path, capsys, model: str) -> None:
    """An unrolled model never reads DEAR's solver, gradient or regularisers; accepting them
    would record a NAR config that names a solver it never used."""
    out = tmp_path / "run"
    base = ["train", "--algorithm", "minimum", "--model", model, "--out", str(out), "--quiet"]
    assert main([*base, "--solver", "learned", "--tol", "0.2"]) == 2
    err = capsys.readouterr().err
    assert "only --model dear reads --solver, --tol" in err and f"--model {model} is unrolled" in err
    assert main([*base, "--solver-opt", "steps=4"]) == 2
    assert "--solver-opt" in capsys.readouterr().err
    assert main([*base, "--noise", "0.1"]) == 2
    assert "reads --noise" in capsys.readouterr().err and not out.exists()
    cmp = ["compare", "--algorithms", "minimum", "--out", str(out), "--quiet"]
    assert main([*cmp, "--models", f"nar,{model}", "--tol", "0.05"]) == 2  # nothing would read --tol
    assert f"--models nar,{model} are unrolled" in capsys.readouterr().err and not out.exists()


def test_a_rebuild_at_other_code_is_named_and_same_code_is_ruled_out(tmp_path, monkeypatch):
    """Retraining a run whose source files differ from the code here says so before training
    and lists it as a possible cause after; where no source file differs, code is no cause."""
    import subprocess

    from dear.io import code_changes_since, git_commit, other_code_note, rebuild_notes
    from dear.leaderboard.rebuild import mismatch_causes

    root = Path(__file__).resolve().parents[1]
    first = subprocess.run(["git", "rev-list", "--max-parents=0", "HEAD"], cwd=root, capture_output=True, text=True)
    if first.returncode != 0 or not first.stdout.strip() or git_commit() is None:
        pytest.skip("needs this checkout's git history")
    first = first.stdout.split()[0]
    changed = code_changes_since(first)
    assert changed and "dear/io.py" in changed and all(f.endswith(".py") for f in changed)
    assert code_changes_since("0" * 40) is None  # not in the history: unknown, not "no change"
    note = other_code_note(tmp_path, first)
    assert f"trained at commit {first[:7]}" in note and f"{len(changed)} source file(s) differ" in note
    assert other_code_note(tmp_path, None) is None and other_code_note(tmp_path, "0" * 40) is None
    assert any(f"commit {first[:7]}" in n for n in rebuild_notes(tmp_path, {"git_commit": first}, "cpu"))

    record = {"git_commit": first, "hardware": {"cpu_flags": "abc"}}
    assert "source file(s) differ" in mismatch_causes(record)[0]
    monkeypatch.setattr("dear.io.code_changes_since", lambda commit: [])  # another commit, the same sources
    assert mismatch_causes(record) == []


def test_uncommitted_source_changes_are_recorded_and_named(tmp_path):
    """A run made from a working tree whose sources differ from its commit records which files
    (``git_uncommitted``): its commit alone cannot replay it, so ``--run-code`` refuses it with the
    reason, a mismatch names it and the rebuild note says so."""
    from code_repo_helpers import git

    from dear.io import code_provenance, rebuild_notes, uncommitted_code
    from dear.leaderboard.rebuild import mismatch_causes, rebuild_run

    repo = tmp_path / "repo"
    (repo / "dear").mkdir(parents=True)
    (repo / "dear" / "a.py").write_text("A = 1\n")
    (repo / "notes.txt").write_text("not code\n")
    for argv in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "one"]):
        git(repo, *argv)
    assert uncommitted_code(repo) == []
    (repo / "dear" / "a.py").write_text("A = 2\n")  # modified
    (repo / "clrs_tasks").mkdir()
    (repo / "clrs_tasks" / "new.py").write_text("")  # untracked
    (repo / "notes.txt").write_text("edited\n")  # outside the source folders
    assert uncommitted_code(repo) == ["clrs_tasks/new.py", "dear/a.py"]
    assert uncommitted_code(tmp_path / "not_a_repo") is None
    assert set(code_provenance()) == {"git_commit", "git_uncommitted"}

    record = {"git_commit": "a" * 40, "git_uncommitted": ["dear/a.py"], "hardware": {"cpu_flags": "x"}}
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    (run / "train_summary.json").write_text(json.dumps(record))
    row = rebuild_run(run, tmp_path / "scratch", run_code=True, repo=repo, force=True)
    assert not row["identical"] and "not committed at aaaaaaa (dear/a.py)" in row["error"][0], row
    assert not (tmp_path / "scratch" / "code").exists()  # refused before any checkout
    assert any("not committed at its commit (dear/a.py)" in c for c in mismatch_causes(record, "a" * 40))
    assert any("not committed" in n for n in rebuild_notes(run, record, "cpu"))
    assert not any("not committed" in c for c in mismatch_causes({**record, "git_uncommitted": []}, "a" * 40))


@pytest.mark.parametrize("snippet", ["train", "nodecls"])
def test_own_code_rebuild_names_settings_its_commit_does_not_know(tmp_path, snippet):
    """Records from before ``git_uncommitted`` cannot say they came from uncommitted code; the
    retraining script then stops at the first setting the commit's code lacks, with one line."""
    import subprocess
    import sys

    from dear.leaderboard import rebuild

    if snippet == "train":
        from dear.config import TrainConfig

        conf = {**TrainConfig(algorithm="minimum").to_dict(), "setting_of_later_code": 1}
        path, body = tmp_path / "config.json", rebuild._TRAIN_FROM_CONFIG
        path.write_text(json.dumps(conf))
    else:
        path, body = tmp_path / "results.json", rebuild._NODECLS_FROM_RESULTS
        path.write_text(json.dumps({"config": {"dataset": "amgcn:citeseer", "setting_of_later_code": 1,
                                               "resolved_model_options": {}}}))
    proc = subprocess.run([sys.executable, "-c", body, str(path), str(tmp_path / "out")], capture_output=True, text=True)
    assert proc.returncode != 0 and not (tmp_path / "out").exists()
    last = proc.stderr.strip().splitlines()[-1]
    assert "(setting_of_later_code)" in last and "changes not committed" in last, proc.stderr


def test_commit_worktree_is_made_once_and_remade_after_an_interruption(tmp_path):
    from code_repo_helpers import git

    from dear.leaderboard.rebuild import RebuildError, commit_worktree, remove_worktrees

    repo = tmp_path / "repo"
    (repo / "dear").mkdir(parents=True)
    (repo / "dear" / "__init__.py").write_text("VERSION = 1\n")
    for argv in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "one"]):
        git(repo, *argv)
    commit = git(repo, "rev-parse", "HEAD").strip()
    scratch = tmp_path / "scratch"
    (scratch / "code" / commit / "half").mkdir(parents=True)  # an earlier checkout, cut short
    made = commit_worktree(commit, scratch, repo)
    assert made == scratch / "code" / commit and (made / "dear" / "__init__.py").read_text() == "VERSION = 1\n"
    (made / "dear" / "marker").write_text("kept")
    assert commit_worktree(commit, scratch, repo) == made and (made / "dear" / "marker").exists()  # reused
    with pytest.raises(RebuildError, match="is not in the history of"):
        commit_worktree("f" * 40, scratch, repo)
    with pytest.raises(RebuildError, match="is not in the history of"):
        commit_worktree(commit, tmp_path / "other_scratch", tmp_path / "not_a_repo")
    remove_worktrees(scratch, repo)
    assert not scratch.exists()
