"""Summarise the 1800-step runs (run.sh) against the quick-budget runs of the same seeds.

    python leaderboards/runs/clrs/quick-long-probe/summary.py [RUNS]   # default: runs/ beside this file (their JSON)
"""
import json
import statistics
import sys
from pathlib import Path

here = Path(__file__).resolve().parent
runs = Path(sys.argv[1]) if len(sys.argv) > 1 else here / "runs"
base = here.parent / "quick-budget"
rows = {}
for res in sorted(runs.glob("*/*-steps*/seed*/results.json")):
    algo, variant, seed = res.parts[-4], res.parts[-3], int(res.parts[-2][4:])
    model = variant.split("-steps")[0]
    r = json.loads(res.read_text())
    t = json.loads((res.parent / "train_summary.json").read_text())
    q = json.loads((base / algo / model / f"seed{seed}" / "results.json").read_text())
    rows.setdefault(algo, {}).setdefault(model, []).append({
        "seed": seed, "steps": t["steps"], "score": 100 * r["results"]["64"]["score"],
        "iterations": r["results"]["64"]["iterations"]["mean"], "train_seconds": t["seconds_this_call"],
        "best_step": t["best"]["step"], "quick_budget_score": 100 * q["results"]["64"]["score"],
        "quick_budget_steps": q.get("trained_steps"),
        # `dear evaluate --tol T` of the same checkpoint (tolsweep.sh), where run
        "tol_sweep": {f.stem[len("results_tol"):]: {"score": 100 * json.loads(f.read_text())["results"]["64"]["score"],
                                                    "iterations": json.loads(f.read_text())["results"]["64"]["iterations"]["mean"]}
                      for f in sorted(res.parent.glob("results_tol*.json"))}})
summary = {"what": "DEAR and NAR trained 1800 optimiser steps (3x the quick profile's 600 cap), quick profile "
                   "otherwise, one thread beside one other single-thread job; test 100 graphs at n = 64, tolerance "
                   "0.1; against the same seeds' quick-budget runs (600 steps)",
           "command": "SEED=s ALGOS='...' bash run.sh (ROOT=/work/jobs/long/runs); bash tolsweep.sh", "algorithms": {}}
for algo, models in rows.items():
    out = {m: recs for m, recs in models.items()}
    seeds = sorted(set.intersection(*(set(x["seed"] for x in recs) for recs in models.values())))
    if {"dear", "nar"} <= set(models) and seeds:
        def mean(m, key):
            return statistics.fmean(x[key] for x in models[m] if x["seed"] in seeds)
        out["paired_seeds"] = seeds
        out["dear_minus_nar_1800"] = mean("dear", "score") - mean("nar", "score")
        out["dear_minus_nar_600"] = mean("dear", "quick_budget_score") - mean("nar", "quick_budget_score")
        dears = [x for x in models["dear"] if x["seed"] in seeds]
        for tol in sorted(set.intersection(*(set(x["tol_sweep"]) for x in dears))):
            out[f"dear_tol{tol}_minus_nar_1800"] = (statistics.fmean(x["tol_sweep"][tol]["score"] for x in dears)
                                                   - mean("nar", "score"))
            out[f"dear_tol{tol}_iterations"] = statistics.fmean(x["tol_sweep"][tol]["iterations"] for x in dears)
    summary["algorithms"][algo] = out
(here / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
for algo, out in summary["algorithms"].items():
    print(algo, {m: [(x["seed"], round(x["score"], 1), round(x["quick_budget_score"], 1), round(x["iterations"], 1))
                     for x in out[m]] for m in ("dear", "nar") if m in out},
          "gap 1800:", round(out.get("dear_minus_nar_1800", float("nan")), 1),
          "gap 600:", round(out.get("dear_minus_nar_600", float("nan")), 1),
          {k: round(v, 1) for k, v in out.items() if k.startswith("dear_tol")})
