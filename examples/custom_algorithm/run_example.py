"""Add an algorithm end to end, without editing the package: register, build splits, train DEAR
and NAR, evaluate, submit to the ``user-tasks`` leaderboard.

    python examples/custom_algorithm/run_example.py                    # the committed entries' budget
    python examples/custom_algorithm/run_example.py --tiny --root /tmp/boards   # seconds, a scratch board

Steps (each one is the public API a user would call):

1. ``import nearest_greater`` registers the task (spec, sampler, reference implementation);
2. ``clrs_tasks.load_split`` builds and caches its train / val / test splits (``dear`` protocol);
3. ``dear.training.train`` trains DEAR and NAR for several seeds;
4. ``dear.evaluate.evaluate_run`` scores each run on the test split (``results.json``);
5. ``dear.leaderboard.submit`` validates the results, re-evaluates the checkpoints (``verify``),
   writes one entry per model to ``leaderboards/user-tasks/`` and re-renders its table.

The same submission from the shell::

    dear leaderboard submit RUNS/dear/seed*/results.json --model-name DEAR \\
        --task-module examples/custom_algorithm/nearest_greater.py --verify RUNS/dear/seed0 ...
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Sequence

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))  # so that the task module is imported as `nearest_greater`

import nearest_greater  # noqa: E402  (registers the task)

import clrs_tasks as ct  # noqa: E402

MODEL_NAMES = {"dear": "DEAR", "nar": "NAR"}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=REPO / "runs" / "custom_algorithm", help="run directories")
    p.add_argument("--root", type=Path, default=REPO / "leaderboards",
                   help="leaderboards folder to submit to (created if missing: a scratch board)")
    p.add_argument("--models", default="dear,nar", help="comma-separated: dear, nar, nar-hints, nar-lt")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--num-train", type=int, default=1000)
    p.add_argument("--num-val", type=int, default=None, help="default: the protocol's (100)")
    p.add_argument("--test-size", type=int, default=None, help="default: the protocol's (n = 64)")
    p.add_argument("--test-samples", type=int, default=None, help="default: the protocol's (100)")
    p.add_argument("--repeats", type=int, default=3, help="timed evaluation passes")
    p.add_argument("--submitter", default="dear maintainers")
    p.add_argument("--no-verify", action="store_true", help="submit without re-evaluating checkpoints")
    p.add_argument("--replace", action="store_true", help="replace existing entries of the same variant")
    p.add_argument("--device", default="auto")
    p.add_argument("--tiny", action="store_true",
                   help="seconds on a CPU: 5 steps, hidden 16, 16 training graphs, test 8 graphs at n = 8")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    if args.tiny:
        args.steps, args.hidden, args.batch_size, args.num_train = 5, 16, 8, 16
        args.num_val, args.test_size, args.test_samples, args.repeats = 8, 8, 8, 1
    return args


def build_splits(args: argparse.Namespace) -> dict[str, ct.ClrsDataset]:
    """Step 2: the task's splits under the DEAR protocol, with this run's sizes."""
    over = {"train": {"num_samples": args.num_train}, "val": {}, "test": {}}
    if args.num_val is not None:
        over["val"]["num_samples"] = args.num_val
    if args.test_samples is not None:
        over["test"]["num_samples"] = args.test_samples
    if args.test_size is not None:
        over["test"]["sizes"] = args.test_size
    splits = {}
    for split, kw in over.items():
        ds = ct.load_split(nearest_greater.TASK, split, "dear", progress=False, **kw)
        splits[split] = ds
        sizes = sorted(set(ds.num_nodes_per_graph.tolist()))
        print(f"{split:>5}: {len(ds)} graphs, n in {sizes[0]}..{sizes[-1]}, fingerprint {ds.fingerprint[:16]}")
    return splits


def train_and_evaluate(args: argparse.Namespace, model: str) -> list[Path]:
    """Steps 3 and 4 for one model: train each seed (resumable), write its results.json."""
    from dear.config import profile_config  # noqa: PLC0415
    from dear.evaluate import evaluate_run  # noqa: PLC0415
    from dear.training import is_complete, train  # noqa: PLC0415

    results = []
    for seed in range(args.seeds):
        cfg = profile_config("quick", algorithm=nearest_greater.TASK, model=model, seed=seed, steps=args.steps,
                             hidden=args.hidden, batch_size=args.batch_size, num_train=args.num_train,
                             num_val=args.num_val, num_test=args.test_samples,
                             eval_every=max(1, args.steps // 4), device=args.device)
        run_dir = args.out / model / f"seed{seed}"
        t0 = time.perf_counter()
        if not is_complete(run_dir):
            train(cfg, run_dir, progress=not args.quiet)
        res = evaluate_run(run_dir, sizes=[args.test_size] if args.test_size else None, repeats=args.repeats,
                           device=args.device)
        (n, r), = res["results"].items()
        print(f"{model} seed {seed}: test score {r['score']:.3f} at n = {n} ({time.perf_counter() - t0:.1f} s)")
        results.append(run_dir / "results.json")
    return results


def submit_model(args: argparse.Namespace, model: str, results: list[Path]) -> dict[str, Any]:
    """Step 5: one leaderboard entry per model (all its seeds), verified from the checkpoints."""
    from dear.leaderboard import submit  # noqa: PLC0415

    variant = f"mpnn h{args.hidden}" + (", anderson tol 0.1" if model == "dear" else "") + \
              f", {args.steps} steps, {args.num_train} graphs"
    res = submit(results, model_name=MODEL_NAMES.get(model, model), variant=variant, track="user-tasks",
                 submitter=args.submitter, task_module=HERE / "nearest_greater.py",
                 verify=[] if args.no_verify else [p.parent for p in results], device=args.device,
                 root=args.root, base=REPO, replace=args.replace)
    s = res.entry["scores"]
    print(f"submitted {MODEL_NAMES.get(model, model)}: mean {s['mean']:.3f} (std {s['std']:.3f}) -> {res.path}")
    return res.entry


def main(argv: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
    args = parse_args(argv)
    import torch  # noqa: PLC0415

    if args.device in ("auto", "cpu"):
        torch.set_num_threads(1)  # small models on a shared CPU: one thread is fastest
    print(f"task {nearest_greater.TASK!r} registered from {ct.get_task(nearest_greater.TASK).origin}")
    args.root.mkdir(parents=True, exist_ok=True)  # before training, so a bad path fails in seconds
    build_splits(args)
    entries = {}
    for model in [m for m in args.models.split(",") if m]:
        entries[model] = submit_model(args, model, train_and_evaluate(args, model))
    print(f"table: {args.root / 'user-tasks' / 'README.md'}")
    return entries


if __name__ == "__main__":
    main()
