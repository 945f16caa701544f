"""IGNN inference cost vs graph size on the SBM generator, Picard against Anderson.

One IGNN is trained (full batch, the library's own trainer) on a small SBM graph; its weights
are then run, unchanged, on SBM graphs of growing size drawn from the same generator (same
class means, features and degree distribution), so iteration counts reflect a trained model
whose weight matrix sits on the well-posedness bound, not a random one. For each size and
solver we report the median seconds of a full-graph forward (eval mode, after warm-up,
synchronised on CUDA), solver function evaluations, the final relative residual and test
accuracy (which must agree between solvers: both solve the same fixed point to ``--tol``).

Writes JSON (default ``leaderboards/runs/nodecls/sbm-scaling/results.json``) after every size,
and skips sizes already measured with the same configuration, so an interrupted run resumes.

    python scripts/bench_ignn_scaling.py --sizes 10000,100000,1000000
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

from dear.io import atomic_write_text, git_commit, hardware, resolve_device, versions
from dear.nodecls import load_dataset
from dear.nodecls.ignn import IGNN
from dear.nodecls.train import NodeClsConfig, model_features, prepare_features, time_inference, train_one_seed
from dear.runtime import tune_allocator


def _sbm(num_nodes: int, args: argparse.Namespace):
    return load_dataset("sbm", split=args.split, seed=args.data_seed, num_nodes=num_nodes,
                        avg_degree=args.avg_degree, cache_dir=args.cache_dir)


def _model(args: argparse.Namespace, in_dim: int, num_classes: int, solver: str) -> IGNN:
    return IGNN(in_dim, num_classes, hidden=args.hidden, kappa=args.kappa, solver=solver, tol=args.tol,
                max_iter=args.max_iter)


def train_reference(args: argparse.Namespace, device: torch.device) -> tuple[dict[str, Any], dict]:
    """Train one IGNN (Picard, IFT) on the smallest graph; returns its record and weights."""
    cfg = NodeClsConfig(dataset="sbm", model="ignn", split=args.split, data_seed=args.data_seed,
                        dataset_options={"num_nodes": args.train_nodes, "avg_degree": args.avg_degree},
                        epochs=args.epochs, patience=args.patience, hidden=args.hidden, kappa=args.kappa,
                        solver="picard", tol=args.tol, max_iter=args.max_iter, seeds=1).validate()
    data = _sbm(args.train_nodes, args)
    x = model_features(data, cfg).to(device)
    record, state = train_one_seed(cfg, data.to(device), x, seed=0, device=device, progress=not args.quiet)
    return record, state


def measure(args: argparse.Namespace, size: int, state: dict, device: torch.device) -> dict[str, Any]:
    data = _sbm(size, args)
    x = prepare_features(data, "auto").to(device)
    data = data.to(device)
    row: dict[str, Any] = {"num_nodes": size, "num_edges": int(data.edge_index.shape[1]),
                           "fingerprint": data.fingerprint, "solvers": {}}
    repeats = args.repeats if size < 500_000 else max(1, args.repeats_large)
    for solver in args.solvers:
        model = _model(args, x.shape[1], int(data.num_classes), solver).to(device)
        model.load_state_dict(state)
        model.eval()
        with torch.no_grad():  # the accuracy pass doubles as the untimed warm-up (caches A_hat)
            logits = model(x, data.edge_index)
        times = time_inference(model, x, data.edge_index, warmup=0, repeats=repeats)
        st = model.solver_stats()[0]  # of the last timed pass: the same deterministic solve
        acc = (logits[data.test_mask].argmax(-1) == data.y[data.test_mask]).float().mean().item() * 100
        row["solvers"][solver] = {
            "seconds_median": statistics.median(times), "seconds_all": times,
            "nfe": int(st["forward_nfe"]), "residual": st["forward_residual_max"],
            "converged": bool(st["forward_converged_frac"] == 1.0), "test_accuracy": acc,
            "seconds_per_evaluation": statistics.median(times) / max(1, int(st["forward_nfe"])),
        }
        del model, logits
        print(f"  n={size:>9,d} {solver:9s} {statistics.median(times):8.3f} s  nfe {int(st['forward_nfe']):4d}  "
              f"residual {st['forward_residual_max']:.1e}  acc {acc:.2f}", flush=True)
    if "picard" in row["solvers"] and "anderson" in row["solvers"]:
        row["picard_over_anderson_seconds"] = (row["solvers"]["picard"]["seconds_median"]
                                               / row["solvers"]["anderson"]["seconds_median"])
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--solvers", default="picard,anderson")
    ap.add_argument("--train-nodes", type=int, default=10_000)
    ap.add_argument("--avg-degree", type=float, default=10.0)
    ap.add_argument("--split", type=int, default=20, help="training labels per class")
    ap.add_argument("--data-seed", type=int, default=0)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--kappa", type=float, default=0.9)
    ap.add_argument("--tol", type=float, default=3e-6)
    ap.add_argument("--max-iter", type=int, default=300)
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--patience", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--repeats-large", type=int, default=3, help="timed passes at >= 500k nodes")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--out", default="leaderboards/runs/nodecls/sbm-scaling/results.json")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    tune_allocator()  # as the dear CLI does; recorded in the environment's hardware.allocator_tuned
    args.sizes = [int(s) for s in args.sizes.split(",")]
    args.solvers = [s for s in args.solvers.split(",") if s]
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    # What makes rows comparable; the sizes are the rows themselves, so adding a size resumes.
    config = {k: v for k, v in vars(args).items()
              if k not in ("out", "quiet", "cache_dir", "repeats", "repeats_large", "sizes")}

    out = Path(args.out)
    result: dict[str, Any] = {}
    if out.exists():
        result = json.loads(out.read_text())
        result.get("config", {}).pop("sizes", None)  # files written before sizes left the config
        if result.get("config") != config:
            print(f"{out} holds another configuration; starting afresh", file=sys.stderr)
            result = {}
    if not result:
        result = {"benchmark": "IGNN full-graph inference vs SBM size, Picard vs Anderson",
                  "timing": "median seconds of a full-graph eval forward after 1 warm-up pass; "
                            "CUDA synchronised; data loading and A_hat construction excluded "
                            "(A_hat and lambda_pf are cached on the first, untimed pass)",
                  "config": config, "rows": {}}
    state_path = out.with_name("reference_ignn.pt")
    if state_path.exists() and "reference" in result:
        state = torch.load(state_path, map_location=device)
    else:
        t0 = time.perf_counter()
        record, state = train_reference(args, device)
        result["reference"] = {"train_nodes": args.train_nodes, "test_accuracy": record["test_accuracy"],
                               "epochs_run": record["epochs_run"], "train_seconds": time.perf_counter() - t0}
        out.parent.mkdir(parents=True, exist_ok=True)
        torch.save(state, state_path)
    print(f"reference IGNN trained on {args.train_nodes:,d} nodes: test accuracy "
          f"{result['reference']['test_accuracy']:.2f}", flush=True)
    for size in args.sizes:
        if str(size) in result["rows"]:
            continue
        result["rows"][str(size)] = measure(args, size, state, device)
        result["environment"] = {"versions": versions(), "git_commit": git_commit(), "hardware": hardware(device),
                                 "load_average_1_5_15": list(os.getloadavg())}
        atomic_write_text(out, json.dumps(result, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
