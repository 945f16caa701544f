"""Throughput of DDP training on CLRS: the same work (global batch, steps) on 1 and on N processes.

For each process count P the script starts P processes (``torch.multiprocessing``, a fresh
interpreter each; gloo on CPU, NCCL on GPUs, one GPU per process), and each runs the optimiser
step of ``dear.training.train`` under DDP: the global batch of step ``s`` is
``batch_indices(n, batch_size, seed, s)`` and process ``r`` takes ``idx[r::P]``. Timing follows
the project's rules: batches are collated and moved to the device before the clock starts
(data loading is not timed), ``--warmup`` untimed steps, then every step is timed between two
barriers (and ``torch.cuda.synchronize`` on GPUs); the median step time is reported, with
graphs per second ``batch_size / median`` and the speed-up and parallel efficiency against
the 1-process run. DEAR's solver iterations per step (max over ranks) are reported beside,
since an equilibrium step costs what its slowest rank's solve costs.

On a CPU every process is limited to ``--threads`` threads (default 1), so P processes use P
cores; a machine shared with other jobs gives noisy numbers (say so when reporting them).

    python scripts/bench_ddp.py --out leaderboards/runs/scale-out/bench_ddp_cpu.json --procs 1,2
    python scripts/bench_ddp.py --device cuda --procs 1,2,4,8 --model dear --algorithm bfs \\
        --batch-size 256 --hidden 128 --out bench_ddp_gpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, args: argparse.Namespace, result: str) -> None:
    """One process: build the run's data and model as ``train`` does, time DDP steps."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    import torch
    import torch.distributed as dist

    torch.set_num_threads(args.threads)
    import clrs_tasks as ct
    from dear.config import profile_config
    from dear.distributed import init_distributed, wrap_ddp
    from dear.training import batch_indices, build, load_data, model_loss

    cfg = profile_config("quick", algorithm=args.algorithm, model=args.model, num_train=args.num_train,
                         batch_size=args.batch_size, hidden=args.hidden, device=args.device, steps=1)
    info = init_distributed(cfg.device)
    device = info.device
    train_ds = load_data(cfg, "train")
    torch.manual_seed(cfg.seed)
    model = build(cfg, train_ds.spec).to(device)
    net = wrap_ddp(model, device) if world > 1 else model
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    total = args.warmup + args.steps
    batches = []
    for step in range(total):  # collate and move before timing: data loading is not measured
        idx = batch_indices(len(train_ds), cfg.batch_size, cfg.seed, step)
        mine = idx[rank::world]
        batches.append((ct.collate([train_ds[int(i)] for i in mine]).to(device), len(mine) / len(idx)))

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if world > 1:
            dist.barrier()

    times, iters = [], []
    model.train()
    for step, (batch, share) in enumerate(batches):
        sync()
        t0 = time.perf_counter()
        loss, stats = model_loss(net, batch, model)
        opt.zero_grad(set_to_none=True)
        (loss * (world * share)).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        sync()
        if step >= args.warmup:
            times.append(time.perf_counter() - t0)
            iters.append(int(stats["iterations"].max()))
    per_rank_iters = [None] * world
    if world > 1:
        dist.all_gather_object(per_rank_iters, iters)
    else:
        per_rank_iters = [iters]
    if rank == 0:
        out = {"processes": world, "device": str(device), "step_seconds": times,
               "median_step_seconds": statistics.median(times),
               "graphs_per_second": cfg.batch_size / statistics.median(times),
               "solver_iterations_per_step_max_over_ranks": [max(its) for its in zip(*per_rank_iters)],
               "solver_iterations_per_step_per_rank": per_rank_iters,
               "graphs_per_process_per_step": [len(range(r, cfg.batch_size, world)) for r in range(world)]}
        Path(result).write_text(json.dumps(out))
    if world > 1:
        dist.destroy_process_group()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="JSON file to write")
    p.add_argument("--procs", default="1,2", help="process counts to compare (first is the baseline)")
    p.add_argument("--algorithm", default="bfs")
    p.add_argument("--model", default="dear")
    p.add_argument("--batch-size", type=int, default=32, help="global batch (shared by the processes)")
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--num-train", type=int, default=256)
    p.add_argument("--steps", type=int, default=20, help="timed steps")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    p.add_argument("--threads", type=int, default=1, help="torch threads per process (CPU)")
    p.add_argument("--device", default="cpu", help="cpu, or cuda (one GPU per process)")
    args = p.parse_args(argv)
    procs = [int(x) for x in args.procs.split(",") if x.strip()]

    import torch
    import torch.multiprocessing as mp

    from dear.config import profile_config
    from dear.io import atomic_write_text, git_commit, hardware, versions
    from dear.training import load_data

    if args.device.startswith("cuda") and max(procs) > torch.cuda.device_count():
        print(f"error: {max(procs)} processes need as many GPUs; {torch.cuda.device_count()} visible", file=sys.stderr)
        return 2
    # Build the split once here so no timed process generates data.
    load_data(profile_config("quick", algorithm=args.algorithm, model=args.model, num_train=args.num_train,
                             device="cpu"), "train")
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for world in procs:
            result = Path(tmp) / f"p{world}.json"
            t0 = time.perf_counter()
            mp.start_processes(_worker, args=(world, _free_port(), args, str(result)), nprocs=world,
                               start_method="spawn")
            run = json.loads(result.read_text())
            run["wall_seconds_including_startup"] = time.perf_counter() - t0
            runs.append(run)
            print(f"{world} process(es): median step {run['median_step_seconds'] * 1e3:.1f} ms, "
                  f"{run['graphs_per_second']:.1f} graphs/s", flush=True)
    base = runs[0]["median_step_seconds"]
    for run in runs:
        run["speedup"] = base / run["median_step_seconds"]
        run["efficiency"] = run["speedup"] * runs[0]["processes"] / run["processes"]
    dev = torch.device("cuda") if args.device.startswith("cuda") else torch.device("cpu")
    report: dict[str, Any] = {
        "what": "DDP training step throughput, same global batch and steps on each process count",
        "config": vars(args), "runs": runs,
        "hardware": {**hardware(dev), "torch_threads_per_process": args.threads,
                     "load_average_1_5_15": list(os.getloadavg()) if hasattr(os, "getloadavg") else None},
        "versions": versions(), "git_commit": git_commit(),
    }
    atomic_write_text(Path(args.out), json.dumps(report, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
