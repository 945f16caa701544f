"""The clrs-tasks command: listing, building, showing, and one-line errors."""

import json

import pytest

from clrs_tasks.cli import main


def test_list_marks_clrs30(capsys):
    assert main(["list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    by_name = {r["task"]: r for r in rows}
    assert sum(r["clrs30"] for r in rows) == 30
    assert not by_name["bipartite_matching"]["clrs30"] and by_name["bfs"]["clrs30"]
    assert by_name["insertion_sort"]["outputs"] == "pred:should_be_permutation"


def test_build_prints_summary_and_writes_json(tmp_path, capsys):
    out = tmp_path / "summary.json"
    assert main(["build", "bfs", "--split", "val", "--num-samples", "3", "--sizes", "6",
                 "--root", str(tmp_path), "--json", str(out), "--quiet"]) == 0
    (s,) = json.loads(out.read_text())["splits"]
    assert s["num_graphs"] == 3 and s["nodes"]["max"] == 6 and len(s["fingerprint"]) == 64 and s["built"]
    assert main(["build", "bfs", "--split", "val", "--num-samples", "3", "--sizes", "6", "--root", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "cached" in printed and s["fingerprint"] in printed


def test_show(capsys):
    assert main(["show", "floyd_warshall", "--size", "5"]) == 0
    out = capsys.readouterr().out
    assert "Pi" in out and "[25]" in out and "edge" in out


def test_errors_are_one_line_with_choices(capsys):
    assert main(["build", "bfz"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error: unknown algorithm 'bfz'; known:") and "bfs" in err
    assert main(["show", "nope"]) == 2
    with pytest.raises(SystemExit) as e:
        main(["build", "bfs", "--split", "tset"])
    assert e.value.code == 2
    assert main(["build", "bfs", "--sizes", "8", "--num-samples", "0"]) == 2
    assert "num_samples must be >= 1" in capsys.readouterr().err


def test_interrupt_while_starting_is_one_line(monkeypatch, capsys):
    """Ctrl-C while the parser is built (it imports dm-clrs, seconds): exit 130, no traceback."""
    import clrs_tasks.cli as cli

    def interrupted_parser():
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "build_parser", interrupted_parser)
    assert main(["list"]) == 130
    err = capsys.readouterr().err
    assert "interrupted before anything started" in err and "Traceback" not in err
