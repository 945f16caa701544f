"""Scale-out on CPU with the gloo backend and 2 processes.

* DDP training (``dear.training.train`` under a 2-process group) gives the same model as one
  process with the same effective batch, for DEAR, whose equilibrium solves take a different
  number of iterations on each rank;
* a DDP run killed mid-training (SIGKILL of one rank) resumes from its checkpoint to exactly
  the weights of an uninterrupted DDP run, per-rank random streams included;
* only rank 0 writes files (every write through ``dear.io`` is logged per rank);
* ``dear train`` runs unchanged under ``torchrun``; ``dear compare --workers`` spreads runs;
* node classification: seeds spread over ranks reproduce the single-process seeds; partitioned
  (large-graph) training keeps the replicas identical under DDP; partition helpers.

Process groups are started with ``torch.multiprocessing`` and ``fork``: the children inherit
the already imported torch, PyG and dm-clrs, so a 2-process run costs about a second instead
of the 20-30 s of two fresh interpreters on a loaded 2-core machine.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import dear.distributed as dd
from dear.config import profile_config
from dear.training import batch_indices, is_complete, train

RUN_FILES = {"config.json", "checkpoint_last.pt", "checkpoint_best.pt", "history.json", "train_summary.json"}


# ------------------------------------------------------------------------------- harness


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _child(rank: int, world: int, port: int, log_dir: str, fn: Callable[..., None], args: tuple) -> None:
    """One rank: torchrun's environment, a log of every file written through ``dear.io``."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    import dear.io as dio

    original = dio._atomic

    def logged(path, write, mode):  # noqa: ANN001
        with open(Path(log_dir) / f"writes_rank{rank}.txt", "a") as f:
            f.write(f"{Path(path).resolve()}\n")
        return original(path, write, mode)

    dio._atomic = logged
    try:
        fn(rank, *args)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def launch(fn: Callable[..., None], log_dir: Path, *args: Any, world: int = 2) -> None:
    """Run ``fn(rank, *args)`` on ``world`` forked ranks joined in a gloo process group."""
    log_dir.mkdir(parents=True, exist_ok=True)
    mp.start_processes(_child, args=(world, _free_port(), str(log_dir), fn, args), nprocs=world,
                       start_method="fork")


def writes(log_dir: Path, rank: int) -> list[Path]:
    f = log_dir / f"writes_rank{rank}.txt"
    return [Path(line) for line in f.read_text().split()] if f.exists() else []


def tiny(model: str = "dear", **kw: Any):
    # init="torch": these tiny DEARs solve in 9-12 iterations at tol 0.01 from PyTorch's init;
    # from the quick profile's Haiku init (larger weights at width 16) they hit max_iter.
    base = dict(algorithm="minimum", model=model, num_train=16, num_val=8, num_test=6, steps=6, batch_size=4,
                hidden=16, eval_every=3, device="cpu", init="torch")
    base.update(kw)
    return profile_config("quick", **base)


def warm_data(cfg: Any) -> None:
    """Build the splits (and import dm-clrs) here, so the forked ranks inherit both."""
    from dear.training import load_data

    load_data(cfg, "train")
    load_data(cfg, "val")


def weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "checkpoint_last.pt", weights_only=False)["model"]


# ----------------------------------------------------------------------------- helpers


def test_single_process_helpers_are_no_ops(monkeypatch):
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    info = dd.init_distributed("cpu")
    assert (info.rank, info.world_size, info.backend, info.is_main, info.distributed) == (0, 1, None, True, False)
    assert not dist.is_initialized() and dd.is_main() and not dd.launched_by_torchrun()
    model = torch.nn.Linear(2, 2)
    assert dd.wrap_ddp(model, torch.device("cpu")) is model and dd.unwrap(model) is model
    assert dd.broadcast_object({"a": 1}) == {"a": 1} and dd.gather_objects(3) == [3]
    assert dd.all_reduce_sum([1.0, 2.0]).tolist() == [1.0, 2.0]
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert dd.launched_by_torchrun() and dd.env_rank() == 1
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ValueError, match="WORLD_SIZE='two' is not an integer"):
        dd.env_world_size()


def test_rank_shards_partition_every_global_batch():
    for step in range(6):
        idx = batch_indices(22, 5, 3, step)
        shards = [dd.shard(idx, r, 2) for r in range(2)]
        assert sorted(torch.cat(shards).tolist()) == sorted(idx.tolist())
        assert abs(len(shards[0]) - len(shards[1])) <= 1


