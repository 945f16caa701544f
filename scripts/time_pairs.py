"""Paired inference timing of DEAR against NAR, robust to load changes on a shared machine.

``dear compare`` times each run on its own, one after the other; on a CPU shared with other
jobs the load can change between two runs and move a ratio by 2x (measured: the same Floyd-
Warshall DEAR pass took 20 s and, minutes later beside a heavier neighbour, 42-58 s). This
script loads both finished runs of an algorithm (``RUNS/ALGO/{dear,nar}/seed<k>``), builds the
test batches once (the run's protocol test split, its training batch size, as
``dear evaluate``), runs one untimed pass of each, then ``--rounds`` rounds of one timed pass of
each model, alternating which goes first. Every round gives a ratio of two passes taken
seconds apart; the reported speed-up is the median of those ratios, beside the per-model
medians of seconds per graph. Scores are not recomputed here (``dear evaluate`` does that; the
models are the same checkpoints).

``--dirs FIRST SECOND`` times any two run directories of one algorithm the same way (e.g. DEAR
trained with the learned solver against DEAR trained with Anderson), each solved as it was
trained.

``--tol`` and ``--stop-mode`` solve every DEAR run timed at another test tolerance or with
another stopping rule (as ``dear evaluate --tol/--stop-mode``; NAR runs are unaffected), e.g.
the setting ``scripts/tol_on_validation.py`` chose. The pair is then keyed with the setting
(``minimum stopnode tol0.3``), so one file holds the trained setting and others side by side.

    OMP_NUM_THREADS=1 python scripts/time_pairs.py --runs leaderboards/runs/clrs/quick-dmclrs \\
        --out leaderboards/runs/clrs/quick-dmclrs-eval-2026-11-30/paired_timing.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

import clrs_tasks as ct
from dear.config import DEAR_STOP_MODES
from dear.evaluate import RunError, load_run, results_name
from dear.io import atomic_write_text, git_commit, hardware, versions
from dear.runtime import tune_allocator
from dear.training import load_data

ALGORITHMS = ("dfs", "strongly_connected_components", "dag_shortest_paths", "insertion_sort", "floyd_warshall",
              "minimum", "mst_prim", "bellman_ford", "binary_search_dear", "bfs")


@torch.no_grad()
def time_pair(runs: Path, algorithm: str, seed: int, rounds: int, device: torch.device,
              tol: float | None = None, stop_mode: str | None = None) -> dict[str, Any]:
    """DEAR against NAR: the seed's runs of ``RUNS/ALGO/{dear,nar}``."""
    r = time_dirs({name: runs / algorithm / name / f"seed{seed}" for name in ("dear", "nar")}, rounds, device,
                  tol, stop_mode)
    r.update({"algorithm": algorithm, "seed": seed, "ratios_nar_over_dear": r.pop("ratios_second_over_first"),
              "dear_speedup_median": r.pop("first_speedup_median")})
    return r


@torch.no_grad()
def time_dirs(dirs: dict[str, Path], rounds: int, device: torch.device, tol: float | None = None,
              stop_mode: str | None = None) -> dict[str, Any]:
    """Two finished runs of one algorithm, ``{label: run_dir}`` (first against second), timed
    in alternating rounds on the first run's test batches. Each run is solved as it was trained
    (its own solver and tolerance) unless ``tol`` / ``stop_mode`` say otherwise for DEAR runs."""
    if len(dirs) != 2:
        raise ValueError(f"time_dirs takes two runs, got {len(dirs)}")
    models, batches, algorithms, solved = {}, None, set(), {}
    for name, run_dir in dirs.items():
        try:
            is_dear = json.loads((Path(run_dir) / "config.json").read_text()).get("model") == "dear"
            cfg, model, _ = load_run(run_dir, device, *((tol, stop_mode) if is_dear else (None, None)))
        except (OSError, ValueError, RunError) as e:  # no config, unreadable, no checkpoint, bad setting
            raise ValueError(f"{run_dir}: {e}") from None
        if cfg.model == "dear":
            solved[name] = {"tol": cfg.tol, "stop_mode": cfg.stop_mode}
        algorithms.add(cfg.algorithm)
        models[name] = model
        if batches is None:
            ds = load_data(cfg, "test")
            bs = cfg.batch_size
            batches = [ct.collate([ds[i] for i in range(s, min(s + bs, len(ds)))]).to(device)
                       for s in range(0, len(ds), bs)]
            n_graphs = len(ds)
    if len(algorithms) != 1:
        raise ValueError(f"the two runs are of different algorithms: {', '.join(sorted(algorithms))}")

    def one_pass(name: str) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        for b in batches:
            models[name](b)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - t0

    for name in models:  # warm-up
        one_pass(name)
    first, second = models
    seconds: dict[str, list[float]] = {first: [], second: []}
    for r in range(rounds):
        for name in ((first, second) if r % 2 == 0 else (second, first)):
            seconds[name].append(one_pass(name))
    ratios = [n / d for n, d in zip(seconds[second], seconds[first])]
    return {
        "runs": {k: str(v) for k, v in dirs.items()}, "dear_solved_with": solved, "num_graphs": n_graphs,
        "batch_size": bs,
        "seconds": seconds, "ratios_second_over_first": ratios,
        "seconds_per_graph_median": {k: statistics.median(v) / n_graphs for k, v in seconds.items()},
        "first_speedup_median": statistics.median(ratios),
    }


