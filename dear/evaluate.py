"""Evaluating a trained run: CLRS scores per test size, inference timing, solver iterations.

``results.json`` schema (``schema_version`` 1)::

    {"schema_version": 1, "algorithm", "model", "seed", "protocol",
     "results": {"<n>": {"score", "outputs": {name: value}, "num_graphs",
                         "seconds_per_sample", "timing": {"method", "repeats", "warmup", "batch_size", "seconds": [...]},
                         "iterations": {"mean", "max"}, "true_steps": {"mean", "max"},
                         "nfe": {"mean"}, "converged_fraction", "fallback_fraction"}},
     "tol", "checkpoint": {"step", "val"}, "trained_steps", "fingerprints": {"<n>": sha256},
     "versions", "hardware", "git_commit", "config"}

``iterations`` are the processor applications per graph (DEAR: solver iterations until that
graph's first iterate under tolerance; NAR: its unrolled steps); ``true_steps`` are the traces'
own lengths, reported beside them and never given to DEAR. ``trained_steps`` is the number of
optimiser steps the run took (its ``train_summary.json``; ``config.steps`` is the cap, which
a ``step_budget`` may lower), null for a run without a summary. ``fallback_fraction`` (DEAR with a
learned solver, else null) is the share of test graphs whose solve needed the classic fallback
after the K learned steps. Timing: the test batches are
collated and moved to the device first (data loading excluded); the scoring pass runs every
batch once, then ``warmup`` more untimed passes (default 1), then ``repeats`` timed passes (CUDA synchronised before reading clocks); the median pass divided by
the number of graphs is ``seconds_per_sample``.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any, Sequence

import torch

import clrs_tasks as ct
from dear.config import TrainConfig
from dear.io import atomic_write_text, git_commit, hardware, resolve_device, versions
from dear.training import RunError, build, load_data

SCHEMA_VERSION = 1


def load_run(run_dir: Path, device: torch.device, tol: float | None = None) -> tuple[TrainConfig, torch.nn.Module, dict]:
    """The run's config and its best checkpoint's model (on ``device``, eval mode)."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.json").exists():
        raise RunError(f"{run_dir} is not a run directory (no config.json); train one with `dear train --out DIR`")
    cfg = TrainConfig.load(run_dir / "config.json")
    ckpt_path = run_dir / "checkpoint_best.pt"
    if not ckpt_path.exists():
        raise RunError(f"{run_dir} has no checkpoint_best.pt yet; finish training first (`dear train` resumes it)")
    if tol is not None:
        if cfg.model != "dear":
            raise RunError("--tol only applies to dear runs")
        cfg.tol = tol
    ckpt = torch.load(ckpt_path, map_location=device, weights_only=False)
    val = load_data(cfg, "val", num_samples=1)
    model = build(cfg, val.spec).to(device)
    model.load_state_dict(ckpt["model"])
    model.eval()
    return cfg, model, ckpt


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def evaluate_size(cfg: TrainConfig, model: torch.nn.Module, size: int | None, device: torch.device,
                  repeats: int = 5, warmup: int = 1, batch_size: int | None = None) -> tuple[dict[str, Any], str]:
    from dear.reasoners import predictions_for_scoring  # noqa: PLC0415

    overrides = {} if size is None else {"sizes": size}
    ds = load_data(cfg, "test", **overrides)
    bs = batch_size or cfg.batch_size
    batches = [ct.collate([ds[i] for i in range(s, min(s + bs, len(ds)))]).to(device) for s in range(0, len(ds), bs)]
    ev = ct.Evaluator()
    iters, steps, nfe, converged, fallback = [], [], [], [], []
    for batch in batches:
        out, stats = model(batch)
        ev.add(batch.cpu(), {k: v.cpu() for k, v in predictions_for_scoring(batch, out).items()})
        it = stats.get("iterations")
        if it is not None:
            iters += torch.as_tensor(it).reshape(-1).tolist()
        steps += batch.length.reshape(-1).tolist()
        if stats.get("nfe") is not None:
            nfe.append(float(stats["nfe"]))
        if stats.get("converged") is not None:
            converged += torch.as_tensor(stats["converged"]).reshape(-1).float().tolist()
        if stats.get("fallback") is not None:  # learned solver: K learned steps were not enough
            fallback += torch.as_tensor(stats["fallback"]).reshape(-1).float().tolist()
    scores = ev.result()
    for _ in range(warmup):
        for batch in batches:
            model(batch)
    times = []
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        for batch in batches:
            model(batch)
        _sync(device)
        times.append(time.perf_counter() - t0)
    n_graphs = len(ds)
    res = {
        "score": scores["score"],
        "outputs": {k: v for k, v in scores.items() if k != "score"},
        "num_graphs": n_graphs,
        "nodes": int(ds.num_nodes_per_graph.max()),
        "seconds_per_sample": statistics.median(times) / n_graphs,
        "timing": {"method": "median of timed passes over pre-collated device batches after the scoring pass and "
                             "`warmup` more untimed passes; "
                             "CUDA synchronised; data loading excluded",
                   "repeats": repeats, "warmup": warmup, "batch_size": bs, "seconds": times},
        "iterations": {"mean": statistics.fmean(iters), "max": max(iters)} if iters else None,
        "true_steps": {"mean": statistics.fmean(steps), "max": max(steps)},
        "nfe": {"mean": statistics.fmean(nfe)} if nfe else None,
        "converged_fraction": statistics.fmean(converged) if converged else None,
        "fallback_fraction": statistics.fmean(fallback) if fallback else None,
    }
    return res, ds.fingerprint


