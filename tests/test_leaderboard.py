"""Leaderboards: the entry schema, every rejection reason, rendering, --verify, the committed boards.

Synthetic results files (``fake_results``) carry the *real* split fingerprints (computed from
the task and protocol, no sampling), so they pass the fingerprint check like real ones; their
scores are test inputs, not claims. ``--verify`` is tested on real (tiny) trained runs.
"""

from __future__ import annotations

import copy
import json
import math
import re
from pathlib import Path

import pytest
import torch

import clrs_tasks as ct
from dear.cli import main
from dear.config import TrainConfig, profile_config
from dear.io import hardware, versions
from dear.leaderboard import (
    CLRS_FAMILIES,
    SCHEMA,
    TRACKS,
    Board,
    EntryRejected,
    dump_entry,
    entry_checkpoints,
    entry_filename,
    reverify,
    submit,
    validate_entry,
)
from dear.leaderboard.cli import TRACK_CHOICES
from dear.leaderboard.schema import field_paths

REPO = Path(__file__).resolve().parents[1]


def fake_results(algorithm: str = "bfs", seed: int = 0, score: float = 0.9, model: str = "dear",
                 protocol: str = "dear", **overrides) -> dict:
    """A `dear evaluate` results dict for a run that was never trained (test input only)."""
    task = ct.get_task(algorithm)
    cfg = ct.split_config(task, "test", protocol, **overrides)
    n = str(cfg.sizes[0])
    config = TrainConfig(algorithm=algorithm, model=model, protocol=protocol, seed=seed,
                         num_test=overrides.get("num_samples")).to_dict()
    return {
        "schema_version": 1, "algorithm": algorithm, "model": model, "seed": seed, "protocol": protocol,
        "processor": "mpnn", "tol": 0.1 if model == "dear" else None,
        "results": {n: {"score": score, "outputs": {"x": score}, "num_graphs": cfg.num_samples, "nodes": int(n),
                        "seconds_per_sample": 0.002 * (seed + 1),
                        "timing": {"method": "synthetic", "repeats": 1, "warmup": 0, "batch_size": 32, "seconds": [0.2]},
                        "iterations": {"mean": 6.0 + seed, "max": 12}, "true_steps": {"mean": 4.0, "max": 9},
                        "nfe": None, "converged_fraction": 1.0}},
        "checkpoint": {"step": 1, "val": None}, "fingerprints": {n: ct.fingerprint(task, cfg)},
        "versions": versions(), "hardware": hardware(torch.device("cpu")), "git_commit": None, "config": config,
    }


def write_results(tmp_path: Path, docs: list[dict], name: str = "r") -> list[Path]:
    paths = []
    for i, d in enumerate(docs):
        p = tmp_path / f"{name}{i}" / "results.json"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(d))
        paths.append(p)
    return paths


@pytest.fixture()
def board(tmp_path) -> Board:
    return Board(tmp_path / "leaderboards", base=REPO)


def make_entry(tmp_path: Path, board: Board, scores=(0.9, 0.92, 0.94), algorithm="bfs", name="DEAR", **kw) -> dict:
    paths = write_results(tmp_path, [fake_results(algorithm, s, x) for s, x in enumerate(scores)], name=f"{algorithm}{name}")
    return submit(paths, model_name=name, submitter="tester", root=board.root, base=board.base, dry_run=True, **kw).entry


# ---------------------------------------------------------------------------- tracks and schema


def test_families_partition_clrs30_and_cli_lists_every_track():
    from clrs_tasks._clrs import clrs

    clrs()  # import dm-clrs quietly, then read its list of the 30 algorithms
    from clrs._src import specs

    algos = [a for fam in CLRS_FAMILIES.values() for a in fam]
    assert len(CLRS_FAMILIES) == 8 and sorted(algos) == sorted(specs.CLRS_30_ALGS) and len(set(algos)) == 30
    assert sorted(algos) == ct.list_tasks(clrs30_only=True)
    assert set(TRACK_CHOICES) == set(TRACKS)


def test_docs_describe_every_schema_field():
    doc = (REPO / "docs" / "leaderboards.md").read_text()
    assert SCHEMA in doc
    missing = [p for p, _ in field_paths() if f"`{p}`" not in doc]
    assert not missing, f"docs/leaderboards.md does not document {missing}"
    for fam, algos in CLRS_FAMILIES.items():
        assert fam in doc and all(a in doc for a in algos)
    example = {"track": "clrs-ood", "task": "bfs", "protocol": {"name": "dear", "overrides": {}},
               "model": {"name": "DEAR", "variant": "mpnn h128, anderson tol 0.1, quick profile"}}
    assert f"`{entry_filename(example)}`" in doc  # the file name the docs show is the real one


def test_default_variant_names_the_init_only_when_it_is_not_torch():
    from dear.leaderboard.convert import default_clrs_variant

    cfg = {"processor": "mpnn", "hidden": 128, "model": "dear", "solver": "anderson", "tol": 0.1, "profile": "quick"}
    assert default_clrs_variant(cfg) == "mpnn h128, anderson tol 0.1, quick profile"  # saved before `init`
    assert default_clrs_variant({**cfg, "init": "torch"}) == "mpnn h128, anderson tol 0.1, quick profile"
    assert default_clrs_variant({**cfg, "init": "dmclrs", "model": "nar"}) == "mpnn h128, dmclrs init, quick profile"