# ------------------------------------------------------------------------ CLRS training


def _train_ranks(rank: int, kw: dict, out: str, probe: str) -> None:
    """Both ranks: a whole DDP run, then a run stopped after 4 steps and resumed."""
    import dear.training as tr

    original = tr.model_loss
    iterations: list[int] = []

    def probing(net, batch, owner=None):  # noqa: ANN001
        loss, stats = original(net, batch, owner)
        iterations.append(int(stats["iterations"].max()))
        return loss, stats

    tr.model_loss = probing
    cfg = tiny(**kw)
    res = train(cfg, Path(out) / "ddp", progress=False)
    iters_whole = list(iterations)
    part = train(cfg, Path(out) / "split", progress=False, stop_after=4)
    rest = train(cfg, Path(out) / "split", progress=False)
    with open(Path(probe) / f"rank{rank}.json", "w") as f:
        json.dump({"iterations": iters_whole, "best_step": res.best_step, "part": part.steps,
                   "resumed_from": rest.resumed_from}, f)


def test_ddp_dear_matches_single_process_and_only_rank0_writes(tmp_path):
    # Noise-free DEAR, so both runs see the same function: the training noise and the
    # Hutchinson probe are random draws per graph, which differ with the sharding.
    # batch 5: shards of 3 and 2 graphs, so the per-rank loss weights (1.2, 0.8) matter.
    kw = dict(noise=0.0, jac_reg=0.0, tol=0.01, batch_size=5)  # tol 0.01: 9-12 iterations per graph
    cfg = tiny(**kw)
    train(cfg, tmp_path / "single", progress=False)
    probe = tmp_path / "probe"
    probe.mkdir()
    launch(_train_ranks, tmp_path / "log", kw, str(tmp_path), str(probe))

    ranks = [json.loads((probe / f"rank{r}.json").read_text()) for r in range(2)]
    # The equilibrium solves took different iteration counts on the two ranks, and nothing hung.
    assert len(ranks[0]["iterations"]) == len(ranks[1]["iterations"]) == cfg.steps
    assert ranks[0]["iterations"] != ranks[1]["iterations"]
    assert ranks[0]["best_step"] == ranks[1]["best_step"]  # every rank returns rank 0's result
    assert ranks[1]["part"] == 4 and ranks[1]["resumed_from"] == 4

    single, ddp = weights(tmp_path / "single"), weights(tmp_path / "ddp")
    for k, v in single.items():
        if k == "output_decoder.decoders.output_min.out.bias":
            # mask_one is a log-softmax over each graph's nodes: shifting this bias changes
            # nothing, its gradient is 0 up to round-off, which Adam scales to +-lr per step.
            continue
        torch.testing.assert_close(ddp[k], v, rtol=1e-4, atol=1e-5, msg=k)
    hs = json.loads((tmp_path / "single" / "history.json").read_text())["history"]
    hd = json.loads((tmp_path / "ddp" / "history.json").read_text())["history"]
    assert [h["step"] for h in hs] == [h["step"] for h in hd] == [3, 6]
    for a, b in zip(hs, hd):
        assert b["val_loss"] == pytest.approx(a["val_loss"], rel=1e-4)
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-4)  # the global batch's loss
    # Stopped and resumed under DDP: exactly the uninterrupted DDP weights.
    split = weights(tmp_path / "split")
    for k, v in ddp.items():
        assert torch.equal(split[k], v), k

    assert writes(tmp_path / "log", 1) == []
    written = {p.relative_to(tmp_path.resolve()).parts[0] for p in writes(tmp_path / "log", 0)}
    assert written == {"ddp", "split"}
    for run in ("ddp", "split"):
        assert {p.name for p in (tmp_path / run).iterdir()} == RUN_FILES
        summary = json.loads((tmp_path / run / "train_summary.json").read_text())
        assert summary["world_size"] == 2


def _killable(rank: int, out: str, kill_at: int | None) -> None:
    def on_step(step: int) -> None:
        if kill_at is not None and rank == 1 and step == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    train(tiny(steps=9, eval_every=3), Path(out), progress=False, on_step=on_step)


def _two_runs(rank: int, whole: str, killed: str) -> None:
    train(tiny(steps=9, eval_every=3), Path(whole), progress=False)
    res = train(tiny(steps=9, eval_every=3), Path(killed), progress=False)
    assert res.resumed_from == 3 and res.steps == 9