def _trained_steps(run_dir: Path) -> int | None:
    try:
        return int(json.loads((run_dir / "train_summary.json").read_text())["steps"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def evaluate_run(run_dir: Path, sizes: Sequence[int] | None = None, tol: float | None = None, device: str = "auto",
                 repeats: int = 5, warmup: int = 1, write: bool = True) -> dict[str, Any]:
    """Evaluate a run on its protocol's test split (or the given sizes); write results.json."""
    dev = resolve_device(device)
    cfg, model, ckpt = load_run(Path(run_dir), dev, tol)
    results, fps = {}, {}
    for size in (sizes or [None]):
        res, fp = evaluate_size(cfg, model, size, dev, repeats=repeats, warmup=warmup)
        key = str(res["nodes"])
        results[key], fps[key] = res, fp
    out = {
        "schema_version": SCHEMA_VERSION,
        "algorithm": cfg.algorithm, "model": cfg.model, "seed": cfg.seed, "protocol": cfg.protocol,
        "processor": cfg.processor, "tol": cfg.tol if cfg.model == "dear" else None,
        "results": results,
        "checkpoint": {"step": ckpt.get("step"), "val": ckpt.get("val")},
        "trained_steps": _trained_steps(Path(run_dir)),
        "fingerprints": fps, "versions": versions(), "hardware": hardware(dev), "git_commit": git_commit(),
        "config": cfg.to_dict(),
    }
    if write:
        name = "results.json" if tol is None else f"results_tol{tol:g}.json"
        atomic_write_text(Path(run_dir) / name, json.dumps(out, indent=1))
    return out


def format_results(res: dict[str, Any]) -> str:
    """A plain-text table of one results dict."""
    lines = [f"{res['algorithm']} / {res['model']} (seed {res['seed']}, {res['protocol']} protocol)"]
    lines.append(f"{'n':>5} {'score':>7} {'s/sample':>10} {'iters mean/max':>15} {'true steps mean/max':>20}  outputs")
    for n, r in res["results"].items():
        it = r["iterations"]
        its = f"{it['mean']:.1f}/{it['max']}" if it else "-"
        ts = f"{r['true_steps']['mean']:.1f}/{r['true_steps']['max']:.0f}"
        outs = ", ".join(f"{k}={v:.3f}" for k, v in r["outputs"].items())
        if r.get("fallback_fraction") is not None:
            outs += f"; fallback in {100 * r['fallback_fraction']:.0f}% of graphs"
        lines.append(f"{n:>5} {r['score']:7.3f} {r['seconds_per_sample']:10.2e} {its:>15} {ts:>20}  {outs}")
    return "\n".join(lines)
