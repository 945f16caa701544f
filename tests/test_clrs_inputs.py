"""Bad inputs to the clrs_tasks API and the clrs-tasks CLI fail early with a clear error, and a
user task whose code changed is rebuilt rather than served from a stale cache."""

from __future__ import annotations

import importlib.util
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest

import clrs_tasks as ct
from clrs_tasks.cli import main
from clrs_tasks.dataset import CacheWarning, source_digest
from clrs_tasks.scoring import PredictionError

# ----------------------------------------------------------------------------- split sizes and counts


@pytest.mark.parametrize("sizes", [1, [1], (1, 4)])
def test_size_one_is_refused_up_front(sizes):
    with pytest.raises(ValueError, match=">= 2"):
        ct.split_config(ct.get_task("bfs"), "test", sizes=sizes)
    with pytest.raises(ValueError, match=">= 2"):
        ct.load_split("bfs", "test", sizes=sizes, num_samples=2)


def test_size_one_is_one_error_line_from_the_cli(capsys):
    assert main(["show", "bfs", "--size", "1"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("error: sizes must be integers >= 2") and err.count("\n") == 1
    with pytest.raises(SystemExit) as exc:  # argparse's own usage error
        main(["build", "bfs", "--sizes", "1", "--num-samples", "2"])
    assert exc.value.code == 2


@pytest.mark.parametrize(
    ("overrides", "error", "match"),
    [
        ({"sizes": "64"}, TypeError, "string"),           # would have been sizes 6 and 4
        ({"sizes": [4.7]}, ValueError, "whole number"),    # would have been 4
        ({"sizes": [True, 4]}, TypeError, "integer"),
        ({"num_samples": 2.9}, ValueError, "whole number"),  # would have been 2
        ({"num_samples": "3"}, TypeError, "integer"),
        ({"seed": 1.5}, ValueError, "whole number"),
    ],
)
def test_strings_and_fractions_are_not_truncated(overrides, error, match):
    with pytest.raises(error, match=match):
        ct.split_config(ct.get_task("bfs"), "test", **{"sizes": 4, "num_samples": 2, **overrides})


def test_integral_numbers_of_any_type_are_accepted():
    cfg = ct.split_config(ct.get_task("bfs"), "test", sizes=[np.int64(8), 4.0], num_samples=1e1, seed=np.int32(3))
    assert (cfg.sizes, cfg.num_samples, cfg.seed) == ((4, 8), 10, 3)
    assert type(cfg.num_samples) is int and all(type(s) is int for s in cfg.sizes)


def test_sampler_failures_name_the_task_and_size(tmp_path):
    with pytest.raises(ValueError, match="kmp_matcher at size 2"):
        ct.load_split("kmp_matcher", "test", sizes=2, num_samples=1, root=tmp_path, progress=False)


# ----------------------------------------------------------------------------- paths


def test_a_root_that_is_a_file_is_a_clear_error(tmp_path, capsys):
    f = tmp_path / "afile"
    f.write_text("x")
    for root in (f, f / "below"):
        with pytest.raises(ValueError, match="is not a directory"):
            ct.load_split("bfs", "test", sizes=4, num_samples=2, root=root)
        assert main(["build", "bfs", "--sizes", "4", "--num-samples", "2", "--root", str(root)]) == 2
        _, err = capsys.readouterr()
        assert err.startswith("error: cache root") and err.count("\n") == 1


def test_bad_json_path_is_refused_before_building(tmp_path, capsys):
    root = tmp_path / "cache"
    args = ["build", "bfs", "--sizes", "4", "--num-samples", "2", "--root", str(root), "--quiet"]
    assert main([*args, "--json", str(tmp_path / "missing" / "x.json")]) == 2
    assert main([*args, "--json", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 2 and "does not exist" in err and "is a directory" in err
    assert not root.exists()  # nothing was built
    assert main([*args, "--json", str(tmp_path / "x.json")]) == 0 and (tmp_path / "x.json").exists()


# ----------------------------------------------------------------------------- scoring


def test_several_batches_with_one_dict_is_a_prediction_error(tmp_path):
    ds = ct.load_split("bfs", "test", sizes=4, num_samples=2, root=tmp_path, progress=False)
    batch = next(iter(ct.DataLoader(ds, batch_size=2)))
    with pytest.raises(PredictionError, match="one dict"):
        ct.evaluate([batch], {"pi": batch.output_pi})
    with pytest.raises(PredictionError, match="batch 0"):
        ct.evaluate([batch], [batch.output_pi])
    assert ct.evaluate([batch], [{"pi": batch.output_pi}])["score"] == 1.0


# ----------------------------------------------------------------------------- stale user code

_TASK_SOURCE = '''
import numpy as np
import clrs
from clrs._src import probing
import clrs_tasks as ct

SPEC = {{"pos": ("input", "node", "scalar"), "key": ("input", "node", "scalar"),
        "out": ("output", "node", "pointer"), "i": ("hint", "node", "mask_one")}}


def stale_probe_algo(key):
    n = key.shape[0]
    probes = probing.initialize(SPEC)
    probing.push(probes, "input", next_probe={{"pos": np.arange(n) / n, "key": np.copy(key)}})
    ptr = {pointers}
    probing.push(probes, "hint", next_probe={{"i": probing.mask_one(0, n)}})
    probing.push(probes, "output", next_probe={{"out": ptr}})
    probing.finalize(probes)
    return ptr, probes


class StaleProbeSampler(clrs.Sampler):
    CAN_TRUNCATE_INPUT_DATA = False

    def _sample_data(self, length):
        return [self._random_sequence(length=length, low=0.0, high=1.0)]


ct.register_task("stale_probe", spec=SPEC, algorithm=stale_probe_algo, sampler=StaleProbeSampler, overwrite=True)
'''


def _import_task(path: Path, pointers: str) -> None:
    """(Re)write the task module and import it under one name, as a user editing it would."""
    path.write_text(textwrap.dedent(_TASK_SOURCE.format(pointers=pointers)))
    spec = importlib.util.spec_from_file_location("stale_probe_task", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["stale_probe_task"] = module
    spec.loader.exec_module(module)


def test_edited_user_algorithm_is_rebuilt_not_served_stale(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    path, root = tmp_path / "stale_probe_task.py", tmp_path / "cache"
    load = lambda: ct.load_split("stale_probe", "test", root=root, sizes=4, num_samples=2, progress=False)  # noqa: E731
    try:
        _import_task(path, "np.arange(n)")  # first version: every node points to itself
        first = load()
        assert first.built and first[0].output_out.tolist() == [0, 1, 2, 3]
        with warnings.catch_warnings():
            warnings.simplefilter("error", CacheWarning)
            assert not load().built  # unchanged code: the cache is used, silently

        _import_task(path, "np.full(n, int(np.argmax(key)))  # fixed: point to the largest key")
        with pytest.warns(CacheWarning, match="source changed"):
            second = load()
        # the fingerprint covers names, not code (committed leaderboard entries rely on it) ...
        assert second.fingerprint == first.fingerprint
        # ... but the data is the new code's, not the cached old one
        assert second.built and len(set(second[0].output_out.tolist())) == 1
    finally:
        if "stale_probe" in ct.list_tasks():
            ct.unregister_task("stale_probe")
        sys.modules.pop("stale_probe_task", None)


def test_builtin_tasks_record_no_source_digest():
    assert source_digest(ct.get_task("bfs")) is None