def test_killed_ddp_run_resumes_from_its_checkpoint(tmp_path):
    warm_data(tiny())
    killed = tmp_path / "killed"
    with pytest.raises(mp.ProcessExitedException, match="signal SIGKILL"):
        launch(_killable, tmp_path / "log1", str(killed), 5)
    assert not is_complete(killed)
    state = torch.load(killed / "checkpoint_last.pt", weights_only=False)
    assert state["step"] == 3 and len(state["rng_ranks"]) == 2  # every rank's noise stream
    assert not any(p.name.endswith(".tmp") for p in killed.iterdir())
    # Default DEAR (training noise, Jacobian probe): resuming restores each rank's stream,
    # so the result is bit-identical to a run that was never interrupted.
    launch(_two_runs, tmp_path / "log2", str(tmp_path / "whole"), str(killed))
    assert is_complete(killed)
    a, b = weights(tmp_path / "whole"), weights(killed)
    for k, v in a.items():
        assert torch.equal(v, b[k]), k
    assert writes(tmp_path / "log1", 1) == [] and writes(tmp_path / "log2", 1) == []


def _refuse(rank: int, out: str) -> None:
    from dear.training import RunError

    with pytest.raises(RunError, match="different config"):
        train(tiny(steps=3, lr=0.5), Path(out), progress=False)
    with pytest.raises(RunError, match="batch size 1 is smaller than the 2 processes"):
        train(tiny(steps=3, batch_size=1), Path(out).parent / "b1", progress=False)


def test_every_rank_raises_a_config_error_together(tmp_path):
    warm_data(tiny())
    train(tiny(steps=3), tmp_path / "run", progress=False)
    launch(_refuse, tmp_path / "log", str(tmp_path / "run"))  # a rank left waiting would hang


