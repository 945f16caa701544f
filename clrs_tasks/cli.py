"""The ``clrs-tasks`` command: list tasks, build (and cache) splits, show a task.

Every user mistake (unknown algorithm, bad split, bad option) is printed as one line starting
with ``error:`` and exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Sequence

from clrs_tasks.protocols import MIN_SIZE, PROTOCOLS, SPLITS
from clrs_tasks.registry import DEAR_TASKS, UnknownTaskError, get_task, list_tasks


class CliError(Exception):
    """A user mistake, printed as one line."""


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"sizes must be comma-separated integers, got {text!r}") from None
    if not sizes or min(sizes) < MIN_SIZE:
        raise argparse.ArgumentTypeError(f"sizes must be integers >= {MIN_SIZE}, got {text!r}")
    return sizes


def _check_json_out(path: str) -> None:
    """Refuse an unwritable ``--json`` path before building (which can take minutes), not after."""
    p = Path(path)
    if p.is_dir():
        raise CliError(f"--json {path} is a directory; give a file name")
    parent = p.parent
    if not parent.is_dir():
        raise CliError(f"--json {path}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise CliError(f"--json {path} is not writable")


def _expand(names: Sequence[str]) -> list[str]:
    out: list[str] = []
    for name in names:
        if name == "all":
            out += list_tasks()
        elif name == "clrs30":
            out += list_tasks(clrs30_only=True)
        elif name == "dear":
            out += list(DEAR_TASKS)
        else:
            get_task(name)  # raises with the known names
            out.append(name)
    return list(dict.fromkeys(out))


def _build_one(job: dict[str, Any]) -> dict[str, Any]:
    from clrs_tasks.dataset import load_split  # noqa: PLC0415 (also runs in worker processes)

    t0 = time.perf_counter()
    ds = load_split(job["task"], job["split"], job["protocol"], root=job["root"], progress=job["progress"],
                    rebuild=job["rebuild"], **job["overrides"])
    summary = ds.summary()
    summary["seconds"] = time.perf_counter() - t0
    summary["built"] = ds.built
    summary["timing"] = ds.timing
    return summary


def cmd_list(args: argparse.Namespace) -> int:
    rows = []
    for name in list_tasks(clrs30_only=args.clrs30):
        t = get_task(name)
        outputs = ", ".join(f"{k}:{v}" for k, v in t.output_types.items())
        rows.append((name, "yes" if t.clrs30 else "no", outputs))
    if args.json:
        print(json.dumps([{"task": r[0], "clrs30": r[1] == "yes", "outputs": r[2]} for r in rows], indent=1))
        return 0
    w = max(len(r[0]) for r in rows)
    print(f"{'task':<{w}}  clrs30  outputs")
    for r in rows:
        print(f"{r[0]:<{w}}  {r[1]:<6}  {r[2]}")
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    overrides: dict[str, Any] = {}
    if args.num_samples is not None:
        overrides["num_samples"] = args.num_samples
    if args.sizes is not None:
        overrides["sizes"] = args.sizes
    if args.seed is not None:
        overrides["seed"] = args.seed
    jobs = [
        {"task": t, "split": s, "protocol": args.protocol, "root": args.root, "overrides": overrides,
         "progress": args.workers <= 1 and not args.quiet, "rebuild": args.rebuild}
        for t in _expand(args.algorithms) for s in args.split
    ]
    # validate every job's arguments, the cache root and the output file before spending minutes on sampling
    from clrs_tasks.dataset import resolve_root  # noqa: PLC0415
    from clrs_tasks.protocols import split_config  # noqa: PLC0415

    for job in jobs:
        split_config(get_task(job["task"]), job["split"], job["protocol"], **job["overrides"])
    resolve_root(args.root)
    if args.json:
        _check_json_out(args.json)
    results = []
    t0 = time.perf_counter()
    if args.workers > 1 and len(jobs) > 1:
        import multiprocessing as mp  # noqa: PLC0415

        with ProcessPoolExecutor(args.workers, mp_context=mp.get_context("spawn")) as pool:
            futures = [pool.submit(_build_one, j) for j in jobs]
            for fut in as_completed(futures):
                results.append(fut.result())
                _print_row(results[-1], args.quiet)
    else:
        for job in jobs:
            results.append(_build_one(job))
            _print_row(results[-1], args.quiet)
    total = time.perf_counter() - t0
    if not args.quiet:
        print(f"{len(results)} split(s) ready in {total:.1f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"splits": results, "total_seconds": total, "workers": args.workers}, f, indent=1)
    return 0


def _print_row(s: dict[str, Any], quiet: bool) -> None:
    if quiet:
        return
    how = "built" if s["built"] else "cached"
    print(
        f"{s['task']} {s['protocol']}/{s['split']}: {s['num_graphs']} graphs, n={s['nodes']['min']}..{s['nodes']['max']}, "
        f"trace length {s['trace_length']['min']}..{s['trace_length']['max']} (mean {s['trace_length']['mean']}), "
        f"{s['bytes'] / 2**20:.1f} MiB, {how} in {s['seconds']:.2f} s\n  fingerprint {s['fingerprint']}\n  {s['path']}"
    )


def cmd_show(args: argparse.Namespace) -> int:
    from clrs_tasks.convert import from_clrs  # noqa: PLC0415
    from clrs_tasks.protocols import split_config  # noqa: PLC0415
    from clrs_tasks.sampling import sample_split  # noqa: PLC0415

    task = get_task(args.algorithm)
    cfg = split_config(task, "train", args.protocol, num_samples=1, sizes=args.size, seed=args.seed)  # checked before printing
    print(f"{task.name}: {task.description}")
    print(f"  CLRS-30: {'yes' if task.clrs30 else 'no'}; sampler {task.sampler_class.__name__}; "
          f"edge policy {task.edge_policy}{' (undirected)' if task.undirected else ''}; "
          f"pred as input: {'yes' if task.pred_as_input else 'no'}; val/test multiplier {task.num_samples_multiplier}")
    _, feedbacks = sample_split(task, cfg, progress=False)
    (graph,) = from_clrs(feedbacks[0], task.name)
    print(f"  one sample ({args.protocol} protocol, size {args.size}, seed {args.seed}): "
          f"{graph.num_nodes} nodes, {graph.edge_index.shape[1]} message-passing edges, trace length {int(graph.length)}")
    print(f"  {'stage':<7}{'name':<16}{'location':<10}{'type':<22}{'graph field shape':<20}dm-clrs dtype")
    for f in graph.clrs_spec.fields:
        shape = list(graph[f.key].shape)
        print(f"  {f.stage:<7}{f.name:<16}{f.location:<10}{f.type_:<22}{str(shape):<20}{f.dtype}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="clrs-tasks", description="CLRS-30 traces (dm-clrs) as PyTorch Geometric graphs.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    pl = sub.add_parser("list", help="registered tasks with their output types")
    pl.add_argument("--clrs30", action="store_true", help="only the 30 CLRS-30 algorithms")
    pl.add_argument("--json", action="store_true", help="print JSON")
    pl.set_defaults(func=cmd_list)

    pb = sub.add_parser("build", help="build (or load from the cache) splits and summarise them")
    pb.add_argument("algorithms", nargs="+", metavar="ALGO",
                    help="task names, or 'all', 'clrs30', 'dear' (DEAR's ten algorithms)")
    pb.add_argument("--protocol", default="official", choices=PROTOCOLS,
                    help="official: dm-clrs's CLRS-30 splits; dear: the DEAR paper's (default: official)")
    pb.add_argument("--split", default=["test"], nargs="+", choices=SPLITS, help="splits to build (default: test)")
    pb.add_argument("--num-samples", type=int, default=None, help="override the split's sample count")
    pb.add_argument("--sizes", type=_sizes, default=None, help="override sizes, e.g. 64 or 8,12,16")
    pb.add_argument("--seed", type=int, default=None, help="override the split's seed")
    pb.add_argument("--root", default=None, help="cache directory (default: $CLRS_TASKS_CACHE or ~/.cache/clrs_tasks)")
    pb.add_argument("--workers", type=int, default=1, help="worker processes building splits in parallel")
    pb.add_argument("--rebuild", action="store_true", help="rebuild even when a valid cache exists")
    pb.add_argument("--json", default=None, metavar="FILE", help="also write the summaries as JSON")
    pb.add_argument("--quiet", action="store_true", help="no progress bar")
    pb.set_defaults(func=cmd_build)

    ps = sub.add_parser("show", help="a task's spec and one sample summarised")
    ps.add_argument("algorithm", help="a task name (clrs-tasks list)")
    ps.add_argument("--protocol", default="official", choices=PROTOCOLS,
                    help="official: dm-clrs's CLRS-30 splits; dear: the DEAR paper's (default: official)")
    ps.add_argument("--size", type=int, default=8, help="nodes of the sample (default: 8)")
    ps.add_argument("--seed", type=int, default=0, help="sampler seed (default: 0)")
    ps.set_defaults(func=cmd_show)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except KeyboardInterrupt:
        # Ctrl-C before a command runs (building the parser imports dm-clrs: seconds)
        print("interrupted before anything started", file=sys.stderr)
        return 130


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "workers", 1) < 1:
        parser.error("--workers must be >= 1")
    try:
        return args.func(args)
    except (UnknownTaskError, ValueError, CliError, OSError) as e:  # OSError: an unwritable path, a full disk
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; completed splits are cached, nothing half-written was kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
