"""Leaderboard integrity: claims that must not pass, inputs that must fail in one line.

Regression tests for the nodecls audit (docs/leaderboards.md states the rules): a hand-written
verification record, nodecls runs with dataset options, two tables for one test split,
``--verify`` given the wrong seed, configuration or file, malformed files and entries, a boards
folder that is not there, and impossible numbers. Node-classification runs are a tiny
synthetic ``sbm`` graph (no downloads, well under a second); CLRS entries use synthetic
results files with the real split fingerprints (no sampling).
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest
import torch

import clrs_tasks as ct
from dear.cli import main
from dear.config import TrainConfig
from dear.io import hardware, versions
from dear.leaderboard import Board, EntryRejected, dump_entry, protocol_key, submit
from dear.leaderboard.board import BoardNotFoundError, default_root
from dear.leaderboard.validation import VERIFY_METHODS

REPO = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------------- helpers


def clrs_results(seed: int, score: float = 0.9, algorithm: str = "bfs") -> dict:
    """A `dear evaluate` results dict of a run that was never trained (test input only)."""
    task = ct.get_task(algorithm)
    cfg = ct.split_config(task, "test", "dear")
    n = str(cfg.sizes[0])
    return {
        "schema_version": 1, "algorithm": algorithm, "model": "dear", "seed": seed, "protocol": "dear",
        "processor": "mpnn", "tol": 0.1,
        "results": {n: {"score": score, "outputs": {"x": score}, "num_graphs": cfg.num_samples, "nodes": int(n),
                        "seconds_per_sample": 0.002,
                        "timing": {"method": "synthetic", "repeats": 1, "warmup": 0, "batch_size": 32,
                                   "seconds": [0.2]},
                        "iterations": {"mean": 6.0, "max": 12}, "true_steps": {"mean": 4.0, "max": 9},
                        "nfe": None, "converged_fraction": 1.0}},
        "checkpoint": {"step": 1, "val": None}, "fingerprints": {n: ct.fingerprint(task, cfg)},
        "versions": versions(), "hardware": hardware(torch.device("cpu")), "git_commit": None,
        "config": TrainConfig(algorithm=algorithm, model="dear", protocol="dear", seed=seed).to_dict(),
    }


def clrs_paths(tmp_path: Path, name: str = "r", scores=(0.9, 0.92, 0.94)) -> list[Path]:
    paths = []
    for seed, score in enumerate(scores):
        p = tmp_path / f"{name}{seed}" / "results.json"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(clrs_results(seed, score)))
        paths.append(p)
    return paths


def write_json(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


@pytest.fixture()
def board(tmp_path) -> Board:
    return Board(tmp_path / "leaderboards", base=REPO)


@pytest.fixture()
def clrs_entry(tmp_path, board) -> dict:
    return submit(clrs_paths(tmp_path), model_name="DEAR", submitter="t", root=board.root, base=board.base,
                  dry_run=True).entry


@pytest.fixture(scope="module")
def sbm_run(tmp_path_factory) -> Path:
    """Three seeds of a 2-epoch MLP on a 1000-node SBM graph: a run that used a dataset option."""
    from dear.nodecls.train import NodeClsConfig, run

    root = tmp_path_factory.mktemp("sbm")
    cfg = NodeClsConfig(dataset="sbm", model="mlp", seeds=3, epochs=2, patience=2, timing_warmup=0,
                        timing_repeats=1, device="cpu", dataset_options={"num_nodes": 1000},
                        cache_dir=str(root / "cache"))
    run(cfg, root / "run", progress=False)
    return root / "run"


def copy_run(run: Path, dest: Path) -> Path:
    shutil.copytree(run, dest)
    return dest


def ckpts(run: Path, seeds=(0, 1, 2)) -> list[Path]:
    return [run / "seeds" / f"seed_{s}.pt" for s in seeds]


def sbm_entry(sbm_run: Path, board: Board, **kw) -> dict:
    return submit([sbm_run / "results.json"], model_name="MLP", submitter="t", root=board.root, base=board.base,
                  dry_run=True, **kw).entry


def reject(reason: str, match: str, fn, *args, **kw) -> EntryRejected:
    with pytest.raises(EntryRejected, match=match) as info:
        fn(*args, **kw)
    assert info.value.reason == reason, str(info.value)
    assert "\n" not in str(info.value)
    return info.value


# ------------------------------------------------- 1: a verification record submit did not make


def test_ready_made_entry_loses_a_verification_record_it_did_not_earn(tmp_path, board, clrs_entry, capsys):
    forged = copy.deepcopy(clrs_entry)
    forged["verification"] = {"method": VERIFY_METHODS["clrs"], "tolerance": 0.005, "device": "cpu",
                              "date": "2026-01-01",
                              "seeds": [{"seed": s["seed"], "claimed": s["score"], "reproduced": s["score"],
                                         "checkpoint_sha256": f"{s['seed']:064x}"}
                                        for s in forged["scores"]["per_seed"]]}
    path = write_json(tmp_path / "forged.json", forged)
    res = submit([path], model_name="Forged", root=board.root, base=board.base)
    assert res.entry["verification"] is None and any("verification record was dropped" in n for n in res.notes)
    row = next(line for line in (board.root / "clrs-ood" / "README.md").read_text().splitlines()
               if line.startswith("| 1 | Forged |"))
    assert "✓" not in row and row.rstrip(" |").endswith("0/1")
    assert json.loads(res.path.read_text())["verification"] is None
    rc = main(["leaderboard", "submit", str(path), "--model-name", "Forged2", "--root", str(board.root),
               "--repo", str(REPO), "--dry-run"])
    out = capsys.readouterr().out
    assert rc == 0 and "verified" not in out and "note:" in out


def test_validate_rejects_records_submit_never_writes(tmp_path, board, clrs_entry):
    base = copy.deepcopy(clrs_entry)
    seeds = [{"seed": s["seed"], "claimed": s["score"], "reproduced": s["score"], "checkpoint_sha256": "0" * 64}
             for s in base["scores"]["per_seed"]]
    base["verification"] = {"method": VERIFY_METHODS["clrs"], "tolerance": 0.005, "device": "cpu",
                            "date": "2026-01-01", "seeds": seeds}
    # one checkpoint (or one made-up hash) for every seed
    reject("verify", "same checkpoint file", board.add, copy.deepcopy(base))
    other = copy.deepcopy(base)
    for i, item in enumerate(other["verification"]["seeds"]):
        item["checkpoint_sha256"] = f"{i + 1:064x}"
    hand = copy.deepcopy(other)
    hand["verification"]["method"] = "trust me"
    reject("verify", "only --verify may write", board.add, hand)
    twice = copy.deepcopy(other)
    twice["verification"]["seeds"].append(dict(twice["verification"]["seeds"][0], checkpoint_sha256="f" * 64))
    reject("verify", "lists a seed twice", board.add, twice)
    # a committed file edited the same way is one problem of validate
    path = board.add(other)
    data = json.loads(path.read_text())
    data["verification"]["seeds"][1]["checkpoint_sha256"] = data["verification"]["seeds"][0]["checkpoint_sha256"]
    path.write_text(dump_entry(data))
    assert [p.reason for p in board.validate().problems] == ["verify"]


# ------------------------------------------------------ 4: runs that used a dataset option


def test_a_run_with_dataset_options_is_submittable(sbm_run, board):
    res = submit([sbm_run / "results.json"], model_name="MLP", submitter="t", verify=ckpts(sbm_run), device="cpu",
                 root=board.root, base=board.base)
    p = res.entry["protocol"]
    assert p["overrides"] == {"seed": 0, "num_nodes": 1000}
    assert p["description"] == "sbm, split 20, validation draw seed 0, num nodes 1000"
    table = (board.root / "nodecls" / "README.md").read_text()
    assert "## Split 20, validation draw seed 0, num nodes 1000" in table and "num_nodes" not in table
    assert len(res.entry["verification"]["seeds"]) == 3
    assert board.validate().ok


# ------------------------------------------------------------- 5: one test split, one table


def test_default_valued_options_and_float_splits_do_not_make_a_second_table(tmp_path, sbm_run, board):
    first = submit([sbm_run / "results.json"], model_name="GCN", variant="same", submitter="t", root=board.root,
                   base=board.base)
    # the same run with a default spelt out (homophily 0.8) and the split as a float: same test split
    results = json.loads((sbm_run / "results.json").read_text())
    results["config"]["dataset_options"]["homophily"] = 0.8
    results["split"] = 20.0
    spelt = write_json(tmp_path / "spelt" / "results.json", results)
    entry = submit([spelt], model_name="GCN", variant="other", submitter="t", root=board.root,
                   base=board.base, dry_run=True).entry
    assert entry["protocol"] == first.entry["protocol"]
    reject("duplicate", "already holds GCN / same", submit, [spelt], model_name="GCN", variant="same",
           submitter="t", root=board.root, base=board.base)
    # ready-made entries must use the one spelling
    spelt_entry = copy.deepcopy(first.entry)
    spelt_entry["protocol"]["overrides"]["homophily"] = 0.8
    spelt_entry["protocol"]["description"] += ", homophily 0.8"
    reject("protocol", "homophily equals the dataset's default", board.add, spelt_entry)
    float_split = copy.deepcopy(first.entry)
    float_split["protocol"]["split"] = 20.0
    float_split["protocol"]["description"] = float_split["protocol"]["description"].replace("split 20", "split 20.0")
    reject("protocol", "must be written 20", board.add, float_split)
    assert protocol_key(float_split) == protocol_key(first.entry)
    bad_type = copy.deepcopy(first.entry)
    bad_type["protocol"]["overrides"]["num_classes"] = "abc"
    bad_type["protocol"]["description"] += ', num classes "abc"'
    reject("protocol", "num_classes must be an int", board.add, bad_type)


# ------------------------------------------------ 6: --verify checks seed and configuration


def test_verify_refuses_one_model_under_several_seeds(tmp_path, sbm_run, board, capsys):
    fake = copy_run(sbm_run, tmp_path / "fake")
    results = json.loads((fake / "results.json").read_text())
    for rec in results["per_seed"]:
        rec["test_accuracy"] = results["per_seed"][0]["test_accuracy"]
    (fake / "results.json").write_text(json.dumps(results))
    for k in (1, 2):  # seed 0's weights under seed 1's and 2's names, their records left in place
        shutil.copy(fake / "seeds" / "seed_0.pt", fake / "seeds" / f"seed_{k}.pt")
    kw = dict(model_name="One", submitter="t", device="cpu", root=board.root, base=board.base, dry_run=True)
    reject("verify", "same file", submit, [fake / "results.json"], verify=ckpts(fake), **kw)
    for k in (1, 2):  # ... and with seed 0's record copied too
        shutil.copy(fake / "seeds" / "seed_0.json", fake / "seeds" / f"seed_{k}.json")
    reject("verify", "another configuration or seed|records seed 0", submit, [fake / "results.json"],
           verify=ckpts(fake, (1,)), **kw)
    (fake / "seeds" / "seed_1.json").unlink()
    reject("verify", "seed_1.json is missing", submit, [fake / "results.json"], verify=ckpts(fake, (1,)), **kw)
    # the same checkpoint three times is one verified seed at most: refused, not counted thrice
    reject("verify", "seed 0 was given twice", submit, [sbm_run / "results.json"],
           verify=ckpts(sbm_run, (0, 0, 0)), **kw)
    # a checkpoint of the same model trained with another configuration (here: epochs)
    other = json.loads((sbm_run / "results.json").read_text())
    other["config"]["epochs"] = 3
    path = write_json(tmp_path / "epochs3" / "results.json", other)
    reject("verify", "another configuration or seed", submit, [path], verify=ckpts(sbm_run, (0,)), **kw)
    # what the CLI prints counts the seeds the table marks
    rc = main(["leaderboard", "submit", str(sbm_run / "results.json"), "--model-name", "MLP", "--root",
               str(board.root), "--repo", str(REPO), "--device", "cpu", "--dry-run",
               "--verify", str(ckpts(sbm_run)[0]), "--verify", str(ckpts(sbm_run)[2])])
    assert rc == 0 and "verified 2 of 3 seed(s)" in capsys.readouterr().out


# ---------------------------------------------- 7: malformed inputs are one line, exit 2


@pytest.mark.parametrize("edit", [
    lambda r: r.pop("config"),
    lambda r: r.__setitem__("config", None),
    lambda r: r.pop("hardware"),
    lambda r: r.pop("inference_seconds"),
    lambda r: r.clear() or r.update({"schema": "dear.nodecls.results/1", "complete": True}),
])
def test_malformed_nodecls_results_are_one_line(tmp_path, sbm_run, board, capsys, edit):
    results = json.loads((sbm_run / "results.json").read_text())
    edit(results)
    path = write_json(tmp_path / "bad" / "results.json", results)
    rc = main(["leaderboard", "submit", str(path), "--model-name", "X", "--root", str(board.root), "--dry-run"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.count("\n") == 0 and err.startswith("error: rejected (schema):"), err


def test_wrong_or_garbage_checkpoints_and_foreign_configs_are_rejected(tmp_path, sbm_run, board):
    kw = dict(model_name="MLP", submitter="t", device="cpu", root=board.root, base=board.base, dry_run=True)
    junk = copy_run(sbm_run, tmp_path / "junk")
    (junk / "seeds" / "seed_0.pt").write_bytes(b"not a torch file")
    reject("verify", "not a readable checkpoint", submit, [junk / "results.json"], verify=ckpts(junk, (0,)), **kw)
    torch.save({"weight": torch.zeros(2, 2)}, junk / "seeds" / "seed_1.pt")  # another model's weights
    reject("verify", "does not fit the entry's model 'mlp'", submit, [junk / "results.json"],
           verify=ckpts(junk, (1,)), **kw)
    entry = sbm_entry(sbm_run, board)
    entry["config"]["bogus"] = 1
    path = write_json(tmp_path / "bogus.json", entry)
    reject("verify", "unknown key 'bogus'", submit, [path], verify=ckpts(sbm_run, (0,)), **kw)


def test_validate_reports_every_bad_file_and_goes_on(tmp_path, sbm_run, board, clrs_entry, monkeypatch, capsys):
    good = board.add(clrs_entry)
    entry = sbm_entry(sbm_run, board)
    board.add(entry)
    nodecls = board.root / "nodecls"
    bad = copy.deepcopy(entry)
    bad["protocol"]["overrides"]["feature_signal"] = None
    write_json(nodecls / "typed.json", bad)
    write_json(nodecls / "list.json", [1, 2])
    (nodecls / "broken.json").write_text("{")
    problems = board.validate().problems
    assert sorted(p.path.name for p in problems) == ["broken.json", "list.json", "typed.json"]
    # an exception no check foresaw is still one line for that file, and the others are checked
    import dear.leaderboard.board as board_module

    real = board_module.validate_entry

    def flaky(e, base):
        if e.get("track") == "clrs-ood":
            raise TypeError("unforeseen\nmulti-line")
        return real(e, base)

    monkeypatch.setattr(board_module, "validate_entry", flaky)
    problems = board.validate().problems
    assert {p.path.name for p in problems} == {good.name, "broken.json", "list.json", "typed.json"}
    assert all("\n" not in str(p) for p in problems)
    rc = main(["leaderboard", "validate", "--root", str(board.root), "--repo", str(REPO)])
    captured = capsys.readouterr()
    assert rc == 2 and len(captured.out.strip().splitlines()) == 4


# ----------------------------------------------------------------- 8: the boards folder


def test_a_missing_boards_folder_is_an_error(tmp_path, clrs_entry, monkeypatch, capsys):
    missing = tmp_path / "nonexistent"
    assert main(["leaderboard", "validate", "--root", str(missing)]) == 2
    assert "no boards folder" in capsys.readouterr().err
    with pytest.raises(BoardNotFoundError):
        Board(tmp_path).validate()  # exists, but holds no track folder
    paths = clrs_paths(tmp_path)
    assert main(["leaderboard", "submit", *map(str, paths), "--model-name", "X", "--root", str(missing),
                 "--repo", str(REPO)]) == 2
    assert main(["leaderboard", "render", "--root", str(missing)]) == 2
    assert not missing.exists()
    # asking for a new board: a named folder called leaderboards, or one created beforehand
    new = tmp_path / "new" / "leaderboards"
    new.parent.mkdir()
    assert main(["leaderboard", "submit", *map(str, paths), "--model-name", "X", "--root", str(new),
                 "--repo", str(REPO)]) == 0
    made = tmp_path / "made"
    made.mkdir()
    assert main(["leaderboard", "render", "--root", str(made)]) == 0 and (made / "nodecls" / "README.md").is_file()
    # the default is ./leaderboards, as --help says, never the installed package's checkout
    monkeypatch.delenv("DEAR_LEADERBOARDS", raising=False)
    monkeypatch.chdir(tmp_path)
    assert default_root() == tmp_path / "leaderboards"
    capsys.readouterr()
    assert main(["leaderboard", "validate"]) == 2 and "run from the repository root" in capsys.readouterr().err
    assert main(["leaderboard", "render"]) == 2 and not (tmp_path / "leaderboards").exists()


# ------------------------------------------------------------------ 13: impossible numbers


@pytest.mark.parametrize("path, value, reason, match", [
    (("solver", "iterations_mean"), -2, "score", "solver.iterations_mean -2 must be"),
    (("solver", "tol"), -1, "score", "solver.tol -1 must be"),
    (("solver", "iterations_max"), float("nan"), "score", "solver.iterations_max nan"),
    (("training", "seconds_mean"), -5, "score", "training.seconds_mean -5 must be a finite number > 0"),
    (("training", "steps"), 0, "score", "training.steps 0 must be"),
    (("model", "architecture"), "transformer9000", "schema", "model.architecture 'transformer9000'"),
])
def test_impossible_numbers_and_unknown_architectures(board, clrs_entry, path, value, reason, match):
    entry = copy.deepcopy(clrs_entry)
    entry[path[0]][path[1]] = value
    reject(reason, match, board.add, entry)


def test_nodecls_epochs_and_architecture_are_checked(sbm_run, board):
    entry = sbm_entry(sbm_run, board)
    entry["training"]["epochs"] = -3
    reject("score", "training.epochs -3", board.add, entry)
    entry = sbm_entry(sbm_run, board)
    entry["model"]["architecture"] = "dear"  # a CLRS model on the nodecls track
    reject("schema", "not a model of track nodecls", board.add, entry)


# ------------------------------------------------- results files that grow sizes, unfinished runs


def test_seeds_with_different_size_sets_submit_at_their_common_size(tmp_path, board):
    paths = clrs_paths(tmp_path)
    extra = json.loads(paths[1].read_text())  # seed 1 was also evaluated out of distribution
    extra["results"]["128"] = dict(extra["results"]["64"], nodes=128)
    extra["fingerprints"]["128"] = "0" * 64
    paths[1].write_text(json.dumps(extra))
    entry = submit(paths, model_name="DEAR", submitter="t", root=board.root, base=board.base, dry_run=True).entry
    assert [s["score"] for s in entry["scores"]["per_seed"]] == pytest.approx([0.9, 0.92, 0.94])
    with pytest.raises(EntryRejected, match="no results at n = 128 in results file 1"):
        submit(paths, model_name="DEAR", submitter="t", root=board.root, base=board.base, dry_run=True, size=128)


def test_a_run_scored_before_its_training_finished_is_rejected(tmp_path, board):
    paths = clrs_paths(tmp_path)
    r = json.loads(paths[2].read_text())
    r["training_finished"] = False
    paths[2].write_text(json.dumps(r))
    with pytest.raises(EntryRejected, match=r"results file\(s\) 3 scored a run whose training had not finished"):
        submit(paths, model_name="DEAR", submitter="t", root=board.root, base=board.base, dry_run=True)
