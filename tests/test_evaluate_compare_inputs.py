"""`dear evaluate` / `dear compare` / `dear demo`: which results are reused and kept, how they are
keyed, and the inputs refused up front with one `error:` line (audit clrs.md #5-#7, #10, #11,
#14-#20)."""

import json
import math
import re
import shutil
from pathlib import Path

import pytest
import torch

from dear.cli import main
from dear.compare import Timing, _saved_results, compare, job_done
from dear.config import ConfigError, profile_config, replace
from dear.evaluate import evaluate_run, load_run
from dear.training import RunError, train
from script_helpers import load_script

FAST = Timing(repeats=1, warmup=0)
DOCS = Path(__file__).resolve().parents[1] / "docs"


def tiny(model: str = "nar", **kw):
    base = dict(algorithm="minimum", model=model, num_train=8, num_val=4, num_test=2, steps=2, batch_size=4,
                hidden=8, eval_every=2, device="cpu")
    base.update(kw)
    return profile_config("quick", **base)


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """Two finished tiny NAR seeds of `minimum` in the `dear compare` layout, and their data cache."""
    root = tmp_path_factory.mktemp("runs")
    mp = pytest.MonkeyPatch()
    mp.setenv("CLRS_TASKS_CACHE", str(root / "cache"))
    for seed in (0, 1):
        train(replace(tiny(), seed=seed), root / "cmp" / "minimum" / "nar" / f"seed{seed}", progress=False)
    yield root
    mp.undo()


@pytest.fixture
def cmp(shared, tmp_path, monkeypatch):
    """A fresh copy of the shared comparison directory (tests change it), on the shared cache."""
    monkeypatch.setenv("CLRS_TASKS_CACHE", str(shared / "cache"))
    shutil.copytree(shared / "cmp", tmp_path / "cmp")
    return tmp_path / "cmp"


def _run(cmp: Path, seed: int = 0) -> Path:
    return cmp / "minimum" / "nar" / f"seed{seed}"


def _keys(run: Path, name: str = "results.json") -> list[str]:
    return list(json.loads((run / name).read_text())["results"])