def test_default_variant_names_dears_gradient_when_it_is_not_the_papers():
    from dear.leaderboard.convert import default_clrs_variant

    cfg = {"processor": "mpnn", "hidden": 128, "model": "dear", "solver": "anderson", "tol": 0.1, "profile": "quick",
           "backward": "phantom", "phantom_steps": 1, "phantom_tau": 1.0}
    assert default_clrs_variant(cfg) == "mpnn h128, anderson tol 0.1, quick profile"
    assert default_clrs_variant({**cfg, "phantom_steps": 5, "phantom_tau": 0.5}) == \
        "mpnn h128, anderson tol 0.1, phantom 5 steps tau 0.5, quick profile"
    assert default_clrs_variant({**cfg, "phantom_tau": 0.5}) == \
        "mpnn h128, anderson tol 0.1, phantom 1 steps tau 0.5, quick profile"
    assert default_clrs_variant({**cfg, "backward": "ift", "phantom_steps": 5}) == \
        "mpnn h128, anderson tol 0.1, ift backward, quick profile"
    # NAR has no solver gradient: its variant ignores these fields
    assert default_clrs_variant({**cfg, "model": "nar", "phantom_steps": 5}) == "mpnn h128, quick profile"
    # the stopping rule: named when it is not the paper's (configs saved before it mean rel)
    assert default_clrs_variant({**cfg, "stop_mode": "rel"}) == "mpnn h128, anderson tol 0.1, quick profile"
    assert default_clrs_variant({**cfg, "stop_mode": "node"}) == "mpnn h128, anderson tol 0.1 per node, quick profile"
    assert default_clrs_variant({**cfg, "model": "nar", "stop_mode": "node"}) == "mpnn h128, quick profile"


def test_default_variants_name_every_training_setting_off_its_default():
    """An entry's identity is its variant: runs that train differently must not share one (a
    weight-decay sweep would otherwise be refused as duplicates, or `--replace` one another)."""
    from dear.leaderboard.convert import default_clrs_variant, default_nodecls_variant

    cfg = {"processor": "mpnn", "hidden": 128, "model": "dear", "solver": "learned", "tol": 0.1, "profile": "quick",
           "lr": 1e-3, "extra": {}, "solver_training": {}}
    assert default_clrs_variant(cfg) == "mpnn h128, learned tol 0.1, quick profile"
    assert default_clrs_variant({**cfg, "lr": 3e-4}) == "mpnn h128, learned tol 0.1, lr 0.0003, quick profile"
    assert default_clrs_variant({**cfg, "extra": {"solver_options": {"steps": 12}}}) == \
        "mpnn h128, learned tol 0.1, extra solver-options.steps=12, quick profile"
    assert default_clrs_variant({**cfg, "solver_training": {"warmup_epochs": 300, "lr": 0.02}}) == \
        "mpnn h128, learned tol 0.1, solver-training lr=0.02 warmup-epochs=300, quick profile"
    assert default_clrs_variant({**cfg, "model": "nar", "jac_reg": 0.0}) == "mpnn h128, quick profile"  # DEAR's own

    base = {"solver": "picard", "kappa": 0.9, "epochs": 300, "patience": 50, "lr": 0.01, "weight_decay": 5e-4,
            "normalize_features": "auto", "solver_training": {}}
    assert default_nodecls_variant(base) == "picard, kappa 0.9, 300 epochs, patience 50"
    assert default_nodecls_variant({**base, "weight_decay": 0.0, "normalize_features": "no"}) == \
        "picard, kappa 0.9, weight-decay 0, normalize-features no, 300 epochs, patience 50"
    assert default_nodecls_variant({"epochs": 200, "patience": 50}) == "default options, 200 epochs, patience 50"
    from dear.leaderboard.validation import check_text

    for variant in (default_clrs_variant({**cfg, "extra": {"solver_options": {"steps": 12, "sparsifier": "top_k"}}}),
                    default_nodecls_variant({**base, "solver_training": {"max_share": None, "final_steps": 15}})):
        check_text(variant, "model.variant")  # no underscores or braces: the board accepts it


def test_variant_length_limit_fits_a_tuned_configuration():
    import glob

    from dear.leaderboard import EntryRejected, validate_entry

    entry = json.loads(Path(sorted(glob.glob(str(REPO / "leaderboards" / "nodecls" / "*.json")))[0]).read_text())
    entry["model"]["variant"] = ("picard, kappa 0.9, input-dropout 0.5, propagate-input False, weight-decay 0, "
                                 "normalize-features no, 300 epochs, patience 50")  # 123 characters
    validate_entry(entry, REPO)
    entry["model"]["variant"] = "x" * 201
    with pytest.raises(EntryRejected, match="at most 200"):
        validate_entry(entry, REPO)


# --------------------------------------------------------------------------- round trip


