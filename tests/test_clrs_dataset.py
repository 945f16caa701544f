"""Cached splits: determinism, fingerprints, corruption/staleness, concurrency, user tasks."""

import multiprocessing as mp
import warnings

import numpy as np
import pytest
import torch

import clrs_tasks as ct
from clrs_tasks import sampling
from clrs_tasks.dataset import CacheWarning
from clrs_helpers import assert_feedback_equal


def _no_sampling(*a, **k):
    raise AssertionError("the cached split was resampled")


def test_official_split_matches_dm_clrs_sampler_and_is_deterministic(tmp_path):
    from clrs_tasks._clrs import clrs

    # official test split (sizes shrunk to keep the test fast) equals dm-clrs's own sampler output
    ds = ct.load_split("bfs", "test", root=tmp_path / "a", num_samples=8, sizes=12, progress=False)
    sampler, spec = clrs().build_sampler("bfs", num_samples=8, length=12, seed=3)
    ref = sampler.next()
    assert_feedback_equal(ct.to_clrs(ct.collate(list(ds))), ref, "bfs official")
    # regenerated elsewhere: identical data and fingerprint
    ds2 = ct.load_split("bfs", "test", root=tmp_path / "b", num_samples=8, sizes=12, progress=False)
    assert ds2.built and ds.fingerprint == ds2.fingerprint
    for k, v in ds.store.tensors.items():
        assert torch.equal(v, ds2.store.tensors[k])
    # a different seed changes the fingerprint (and the data)
    ds3 = ct.load_split("bfs", "test", root=tmp_path / "a", num_samples=8, sizes=12, seed=4, progress=False)
    assert ds3.fingerprint != ds.fingerprint
    assert not torch.equal(ds3.store.tensors["input_adj"], ds.store.tensors["input_adj"])


def test_official_protocol_defaults():
    task = ct.get_task("minimum")
    test = ct.split_config(task, "test")
    assert (test.sizes, test.num_samples, test.seed) == ((64,), 32 * 64, 3)
    assert ct.split_config(task, "train").num_samples == 1000
    assert ct.split_config(ct.get_task("bfs"), "val").num_samples == 32
    dear = ct.split_config(ct.get_task("bfs"), "train", "dear")
    assert dear.sizes == tuple(range(8, 17)) and dear.num_samples == 10_000
    assert dict(dear.sampler_kwargs)["p"] == pytest.approx(tuple(0.1 * i for i in range(1, 10)))
    assert dear.random_pos and not ct.split_config(ct.get_task("bfs"), "test", "dear").random_pos


