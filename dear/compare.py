"""DEAR against unrolled NAR baselines, side by side: train what is missing, evaluate, tabulate.

Runs live in ``OUT/<algorithm>/<model>/seed<k>/``; finished runs and existing results are
reused, so an interrupted comparison picks up where it stopped. ``OUT/compare.json`` holds the
table: per algorithm and model, the score mean and std over seeds, seconds per sample, solver
iterations beside the true trace lengths, and DEAR's speed-up over NAR; plus, for DEAR, a
tolerance sweep (score and seconds per sample at each tolerance).
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any, Sequence

from dear.config import TrainConfig, replace
from dear.evaluate import evaluate_run
from dear.io import atomic_write_text
from dear.training import is_complete, train


def run_dir(out: Path, algorithm: str, model: str, seed: int) -> Path:
    return Path(out) / algorithm / model / f"seed{seed}"


def _results(path: Path, tol: float | None, sizes: Sequence[int] | None, device: str) -> dict[str, Any]:
    name = "results.json" if tol is None else f"results_tol{tol:g}.json"
    f = path / name
    if f.exists():
        res = json.loads(f.read_text())
        want = None if sizes is None else sorted(int(s) for s in sizes)
        if want is None or sorted(int(k) for k in res["results"]) == want:
            return res
    return evaluate_run(path, sizes=sizes, tol=tol, device=device)


def _mean_std(xs: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(xs), "std": statistics.stdev(xs) if len(xs) > 1 else 0.0, "n": len(xs)}


def compare(base: TrainConfig, algorithms: Sequence[str], models: Sequence[str], seeds: int, out: Path,
            sizes: Sequence[int] | None = None, tol_sweep: Sequence[float] = (), progress: bool = True) -> dict[str, Any]:
    out = Path(out)
    table: dict[str, Any] = {}
    for algo in algorithms:
        table[algo] = {}
        for model in models:
            per_seed = []
            for seed in range(seeds):
                cfg = replace(base, algorithm=algo, model=model, seed=seed)
                d = run_dir(out, algo, model, seed)
                if not is_complete(d):
                    train(cfg, d, progress=progress)
                per_seed.append(_results(d, None, sizes, base.device))
            sizes_seen = list(per_seed[0]["results"])
            entry: dict[str, Any] = {}
            for n in sizes_seen:
                rs = [r["results"][n] for r in per_seed]
                entry[n] = {
                    "score": _mean_std([r["score"] for r in rs]),
                    "per_seed": [r["score"] for r in rs],
                    "seconds_per_sample": statistics.median(r["seconds_per_sample"] for r in rs),
                    "iterations_mean": statistics.fmean(r["iterations"]["mean"] for r in rs) if rs[0]["iterations"] else None,
                    "true_steps_mean": rs[0]["true_steps"]["mean"],
                }
            if model == "dear" and tol_sweep:
                sweep = {}
                for tol in tol_sweep:
                    rs = [_results(run_dir(out, algo, model, s), tol, sizes, base.device) for s in range(seeds)]
                    sweep[f"{tol:g}"] = {n: {"score": _mean_std([r["results"][n]["score"] for r in rs]),
                                             "seconds_per_sample": statistics.median(r["results"][n]["seconds_per_sample"] for r in rs),
                                             "iterations_mean": statistics.fmean(r["results"][n]["iterations"]["mean"] for r in rs)}
                                         for n in sizes_seen}
                entry["tol_sweep"] = sweep
            table[algo][model] = entry
        if "dear" in table[algo] and "nar" in table[algo]:
            table[algo]["dear_speedup_over_nar"] = {
                n: table[algo]["nar"][n]["seconds_per_sample"] / table[algo]["dear"][n]["seconds_per_sample"]
                for n in table[algo]["dear"] if n != "tol_sweep"
            }
    result = {"profile": base.profile, "protocol": base.protocol, "seeds": seeds, "models": list(models),
              "algorithms": list(algorithms), "base_config": base.to_dict(), "table": table}
    atomic_write_text(out / "compare.json", json.dumps(result, indent=1))
    return result


def format_table(result: dict[str, Any]) -> str:
    lines = []
    models = result["models"]
    head = f"{'algorithm':<30} {'n':>4} " + " ".join(f"{m + ' score':>18} {m + ' s/sample':>13}" for m in models)
    if "dear" in models and "nar" in models:
        head += f" {'speed-up':>9} {'dear iters':>10} {'true steps':>10}"
    lines.append(head)
    for algo, entry in result["table"].items():
        sizes = [k for k in entry[models[0]] if k != "tol_sweep"]
        for n in sizes:
            row = f"{algo:<30} {n:>4} "
            for m in models:
                e = entry[m][n]
                row += f" {100 * e['score']['mean']:7.2f} ± {100 * e['score']['std']:5.2f}   {e['seconds_per_sample']:13.2e}"
            if "dear_speedup_over_nar" in entry:
                d = entry["dear"][n]
                row += f" {entry['dear_speedup_over_nar'][n]:8.2f}x {d['iterations_mean']:10.1f} {d['true_steps_mean']:10.1f}"
            lines.append(row)
        sweep = entry.get("dear", {}).get("tol_sweep")
        if sweep:
            for tol, per_n in sweep.items():
                for n, e in per_n.items():
                    lines.append(f"{'':<30} {n:>4}   dear tol {tol:<6} score {100 * e['score']['mean']:6.2f}  "
                                 f"{e['seconds_per_sample']:.2e} s/sample  {e['iterations_mean']:.1f} iters")
    return "\n".join(lines)
