"""FPC runs against the same seeds' quick-budget DEAR and NAR (test: 100 graphs at n = 64), at the
default tolerance 0.1 (results.json) and at 0.05 / 0.02 (results_tol<t>.json, both models).

    python summary.py [RUNS_ROOT] [OUT.json]
"""
import json, sys, statistics as st
from pathlib import Path
ROOT = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("/work/jobs/fpc/runs")
BASE = Path("/work/main/leaderboards/runs/clrs/quick-budget")
TOLS = {"0.1": "results.json", "0.05": "results_tol0.05.json", "0.02": "results_tol0.02.json"}


def res(d, name="results.json"):
    p = d / name
    if not p.exists():
        return None
    r = json.load(open(p))["results"]["64"]
    return 100 * r["score"], r["iterations"]["mean"]


out = {}
for algo_dir in sorted(p for p in ROOT.iterdir() if p.is_dir()):
    a = algo_dir.name
    for var_dir in sorted(algo_dir.iterdir()):
        v = var_dir.name.replace("dear-", "")
        entry = {}
        for tol, name in TOLS.items():
            rows = {}
            for s in (0, 1, 2):
                r, d = res(var_dir / f"seed{s}", name), res(BASE / a / "dear" / f"seed{s}", name)
                if r is None or d is None:
                    continue
                rows[s] = {"variant": r[0], "variant_iterations": r[1], "dear": d[0], "dear_iterations": d[1],
                           "nar": res(BASE / a / "nar" / f"seed{s}")[0]}
            if not rows:
                continue
            m = {k: st.mean(r[k] for r in rows.values()) for k in next(iter(rows.values()))}
            entry[tol] = {"seeds": rows, "mean": m, "variant_minus_nar": m["variant"] - m["nar"],
                          "variant_minus_dear": m["variant"] - m["dear"]}
            print(f"{a:22s} {v:6s} tol {tol:4s} seeds {list(rows)}: {v} {m['variant']:.1f} ({m['variant_iterations']:.1f} it)"
                  f"  dear {m['dear']:.1f} ({m['dear_iterations']:.1f} it)  nar {m['nar']:.1f}"
                  f"  {v}-nar {m['variant'] - m['nar']:+.1f}  {v}-dear {m['variant'] - m['dear']:+.1f}"
                  f"  per seed {[round(r['variant'], 1) for r in rows.values()]}")
        out[f"{a}/{v}"] = entry
if len(sys.argv) > 2:
    json.dump(out, open(sys.argv[2], "w"), indent=1)