def test_second_load_reads_the_cache(monkeypatch):
    ds = ct.load_split("insertion_sort", "val", num_samples=5, sizes=6, progress=False)
    assert ds.built
    monkeypatch.setattr(sampling, "sample_split", _no_sampling)
    again = ct.load_split("insertion_sort", "val", num_samples=5, sizes=6, progress=False)
    assert not again.built and again.fingerprint == ds.fingerprint
    assert torch.equal(again[3].output_pred, ds[3].output_pred)


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage"])
def test_corrupt_cache_is_rebuilt(damage):
    ds = ct.load_split("bfs", "val", num_samples=4, sizes=6, progress=False)
    raw = bytearray(ds.path.read_bytes())
    if damage == "truncate":
        raw = raw[: len(raw) // 2]
    elif damage == "flip":
        raw[-100] ^= 0xFF
    else:
        raw = bytearray(b"not a cache file")
    ds.path.write_bytes(bytes(raw))
    with pytest.warns(CacheWarning, match="rebuilding"):
        again = ct.load_split("bfs", "val", num_samples=4, sizes=6, progress=False)
    assert again.built
    assert torch.equal(again.store.tensors["output_pi"], ds.store.tensors["output_pi"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not ct.load_split("bfs", "val", num_samples=4, sizes=6, progress=False).built


def test_stale_fingerprint_is_rebuilt():
    ds = ct.load_split("bfs", "val", num_samples=4, sizes=6, progress=False)
    raw = ds.path.read_bytes()
    magic_end = raw.index(b"\n") + 1
    stale = raw[:magic_end] + b"0" * 64 + raw[magic_end + 64:]
    ds.path.write_bytes(stale)
    with pytest.warns(CacheWarning, match="stale"):
        assert ct.load_split("bfs", "val", num_samples=4, sizes=6, progress=False).built


def _build_in_process(root, queue):
    import clrs_tasks as ct2

    ds = ct2.load_split("dfs", "val", root=root, num_samples=6, sizes=8, progress=False)
    queue.put((ds.fingerprint, ds.built, ds.store.tensors["output_pi"].tolist()))


@pytest.mark.slow
def test_two_processes_build_once(tmp_path):
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_build_in_process, args=(tmp_path, queue)) for _ in range(2)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=240) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert results[0][0] == results[1][0] and results[0][2] == results[1][2]
    assert sorted(r[1] for r in results) == [False, True]  # one built, the other read its file
    files = [p for p in (tmp_path / "dfs").iterdir() if p.suffix == ".pt"]
    assert len(files) == 1 and not list((tmp_path / "dfs").glob("*.tmp"))


def test_hints_can_be_left_out():
    ds = ct.load_split("bfs", "val", num_samples=3, sizes=6, include_hints=False, progress=False)
    assert not [k for k in ds[0].keys() if k.startswith("hint_")]
    # graphs without hints batch with PyG's own loader too
    from torch_geometric.loader import DataLoader as PygLoader

    assert next(iter(PygLoader(ds, batch_size=3))).num_graphs == 3


def test_loader_batches_and_pads_hints():
    ds = ct.load_split("dfs", "val", num_samples=6, sizes=6, progress=False)
    (batch,) = list(ct.DataLoader(ds, batch_size=6))
    assert batch.hint_pi_h.shape[1] == int(ds.lengths.max())
    assert torch.equal(batch.length, ds.lengths)


def test_unknown_names_fail_with_choices():
    with pytest.raises(ct.UnknownTaskError, match="unknown algorithm 'bfz'; known: .*bfs"):
        ct.load_split("bfz", "test")
    with pytest.raises(ValueError, match="unknown protocol 'offical'; valid: official, dear"):
        ct.load_split("bfs", "test", protocol="offical")
    with pytest.raises(ValueError, match="unknown split"):
        ct.load_split("bfs", "tset")
    with pytest.raises(ValueError, match="does not accept colour"):
        ct.load_split("bfs", "test", sampler_kwargs={"colour": 1})
    with pytest.raises(ValueError, match="edge policy"):
        ct.load_split("bfs", "test", edge_policy="dense", num_samples=1, sizes=4)


# ---------------------------------------------------------------- a user's own algorithm

USER_SPEC = {
    "pos": ("input", "node", "scalar"),
    "key": ("input", "node", "scalar"),
    "argmax": ("output", "node", "mask_one"),
    "best_h": ("hint", "node", "mask_one"),
}


def running_argmax(key):
    """A tiny algorithm of our own: scan the keys, tracking the best so far."""
    from clrs._src import probing, specs

    n = key.shape[0]
    probes = probing.initialize({k: (getattr(specs.Stage, v[0].upper()), getattr(specs.Location, v[1].upper()),
                                     getattr(specs.Type, v[2].upper())) for k, v in USER_SPEC.items()})
    probing.push(probes, specs.Stage.INPUT, next_probe={"pos": np.arange(n) / n, "key": np.copy(key)})
    best = 0
    for i in range(n):
        if key[i] > key[best]:
            best = i
        probing.push(probes, specs.Stage.HINT, next_probe={"best_h": probing.mask_one(best, n)})
    probing.push(probes, specs.Stage.OUTPUT, next_probe={"argmax": probing.mask_one(best, n)})
    probing.finalize(probes)
    return best, probes


def test_user_registered_algorithm_end_to_end():
    from clrs_tasks._clrs import clrs

    class ArgmaxSampler(clrs().Sampler):
        CAN_TRUNCATE_INPUT_DATA = True

        def _sample_data(self, length, low=0.0, high=1.0):
            return [self._random_sequence(length=length, low=low, high=high)]

    ct.register_task("running_argmax", spec=USER_SPEC, algorithm=running_argmax, sampler=ArgmaxSampler)
    try:
        assert "running_argmax" in ct.list_tasks() and "running_argmax" not in ct.list_tasks(clrs30_only=True)
        with pytest.raises(ValueError, match="already registered"):
            ct.register_task("running_argmax", spec=USER_SPEC, algorithm=running_argmax, sampler=ArgmaxSampler)
        ds = ct.load_split("running_argmax", "train", num_samples=6, sizes=(5, 7), protocol="dear", progress=False)
        assert len(ds) == 6 and set(ds.num_nodes_per_graph.tolist()) <= {5, 7}
        batch = ct.collate(list(ds))
        assert batch.hint_best_h.shape[1] == 7  # hints padded to the longest trace
        # the reference output is right, and a perfect prediction scores 1 through dm-clrs
        for g in ds:
            assert int(g.output_argmax.argmax()) == int(g.input_key.argmax())
        assert ct.evaluate(batch, {"argmax": batch.output_argmax.double()})["score"] == pytest.approx(1.0)
        assert ct.evaluate(batch, {"argmax": -batch.output_argmax.double()})["score"] < 1.0
        # and the conversion is lossless for it too
        again = ct.load_split("running_argmax", "train", num_samples=6, sizes=(5, 7), protocol="dear", progress=False)
        assert not again.built
    finally:
        ct.unregister_task("running_argmax")
    with pytest.raises(ct.UnknownTaskError):
        ct.get_task("running_argmax")


def test_register_task_validates_its_arguments():
    from clrs_tasks._clrs import clrs

    class S(clrs().Sampler):
        CAN_TRUNCATE_INPUT_DATA = False

        def _sample_data(self, length):
            return [np.zeros(length)]

    with pytest.raises(ValueError, match="stage 'inptu'"):
        ct.register_task("bad_one", spec={"x": ("inptu", "node", "scalar")}, algorithm=running_argmax, sampler=S)
    with pytest.raises(TypeError, match="subclass of clrs.Sampler"):
        ct.register_task("bad_two", spec=USER_SPEC, algorithm=running_argmax, sampler=object)
    with pytest.raises(ValueError, match="no output probe"):
        ct.register_task("bad_three", spec={"x": ("input", "node", "scalar")}, algorithm=running_argmax, sampler=S)


def test_binary_search_dear_target_never_exceeds_largest_key():
    ds = ct.load_split("binary_search_dear", "train", num_samples=200, sizes=8, progress=False)
    keys = ds.store.tensors["input_key"].view(-1, 8)
    target = ds.store.tensors["input_target"].view(-1)
    assert torch.all(target <= keys.max(1).values)
    plain = ct.load_split("binary_search", "train", num_samples=200, sizes=8, progress=False)
    pk = plain.store.tensors["input_key"].view(-1, 8)
    assert torch.any(plain.store.tensors["input_target"].view(-1) > pk.max(1).values)
