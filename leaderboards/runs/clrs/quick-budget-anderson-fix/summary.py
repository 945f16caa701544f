"""Summarise the Anderson-fix measurements into summary.json (means over the seeds present)."""
import json
import statistics
from pathlib import Path

HERE = Path(__file__).resolve().parent
NAR = HERE.parent / "quick-budget"


def mean(xs):
    return round(statistics.fmean(xs), 4) if xs else None


reeval = json.loads((HERE / "reeval.json").read_text())
algos = sorted({v["algorithm"] for v in reeval.values()})
out = {"what": "quick-budget DEAR checkpoints (trained with the Anderson of before commit 531e2a8, which never "
               "stored <r_0, r_0>) re-evaluated with the fixed Anderson, nothing retrained; then DEAR retrained "
               "with the fixed Anderson (runs/, retrain.sh); test 100 graphs at n = 64, tolerance 0.1. NAR is "
               "the quick-budget NAR of the same seeds (unaffected: no solver).",
       "reevaluated": {}, "retrained": {}}
for a in algos:
    rows = [v for v in reeval.values() if v["algorithm"] == a]
    nar = [json.loads((NAR / a / "nar" / f"seed{v['seed']}" / "results.json").read_text())["results"]["64"]
           for v in rows]
    out["reevaluated"][a] = {
        "seeds": [v["seed"] for v in rows],
        "score_before": mean([v["before"]["score"] for v in rows]),
        "score_fixed": mean([v["fixed"]["score"] for v in rows]),
        "iterations_before": mean([v["before"]["iterations"]["mean"] for v in rows]),
        "iterations_fixed": mean([v["fixed"]["iterations"]["mean"] for v in rows]),
        "nar_score": mean([r["score"] for r in nar]),
        "nar_true_steps": mean([r["true_steps"]["mean"] for r in nar]),
    }
for d in sorted((HERE / "runs").glob("*/dear/seed*")):
    f = d / "results.json"
    if not f.exists():
        continue
    r = json.loads(f.read_text())["results"]["64"]
    a, seed = d.parts[-3], int(d.name[4:])
    nar = json.loads((NAR / a / "nar" / d.name / "results.json").read_text())["results"]["64"]
    old = json.loads((NAR / a / "dear" / d.name / "results.json").read_text())["results"]["64"]
    out["retrained"].setdefault(a, []).append({
        "seed": seed, "score": r["score"], "iterations": r["iterations"]["mean"],
        "old_dear_score": old["score"], "old_dear_iterations": old["iterations"]["mean"], "nar_score": nar["score"]})
pt = HERE / "paired_timing.json"
if pt.exists():
    out["paired_timing"] = "paired_timing.json (scripts/time_pairs.py with the fixed Anderson, seed 0 checkpoints, "\
                           "one thread beside two other single-thread jobs: ratios only)"
(HERE / "summary.json").write_text(json.dumps(out, indent=1) + "\n")
for a, v in out["reevaluated"].items():
    print(f"{a:32s} score {v['score_before']:.3f} -> {v['score_fixed']:.3f} (NAR {v['nar_score']:.3f}); "
          f"iterations {v['iterations_before']:.2f} -> {v['iterations_fixed']:.2f} (NAR steps {v['nar_true_steps']:.2f})")
for a, rows in out["retrained"].items():
    for r in rows:
        print(f"retrained {a} seed {r['seed']}: {r['score']:.3f} ({r['iterations']:.2f} it) vs old DEAR "
              f"{r['old_dear_score']:.3f} ({r['old_dear_iterations']:.2f}) vs NAR {r['nar_score']:.3f}")
