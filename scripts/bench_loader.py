"""Benchmark the CLRS loader against dm-clrs's own sampler.

For each algorithm, on one split (default: the official test split, n=64):

* ``raw``: dm-clrs alone: ``clrs.build_sampler(...).next()`` plus dm-clrs's processing
  (pred-as-input, permutations) — the cost of the traces themselves;
* ``build``: our full build into an empty cache (the same sampling and processing, plus
  conversion to graphs, checksum and atomic write); ``convert`` is the conversion share of it;
* ``load``: opening the cached split in a fresh dataset object (read, verify, deserialise),
  median of repeats; ``iterate`` is one pass over all graphs of the loaded split.

With ``--all`` it also times building the official test splits of all 30 CLRS-30 algorithms
into an empty cache with ``--workers`` processes. Results are printed and written as JSON.

    python scripts/bench_loader.py                       # the ten algorithms of the issue
    python scripts/bench_loader.py --all --workers 2     # plus all 30 official test splits
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_ALGOS = ["bfs", "bellman_ford", "dfs", "floyd_warshall", "insertion_sort", "heapsort",
                 "matrix_chain_order", "lcs_length", "strongly_connected_components", "graham_scan"]


def time_raw(name: str, cfg) -> float:
    """dm-clrs alone: its sampler, then its processing. The processing is timed on its second
    run, so JAX's one-off compilation (shared with our build) is not charged to dm-clrs."""
    from clrs_tasks import get_task, sampling
    from clrs_tasks._clrs import clrs

    task = get_task(name)
    total = 0.0
    for size, count, seed in sampling.size_groups(cfg):
        t0 = time.perf_counter()
        sampler, _ = clrs().build_sampler(name, num_samples=count, length=size, seed=seed, **dict(cfg.sampler_kwargs))
        raw = sampler.next()
        total += time.perf_counter() - t0
        sampling.process(task, cfg, raw, None)  # warm-up
        raw = sampler.next()
        t0 = time.perf_counter()
        sampling.process(task, cfg, raw, None)
        total += time.perf_counter() - t0
    return total


def bench_one(name: str, protocol: str, split: str, root: Path, repeats: int) -> dict:
    import clrs_tasks as ct
    from clrs_tasks.protocols import split_config

    cfg = split_config(ct.get_task(name), split, protocol)
    raw = time_raw(name, cfg)
    t0 = time.perf_counter()
    ds = ct.load_split(name, split, protocol, root=root, progress=False, rebuild=True)
    build = time.perf_counter() - t0
    loads = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        again = ct.load_split(name, split, protocol, root=root, progress=False)
        loads.append(time.perf_counter() - t0)
        assert not again.built
    t0 = time.perf_counter()
    for g in again:
        pass
    iterate = time.perf_counter() - t0
    load = statistics.median(loads)
    return {
        "algorithm": name, "protocol": protocol, "split": split, "graphs": len(ds),
        "nodes": ds.summary()["nodes"]["max"], "raw_seconds": raw, "build_seconds": build,
        "sample_seconds": ds.timing["sample_seconds"], "convert_seconds": ds.timing["convert_seconds"],
        "convert_over_sampling": ds.timing["convert_seconds"] / ds.timing["sample_seconds"],
        "build_over_raw": build / raw, "load_seconds": load, "build_over_load": build / load,
        "iterate_seconds": iterate, "file_mib": ds.path.stat().st_size / 2**20,
    }


def bench_all(workers: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "summary.json"
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "clrs_tasks.cli", "build", "clrs30", "--split", "test",
                        "--protocol", "official", "--root", tmp, "--workers", str(workers), "--quiet",
                        "--json", str(out)], check=True)
        wall = time.perf_counter() - t0
        per = json.loads(out.read_text())["splits"]
    return {"workers": workers, "splits": len(per), "wall_seconds": wall,
            "slowest": sorted(((s["task"], round(s["seconds"], 2)) for s in per), key=lambda x: -x[1])[:8]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--algorithms", default=",".join(DEFAULT_ALGOS))
    ap.add_argument("--protocol", default="official")
    ap.add_argument("--split", default="test")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--all", action="store_true", help="also time building all 30 official test splits")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default="leaderboards/runs/loader/bench_loader.json")
    args = ap.parse_args()

    import clrs_tasks as ct
    from clrs_tasks._clrs import clrs, clrs_version

    clrs()  # import cost is not part of any timing
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.algorithms.split(","):
            ct.get_task(name)
            rows.append(bench_one(name, args.protocol, args.split, Path(tmp), args.repeats))
            r = rows[-1]
            print(f"{name:<30} raw {r['raw_seconds']:8.3f}s  build {r['build_seconds']:8.3f}s  "
                  f"convert/sampling {100 * r['convert_over_sampling']:5.1f}%  load {1000 * r['load_seconds']:7.2f}ms  "
                  f"build/load {r['build_over_load']:8.1f}x  iterate {1000 * r['iterate_seconds']:7.1f}ms", flush=True)
    result = {
        "benchmark": "clrs_tasks loader vs dm-clrs sampler",
        "dm_clrs": clrs_version(),
        "hardware": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "python": platform.python_version()},
        "method": "single process; raw = dm-clrs build_sampler().next() + processing; build = our full build "
                  "into an empty cache (sampling + processing + conversion + write); load = median of repeats "
                  "of opening the cached split; import time excluded",
        "rows": rows,
        "targets": {
            "max_convert_over_sampling": max(r["convert_over_sampling"] for r in rows),
            "min_build_over_load": min(r["build_over_load"] for r in rows),
        },
    }
    if args.all:
        result["all_official_test"] = bench_all(args.workers)
        a = result["all_official_test"]
        print(f"all 30 official test splits, {a['workers']} workers: {a['wall_seconds']:.1f} s; slowest {a['slowest']}")
    print(f"max conversion/sampling {100 * result['targets']['max_convert_over_sampling']:.1f}%  "
          f"min build/load {result['targets']['min_build_over_load']:.1f}x")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
