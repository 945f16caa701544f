"""Time a training step and an inference pass on two versions of the code, alternately.

A performance change is judged against the commit before it, on the same batches and the same
machine. On a shared CPU the load drifts over minutes, so timing one version after the other
can move a ratio by 2x; this script instead checks the base revision out into a temporary git
worktree and alternates one child process per version, round by round, each timing the same
cases (training step: forward, loss, backward, clip, Adam on ``--batch-size`` graphs of the
dear protocol's train split at n=16; inference: a no-grad forward on ``--infer-batch`` test
graphs at n=64; quick-profile models, seed 0). Reported: per-version medians over rounds and
the speed-up of the working tree over the base::

    OMP_NUM_THREADS=1 python scripts/time_commits.py --base e038f3b \\
        --out leaderboards/runs/bench/step_vs_e038f3b.json

A case may set config fields: ``--cases bellman_ford:dear:backward=ift,tol=0.05``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CASES = ["dfs:nar", "strongly_connected_components:nar", "floyd_warshall:nar", "bellman_ford:dear",
                 "binary_search:dear", "insertion_sort:dear"]


def parse_case(case: str) -> tuple[str, str, dict[str, Any]]:
    """``ALGO:MODEL[:KEY=VALUE,...]`` -> algorithm, model and config overrides (values read as
    JSON when they parse, else kept as strings), e.g. ``bellman_ford:dear:backward=ift``.

    Parsed here rather than with ``dear.config.parse_key_value``: the child processes import
    ``dear`` from the base revision, which may predate that helper."""
    algo, _, rest = case.partition(":")
    model_name, _, opts = rest.partition(":")
    if not algo or not model_name:
        raise ValueError(f"a case is ALGO:MODEL[:KEY=VALUE,...], got {case!r}")
    overrides: dict[str, Any] = {}
    for kv in filter(None, opts.split(",")):
        key, eq, value = kv.partition("=")
        if not eq:
            raise ValueError(f"case {case!r}: option {kv!r} is not KEY=VALUE")
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value
    return algo, model_name, overrides


def step_functions(algorithm: str, model_name: str, batch_size: int, infer_batch: int,
                   overrides: dict[str, Any] | None = None
                   ) -> tuple[Any, Callable[[], None], Callable[[], None], Any, Any]:
    """``(model, train_step, infer, train_batch, test_batch)`` for one case, built with the
    ``dear`` found first on ``sys.path`` (the imports are made here, after the caller chose it):
    a quick-profile model (seed 0), a training step (forward, loss, backward, clip, Adam) on
    ``batch_size`` graphs of the dear protocol's train split and a no-grad forward on
    ``infer_batch`` test graphs. Shared with ``bench_processor_step.py``."""
    import torch  # noqa: PLC0415

    import clrs_tasks as ct  # noqa: PLC0415
    from dear.config import profile_config  # noqa: PLC0415
    from dear.training import build, load_data, model_loss  # noqa: PLC0415

    cfg = profile_config("quick", algorithm=algorithm, model=model_name, batch_size=batch_size, **(overrides or {}))
    train = load_data(cfg, "train", num_samples=batch_size)
    test = load_data(cfg, "test", num_samples=infer_batch)
    b_train = ct.collate([train[i] for i in range(len(train))])
    b_test = ct.collate([test[i] for i in range(len(test))])
    torch.manual_seed(0)
    model = build(cfg, train.spec)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)

    def train_step() -> None:
        model.train()
        loss, _ = model_loss(model, b_train)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()

    def infer() -> None:
        model.eval()
        with torch.no_grad():
            model(b_test)

    return model, train_step, infer, b_train, b_test


def child(repo: str, cases: list[str], batch_size: int, infer_batch: int, reps: int) -> dict[str, Any]:
    """Runs in a subprocess with ``repo`` first on the path: seconds per case and phase."""
    sys.path.insert(0, repo)
    from dear.runtime import tune_allocator  # noqa: PLC0415

    tune_allocator()
    out: dict[str, Any] = {}
    for case in cases:
        algo, model_name, overrides = parse_case(case)
        _, train_step, infer, _, _ = step_functions(algo, model_name, batch_size, infer_batch, overrides)
        res = {}
        for key, fn in (("train_step", train_step), ("inference", infer)):
            fn()  # warm-up
            t = time.perf_counter()
            for _ in range(reps):
                fn()
            res[key] = (time.perf_counter() - t) / reps
        out[case] = res
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", required=True, help="git revision to compare the working tree against")
    ap.add_argument("--cases", nargs="+", default=DEFAULT_CASES, metavar="ALGO:MODEL")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--infer-batch", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--out", default="leaderboards/runs/bench/step_vs_base.json")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    for case in args.cases:
        try:
            parse_case(case)
        except ValueError as e:
            ap.error(str(e))
    if args.child:
        print(json.dumps(child(args.child, args.cases, args.batch_size, args.infer_batch, args.reps)))
        return 0

    base_rev = subprocess.run(["git", "rev-parse", args.base], cwd=ROOT, capture_output=True, text=True)
    if base_rev.returncode:
        ap.error(f"unknown git revision {args.base!r}: {base_rev.stderr.strip()}")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                                capture_output=True, text=True).stdout.strip())
    times: dict[str, dict[str, dict[str, list[float]]]] = {"base": {}, "tree": {}}
    with tempfile.TemporaryDirectory(prefix="dear-base-") as tmp:
        wt = Path(tmp) / "base"
        subprocess.run(["git", "worktree", "add", "--detach", str(wt), base_rev.stdout.strip()], cwd=ROOT,
                       check=True, capture_output=True)
        try:
            for r in range(args.rounds):
                for version, repo in (("base", wt), ("tree", ROOT)):
                    cmd = [sys.executable, str(Path(__file__).resolve()), "--base", args.base, "--child", str(repo),
                           "--batch-size", str(args.batch_size), "--infer-batch", str(args.infer_batch),
                           "--reps", str(args.reps), "--cases", *args.cases]
                    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp)
                    if proc.returncode:
                        sys.stderr.write(proc.stderr[-3000:])
                        return 1
                    res = json.loads(proc.stdout.strip().splitlines()[-1])
                    for case, phases in res.items():
                        for phase, sec in phases.items():
                            times[version].setdefault(case, {}).setdefault(phase, []).append(sec)
                    print(f"round {r + 1}/{args.rounds} {version}: " + ", ".join(
                        f"{c} {p['train_step']:.3f}/{p['inference']:.3f}s" for c, p in res.items()), flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(wt)], cwd=ROOT, capture_output=True)

    sys.path.insert(0, str(ROOT))
    import torch  # noqa: PLC0415

    from dear.io import write_measurement  # noqa: PLC0415

    rows = []
    for case in args.cases:
        med = {v: {p: statistics.median(x) for p, x in times[v][case].items()} for v in times}
        rows.append({"case": case, "seconds_median": med, "seconds": {v: times[v][case] for v in times},
                     "speedup_tree_vs_base": {p: med["base"][p] / med["tree"][p] for p in med["base"]}})
        s = rows[-1]["speedup_tree_vs_base"]
        print(f"{case:>40}: train step {med['base']['train_step']:.3f} -> {med['tree']['train_step']:.3f} s "
              f"({s['train_step']:.2f}x), inference {med['base']['inference']:.3f} -> "
              f"{med['tree']['inference']:.3f} s ({s['inference']:.2f}x)")
    out = write_measurement(args.out, {
        "base": base_rev.stdout.strip(), "head": head, "working_tree_modified": dirty, "cases": rows,
        "batch_size": args.batch_size, "infer_batch": args.infer_batch, "rounds": args.rounds, "reps": args.reps})
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