def _stamp(pair: dict[str, Any], command: str) -> dict[str, Any]:
    """Record with the pair which command and commit measured it: a file grows over several
    invocations (it is resumable), and the top-level fields describe only the latest one."""
    pair.update({"command": command, "git_commit": git_commit()})
    return pair


def _save(out: Path, done: dict[str, Any], args: argparse.Namespace, command: str) -> None:
    done.update({"command": command, "rounds": args.rounds, "versions": versions(),
                 "git_commit": git_commit(), "hardware": hardware(torch.device(args.device)),
                 "threads": torch.get_num_threads()})
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(done, indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", help="a `dear compare --out` directory with dear and nar runs")
    ap.add_argument("--dirs", nargs=2, metavar=("FIRST", "SECOND"),
                    help="time two run directories of one algorithm against each other instead of --runs "
                         "(keyed 'FIRST vs SECOND' in --out); the speed-up is FIRST's over SECOND")
    ap.add_argument("--algorithms", nargs="+", default=list(ALGORITHMS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--tol", type=float, help="solve DEAR runs at this test tolerance (default: as trained)")
    ap.add_argument("--stop-mode", choices=DEAR_STOP_MODES,
                    help="solve DEAR runs with this stopping rule (default: as trained)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    # the pair's key says which setting it was timed at (nothing added for the trained one)
    setting = results_name(args.tol, args.stop_mode)[len("results"):-len(".json")].lstrip("_").replace("_", " ")
    suffix = f" {setting}" if setting else ""
    command = " ".join(["scripts/time_pairs.py", *(sys.argv[1:] if argv is None else argv)])
    if (args.runs is None) == (args.dirs is None):
        ap.error("give exactly one of --runs and --dirs")
    tune_allocator()
    device = torch.device(args.device)
    out = Path(args.out)
    done = json.loads(out.read_text()) if out.exists() else {"pairs": {}}
    if args.dirs:
        first, second = (Path(d) for d in args.dirs)
        for d in (first, second):
            if not (d / "config.json").exists():
                ap.error(f"{d} is not a run directory (no config.json)")
        key = f"{first} vs {second}{suffix}"
        if key not in done["pairs"]:
            try:
                r = time_dirs({"first": first, "second": second}, args.rounds, device, args.tol, args.stop_mode)
            except ValueError as e:
                ap.error(str(e))
            done["pairs"][key] = _stamp(r, command)
            _save(out, done, args, command)
        r = done["pairs"][key]
        s = r["seconds_per_graph_median"]
        print(f"{first}: {s['first'] * 1e3:.1f} ms/graph; {second}: {s['second'] * 1e3:.1f} ms/graph; "
              f"speed-up of the first {r['first_speedup_median']:.2f}x (rounds: "
              f"{', '.join(f'{x:.2f}' for x in r['ratios_second_over_first'])})", flush=True)
        return 0
    for algo in args.algorithms:
        key = f"{algo}{suffix}"
        if key in done["pairs"]:  # resumable
            continue
        try:
            r = time_pair(Path(args.runs), algo, args.seed, args.rounds, device, args.tol, args.stop_mode)
        except ValueError as e:
            ap.error(str(e))
        done["pairs"][key] = _stamp(r, command)
        _save(out, done, args, command)
        s = r["seconds_per_graph_median"]
        print(f"{key:>30}: DEAR {s['dear'] * 1e3:8.1f} ms/graph, NAR {s['nar'] * 1e3:8.1f} ms/graph, "
              f"speed-up {r['dear_speedup_median']:.2f}x (rounds: {', '.join(f'{x:.2f}' for x in r['ratios_nar_over_dear'])})",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
