"""Summarise run.sh and sweep.sh: DEAR trained with the learned solver in the loop (ALGO/seedK)
against DEAR trained and evaluated with Anderson, same seeds and settings otherwise (the quick
profile's reference runs, leaderboards/runs/clrs/quick-budget-anderson-fix/runs-phantom5/ALGO/dear/seedK).
Each model is solved with its own solver, test 100 graphs at n = 64.

Two comparisons, both over the seeds both sides have (seed means):
* at the training tolerance (0.1) on both sides;
* at equal score, as the issue asks: the reference is the Anderson-trained model at 0.1; each
  side takes the tolerance (of 0.3, 0.2, 0.1, 0.05, where evaluated) with the fewest
  evaluations whose mean score is within 1 point of the reference or better, and the ratio of
  those evaluations is the speed-up (none where the learned side never reaches it).
Seconds per graph are `dear evaluate`'s (one timed pass, one thread beside
another single-thread job: rough; paired_timing.json times pairs alternately). Evaluations are per graph (the engine's per-graph first-hit iterations, one processor
evaluation each); `nfe` are per batch of 32 (a batch evaluates until its last graph stops).
The target is >= 1.3x fewer evaluations at equal score. Writes summary.json, prints markdown.
`python summary.py DIR` summarises a variant's runs in DIR (DIR/ALGO/seedK) into DIR/summary.json.
"""
import json
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RUNS = Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else HERE
ANDERSON = HERE.parents[1] / "clrs" / "quick-budget-anderson-fix" / "runs-phantom5"
TOLS = (0.3, 0.2, 0.1, 0.05)
TRAIN_TOL = 0.1


def read(run: Path, tol: float) -> dict | None:
    path = run / ("results.json" if tol == TRAIN_TOL else f"results_tol{tol:g}.json")
    if not path.exists():
        return None
    res = json.loads(path.read_text())
    r = res["results"]["64"]
    return {"score": r["score"], "iterations": r["iterations"]["mean"], "nfe": r["nfe"]["mean"],
            "seconds_per_sample": r["seconds_per_sample"], "fallback_fraction": r.get("fallback_fraction")}


def side_means(runs: list[Path]) -> dict[str, dict]:
    """{tol: seed-mean score, iterations, nfe} over the tolerances every run was evaluated at."""
    out = {}
    for tol in TOLS:
        rs = [read(r, tol) for r in runs]
        if all(rs):
            out[f"{tol:g}"] = {k: statistics.fmean(r[k] for r in rs) for k in ("score", "iterations", "nfe", "seconds_per_sample")}
    return out


def cheapest(curve: dict[str, dict], floor: float) -> tuple[str, dict] | None:
    ok = [(t, v) for t, v in curve.items() if v["score"] >= floor]
    return min(ok, key=lambda tv: tv[1]["iterations"]) if ok else None


rows = {}
for algo_dir in sorted(p for p in RUNS.iterdir() if p.is_dir() and list(p.glob("seed*"))):
    seeds = [r.name for r in sorted(algo_dir.glob("seed*"))
             if (r / "results.json").exists() and (ANDERSON / algo_dir.name / "dear" / r.name / "results.json").exists()]
    if not seeds:
        continue
    learned = side_means([algo_dir / s for s in seeds])
    anderson = side_means([ANDERSON / algo_dir.name / "dear" / s for s in seeds])
    per_seed = {s: {"learned": read(algo_dir / s, TRAIN_TOL), "anderson": read(ANDERSON / algo_dir.name / "dear" / s, TRAIN_TOL)}
                for s in seeds}
    L, A = learned["0.1"], anderson["0.1"]
    floor = A["score"] - 0.01
    best_l, best_a = cheapest(learned, floor), cheapest(anderson, floor)
    equal = None
    if best_l and best_a:
        equal = {"learned_tol": best_l[0], "anderson_tol": best_a[0], "learned": best_l[1], "anderson": best_a[1],
                 "iterations_ratio": best_a[1]["iterations"] / best_l[1]["iterations"],
                 "nfe_ratio": best_a[1]["nfe"] / best_l[1]["nfe"],
                 "seconds_ratio": best_a[1]["seconds_per_sample"] / best_l[1]["seconds_per_sample"]}
    rows[algo_dir.name] = {
        "seeds": seeds, "per_seed_at_0.1": per_seed, "learned_curve": learned, "anderson_curve": anderson,
        "at_training_tol": {"score_difference": L["score"] - A["score"],
                            "iterations_ratio": A["iterations"] / L["iterations"], "nfe_ratio": A["nfe"] / L["nfe"]},
        "equal_score": equal,
        "meets_target": bool(equal and equal["iterations_ratio"] >= 1.3),
    }

out = {"what": __doc__.split("\n\n")[0].replace("\n", " "), "rows": rows,
       "meets_target": sorted(a for a, r in rows.items() if r["meets_target"])}
(RUNS / "summary.json").write_text(json.dumps(out, indent=1) + "\n")
print("| algorithm | seeds | at 0.1: score learned-trained / Anderson-trained | iterations per graph at 0.1: learned / Anderson (ratio) | equal score: learned (tol, iterations) / Anderson (tol, iterations) | fewer evaluations at equal score | seconds there: Anderson / learned |")
print("| --- | --- | --- | --- | --- | --- | --- |")
for a, r in rows.items():
    L, A, e = r["learned_curve"]["0.1"], r["anderson_curve"]["0.1"], r["equal_score"]
    eq = "never reaches it" if e is None else (
        f"{e['learned_tol']}, {e['learned']['iterations']:.2f} / {e['anderson_tol']}, {e['anderson']['iterations']:.2f}")
    ratio = "none" if e is None else f"{e['iterations_ratio']:.2f}x" + (" (meets)" if r["meets_target"] else "")
    print(f"| {a} | {len(r['seeds'])} | {100 * L['score']:.1f} / {100 * A['score']:.1f} | "
          f"{L['iterations']:.2f} / {A['iterations']:.2f} ({r['at_training_tol']['iterations_ratio']:.2f}x) | {eq} | {ratio} | "
          f"{'-' if e is None else format(e['seconds_ratio'], '.2f') + 'x'} |")
print("meets the target on", len(out["meets_target"]), ":", ", ".join(out["meets_target"]))