@pytest.mark.slow
def test_dear_train_runs_unchanged_under_torchrun(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "dear.cli", "train", "--algorithm", "minimum", "--model", "nar", "--out", str(out),
           "--steps", "4", "--batch-size", "4", "--hidden", "16", "--num-train", "8", "--eval-every", "2",
           "--device", "cpu", "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DEAR_DIST_BACKEND": "gloo"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("minimum/nar seed 0: 4 steps") == 1  # rank 0 prints, rank 1 does not
    assert is_complete(out) and {p.name for p in out.iterdir()} == RUN_FILES
    assert json.loads((out / "train_summary.json").read_text())["world_size"] == 2


# ---------------------------------------------------------------------- compare workers


def test_compare_jobs_take_locks_skip_done_runs_and_resume(tmp_path):
    from filelock import FileLock

    from dear.compare import compare, job_done, jobs_of, run_jobs
    from dear.config import replace
    from dear.training import RunError

    base = tiny("nar", steps=2, eval_every=2, num_train=8)
    out = tmp_path / "cmp"
    jobs = jobs_of(["minimum"], ["nar"], 2)
    # Two workers' passes (in-process here): the first takes both runs, the second finds
    # nothing left to do.
    assert run_jobs(base, jobs, out, sizes=[6], worker=0) == jobs
    assert run_jobs(base, jobs, out, sizes=[6], worker=1) == []
    assert all(job_done(out, j, [6], ()) for j in jobs)
    # A held lock means another worker is on that run: a non-blocking pass skips it.
    (out / "minimum" / "nar" / "seed1" / "train_summary.json").unlink()  # as if it had stopped
    with FileLock(str(out / ".locks" / "minimum.nar.seed1.lock")):
        assert run_jobs(base, jobs, out, sizes=[6], worker=1) == []
    assert run_jobs(base, jobs, out, sizes=[6], worker=1) == [("minimum", "nar", 1)]  # resumed
    # Everything done: workers=2 starts no process and tabulates what is on disk.
    res = compare(base, ["minimum"], ["nar"], 2, out, sizes=[6], progress=False, workers=2)
    assert res["table"]["minimum"]["nar"]["6"]["score"]["n"] == 2
    assert (out / "compare.json").exists()
    # Finished runs trained with other settings are refused, not silently tabulated.
    (out / "compare.json").unlink()
    with pytest.raises(RunError, match=r"2 run\(s\).*other settings.*seed0 \(init\)"):
        compare(replace(base, init="dmclrs"), ["minimum"], ["nar"], 2, out, sizes=[6], progress=False)
    with pytest.raises(RunError, match=r"steps"):
        compare(replace(base, steps=3), ["minimum"], ["nar"], 1, out, sizes=[6], progress=False, workers=2)
    assert not (out / "compare.json").exists()


def test_compare_workers_train_in_separate_processes(tmp_path, capfd):
    from dear.compare import compare, jobs_of, spread

    base = tiny("nar", steps=2, eval_every=2, num_train=8)
    warm_data(base)
    out = tmp_path / "cmp"
    # What `dear compare --workers 2` does, with fork instead of spawn: the same worker code,
    # without two fresh interpreters importing torch and dm-clrs (20-40 s here).
    spread(base, jobs_of(["minimum"], ["nar"], 2), out, sizes=[6], workers=2, start_method="fork")
    done = [line for line in capfd.readouterr().out.splitlines() if line.startswith("[worker ")]
    assert sorted(line.split("] ")[1] for line in done) == \
        ["minimum/nar seed 0: trained and evaluated", "minimum/nar seed 1: trained and evaluated"]
    assert all(is_complete(out / "minimum" / "nar" / f"seed{k}") for k in range(2))
    res = compare(base, ["minimum"], ["nar"], 2, out, sizes=[6], progress=False, workers=2)
    assert res["table"]["minimum"]["nar"]["6"]["score"]["n"] == 2


def test_compare_under_torchrun_gives_each_rank_runs_and_rank0_the_table(tmp_path, monkeypatch):
    from dear.compare import compare

    base = tiny("nar", steps=2, eval_every=2, num_train=8)
    out = tmp_path / "cmp"
    monkeypatch.setenv("WORLD_SIZE", "2")  # what torchrun exports (no process group is needed)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    # Rank 1 starts at the second run and takes every run nobody holds; it prints no table.
    assert compare(base, ["minimum"], ["nar"], 2, out, sizes=[6], progress=False) is None
    assert is_complete(out / "minimum" / "nar" / "seed1") and not (out / "compare.json").exists()
    with pytest.raises(ValueError, match="--workers and torchrun"):
        compare(base, ["minimum"], ["nar"], 2, out, sizes=[6], progress=False, workers=2)
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    res = compare(base, ["minimum"], ["nar"], 2, out, sizes=[6], progress=False)
    assert res["table"]["minimum"]["nar"]["6"]["score"]["n"] == 2 and (out / "compare.json").exists()


# --------------------------------------------------------------------- node classification


def _nodecls_cfg(**kw: Any):
    from dear.nodecls.train import NodeClsConfig

    base = dict(dataset="sbm", model="gcn", split=10, seeds=3, epochs=15, patience=15, device="cpu",
                timing_warmup=0, timing_repeats=1,
                dataset_options=dict(num_nodes=300, num_classes=3, num_features=8, avg_degree=6, val_size=40))
    base.update(kw)
    return NodeClsConfig(**base)


def _nodecls_ranks(rank: int, out: str, probe: str, kw: dict) -> None:
    from dear.nodecls.train import run

    res = run(_nodecls_cfg(**kw), Path(out), progress=False)
    with open(Path(probe) / f"rank{rank}.json", "w") as f:
        json.dump(res["per_seed"], f)


def test_nodecls_seeds_spread_over_ranks_reproduce_single_process(tmp_path, monkeypatch):
    import dear.nodecls.train as nt
    from dear.nodecls.train import run

    single = run(_nodecls_cfg(), tmp_path / "single", progress=False)
    probe = tmp_path / "probe"
    probe.mkdir()
    launch(_nodecls_ranks, tmp_path / "log", str(tmp_path / "ddp"), str(probe), {})
    on_disk = json.loads((tmp_path / "ddp" / "results.json").read_text())
    assert on_disk["complete"] and on_disk["seeds"] == [0, 1, 2]
    for a, b in zip(single["per_seed"], on_disk["per_seed"]):  # seed k is the same training
        assert (a["seed"], a["best_epoch"], a["test_accuracy"], a["val_loss"]) == \
               (b["seed"], b["best_epoch"], b["test_accuracy"], b["val_loss"])
    per_rank = [json.loads((probe / f"rank{r}.json").read_text()) for r in range(2)]
    assert per_rank[0] == per_rank[1] == on_disk["per_seed"]  # every rank returns the results
    assert writes(tmp_path / "log", 1) == []
    assert {p.name for p in (tmp_path / "ddp" / "seeds").iterdir()} == \
           {f"seed_{k}.{ext}" for k in range(3) for ext in ("json", "pt")}
    # Resumable: a rerun (one process) finds every seed done and trains nothing.
    def no_training(*args, **kwargs):  # noqa: ANN002, ANN003
        raise AssertionError("a finished seed was trained again")

    monkeypatch.setattr(nt, "train_one_seed", no_training)
    assert run(_nodecls_cfg(), tmp_path / "ddp", progress=False)["per_seed"] == on_disk["per_seed"]


def _sampled_ranks(rank: int, probe: str, kw: dict, resync: bool) -> None:
    import dear.distributed
    from dear.nodecls import load_dataset
    from dear.nodecls.large import train_one_seed_sampled
    from dear.nodecls.train import prepare_features

    if not resync:  # prove that DDP alone keeps the replicas equal (explicit models)
        dear.distributed.broadcast_parameters = lambda module, src=0: None
    dd.init_distributed("cpu")  # as run() does
    cfg = _nodecls_cfg(seeds=1, sampler="random", num_parts=4, **kw).validate()
    data = load_dataset("sbm", split=10, seed=0, **cfg.dataset_options)
    record, state = train_one_seed_sampled(cfg, data, prepare_features(data), 0, torch.device("cpu"), progress=False)
    torch.save({"record": record, "state": state}, Path(probe) / f"rank{rank}.pt")


def test_partitioned_ignn_under_ddp_keeps_replicas_identical(tmp_path):
    probe = tmp_path / "probe"
    probe.mkdir()
    kw = dict(model="ignn", hidden=8, tol=1e-4, max_iter=60, epochs=6, patience=6)
    launch(_sampled_ranks, tmp_path / "log", str(probe), kw, True)
    r0, r1 = (torch.load(probe / f"rank{r}.pt", weights_only=False) for r in range(2))
    assert r0["record"] == r1["record"]  # rank 0's record, everywhere
    for k, v in r0["state"].items():
        assert torch.equal(v, r1["state"][k]), k
    s = r0["record"]["sampling"]
    # 4 parts, 2 per step (one per rank): 2 steps an epoch, subgraphs of a quarter of the graph.
    assert (s["world_size"], s["parts_per_step"], s["steps_per_epoch"]) == (2, 2, 2)
    assert s["subgraph_nodes_mean"] == 75.0
    assert r0["record"]["solver"]["converged"] and 0 <= r0["record"]["test_accuracy"] <= 100


def test_partitioned_ddp_step_is_the_mean_loss_over_both_ranks_subgraphs(tmp_path):
    """One epoch of GCN (no dropout) on 2 ranks against the same two steps in one process:
    the loss of a step is the mean over the training nodes of both ranks' subgraphs."""
    import torch.nn.functional as F

    from dear.nodecls import load_dataset
    from dear.nodecls.baselines import build_nodecls_model
    from dear.nodecls.large import Partitioner, induced_subgraphs
    from dear.nodecls.train import prepare_features

    probe = tmp_path / "probe"
    probe.mkdir()
    kw = dict(model="gcn", dropout=0.0, epochs=1, patience=1)
    launch(_sampled_ranks, tmp_path / "log", str(probe), kw, False)
    ddp_state = torch.load(probe / "rank0.pt", weights_only=False)["state"]
    other = torch.load(probe / "rank1.pt", weights_only=False)["state"]
    assert all(torch.equal(v, other[k]) for k, v in ddp_state.items())  # by DDP's all-reduce alone

    cfg = _nodecls_cfg(seeds=1, sampler="random", num_parts=4, **kw).validate()
    data = load_dataset("sbm", split=10, seed=0, **cfg.dataset_options)
    x = prepare_features(data)
    torch.manual_seed(0)
    model = build_nodecls_model("gcn", x.shape[1], 3, dropout=0.0, cached=False)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    parts = Partitioner(data, "random", 4, seed=0).epoch(1)
    for step in range(2):
        subs = induced_subgraphs(data.edge_index, data.num_nodes, [[parts[2 * step]], [parts[2 * step + 1]]])
        opt.zero_grad()
        total, count = 0.0, 0
        for b in subs:
            m = data.train_mask[b.nodes]
            total = total + F.cross_entropy(model(x[b.nodes], b.edge_index)[m], data.y[b.nodes][m], reduction="sum")
            count += int(m.sum())
        (total / count).backward()
        opt.step()
    for k, v in model.state_dict().items():
        torch.testing.assert_close(ddp_state[k], v, rtol=1e-5, atol=1e-6, msg=k)


def test_partitions_and_induced_subgraphs():
    from torch_geometric.utils import subgraph

    from dear.nodecls import load_dataset
    from dear.nodecls.large import Partitioner, induced_subgraphs, parts_from_partition, random_parts

    data = load_dataset("sbm", num_nodes=200, num_classes=3, num_features=4, avg_degree=6, val_size=20, split=5)
    parts = random_parts(200, 7, seed=3)
    assert sorted(torch.cat(parts).tolist()) == list(range(200)) and {len(p) for p in parts} <= {28, 29}
    assert all(torch.equal(a, b) for a, b in zip(parts, random_parts(200, 7, seed=3)))
    p = Partitioner(data, "random", 7, seed=1)
    assert not torch.equal(torch.cat(p.epoch(1)), torch.cat(p.epoch(2)))  # fresh parts each epoch
    groups = [[parts[0], parts[3]], [parts[1]], [parts[6]]]
    for group, batch in zip(groups, induced_subgraphs(data.edge_index, 200, groups)):
        nodes = torch.cat(group)
        ref, _ = subgraph(nodes, data.edge_index, relabel_nodes=False, num_nodes=200)
        got = batch.nodes[batch.edge_index]  # back to global ids
        assert torch.equal(batch.nodes, nodes)
        assert sorted(map(tuple, got.t().tolist())) == sorted(map(tuple, ref.t().tolist()))
    with pytest.raises(ValueError, match="disjoint"):
        induced_subgraphs(data.edge_index, 200, [[parts[0]], [parts[0]]])
    ptr, perm = torch.tensor([0, 2, 2, 5]), torch.tensor([4, 0, 1, 3, 2])
    assert [t.tolist() for t in parts_from_partition(ptr, perm)] == [[4, 0], [1, 3, 2]]


def test_part_sums_give_the_full_graph_metric_and_loss():
    from dear.nodecls.large import _metric_from, _sums
    from dear.nodecls.train import _loss, _metric

    g = torch.Generator().manual_seed(0)
    logits, y = torch.randn(50, 4, generator=g), torch.randint(0, 4, (50,), generator=g)
    chunks = [slice(0, 13), slice(13, 30), slice(30, 50)]
    total = torch.tensor([_sums(logits[c], y[c], False) for c in chunks]).sum(0).tolist()
    metric, loss = _metric_from(total, False)
    assert metric == pytest.approx(_metric(logits, y, False)) and loss == pytest.approx(float(_loss(logits, y, False)))
    ym = (torch.rand(50, 4, generator=g) > 0.5).long()
    total = torch.tensor([_sums(logits[c], ym[c], True) for c in chunks]).sum(0).tolist()
    metric, loss = _metric_from(total, True)
    assert metric == pytest.approx(_metric(logits, ym, True)) and loss == pytest.approx(float(_loss(logits, ym, True)))


def test_large_graph_options_are_validated_and_keep_old_keys():
    from dear.nodecls.train import NodeClsConfigError

    # old runs resume: unset large-graph options leave both the per-seed and the legacy key as they were
    assert _nodecls_cfg().seed_key(0) == _nodecls_cfg(sampler=None, num_parts=None).seed_key(0)
    assert _nodecls_cfg().legacy_key() == _nodecls_cfg(sampler=None, num_parts=None).legacy_key()
    assert _nodecls_cfg(sampler="random").seed_key(0) != _nodecls_cfg().seed_key(0)
    with pytest.raises(NodeClsConfigError, match="--num-parts need --sampler"):
        _nodecls_cfg(num_parts=4).validate()
    with pytest.raises(NodeClsConfigError, match="unknown sampler 'metis'; valid: random, cluster"):
        _nodecls_cfg(sampler="metis").validate()
    import torch_geometric.typing as t

    if not (t.WITH_METIS or t.WITH_TORCH_SPARSE):
        from dear.nodecls import load_dataset
        from dear.nodecls.large import Partitioner

        data = load_dataset("sbm", num_nodes=60, num_classes=3, num_features=4, val_size=10, split=5)
        with pytest.raises(ValueError, match="use --sampler random"):
            Partitioner(data, "cluster", 4, seed=0)
