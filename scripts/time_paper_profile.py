"""What the `paper` profile would cost here: seconds per optimiser step, measured, times its steps.

Issue 4 asks for the `paper` profile (the DEAR paper's settings: 100 epochs of 10,000 graphs,
31,200 steps at batch 32) "where a GPU is available". This measures, for each algorithm and model,
the wall-clock of optimiser steps of that exact profile on this machine (a short training from
scratch: the first ``--skip`` steps are not timed, then ``--steps - --skip`` are), and
extrapolates to the profile's full step count. The training set is cut to ``--num-train`` graphs
(a step's cost does not depend on how many graphs the epoch holds) and validation is pushed past
the end, so only steps are timed. An early DEAR step may need other solver iterations than a
late one: the extrapolation is an estimate, and the JSON says so.

    python scripts/time_paper_profile.py --out leaderboards/runs/clrs/paper-profile-cost/cost.json
    python scripts/time_paper_profile.py --algorithms bfs --models dear --steps 60 --skip 20

Resumable: algorithms/models already in ``--out`` are kept (delete the file to measure again).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DEAR_ALGORITHMS = ("bellman_ford", "floyd_warshall", "dag_shortest_paths", "mst_prim", "bfs", "dfs",
                   "strongly_connected_components", "binary_search_dear", "minimum", "insertion_sort")


def time_steps(algorithm: str, model: str, steps: int, skip: int, num_train: int) -> dict:
    """Seconds of steps ``skip+1 .. steps`` of a fresh `paper`-profile training (its median and mean)."""
    from dear.config import profile_config
    from dear.training import train

    full = profile_config("paper", algorithm=algorithm, model=model)
    cfg = replace(full, steps=steps, num_train=num_train, num_val=8, eval_every=10 * steps)
    stamps: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        train(cfg, Path(tmp) / "run", progress=False, on_step=lambda step: stamps.append(time.perf_counter()))
    gaps = [b - a for a, b in zip(stamps[skip - 1:], stamps[skip:])]
    mean = statistics.fmean(gaps)
    return {"algorithm": algorithm, "model": model, "timed_steps": len(gaps), "skipped_steps": skip,
            "seconds_per_step_median": statistics.median(gaps), "seconds_per_step_mean": mean,
            "paper_steps": full.steps, "estimated_hours": mean * full.steps / 3600}


def main(argv: list[str] | None = None) -> int:
    import torch

    from dear.io import code_provenance, hardware, versions

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--algorithms", default=",".join(DEAR_ALGORITHMS))
    p.add_argument("--models", default="dear,nar")
    p.add_argument("--steps", type=int, default=120, help="steps per probe (default 120)")
    p.add_argument("--skip", type=int, default=40, help="first steps not timed (default 40)")
    p.add_argument("--num-train", type=int, default=512)
    p.add_argument("--out", type=Path, default=REPO / "leaderboards/runs/clrs/paper-profile-cost/cost.json")
    args = p.parse_args(argv)
    if not 1 <= args.skip < args.steps:
        p.error("--skip must be at least 1 and below --steps")
    done = json.loads(args.out.read_text()) if args.out.is_file() else {"rows": []}
    have = {(r["algorithm"], r["model"]) for r in done["rows"]}
    for algorithm in [a for a in args.algorithms.split(",") if a]:
        for model in [m for m in args.models.split(",") if m]:
            if (algorithm, model) in have:
                continue
            row = time_steps(algorithm, model, args.steps, args.skip, args.num_train)
            done["rows"].append(row)
            print(f"{algorithm:>30} {model:>4}: {row['seconds_per_step_mean'] * 1e3:7.1f} ms/step -> "
                  f"{row['estimated_hours']:.1f} h for {row['paper_steps']} steps", flush=True)
            done.update({"what": "seconds per optimiser step of the `paper` profile (dear.config.profile_config), "
                                 "timed after the first skipped steps of a fresh training, times the profile's "
                                 "steps; an estimate (a DEAR step's solver iterations change as it learns)",
                         "command": "python scripts/time_paper_profile.py " + " ".join(argv or sys.argv[1:]),
                         "torch_threads": torch.get_num_threads(), "hardware": hardware(torch.device("cpu")),
                         "versions": versions(), **code_provenance()})
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(done, indent=1) + "\n")
    rows = done["rows"]
    if rows:
        total = sum(r["estimated_hours"] for r in rows)
        print(f"all {len(rows)} runs: {total:.1f} h for one seed each ({3 * total:.1f} h for 3 seeds)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
