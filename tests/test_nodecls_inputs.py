"""Input checking of ``dear nodecls train`` and ``dear pareto nodecls``: option values of the
wrong type or range, empty splits, output directories that hold something else, resume keys,
and the JSON written. Every bad input is one ``error:`` line with exit status 2, before any
training. Tiny synthetic graphs, CPU only, no downloads."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import pytest
import torch

from dear.cli import main
from dear.config import ConfigError, TrainConfig, check_option_types, parse_key_value
from dear.nodecls import load_dataset
from dear.nodecls.baselines import build_nodecls_model
from dear.io import json_safe
from dear.nodecls.train import NodeClsConfig, NodeClsConfigError


@pytest.fixture(autouse=True)
def _env(tmp_path, monkeypatch):
    """One thread (tiny graphs), and a private dataset cache."""
    monkeypatch.setenv("DEAR_CACHE", str(tmp_path / "cache"))
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


SBM = ["--dataset", "sbm", "--data-opt", "num_nodes=120", "--data-opt", "num_features=8",
       "--data-opt", "val_size=30", "--data-opt", "num_classes=3", "--split", "10"]
FAST = ["--epochs", "2", "--timing-repeats", "1", "--timing-warmup", "0", "--quiet"]


def train(out: Path, *extra: str, data: list[str] = SBM, model: str = "gcn") -> int:
    return main(["nodecls", "train", *data, "--model", model, *FAST, "--out", str(out), *extra])


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err, err
    return err


# ---------------------------------------------------------------- #2 booleans and option types


@pytest.mark.parametrize("text, value", [("a=False", False), ("a=no", False), ("a=FALSE", False),
                                         ("a=True", True), ("a=yes", True), ("a=true", True),
                                         ("a=3", 3), ("a=[1, 2]", [1, 2]), ("a=none", "none"), ("a=null", None)])
def test_parse_key_value_reads_booleans_in_any_case(text, value):
    assert parse_key_value(text) == ("a", value)


def test_check_option_types_names_the_option_and_the_type():
    def target(*, flag: bool = True, n: int = 3, x: float = 0.5, opts: dict | None = None, free=None):
        pass

    check_option_types(target, {"flag": False, "n": 2, "x": 1, "opts": None, "free": object(), "other": 1}, "t")
    for bad, words in (({"flag": "False"}, "flag=\'False\' must be true or false"), ({"n": 2.5}, "an integer"),
                       ({"n": True}, "an integer"), ({"x": None}, "x=null must be a finite number"),
                       ({"x": math.inf}, "finite"), ({"opts": 5}, "JSON object")):
        with pytest.raises(ConfigError, match=words):
            check_option_types(target, bad, "t")


def test_boolean_model_option_false_reaches_the_model(tmp_path):
    from dear.nodecls.cli import build_config, register_cli
    import argparse

    parser = argparse.ArgumentParser()
    register_cli(parser.add_subparsers(dest="command"))
    for spelling in ("False", "no", "false"):
        args = parser.parse_args(["nodecls", "train", *SBM, "--model", "ignn", "--model-opt",
                                  f"propagate_input={spelling}", "--out", str(tmp_path)])
        assert build_config(args).resolved_model_options()["propagate_input"] is False


@pytest.mark.parametrize("argv, words", [
    (["--data-opt", "num_nodes=abc"], "num_nodes='abc' must be an integer"),
    (["--data-opt", "num_nodes=300.5"], "num_nodes=300.5 must be an integer"),
    (["--data-opt", "feature_signal=null"], "feature_signal=null must be a finite number"),
    (["--data-opt", "num_features=0"], "num_features must be >= 1"),
    (["--model-opt", "hidden=abc"], "hidden='abc' must be an integer"),
    (["--hidden", "-3"], "hidden must be >= 1"),
    (["--hidden", "0"], "hidden must be >= 1"),
    (["--lr", "inf"], "lr must be a finite number"),
    (["--lr", "nan"], "lr must be a finite number"),
    (["--model-opt", "cached=no-way"], "cached='no-way' must be true or false"),
])
def test_bad_gcn_options_are_one_line_before_training(tmp_path, capsys, argv, words):
    assert train(tmp_path / "run", *argv) == 2
    assert words in one_error_line(capsys)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("argv, words", [
    (["--model-opt", "hidden=12.5"], "hidden=12.5 must be an integer"),
    (["--hidden", "0"], "hidden must be >= 1"),
    (["--model-opt", "kappa=null"], "kappa=null must be a finite number"),
    (["--model-opt", "propagate_input=maybe"], "must be true or false"),
    (["--solver", "anderson", "--model-opt", "solver_options=5"], "solver_options=5 must be a JSON object"),
    (["--solver", "anderson", "--model-opt", "solver_options=5", "--solver-opt", "m=3"], "must be a JSON object"),
    (["--solver", "anderson", "--solver-opt", "m=abc"], "m='abc' must be an integer"),
    (["--solver", "learned", "--solver-train", "every=abc"], "every='abc' must be an integer"),
    (["--tol", "inf"], "tol=inf must be a finite number"),
])
def test_bad_ignn_options_are_one_line_before_training(tmp_path, capsys, argv, words):
    assert train(tmp_path / "run", *argv, model="ignn") == 2
    assert words in one_error_line(capsys)


def test_models_reject_zero_width():
    for name in ("gcn", "gat", "appnp", "jknet", "gcnii", "mlp", "ignn"):
        with pytest.raises(ValueError, match="hidden must be a positive integer"):
            build_nodecls_model(name, 4, 2, hidden=0)


# ---------------------------------------------------------------- #3 splits


def test_negative_or_fractional_draw_sizes_are_errors():
    with pytest.raises(ValueError, match="val_size must be >= 0"):
        load_dataset("sbm", num_nodes=120, val_size=-5)
    from dear.nodecls.datasets.splits import draw, generator

    with pytest.raises(ValueError, match="integer >= 0"):
        draw(torch.ones(10, dtype=torch.bool), -1, generator(0))


@pytest.mark.parametrize("opt", ["train_fraction=1.5", "train_fraction=0", "val_fraction=0.95", "val_fraction=-0.1"])
def test_chains_fractions_are_checked(opt):
    with pytest.raises(ValueError, match="train_fraction"):
        load_dataset("chains", **dict([parse_key_value(opt)]))


def test_empty_test_split_is_an_error_not_nan(tmp_path, capsys):
    data = ["--dataset", "sbm", "--data-opt", "num_nodes=60", "--data-opt", "num_features=4",
            "--data-opt", "num_classes=3", "--split", "10"]  # 30 train, the 30 others all validate
    with pytest.warns(RuntimeWarning):
        assert train(tmp_path / "run", data=data) == 2
    assert "no test nodes" in one_error_line(capsys)
    assert not (tmp_path / "run" / "results.json").exists()


def test_results_json_never_holds_nan(tmp_path):
    assert json_safe({"a": [1.0, math.nan], "b": {"c": math.inf}}) == {"a": [1.0, None], "b": {"c": None}}
    out = tmp_path / "run"
    assert train(out, "--lr", "1e30") == 0  # diverges: NaN validation loss

    def no_constants(token):
        raise AssertionError(f"{token} in results.json")

    json.loads((out / "results.json").read_text(), parse_constant=no_constants)
    json.loads((out / "seeds" / "seed_0.json").read_text(), parse_constant=no_constants)


# ---------------------------------------------------------------- #7 / #9 output directory


def test_out_that_is_a_file_fails_before_training(tmp_path, capsys):
    path = tmp_path / "out.txt"
    path.write_text("keep\n")
    assert train(path) == 2
    assert "is not a directory" in one_error_line(capsys)
    assert path.read_text() == "keep\n"


def test_out_holding_another_kind_of_results_is_refused(tmp_path, capsys):
    out = tmp_path / "clrs"
    out.mkdir()
    (out / "results.json").write_text('{"schema_version": 1, "algorithm": "bfs"}')
    assert train(out) == 2
    assert "not a `dear nodecls train` results file" in one_error_line(capsys)
    assert json.loads((out / "results.json").read_text())["algorithm"] == "bfs"
    assert not (out / "seeds").exists()


# ---------------------------------------------------------------- #10 / #11 names and resume keys


def test_dataset_name_is_recorded_as_registered(tmp_path):
    assert NodeClsConfig(dataset="SBM").validate().dataset == "sbm"
    out = tmp_path / "run"
    assert train(out, data=["--dataset", "SBM", *SBM[2:]]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["dataset"] == res["config"]["dataset"] == "sbm"


def test_seed_key_ignores_what_cannot_change_a_seed():
    base = NodeClsConfig(dataset="sbm", model="gcn").validate()
    same = [NodeClsConfig(dataset="SBM", model="gcn").validate(),
            NodeClsConfig(dataset="sbm", model="gcn", split=20, seeds=2, first_seed=1).validate(),
            NodeClsConfig(dataset="sbm", model="gcn", cache_dir="/x", data_root="/y", device="cpu").validate(),
            NodeClsConfig(dataset="sbm", model="gcn", hidden=64, dataset_options={"homophily": 0.8}).validate()]
    for cfg in same:
        assert cfg.seed_key(1) == base.seed_key(1)
    assert base.seed_key(0) != base.seed_key(1)
    for other in (NodeClsConfig(dataset="sbm", model="gcn", split=10), NodeClsConfig(dataset="sbm", model="gcn", lr=0.02),
                  NodeClsConfig(dataset="sbm", model="gcn", dataset_options={"homophily": 0.7}),
                  NodeClsConfig(dataset="sbm", model="gcn", data_seed=1)):
        assert other.validate().seed_key(1) != base.seed_key(1)


def test_resume_reuses_seeds_of_another_seed_range(tmp_path):
    out = tmp_path / "run"
    assert train(out, "--seeds", "3") == 0
    stamps = {p.name: p.stat().st_mtime_ns for p in (out / "seeds").iterdir()}
    assert train(out, "--seeds", "2", "--first-seed", "1", "--cache-dir", str(tmp_path / "cache"),
                 "--device", "cpu") == 0
    assert {p.name: p.stat().st_mtime_ns for p in (out / "seeds").iterdir()} == stamps
    assert json.loads((out / "results.json").read_text())["seeds"] == [1, 2]
    with pytest.raises(NodeClsConfigError, match="different configuration"):
        main_raising(out, "--lr", "0.02")


def test_a_seed_without_its_weights_is_trained_again(tmp_path, capsys):
    """Committed runs keep seeds/seed_<k>.json but not seed_<k>.pt: the rerun rebuilds the
    weights (what `dear pareto` needs) and leaves the seeds that have them alone."""
    out = tmp_path / "run"
    assert train(out, "--seeds", "2") == 0
    stamp = (out / "seeds" / "seed_1.pt").stat().st_mtime_ns
    (out / "seeds" / "seed_0.pt").unlink()
    capsys.readouterr()
    assert train(out, "--seeds", "2") == 0
    assert "seed(s) 0 " in capsys.readouterr().err and (out / "seeds" / "seed_0.pt").exists()
    assert (out / "seeds" / "seed_1.pt").stat().st_mtime_ns == stamp
    assert json.loads((out / "results.json").read_text())["seeds"] == [0, 1]


@pytest.mark.slow
def test_a_rebuild_with_the_runs_own_code_trains_every_seed_from_its_recorded_config(tmp_path, monkeypatch):
    """``run_code``: a node-classification run is retrained by the code of the commit it
    records (older CLIs cannot retrain from ``--out`` alone), from the config its results file
    records, into an empty folder; seeds that reproduce their record get their weights back."""
    from code_repo_helpers import code_repo, record_made_at, watch_code

    from dear.leaderboard.rebuild import rebuild_run

    repo, commit = code_repo(tmp_path / "repo")
    out = tmp_path / "run"
    assert train(out, "--seeds", "2", "--lr", "0.02") == 0
    kept = torch.load(out / "seeds" / "seed_1.pt", weights_only=True)
    for weights in (out / "seeds").glob("*.pt"):
        weights.unlink()
    record_made_at(out / "results.json", commit)
    marker = watch_code(monkeypatch, tmp_path / "ran_from")
    monkeypatch.chdir(tmp_path)  # relative paths, as verify --rebuild passes them
    row = rebuild_run(Path("run"), Path("scratch"), run_code=True, repo=repo)
    assert row["identical"] and row["identical_seeds"] == [0, 1] and row["code"] == commit, row
    assert marker.read_text().startswith(str(tmp_path / "scratch" / "code" / commit))
    rebuilt = torch.load(out / "seeds" / "seed_1.pt", weights_only=True)
    assert all(torch.equal(rebuilt[k], kept[k]) for k in kept)


def test_out_alone_rebuilds_a_committed_run_with_its_recorded_settings(tmp_path, capsys):
    """`dear nodecls train --out DIR` alone (what `dear pareto`'s error recommends) retrains the
    seeds whose weights are gone, with the run's settings (not the command's defaults: lr 0.02
    here), to the same weights; seeds that have them are left alone."""
    out = tmp_path / "run"
    assert train(out, "--seeds", "2", "--lr", "0.02") == 0
    kept = torch.load(out / "seeds" / "seed_0.pt", weights_only=True)
    stamp = (out / "seeds" / "seed_1.pt").stat().st_mtime_ns
    (out / "seeds" / "seed_0.pt").unlink()
    before = json.loads((out / "results.json").read_text())
    assert main(["nodecls", "train", "--out", str(out), "--quiet", "--device", "cpu"]) == 0
    rebuilt = torch.load(out / "seeds" / "seed_0.pt", weights_only=True)
    assert rebuilt.keys() == kept.keys() and all(torch.equal(rebuilt[k], kept[k]) for k in kept)
    assert (out / "seeds" / "seed_1.pt").stat().st_mtime_ns == stamp
    after = json.loads((out / "results.json").read_text())
    assert after["config"]["lr"] == 0.02 and after["seeds"] == [0, 1]
    assert [r["test_accuracy"] for r in after["per_seed"]] == [r["test_accuracy"] for r in before["per_seed"]]
    assert "other numerics" not in capsys.readouterr().err  # same machine, same threads
    # recorded with another thread count: the rebuild says it will be another sample
    after["hardware"]["torch_threads"] = 99
    (out / "results.json").write_text(json.dumps(after))
    (out / "seeds" / "seed_0.pt").unlink()
    assert main(["nodecls", "train", "--out", str(out), "--quiet", "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert "was trained with other numerics than this machine's (torch_threads 99 ->" in err
    assert "OMP_NUM_THREADS=99" in err


def test_out_alone_refuses_setting_flags_and_empty_directories(tmp_path, capsys):
    out = tmp_path / "run"
    assert train(out, "--seeds", "1") == 0
    assert main(["nodecls", "train", "--out", str(out), "--lr", "0.5", "--epochs", "3"]) == 2
    err = one_error_line(capsys)
    assert "--lr" in err and "--epochs" in err and "--dataset" in err
    assert main(["nodecls", "train", "--out", str(out), "--model", "gat"]) == 2
    assert "--model" in one_error_line(capsys)
    assert main(["nodecls", "train", "--out", str(tmp_path / "empty")]) == 2
    assert "no results.json" in one_error_line(capsys)
    clrs = tmp_path / "clrs"
    clrs.mkdir()
    (clrs / "results.json").write_text(json.dumps({"algorithm": "bfs", "results": {}}))
    assert main(["nodecls", "train", "--out", str(clrs)]) == 2
    assert "not a `dear nodecls train` results file" in one_error_line(capsys)


def main_raising(out: Path, *extra: str) -> None:
    from dear.nodecls.cli import cmd_train, register_cli
    import argparse

    parser = argparse.ArgumentParser()
    register_cli(parser.add_subparsers(dest="command"))
    cmd_train(parser.parse_args(["nodecls", "train", *SBM, "--model", "gcn", *FAST, "--out", str(out), *extra]))


def test_seeds_written_with_the_legacy_key_still_resume(tmp_path):
    out = tmp_path / "run"
    assert train(out, "--seeds", "1") == 0
    meta = out / "seeds" / "seed_0.json"
    saved = json.loads(meta.read_text())
    cfg = NodeClsConfig.from_results(json.loads((out / "results.json").read_text()))
    saved["config_key"] = cfg.legacy_key()
    meta.write_text(json.dumps(saved))
    stamp = (out / "seeds" / "seed_0.pt").stat().st_mtime_ns
    assert train(out, "--seeds", "1") == 0
    assert (out / "seeds" / "seed_0.pt").stat().st_mtime_ns == stamp


# ---------------------------------------------------------------- #14 pareto


def test_pareto_refuses_empty_lists_and_other_runs(tmp_path, capsys):
    from dear.pareto import nodecls_pareto

    for kwargs, words in (({"tols": []}, "no tolerances"), ({"solvers": []}, "no solvers"),
                          ({"seeds": []}, "no seeds")):
        with pytest.raises(ValueError, match=words):
            nodecls_pareto(tmp_path, **kwargs)
    clrs = tmp_path / "clrs"
    clrs.mkdir()
    (clrs / "results.json").write_text('{"schema_version": 1, "algorithm": "bfs", "config": {"algorithm": "bfs"}}')
    assert main(["pareto", "nodecls", str(clrs), "--solvers", "picard"]) == 2
    assert "not a `dear nodecls train` results file" in one_error_line(capsys)
    assert main(["pareto", "nodecls", str(clrs), "--tols", ""]) == 2
    assert "no tolerances" in one_error_line(capsys)


# ---------------------------------------------------------------- TrainConfig (CLRS) numbers


def test_train_config_rejects_non_finite_and_mistyped_options():
    base = dict(algorithm="bfs", steps=1)
    for change, words in (({"lr": math.inf}, "lr must be finite"), ({"tol": math.inf}, "tol must be finite"),
                          ({"lr": math.nan}, "lr must be > 0"), ({"noise": math.inf}, "noise must be finite"),
                          ({"solver": "learned", "solver_training": {"every": "abc"}}, "every='abc'"),
                          ({"extra": {"solver_options": {"m": "abc"}}}, "m='abc' must be an integer")):
        with pytest.raises(ConfigError, match=words):
            TrainConfig(**{**base, **change}).validate()
    TrainConfig(**base, extra={"solver_options": {"m": 3}}).validate()


# ---------------------------------------------------------------- #15 quiet and Ctrl-C


def test_progress_bars_switch_silences_long_reads(monkeypatch):
    from dear.nodecls.datasets import textio

    made = []
    monkeypatch.setattr(textio, "CHUNK_BYTES", 4)
    monkeypatch.setattr(textio, "progress_bar", lambda *a, **k: made.append(k) or _Bar())
    data = b"1 2\n" * 40
    with textio.progress_bars(False):
        assert b"".join(textio.iter_line_chunks(io.BytesIO(data))) == data
    assert not made
    list(textio.iter_line_chunks(io.BytesIO(data)))
    assert made


class _Bar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def test_ctrl_c_message_says_what_is_kept(tmp_path, capsys, monkeypatch):
    import dear.nodecls.train as train_module

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "run", interrupted)
    assert train(tmp_path / "run") == 130
    err = capsys.readouterr().err
    assert "finished seeds are kept" in err and "restarts from its first epoch" in err


def test_committed_runs_seed_keys_still_match():
    """`dear leaderboard submit --verify` and resume check each seed_<k>.json's config_key with
    NodeClsConfig.matches_seed_key: every committed run must still pass (legacy keys)."""
    root = Path(__file__).resolve().parents[1] / "leaderboards" / "runs"
    checked = 0
    for path in sorted(root.glob("**/results.json")):
        res = json.loads(path.read_text())
        if res.get("schema") != "dear.nodecls.results/1":
            continue
        cfg = NodeClsConfig.from_results(res, path)
        for meta in sorted(path.parent.glob("seeds/seed_*.json")):
            seed = int(meta.stem.split("_")[1])
            assert cfg.matches_seed_key(seed, json.loads(meta.read_text())["config_key"]), meta
            checked += 1
    if checked == 0:
        pytest.skip("no committed nodecls runs in this checkout")