def _one_error_line(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def _no_evaluation(*a, **k):
    raise AssertionError("evaluated again instead of reusing results.json")


# ------------------------------------------------------------------ #5 sizes reused by compare


def test_compare_without_sizes_uses_only_the_protocol_test_size(cmp, monkeypatch):
    evaluate_run(_run(cmp, 0), sizes=[4], repeats=1, warmup=0)
    evaluate_run(_run(cmp, 1), sizes=[5], repeats=1, warmup=0)
    # results at other sizes are not the protocol's test split: not reused
    assert _saved_results(_run(cmp, 0), None, None) is None
    assert not job_done(cmp, ("minimum", "nar", 0), None, ())
    # ... and seeds evaluated at different sizes no longer crash the table (KeyError '4')
    res = compare(tiny(), ["minimum"], ["nar"], 2, cmp, progress=False, timing=FAST)
    entry = res["table"]["minimum"]["nar"]
    assert [k for k in entry] == ["64"] and entry["64"]["score"]["n"] == 2
    assert _keys(_run(cmp, 0)) == ["4", "64"] and _keys(_run(cmp, 1)) == ["5", "64"]
    # the second call reuses them, and shows n=64 only
    monkeypatch.setattr("dear.compare.evaluate_run", _no_evaluation)
    again = compare(tiny(), ["minimum"], ["nar"], 2, cmp, progress=False, timing=FAST)
    assert list(again["table"]["minimum"]["nar"]) == ["64"]
    # explicit sizes take those keys out of a file holding more
    only4 = _saved_results(_run(cmp, 0), None, [4])
    assert only4 is not None and list(only4["results"]) == ["4"]


# ---------------------------------------------------------- #6 evaluate merges into results.json


def test_evaluate_adds_sizes_to_results_json_and_replaces_only_those(cmp, capsys):
    run = _run(cmp)
    evaluate_run(run, sizes=[4], repeats=1, warmup=0)
    first4 = json.loads((run / "results.json").read_text())["results"]["4"]
    res = evaluate_run(run, sizes=[6, 5], repeats=1, warmup=0)
    assert _keys(run) == ["4", "5", "6"] and list(res["results"]) == ["4", "5", "6"]
    assert json.loads((run / "results.json").read_text())["results"]["4"] == first4  # kept as it was
    again = evaluate_run(run, sizes=[4], repeats=2, warmup=0)
    assert len(again["results"]["4"]["timing"]["seconds"]) == 2  # re-evaluated size replaced
    assert _keys(run) == ["4", "5", "6"]
    assert set(again["fingerprints"]) == {"4", "5", "6"}
    assert "note:" not in capsys.readouterr().err
    # write=False leaves the file alone and returns this evaluation only
    assert list(evaluate_run(run, sizes=[7], repeats=1, warmup=0, write=False)["results"]) == ["7"]
    assert _keys(run) == ["4", "5", "6"]
    # results from another checkpoint are not mixed in: replaced, with a note naming what went
    saved = json.loads((run / "results.json").read_text())
    saved["checkpoint"]["step"] = 999
    (run / "results.json").write_text(json.dumps(saved))
    evaluate_run(run, sizes=[8], repeats=1, warmup=0)
    assert _keys(run) == ["8"]
    err = capsys.readouterr().err
    assert "note:" in err and "n = 4, 5, 6" in err and "checkpoint" in err


def test_evaluate_shows_a_bar_over_its_passes_unless_quiet(cmp, capsys):
    """`dear evaluate` draws one bar per size over its scoring, warm-up and timed passes (on
    stderr, cleared when done); `--quiet` and the API's default draw none."""
    from dear.cli import main

    run = _run(cmp)
    assert main(["evaluate", str(run), "--sizes", "4", "--repeats", "2", "--warmup", "1"]) == 0
    err = capsys.readouterr().err
    assert "minimum nar n=4" in err and "0/4" in err  # scoring + 1 warm-up + 2 timed passes
    assert main(["evaluate", str(run), "--sizes", "4", "--repeats", "2", "--quiet"]) == 0
    evaluate_run(run, sizes=[4], repeats=1, warmup=0)
    assert "n=4" not in capsys.readouterr().err


# ------------------------------------------------------------- #14 keys are the requested size


def test_results_are_keyed_by_the_requested_size_and_old_node_keys_still_read(tmp_path, monkeypatch):
    run = tmp_path / "cmp" / "optimal_bst" / "nar" / "seed0"
    base = tiny(algorithm="optimal_bst")
    train(base, run, progress=False)
    res = evaluate_run(run, sizes=[4], repeats=1, warmup=0)
    assert list(res["results"]) == ["4"] and res["results"]["4"]["nodes"] == 5  # n + 1 nodes
    assert job_done(tmp_path / "cmp", ("optimal_bst", "nar", 0), [4], ())  # so compare reuses it
    monkeypatch.setattr("dear.compare.evaluate_run", _no_evaluation)
    table = compare(base, ["optimal_bst"], ["nar"], 1, tmp_path / "cmp", sizes=[4], progress=False, timing=FAST)
    assert list(table["table"]["optimal_bst"]["nar"]) == ["4"]
    monkeypatch.undo()
    # a file from before (keyed by node count) is evaluated again, and its entry for the same
    # split (same fingerprint) is replaced rather than kept beside the new key
    old = json.loads((run / "results.json").read_text())
    old["results"] = {"5": old["results"]["4"]}
    old["fingerprints"] = {"5": old["fingerprints"]["4"]}
    (run / "results.json").write_text(json.dumps(old))
    assert _saved_results(run, None, [4]) is None
    evaluate_run(run, sizes=[4], repeats=1, warmup=0)
    assert _keys(run) == ["4"]


def test_old_results_keyed_by_node_count_read_where_nodes_equal_size(cmp, monkeypatch):
    run = _run(cmp)
    evaluate_run(run, sizes=[5], repeats=1, warmup=0)
    old = json.loads((run / "results.json").read_text())
    for key in ("training_finished",):  # fields older files lack
        old.pop(key, None)
    (run / "results.json").write_text(json.dumps(old))
    monkeypatch.setattr("dear.compare.evaluate_run", _no_evaluation)
    res = compare(tiny(), ["minimum"], ["nar"], 1, cmp, sizes=[5], progress=False, timing=FAST)
    assert list(res["table"]["minimum"]["nar"]) == ["5"]


# ------------------------------------------------------------------- #16 unfinished runs


def test_evaluating_an_unfinished_run_warns_and_records_it(cmp, capsys):
    run = _run(cmp)
    assert evaluate_run(run, sizes=[4], repeats=1, warmup=0)["training_finished"] is True
    assert "warning" not in capsys.readouterr().err
    (run / "train_summary.json").unlink()
    res = evaluate_run(run, sizes=[4], repeats=1, warmup=0)
    err = capsys.readouterr().err
    assert "warning:" in err and "not finished training" in err and str(run) in err
    assert res["training_finished"] is False and res["trained_steps"] is None
    assert json.loads((run / "results.json").read_text())["training_finished"] is False


# -------------------------------------------------------------------- #10 broken checkpoints


def test_corrupt_or_mismatched_checkpoints_name_the_file(cmp, capsys):
    run = _run(cmp)
    ckpt = run / "checkpoint_best.pt"
    good = ckpt.read_bytes()
    for broken in (good[: len(good) // 2], b"garbage\n", b""):
        ckpt.write_bytes(broken)
        with pytest.raises(RunError, match=r"checkpoint_best\.pt is corrupt or unreadable.*retrain the run"):
            load_run(run, torch.device("cpu"))
    ckpt.write_bytes(good)
    state = torch.load(ckpt, weights_only=False)
    state["model"] = {k: v[..., :1] if v.dim() else v for k, v in state["model"].items()}  # another width
    torch.save(state, ckpt)
    with pytest.raises(RunError, match=r"checkpoint_best\.pt does not fit the model") as e:
        load_run(run, torch.device("cpu"))
    assert "\n" not in str(e.value) and len(str(e.value)) < 400 + 3 * len(str(ckpt))
    assert main(["evaluate", str(run), "--sizes", "4"]) == 2
    assert "does not fit" in _one_error_line(capsys.readouterr().err)
    ckpt.write_bytes(good[:1000])
    assert main(["evaluate", str(run), "--sizes", "4"]) == 2
    assert str(ckpt) in _one_error_line(capsys.readouterr().err)


# ------------------------------------------------------------------------- #18 --tol


def test_evaluate_tol_must_be_finite_and_positive(shared, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("CLRS_TASKS_CACHE", str(shared / "cache"))
    run = tmp_path / "dear"
    train(tiny("dear"), run, progress=False)
    for bad in (0.0, -0.1, math.inf, math.nan):
        with pytest.raises(ValueError, match="tol must be a finite number > 0"):
            load_run(run, torch.device("cpu"), tol=bad)
        assert main(["evaluate", str(run), "--sizes", "4", "--tol", str(bad)]) == 2
        assert "tol must be a finite number > 0" in _one_error_line(capsys.readouterr().err)
    assert not list(run.glob("results*.json"))
    assert evaluate_run(run, sizes=[4], tol=0.5, repeats=1, warmup=0)["tol"] == 0.5


def test_stop_mode_is_a_dear_setting_checked_up_front(shared, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("CLRS_TASKS_CACHE", str(shared / "cache"))
    with pytest.raises(ConfigError, match="unknown stop_mode 'abs'; valid: rel, node"):
        tiny("dear", stop_mode="abs")  # abs: a tolerance that would depend on the states' scale
    run = tmp_path / "dear"
    assert main(["train", "--algorithm", "minimum", "--model", "dear", "--stop-mode", "node", "--steps", "2",
                 "--batch-size", "4", "--hidden", "8", "--num-train", "8", "--eval-every", "2", "--device", "cpu",
                 "--quiet", "--out", str(run)]) == 0
    assert json.loads((run / "config.json").read_text())["stop_mode"] == "node"
    assert load_run(run, torch.device("cpu"))[1].equilibrium.stop_mode == "node"  # the model solves with it
    assert load_run(run, torch.device("cpu"), stop_mode="rel")[1].equilibrium.stop_mode == "rel"
    # resuming with another stopping rule is another run
    assert main(["train", "--algorithm", "minimum", "--model", "dear", "--steps", "2", "--batch-size", "4",
                 "--hidden", "8", "--num-train", "8", "--eval-every", "2", "--device", "cpu", "--quiet",
                 "--out", str(run)]) == 2
    assert "stop_mode" in _one_error_line(capsys.readouterr().err)
    # NAR has no solver: the flag is refused, for train and for evaluate
    assert main(["train", "--algorithm", "minimum", "--model", "nar", "--stop-mode", "node", "--steps", "2",
                 "--quiet", "--out", str(tmp_path / "nar")]) == 2
    assert "--stop-mode" in _one_error_line(capsys.readouterr().err)
    assert main(["evaluate", str(_run(shared / "cmp")), "--sizes", "4", "--stop-mode", "node"]) == 2
    assert _one_error_line(capsys.readouterr().err).startswith("error: --stop-mode only applies to dear runs")
    with pytest.raises(SystemExit):
        main(["evaluate", str(run), "--stop-mode", "abs"])


# ------------------------------------------------------------ #7, #17 paths; #19 empty --sizes


@pytest.mark.parametrize("argv", [
    ["train", "--algorithm", "minimum", "--model", "nar", "--steps", "2", "--quiet", "--out", ""],
    ["train", "--algorithm", "minimum", "--model", "dear", "--steps", "2", "--quiet", "--out", "r",
     "--align-weight", "0.01", "--align-teacher", ""],
    ["compare", "--algorithms", "minimum", "--models", "nar", "--steps", "2", "--quiet", "--out", ""],
    ["compare", "--algorithms", "minimum", "--models", "nar", "--steps", "2", "--quiet", "--out", " "],
    ["demo", "--steps", "2", "--out", ""],
    ["evaluate", ""],
])
def test_empty_paths_are_one_line_errors(argv, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert "is empty" in _one_error_line(capsys.readouterr().err)
    assert not [p for p in tmp_path.iterdir() if p.name != "clrs_cache"]  # nothing written here


@pytest.mark.parametrize("cmd", [
    ["train", "--algorithm", "minimum", "--model", "nar", "--steps", "2", "--quiet"],
    ["compare", "--algorithms", "minimum", "--models", "nar", "--steps", "2", "--quiet"],
    ["demo", "--steps", "2"],
])
@pytest.mark.parametrize("under", [False, True])
def test_an_out_that_is_or_lies_under_a_file_is_a_one_line_error(cmd, under, tmp_path, capsys):
    f = tmp_path / "a_file"
    f.write_text("not a directory\n")
    assert main(cmd + ["--out", str(f / "run" if under else f)]) == 2
    assert "is a file, not a directory" in _one_error_line(capsys.readouterr().err)
    assert f.read_text() == "not a directory\n"


def test_empty_sizes_are_an_error_not_the_default(cmp, capsys):
    run = _run(cmp)
    assert main(["evaluate", str(run), "--sizes", ""]) == 2
    assert "sizes is empty" in _one_error_line(capsys.readouterr().err)
    assert main(["compare", "--algorithms", "minimum", "--models", "nar", "--steps", "2", "--quiet",
                 "--sizes", "", "--out", str(cmp / "x")]) == 2
    assert "sizes is empty" in _one_error_line(capsys.readouterr().err)
    with pytest.raises(ValueError, match="sizes is empty"):
        evaluate_run(run, sizes=[])
    assert not (run / "results.json").exists() and not (cmp / "x").exists()


# ------------------------------------------- #11, #15 compare/demo arguments checked up front


@pytest.mark.parametrize("extra, message", [
    (["--seeds", "0"], "seeds must be an integer >= 1"),
    (["--seeds", "-2"], "seeds must be an integer >= 1"),
    (["--models="], "no models given"),
    (["--algorithms="], "no algorithms given"),
    (["--sizes", "0"], "size 0"),
    (["--tol-sweep", "0"], "tolerance must be a finite number > 0"),
    (["--tol-sweep", "0.1,-1"], "tolerance must be a finite number > 0"),
    (["--tol-sweep", "nan"], "tolerance must be a finite number > 0"),
])
def test_compare_arguments_are_refused_before_training(extra, message, tmp_path, capsys):
    out = tmp_path / "cmp"
    argv = ["compare", "--algorithms", "minimum", "--models", "nar,dear", "--steps", "2", "--num-train", "8",
            "--hidden", "8", "--quiet", "--out", str(out)]
    assert main(argv + extra) == 2
    assert message in _one_error_line(capsys.readouterr().err)
    assert not out.exists()  # nothing trained, no compare.json


def test_compare_api_and_demo_check_test_count_and_lists_up_front(tmp_path, capsys):
    out = tmp_path / "cmp"
    for bad in (dict(num_test=0), dict(sizes=[0]), dict(tol_sweep=(0.0,)), dict(seeds=0), dict(models=[]),
                dict(algorithms=[])):
        kw = dict(algorithms=["minimum"], models=["nar"], seeds=1, sizes=None, tol_sweep=())
        base = tiny(num_test=bad.pop("num_test")) if "num_test" in bad else tiny()
        kw.update(bad)
        with pytest.raises(ValueError):
            compare(base, kw.pop("algorithms"), kw.pop("models"), kw.pop("seeds"), out, progress=False, **kw)
    with pytest.raises(TypeError):
        compare(tiny(), "minimum", ["nar"], 1, out, progress=False)
    assert not out.exists()
    assert main(["demo", "--steps", "2", "--num-train", "8", "--num-test", "0", "--out", str(tmp_path / "d")]) == 2
    assert "num_test" in capsys.readouterr().err.strip().splitlines()[-1]
    assert not (tmp_path / "d").exists()


# ------------------------------------------------------------------ #20 the documented schema


def _schema_section() -> str:
    text = (DOCS / "reasoners.md").read_text()
    m = re.search(r"^## `results\.json`.*?(?=^## )", text, flags=re.S | re.M)
    assert m, "docs/reasoners.md has no '## `results.json`' section"
    return m.group(0)


def test_results_json_schema_is_documented_where_the_user_guide_points(cmp):
    res = evaluate_run(_run(cmp), sizes=[4], repeats=1, warmup=0)
    section = _schema_section()
    per_size = res["results"]["4"]
    for key in [*res, *per_size, *per_size["timing"]]:
        assert f"`{key}`" in section, f"{key} is written to results.json but not documented"
    assert "a mean per test **batch**, not per graph" in section  # what nfe.mean averages over
    guide = (DOCS / "user-guide.md").read_text()
    assert "reasoners.md#resultsjson" in guide


# ------------------------------------------------------------------ scripts/time_pairs.py --dirs

def _time_pairs_module():
    return load_script("time_pairs")


def test_time_pairs_dirs_times_two_runs_in_alternating_rounds(cmp, tmp_path, capsys):
    tp = _time_pairs_module()
    out = tmp_path / "timing.json"
    assert tp.main(["--dirs", str(_run(cmp, 0)), str(_run(cmp, 1)), "--rounds", "2", "--out", str(out)]) == 0
    (pair,) = json.loads(out.read_text())["pairs"].values()
    assert pair["runs"] == {"first": str(_run(cmp, 0)), "second": str(_run(cmp, 1))}
    assert [len(v) for v in pair["seconds"].values()] == [2, 2]
    ratios = [b / a for a, b in zip(pair["seconds"]["first"], pair["seconds"]["second"])]
    assert pair["ratios_second_over_first"] == pytest.approx(ratios)
    assert pair["num_graphs"] == 2 and "speed-up of the first" in capsys.readouterr().out
    # a second invocation adds its pair and leaves the first pair's own provenance as it was
    assert pair["command"].endswith(f"--rounds 2 --out {out}") and pair["git_commit"]
    assert tp.main(["--dirs", str(_run(cmp, 1)), str(_run(cmp, 0)), "--rounds", "1", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    first, later = data["pairs"].values()
    assert first["command"] == pair["command"] and later["command"].endswith(f"--rounds 1 --out {out}")
    assert data["command"] == later["command"]
    with pytest.raises(SystemExit) as e:  # neither --runs nor --dirs
        tp.main(["--out", str(out)])
    assert e.value.code == 2
    with pytest.raises(SystemExit):  # not a run directory
        tp.main(["--dirs", str(tmp_path), str(_run(cmp, 1)), "--out", str(out)])
    other = tmp_path / "bfs_run"
    train(tiny(algorithm="bfs"), other, progress=False)
    with pytest.raises(SystemExit) as e:  # two algorithms: one error line, no traceback
        tp.main(["--dirs", str(_run(cmp, 0)), str(other), "--out", str(tmp_path / "t2.json")])
    assert e.value.code == 2 and "different algorithms" in capsys.readouterr().err


def test_time_pairs_runs_layout_reports_dear_over_nar(cmp, tmp_path):
    tp = _time_pairs_module()
    shutil.copytree(_run(cmp, 1), cmp / "minimum" / "dear" / "seed0")  # any run stands in for DEAR here
    out = tmp_path / "timing.json"
    assert tp.main(["--runs", str(cmp), "--algorithms", "minimum", "--rounds", "1", "--out", str(out)]) == 0
    pair = json.loads(out.read_text())["pairs"]["minimum"]
    assert set(pair["seconds"]) == {"dear", "nar"} and pair["algorithm"] == "minimum"
    assert pair["dear_speedup_median"] == pytest.approx(pair["seconds"]["nar"][0] / pair["seconds"]["dear"][0])


def test_time_pairs_solves_dear_at_the_setting_asked_and_keys_the_pair_by_it(cmp, tmp_path, capsys):
    tp = _time_pairs_module()
    dear_run = cmp / "minimum" / "dear" / "seed0"
    train(tiny(model="dear"), dear_run, progress=False)
    trained = json.loads((dear_run / "config.json").read_text())
    out = tmp_path / "timing.json"
    assert tp.main(["--runs", str(cmp), "--algorithms", "minimum", "--rounds", "1", "--out", str(out)]) == 0
    assert tp.main(["--runs", str(cmp), "--algorithms", "minimum", "--rounds", "1", "--stop-mode", "node",
                    "--tol", "0.3", "--out", str(out)]) == 0
    pairs = json.loads(out.read_text())["pairs"]
    assert set(pairs) == {"minimum", "minimum stopnode tol0.3"}  # the trained setting's pair is kept
    assert pairs["minimum"]["dear_solved_with"] == {"dear": {"tol": trained["tol"], "stop_mode": trained["stop_mode"]}}
    assert pairs["minimum stopnode tol0.3"]["dear_solved_with"] == {"dear": {"tol": 0.3, "stop_mode": "node"}}
    # --dirs applies it to DEAR runs only (NAR has no solver), under its own key
    assert tp.main(["--dirs", str(dear_run), str(_run(cmp, 0)), "--rounds", "1", "--stop-mode", "node",
                    "--out", str(out)]) == 0
    pair = json.loads(out.read_text())["pairs"][f"{dear_run} vs {_run(cmp, 0)} stopnode"]
    assert pair["dear_solved_with"] == {"first": {"tol": trained["tol"], "stop_mode": "node"}}
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:  # a bad tolerance: one error line naming the run, no traceback
        tp.main(["--runs", str(cmp), "--algorithms", "minimum", "--tol", "-1", "--out", str(tmp_path / "t.json")])
    assert e.value.code == 2 and "tol" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:  # an algorithm with no runs
        tp.main(["--runs", str(cmp), "--algorithms", "bfs", "--out", str(tmp_path / "t.json")])
    assert e.value.code == 2 and "bfs" in capsys.readouterr().err


# ------------------------------------------------------------- scripts/tol_on_validation.py
def _tol_on_validation_module():
    return load_script("tol_on_validation")


def test_tol_on_validation_scores_val_split_and_reads_test_scores_it_has(cmp, tmp_path, capsys, monkeypatch):
    tv = _tol_on_validation_module()
    run = tmp_path / "dear_run"
    train(tiny(model="dear"), run, progress=False)
    evaluate_run(run, repeats=1, warmup=0, progress=False)  # results.json at the trained tolerance
    trained_tol = json.loads((run / "config.json").read_text())["tol"]
    assert tv.main([str(run), "--tols", f"0.5,{trained_tol}"]) == 0
    out = json.loads((run / "tol_on_validation.json").read_text())
    rows = {r["tol"]: r for r in out["sweep"]}
    assert set(rows) == {0.5, trained_tol} and out["trained_tol"] == trained_tol
    test = json.loads((run / "results.json").read_text())["results"]
    size = next(iter(test))
    out = tv.choose(run, [0.5, trained_tol], torch.device("cpu"), size=size)
    rows = {r["tol"]: r for r in out["sweep"]}
    assert rows[trained_tol]["test_score"] == pytest.approx(100 * test[size]["score"], abs=0.01)
    assert rows[0.5]["test_score"] is None  # never evaluated there: not made up
    best = max(out["sweep"], key=lambda r: (r["val_score"], r["tol"]))
    assert out["chosen_tol"] == best["tol"] and "-> tol" in capsys.readouterr().out
    # the worst-node rule: its own file, and test scores read only from evaluations with that rule
    evaluate_run(run, repeats=1, warmup=0, stop_mode="node", tol=0.5)
    assert tv.main([str(run), "--tols", f"0.5,{trained_tol}", "--stop-mode", "node"]) == 0
    node = json.loads((run / "tol_on_validation_stopnode.json").read_text())
    assert node["stop_mode"] == "node" and node["trained_stop_mode"] == "rel"
    rows = {r["tol"]: r for r in node["sweep"]}
    node_test = json.loads((run / "results_stopnode_tol0.5.json").read_text())["results"][size]["score"]
    assert rows[0.5]["test_score"] == pytest.approx(100 * node_test, abs=0.01)
    assert rows[trained_tol]["test_score"] is None  # results.json was solved with rel: not this rule's score
    assert "(node residual)" in capsys.readouterr().out

    # ties go to the loosest tolerance (the cheapest solve), a higher score wins over looseness
    scores = {0.5: 0.9, 0.2: 0.9, 0.01: 0.95}
    real_load = tv.load_run

    def load_marked(run_dir, device, tol=None, stop_mode=None):  # remember which tolerance each model solves to
        cfg, model, ckpt = real_load(run_dir, device, tol=tol, stop_mode=stop_mode)
        model.probe_tol = tol
        return cfg, model, ckpt

    monkeypatch.setattr(tv, "load_run", load_marked)
    monkeypatch.setattr(tv, "validate", lambda model, loader, device: {"score": scores[model.probe_tol], "loss": 0.0})
    assert tv.choose(run, [0.01, 0.2, 0.5], torch.device("cpu"))["chosen_tol"] == 0.01
    scores[0.01] = 0.9
    assert tv.choose(run, [0.01, 0.2, 0.5], torch.device("cpu"))["chosen_tol"] == 0.5

    assert tv.main([str(_run(cmp, 0)), "--tols", "0.1"]) == 2  # a NAR run: one error line
    assert _one_error_line(capsys.readouterr().err).startswith("error: --tol only applies")


def test_tol_on_validation_score_test_evaluates_the_chosen_setting_once(tmp_path, monkeypatch, capsys):
    tv = _tol_on_validation_module()
    run = tmp_path / "dear_run"
    train(tiny(model="dear"), run, progress=False)
    trained_tol = json.loads((run / "config.json").read_text())["tol"]
    real_load = tv.load_run

    def load_marked(run_dir, device, tol=None, stop_mode=None):
        cfg, model, ckpt = real_load(run_dir, device, tol=tol, stop_mode=stop_mode)
        model.probe_tol = tol
        return cfg, model, ckpt

    monkeypatch.setattr(tv, "load_run", load_marked)
    # validation prefers 0.5 (not the trained tolerance): the test evaluation there is written and read back
    monkeypatch.setattr(tv, "validate", lambda model, loader, device: {"score": 1.0 if model.probe_tol == 0.5 else 0.5,
                                                                      "loss": 0.0})
    assert tv.main([str(run), "--tols", f"0.5,{trained_tol}", "--score-test"]) == 0
    out = json.loads((run / "tol_on_validation.json").read_text())
    written = json.loads((run / "results_tol0.5.json").read_text())
    size = next(iter(written["results"]))
    assert out["chosen_tol"] == 0.5 and written["tol"] == 0.5 and written["stop_mode"] == "rel"
    assert out["test_score_at_chosen"] == pytest.approx(100 * written["results"][size]["score"], abs=0.01)
    assert {r["tol"]: r["test_score"] for r in out["sweep"]}[trained_tol] is None  # only the choice is evaluated
    assert not (run / "results.json").exists()
    # the worst-node rule chosen at the trained tolerance: the file `dear evaluate --stop-mode node` writes
    monkeypatch.setattr(tv, "validate", lambda model, loader, device: {"score": 1.0 if model.probe_tol == trained_tol
                                                                      else 0.5, "loss": 0.0})
    assert tv.main([str(run), "--tols", f"0.5,{trained_tol}", "--stop-mode", "node", "--score-test"]) == 0
    node = json.loads((run / "tol_on_validation_stopnode.json").read_text())
    node_file = json.loads((run / "results_stopnode.json").read_text())
    assert node["chosen_tol"] == trained_tol and node_file["stop_mode"] == "node"
    assert node["test_score_at_chosen"] == pytest.approx(100 * node_file["results"][size]["score"], abs=0.01)
    # held already: nothing is evaluated again (the file's time stamp stays)
    before = (run / "results_stopnode.json").stat().st_mtime_ns
    assert tv.main([str(run), "--tols", f"0.5,{trained_tol}", "--stop-mode", "node", "--score-test"]) == 0
    assert (run / "results_stopnode.json").stat().st_mtime_ns == before
    assert "test score there" in capsys.readouterr().out