def test_valid_entry_round_trips_to_the_rendered_table(tmp_path, board):
    paths = write_results(tmp_path, [fake_results("bfs", s, x) for s, x in enumerate((0.9, 0.92, 0.97))])
    res = submit(paths, model_name="DEAR", variant="mpnn h128, quick", submitter="tester",
                 link="https://example.org/dear", root=board.root, base=board.base)
    assert res.path.parent == board.root / "clrs-ood" and res.path.name == entry_filename(res.entry)
    on_disk = json.loads(res.path.read_text())
    assert on_disk == json.loads(dump_entry(res.entry))
    s = on_disk["scores"]
    assert [x["seed"] for x in s["per_seed"]] == [0, 1, 2]
    assert s["mean"] == pytest.approx(0.93) and s["std"] == pytest.approx(math.sqrt(((0.03 ** 2) + (0.01 ** 2) + (0.04 ** 2)) / 2))
    assert on_disk["split_fingerprint"] == fake_results()["fingerprints"]["64"]
    assert on_disk["timing"]["value"] == pytest.approx(0.004)  # median over seeds of 0.002, 0.004, 0.006
    assert on_disk["solver"]["iterations_mean"] == pytest.approx(7.0) and on_disk["solver"]["reference_steps_mean"] == 4.0
    table = (board.root / "clrs-ood" / "README.md").read_text()
    row = next(line for line in table.splitlines() if line.startswith("| 1 | DEAR |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    # rank, model, variant, mean over algorithms (coverage of 30), mean over families (of 8), bfs, verified
    assert cells == ["1", "DEAR", "mpnn h128, quick", "93.0 (1/30)", "93.0 (1/8)", "93.0 ± 3.6", "0/1"]
    assert "[link](https://example.org/dear)" in table and "`dear` protocol, test split, n = 64" in table
    assert board.validate().ok
    assert board.render("clrs-ood") == table


def test_entries_carry_and_show_source_changes_no_commit_holds(tmp_path, board):
    """Runs made from uncommitted changes give an entry that says so (the union of the files its
    evaluation and training records name), with a note at submit and a marked code cell; records
    that do not say leave the field out, since "unknown" is not "none"."""
    docs = [fake_results("bfs", s, x) for s, x in enumerate((0.9, 0.92, 0.97))]
    for d in docs:
        d["git_commit"] = "0123456789abcdef0123456789abcdef01234567"
    plain = submit(write_results(tmp_path, docs, name="old"), model_name="DEAR", submitter="t", root=board.root,
                   base=board.base, dry_run=True)
    assert "git_uncommitted" not in plain.entry["code_version"] and not plain.notes
    docs[0]["git_uncommitted"], docs[1]["git_uncommitted"], docs[2]["git_uncommitted"] = [], [], []
    clean = submit(write_results(tmp_path, docs, name="clean"), model_name="DEAR", submitter="t", root=board.root,
                   base=board.base, dry_run=True)
    assert clean.entry["code_version"]["git_uncommitted"] == [] and not clean.notes
    docs[1]["git_uncommitted"] = ["dear/training.py"]
    paths = write_results(tmp_path, docs, name="dirty")
    (paths[2].parent / "train_summary.json").write_text(json.dumps({"git_uncommitted": ["dear/solvers/anderson.py"]}))
    res = submit(paths, model_name="DEAR", variant="dirty", submitter="t", root=board.root, base=board.base)
    assert res.entry["code_version"]["git_uncommitted"] == ["dear/solvers/anderson.py", "dear/training.py"]
    assert len(res.notes) == 1 and "not committed at 01234567" in res.notes[0]
    assert "dear/solvers/anderson.py, dear/training.py" in res.notes[0]
    table = (board.root / "clrs-ood" / "README.md").read_text()
    assert "@ 01234567 + uncommitted |" in table
    assert board.validate().ok
    bad = dict(res.entry, code_version={**res.entry["code_version"], "git_uncommitted": [3]})
    with pytest.raises(EntryRejected, match="git_uncommitted must list file paths") as info:
        validate_entry(bad, board.base)
    assert info.value.reason == "schema"


def test_partial_coverage_means_and_ordering(tmp_path, board):
    # A covers bfs and minimum; B covers only bfs with a higher score: A ranks first (coverage first)
    for name, algo, scores in (("A", "bfs", (0.8, 0.8, 0.8)), ("A", "minimum", (0.5, 0.6, 0.7)),
                               ("A", "dfs", (0.2, 0.2, 0.2)), ("B", "bfs", (1.0, 1.0, 1.0))):
        board.add(make_entry(tmp_path, board, scores, algorithm=algo, name=name))
    table = board.render("clrs-ood")
    rows = [line for line in table.splitlines() if re.match(r"\| \d+ \|", line)]
    header = next(line for line in table.splitlines() if line.startswith("| # |"))
    assert [c.strip() for c in header.strip("|").split("|")][5:8] == ["`minimum`", "`dfs`", "`bfs`"]  # CLRS family order
    a = [c.strip() for c in rows[0].strip("|").split("|")]
    b = [c.strip() for c in rows[1].strip("|").split("|")]
    assert a[1] == "A" and b[1] == "B"
    # mean over covered algorithms: (80 + 60 + 20) / 3; families: searching 60, graphs (80 + 20) / 2 = 50 -> 55
    assert a[3] == "53.3 (3/30)" and a[4] == "55.0 (2/8)"
    assert b[3] == "100.0 (1/30)" and b[5] == "–" and b[6] == "–"


# ------------------------------------------------------------------------------ rejections


def _reject(board: Board, entry: dict, reason: str, match: str) -> None:
    with pytest.raises(EntryRejected, match=match) as info:
        board.add(entry)
    assert info.value.reason == reason
    assert "\n" not in str(info.value)  # one line
    assert not list((board.root / "clrs-ood").glob("*.json"))  # nothing written


@pytest.mark.parametrize("mutate, match", [
    (lambda e: e.pop("timing"), "missing field timing"),
    (lambda e: e["scores"].__setitem__("mean", "high"), "field scores.mean must be number"),
    (lambda e: e.__setitem__("bonus", 1), "unknown field bonus"),
    (lambda e: e["model"].__setitem__("nickname", "x"), "unknown field model.nickname"),
    (lambda e: e.__setitem__("schema", "dear.leaderboard.entry/0"), "field schema must be"),
    (lambda e: e["scores"]["per_seed"][1].__setitem__("seed", True), r"per_seed\[1\].seed must be int"),
])
def test_schema_violations(tmp_path, board, mutate, match):
    entry = make_entry(tmp_path, board)
    mutate(entry)
    _reject(board, entry, "schema", match)


@pytest.mark.parametrize("bad, match", [(float("nan"), "not finite"), (float("inf"), "not finite"),
                                        (1.2, r"outside \[0, 1\]"), (-0.01, r"outside \[0, 1\]")])
def test_non_finite_or_out_of_range_scores(tmp_path, board, bad, match):
    entry = make_entry(tmp_path, board)
    entry["scores"]["per_seed"][2]["score"] = bad
    _reject(board, entry, "score", match)


def test_summary_must_match_the_per_seed_scores(tmp_path, board):
    entry = make_entry(tmp_path, board)
    entry["scores"]["mean"] = 0.99
    _reject(board, entry, "score", "scores.mean is 0.99 but the per-seed scores give")
    entry = make_entry(tmp_path, board)
    entry["scores"]["std"] = 0.0
    _reject(board, entry, "score", "scores.std")


def test_fewer_seeds_than_required_or_repeated_seeds(tmp_path, board):
    entry = make_entry(tmp_path, board)
    entry["scores"]["per_seed"] = entry["scores"]["per_seed"][:2]
    entry["scores"]["mean"], entry["scores"]["std"] = 0.91, math.sqrt(2 * 0.01 ** 2)
    _reject(board, entry, "seeds", "2 seed.s.; at least 3 are required")
    entry = make_entry(tmp_path, board)
    entry["scores"]["per_seed"][2]["seed"] = 0
    _reject(board, entry, "seeds", "seeds must be distinct")
    # and from results files directly: two seeds are refused before anything is written
    paths = write_results(tmp_path, [fake_results("bfs", s, 0.9) for s in range(2)], name="two")
    with pytest.raises(EntryRejected, match="at least 3"):
        submit(paths, model_name="DEAR", submitter="t", root=board.root, base=board.base)


def test_split_fingerprint_must_equal_the_local_one(tmp_path, board):
    entry = make_entry(tmp_path, board)
    other = ct.fingerprint(ct.get_task("bfs"), ct.split_config(ct.get_task("bfs"), "test", "dear", seed=4))
    entry["split_fingerprint"] = other
    _reject(board, entry, "fingerprint", "not the one computed locally for bfs")
    # results evaluated on a smaller test set: the converter keeps its true size, clrs-ood refuses it
    paths = write_results(tmp_path, [fake_results("bfs", s, 0.9, num_samples=10) for s in range(3)], name="small")
    with pytest.raises(EntryRejected, match="overrides.num_samples is not allowed on track clrs-ood"):
        submit(paths, model_name="DEAR", submitter="t", root=board.root, base=board.base)
    # a claimed protocol that does not match the fingerprint it carries
    entry = make_entry(tmp_path, board)
    entry["protocol"]["name"] = "official"
    entry["protocol"]["description"] = "official protocol, test: n = 64, 32 graphs, seed 3"
    _reject(board, entry, "fingerprint", "computed locally")


def test_duplicates_are_refused(tmp_path, board):
    entry = make_entry(tmp_path, board)
    board.add(copy.deepcopy(entry))
    with pytest.raises(EntryRejected, match="already holds DEAR") as info:
        board.add(copy.deepcopy(entry))
    assert info.value.reason == "duplicate"
    twin = copy.deepcopy(entry)
    twin["model"]["name"] = "dear"
    twin["model"]["variant"] = "  ".join(entry["model"]["variant"].upper().split(" "))
    with pytest.raises(EntryRejected, match="already holds"):
        board.add(twin)
    assert len(list((board.root / "clrs-ood").glob("*.json"))) == 1
    better = copy.deepcopy(entry)
    for s in better["scores"]["per_seed"]:
        s["score"] = 0.5
    better["scores"]["mean"], better["scores"]["std"] = 0.5, 0.0
    board.add(better, replace=True)  # an explicit update replaces the file
    (only,) = (board.root / "clrs-ood").glob("*.json")
    assert json.loads(only.read_text())["scores"]["mean"] == 0.5


@pytest.mark.parametrize("field, value, reason, match", [
    ("name", "<script>alert(1)</script>", "name", "inject Markdown/HTML"),
    ("name", "DEAR | 100.0", "name", "inject"),
    ("name", "[best](https://evil.example)", "name", "inject"),
    ("name", "**DEAR**", "name", "inject"),
    ("variant", "fast\n| 1 | fake |", "name", "inject"),
    ("variant", "see https://evil.example", "name", "inject"),
    ("name", "../../../etc/passwd", "path", "path outside the track folder"),
    ("variant", "runs/dear", "path", "path outside"),
    ("submitter", "a&#60;b", "name", "inject"),
])
def test_names_that_would_inject_markup_or_paths(tmp_path, board, field, value, reason, match):
    entry = make_entry(tmp_path, board)
    if field == "submitter":
        entry["submitter"] = value
    else:
        entry["model"][field] = value
    _reject(board, entry, reason, match)


def test_links_tracks_and_task_modules_outside_the_folders(tmp_path, board):
    entry = make_entry(tmp_path, board)
    entry["link"] = "javascript:alert(1)"
    _reject(board, entry, "name", "plain https:// URL")
    entry = make_entry(tmp_path, board)
    entry["track"] = "../clrs-ood"
    _reject(board, entry, "path", "not a leaderboard track")
    entry = make_entry(tmp_path, board, algorithm="find_maximum_subarray")
    assert entry["track"] == "user-tasks"  # not CLRS-30: filed on user-tasks by default
    entry["task_module"] = "../../outside.py"
    with pytest.raises(EntryRejected, match="task_module '../../outside.py' must be a relative path") as info:
        board.add(entry)
    assert info.value.reason == "path"
    # a CLRS-30 algorithm cannot be filed on the user-tasks track, nor a non-CLRS-30 one on clrs-ood
    entry = make_entry(tmp_path, board)
    entry["track"] = "user-tasks"
    with pytest.raises(EntryRejected, match="is a CLRS-30 algorithm; submit it to clrs-ood"):
        board.add(entry)
    entry = make_entry(tmp_path, board, algorithm="find_maximum_subarray")
    entry["track"] = "clrs-ood"
    _reject(board, entry, "task", "not a CLRS-30 algorithm")


def test_cli_prints_one_error_line_and_exits_2(tmp_path, board, capsys):
    paths = write_results(tmp_path, [fake_results("bfs", s, [0.9, 0.8, 1.5][s]) for s in range(3)], name="bad")
    rc = main(["leaderboard", "submit", *map(str, paths), "--model-name", "DEAR", "--root", str(board.root)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.count("\n") == 0
    assert err.startswith("error: rejected (score): seed 2: score 1.5 is outside [0, 1]")
    paths = write_results(tmp_path, [fake_results("bfs", s, 0.9) for s in range(3)], name="good")
    rc = main(["leaderboard", "submit", *map(str, paths), "--model-name", "NAR baseline", "--submitter", "me",
               "--root", str(board.root)])
    out = capsys.readouterr().out
    assert rc == 0 and "wrote" in out and "NAR baseline" in (board.root / "clrs-ood" / "README.md").read_text()
    assert main(["leaderboard", "validate", "--root", str(board.root), "--repo", str(REPO)]) == 0
    assert "ok: 1 entries valid" in capsys.readouterr().out


# --------------------------------------------------------------------------------- validate


def test_validate_finds_tampered_moved_and_stale_files(tmp_path, board, capsys):
    path = board.add(make_entry(tmp_path, board))
    assert board.validate().ok
    readme = board.root / "clrs-ood" / "README.md"
    readme.write_text(readme.read_text().replace("92.0", "99.0"))
    assert [p.reason for p in board.validate().problems] == ["stale"]
    board.write_table("clrs-ood")
    data = json.loads(path.read_text())
    data["scores"]["per_seed"][0]["score"] = 1.0  # hand-edited claim: the summary no longer matches
    path.write_text(dump_entry(data))
    assert [p.reason for p in board.validate().problems] == ["score"]
    data = json.loads(path.read_text())
    data["scores"]["per_seed"][0]["score"] = 0.9
    path.write_text(dump_entry(data))
    renamed = path.with_name("best-model-ever.json")
    path.rename(renamed)
    assert [p.reason for p in board.validate().problems] == ["path"]
    (board.root / "nodecls").mkdir()
    renamed.rename(board.root / "nodecls" / path.name)  # filed under the wrong track
    problems = board.validate().problems
    assert any(p.reason == "path" and "track 'clrs-ood'" in p.message for p in problems)
    rc = main(["leaderboard", "validate", "--root", str(board.root), "--repo", str(REPO)])
    assert rc == 2 and "problem(s)" in capsys.readouterr().err


def test_committed_boards_are_valid():
    """What CI runs (`dear leaderboard validate`): every committed entry passes and tables are current."""
    from dear.nodecls import DatasetNotFoundError, load_dataset

    try:
        load_dataset("amgcn:citeseer")
    except DatasetNotFoundError:
        pytest.skip("node-classification data not available (../shared/data)")
    report = Board(REPO / "leaderboards").validate()
    assert report.ok, "\n".join(map(str, report.problems))
    assert set(report.checked) == set(TRACKS)
    for track in TRACKS:
        assert (REPO / "leaderboards" / track / "README.md").is_file()
    assert "dear leaderboard validate" in (REPO / ".ci" / "run").read_text()


# ------------------------------------------------------------------------------------ verify


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    """Three seeds of a tiny DEAR run on BFS, evaluated on the official `dear` test split."""
    from dear.evaluate import evaluate_run
    from dear.training import train

    root = tmp_path_factory.mktemp("verify")
    mp = pytest.MonkeyPatch()
    mp.setenv("CLRS_TASKS_CACHE", str(root / "cache"))
    runs = []
    for seed in range(3):
        cfg = profile_config("quick", algorithm="bfs", model="dear", seed=seed, num_train=16, num_val=8, steps=4,
                             batch_size=8, hidden=16, eval_every=4, device="cpu")
        train(cfg, root / f"seed{seed}", progress=False)
        evaluate_run(root / f"seed{seed}", repeats=1, warmup=0, device="cpu")
        runs.append(root / f"seed{seed}")
    yield runs
    mp.undo()


def test_verify_accepts_a_true_claim(tmp_path, board, tiny_runs, monkeypatch):
    monkeypatch.setenv("CLRS_TASKS_CACHE", str(tiny_runs[0].parent / "cache"))
    res = submit([r / "results.json" for r in tiny_runs], model_name="DEAR", variant="tiny", submitter="t",
                 verify=[tiny_runs[0], tiny_runs[1] / "checkpoint_best.pt", tiny_runs[2]], device="cpu",
                 root=board.root, base=board.base)
    v = res.entry["verification"]
    assert [s["seed"] for s in v["seeds"]] == [0, 1, 2]
    for item, run in zip(v["seeds"], tiny_runs):
        claimed = json.loads((run / "results.json").read_text())["results"]["64"]["score"]
        assert item["claimed"] == claimed and item["reproduced"] == pytest.approx(claimed, abs=1e-12)
    row = next(line for line in (board.root / "clrs-ood" / "README.md").read_text().splitlines()
               if line.startswith("| 1 | DEAR | tiny |"))
    assert "✓" in row and row.rstrip(" |").endswith("1/1")
    assert board.validate().ok


def test_verify_refuses_an_inflated_claim(tmp_path, board, tiny_runs, monkeypatch):
    monkeypatch.setenv("CLRS_TASKS_CACHE", str(tiny_runs[0].parent / "cache"))
    docs = [json.loads((r / "results.json").read_text()) for r in tiny_runs]
    true = docs[0]["results"]["64"]["score"]
    docs[0]["results"]["64"]["score"] = min(1.0, true + 0.05)
    paths = write_results(tmp_path, docs, name="inflated")
    with pytest.raises(EntryRejected, match=r"seed 0: the checkpoint scores .* the entry claims") as info:
        submit(paths, model_name="DEAR", variant="tiny", submitter="t", verify=[tiny_runs[0]], device="cpu",
               root=board.root, base=board.base)
    assert info.value.reason == "verify"
    assert not (board.root / "clrs-ood").exists() or not list((board.root / "clrs-ood").glob("*.json"))
    # a checkpoint of another algorithm cannot vouch for the entry either
    other = write_results(tmp_path, [fake_results("dfs", s, 0.5) for s in range(3)], name="dfs")
    with pytest.raises(EntryRejected, match="is a algorithm 'bfs' run; the entry is for 'dfs'"):
        submit(other, model_name="DEAR", submitter="t", verify=[tiny_runs[0]], device="cpu",
               root=board.root, base=board.base)
    # and a hand-made verification record with a loose tolerance does not count
    entry = submit([r / "results.json" for r in tiny_runs], model_name="DEAR", variant="tiny", submitter="t",
                   root=board.root, base=board.base, dry_run=True).entry
    entry["verification"] = {"method": "trust me", "tolerance": 0.5, "device": "cpu", "date": "2024-01-01",
                             "seeds": [{"seed": 0, "claimed": entry["scores"]["per_seed"][0]["score"],
                                        "reproduced": 0.0, "checkpoint_sha256": "0" * 64}]}
    with pytest.raises(EntryRejected, match="tolerance 0.5 must be in"):
        board.add(entry)


def _train_citeseer(out, model: str, epochs: int) -> None:
    """Three seeds of a few epochs on Citeseer into ``out``; skips the test without the data."""
    from dear.nodecls import DatasetNotFoundError
    from dear.nodecls.train import NodeClsConfig, run

    cfg = NodeClsConfig(dataset="amgcn:citeseer", model=model, seeds=3, epochs=epochs, patience=epochs,
                        timing_warmup=0, timing_repeats=1, device="cpu")
    try:
        run(cfg, out, progress=False)
    except DatasetNotFoundError:
        pytest.skip("node-classification data not available (../shared/data)")


def test_nodecls_verify_gives_the_model_the_trainers_graph_operand(tmp_path, board, monkeypatch):
    """Verification runs a model on what training ran it on: the sparse ``A^T`` for the SpMM
    models (on ``edge_index`` SGC on Flickr's raw features needs 23 GB for messages)."""
    import torch_geometric.nn as pyg_nn

    _train_citeseer(tmp_path / "sgc", "sgc", epochs=2)
    seen = []
    forward = pyg_nn.SGConv.forward
    monkeypatch.setattr(pyg_nn.SGConv, "forward",
                        lambda self, x, graph, *a, **k: seen.append(graph.layout) or forward(self, x, graph, *a, **k))
    res = submit([tmp_path / "sgc" / "results.json"], model_name="SGC", variant="2 epochs", submitter="t",
                 verify=[tmp_path / "sgc" / "seeds" / f"seed_{s}.pt" for s in range(3)], device="cpu",
                 root=board.root, base=board.base)
    assert seen == [torch.sparse_csr] * 3
    for item in res.entry["verification"]["seeds"]:
        assert item["reproduced"] == pytest.approx(item["claimed"], abs=1e-6)


def test_nodecls_entry_and_verify(tmp_path, board):
    """A node-classification run converts to an entry on `nodecls`; --verify reloads each seed's
    weights and refuses a claim they do not reproduce."""
    _train_citeseer(tmp_path / "mlp", "mlp", epochs=3)
    ckpts = [tmp_path / "mlp" / "seeds" / f"seed_{s}.pt" for s in range(3)]
    res = submit([tmp_path / "mlp" / "results.json"], model_name="MLP", variant="3 epochs", submitter="t",
                 verify=ckpts, device="cpu", root=board.root, base=board.base)
    e = res.entry
    assert e["track"] == "nodecls" and e["metric"]["unit"] == "percent" and e["solver"] is None
    assert e["protocol"] == {"name": "standard", "split": 60, "overrides": {"seed": 0},
                             "description": "amgcn:citeseer, split 60, validation draw seed 0"}
    for item in e["verification"]["seeds"]:
        assert item["reproduced"] == pytest.approx(item["claimed"], abs=1e-6)
    assert "| 1 | MLP | 3 epochs |" in (board.root / "nodecls" / "README.md").read_text()
    recorded = json.loads((tmp_path / "mlp" / "results.json").read_text())
    assert e["code_version"].get("git_uncommitted") == recorded.get("git_uncommitted")  # as the run says
    recorded["git_uncommitted"] = ["dear/nodecls/train.py"]
    (tmp_path / "dirty.json").write_text(json.dumps(recorded))
    dirty = submit([tmp_path / "dirty.json"], model_name="MLP", variant="dirty", submitter="t", root=board.root,
                   base=board.base, dry_run=True)
    assert dirty.entry["code_version"]["git_uncommitted"] == ["dear/nodecls/train.py"]
    assert any("dear/nodecls/train.py" in n for n in dirty.notes)
    inflated = json.loads((tmp_path / "mlp" / "results.json").read_text())
    inflated["per_seed"][1]["test_accuracy"] += 3.0
    (tmp_path / "inflated.json").write_text(json.dumps(inflated))
    with pytest.raises(EntryRejected, match="seed 1: the checkpoint scores") as info:
        submit([tmp_path / "inflated.json"], model_name="MLP", variant="inflated", submitter="t", verify=ckpts[1:2],
               device="cpu", root=board.root, base=board.base)
    assert info.value.reason == "verify"


def _repo_with_runs(tmp_path: Path, runs: list[Path]) -> tuple[Board, list[Path]]:
    """A repository holding copies of ``runs`` under runs/, and its (empty) boards folder."""
    import shutil

    base = tmp_path / "repo"
    copies = [Path(shutil.copytree(r, base / "runs" / r.name)) for r in runs]
    return Board(base / "leaderboards", base=base), copies


def test_reverify_stores_a_record_from_the_entrys_own_runs(tmp_path, tiny_runs, monkeypatch, capsys):
    """`dear leaderboard verify` finds the checkpoints beside the runs an entry names, adds the
    verification record and keeps every other field; it never drops a seed the record verifies."""
    monkeypatch.setenv("CLRS_TASKS_CACHE", str(tiny_runs[0].parent / "cache"))
    board, runs = _repo_with_runs(tmp_path, tiny_runs)
    ckpts = [r / "checkpoint_best.pt" for r in runs]
    parked = [c.rename(c.with_suffix(".parked")) for c in ckpts]  # as in a fresh clone: no weights
    path = submit([r / "results.json" for r in runs], model_name="DEAR", variant="tiny", submitter="t",
                  root=board.root, base=board.base).path
    before = json.loads(path.read_text())
    assert before["verification"] is None
    with pytest.raises(EntryRejected, match="none of the entry's runs has weights") as info:
        reverify(path, device="cpu", root=board.root, base=board.base)
    assert info.value.reason == "verify" and json.loads(path.read_text()) == before
    cli = ["leaderboard", "verify", str(path), "--device", "cpu", "--root", str(board.root), "--repo", str(board.base)]
    assert main([*cli, "--skip-missing"]) == 0  # verifying "whatever has weights here" is not a failure
    assert "skipped: no weights of its runs here" in capsys.readouterr().out
    with monkeypatch.context() as m:  # --rebuild where no run rebuilds to its record: not "rebuild them first"
        m.setattr("dear.leaderboard.rebuild.rebuild_run", lambda run, scratch, force=False, name=None, **kw: {
            "run": name, "identical": False, "seconds": 1.0, "possible_causes": ["trained at commit 0123456"]})
        assert main([*cli, "--rebuild"]) == 2
    out, err = capsys.readouterr()
    assert err.count("does not reproduce its record, left without weights (1 s); possible causes: trained at") == 3
    assert "none of its runs rebuilt to its record on this machine" in out and "rebuild them first" not in out

    parked[0].rename(ckpts[0]), parked[2].rename(ckpts[2])  # two of three rebuilt
    assert entry_checkpoints(before, board.base) == [ckpts[0], ckpts[2]]
    res = reverify(path, device="cpu", root=board.root, base=board.base)
    assert res.path == path and [s["seed"] for s in res.entry["verification"]["seeds"]] == [0, 2]
    assert "2/3" in (board.root / "clrs-ood" / "README.md").read_text()

    parked[1].rename(ckpts[1])
    assert main(cli) == 0
    assert "verified 3 of 3 seed(s) (seeds 0, 1, 2)" in capsys.readouterr().out
    after = json.loads(path.read_text())
    for item, run in zip(after["verification"]["seeds"], runs):
        claimed = json.loads((run / "results.json").read_text())["results"]["64"]["score"]
        assert item["claimed"] == claimed and item["reproduced"] == pytest.approx(claimed, abs=1e-12)
    assert {**after, "verification": None} == before
    assert list(path.parent.glob("*.json")) == [path] and board.validate().ok

    ckpts[1].unlink()  # a machine without seed 1's weights cannot drop it from the record
    with pytest.raises(EntryRejected, match=r"verified on seed\(s\) 0, 1, 2, but no checkpoint of seed\(s\) 1 is"):
        reverify(path, device="cpu", root=board.root, base=board.base)
    assert json.loads(path.read_text()) == after
    # --rebuild retrains the run without weights (same code, threads and CPU: the same record) first
    assert main([*cli, "--rebuild", "--scratch", str(tmp_path / "scratch")]) == 0
    out, err = capsys.readouterr()
    assert "rebuilding runs/seed1 (1 of 1)" in err and "runs/seed1: reproduces its record exactly, weights kept" in err
    assert ckpts[1].is_file() and "verified 3 of 3 seed(s)" in out
    # --replace without --verify cannot keep the record, but says that it drops it
    res = submit([r / "results.json" for r in runs], model_name="DEAR", variant="tiny", submitter="t", replace=True,
                 root=board.root, base=board.base)
    assert res.entry["verification"] is None
    assert any(f"{path.name} was verified on 3 seed(s), its replacement on 0" in n for n in res.notes)


def test_reverify_a_nodecls_entry_and_the_commands_errors(tmp_path, capsys, monkeypatch):
    """Nodecls entries re-verify from seeds/seed_<k>.pt of their run; a file outside the boards
    folder or a missing one is one error line each, and the command fails after trying all."""
    base = tmp_path / "repo"
    _train_citeseer(base / "runs" / "mlp", "mlp", epochs=2)
    board = Board(base / "leaderboards", base=base)
    path = submit([base / "runs" / "mlp" / "results.json"], model_name="MLP", variant="2 epochs", submitter="t",
                  root=board.root, base=board.base).path
    stray = tmp_path / "copy.json"
    stray.write_text(path.read_text())
    anonymous = json.loads(path.read_text())
    anonymous["source"]["files"] = []
    path.write_text(dump_entry(anonymous))
    with pytest.raises(EntryRejected, match="the entry names no runs"):
        reverify(path, device="cpu", root=board.root, base=board.base)
    path.write_text(stray.read_text())
    code = main(["leaderboard", "verify", str(stray), str(tmp_path / "missing.json"), str(path), "--device", "cpu",
                 "--root", str(board.root), "--repo", str(board.base)])
    out, err = capsys.readouterr()
    assert code == 2 and "2 of 3 entries not verified" in err
    assert f"{stray}: not verified: rejected (path)" in out and "no entry file at" in out
    assert f"{path.name}: verified 3 of 3 seed(s)" in out
    ver = json.loads(path.read_text())["verification"]
    assert [s["seed"] for s in ver["seeds"]] == [0, 1, 2]
    (base / "runs" / "mlp" / "seeds" / "seed_1.pt").unlink()  # as on a fresh clone
    assert main(["leaderboard", "verify", str(path), "--rebuild", "--device", "cpu", "--root", str(board.root),
                 "--repo", str(board.base), "--scratch", str(tmp_path / "scratch")]) == 0
    out, err = capsys.readouterr()
    assert "runs/mlp: reproduces its record exactly, weights kept" in err and "verified 3 of 3 seed(s)" in out
    assert json.loads(path.read_text())["verification"]["seeds"] == ver["seeds"]  # the very same weights
    # Ctrl-C: one line saying what is written and what is not (not "nothing started")
    import importlib

    submit_module = importlib.import_module("dear.leaderboard.submit")  # the package's `submit` is the function
    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(submit_module, "reverify", interrupted)
    assert main(["leaderboard", "verify", str(path), "--root", str(board.root), "--repo", str(board.base)]) == 130
    assert "interrupted: stopped while verifying" in capsys.readouterr().err
    for item in ver["seeds"]:
        assert item["reproduced"] == pytest.approx(item["claimed"], abs=1e-6)
