"""Summarise the tolerance-0.01 probe (tol001.sh, runs-tol0.01/) into tol001.json: per algorithm
and seed, the score and mean iterations at test tolerance 0.1 and 0.01, beside the same seed's
DEAR trained at 0.1 (runs/) and NAR (../quick-budget).

    python tol001_summary.py                      # runs-tol0.01 (1-step phantom) -> tol001.json
    python tol001_summary.py phantom5             # runs-tol0.01-phantom5 against runs-phantom5
                                                  #   -> tol001_phantom5.json
"""
import json
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
VARIANT = sys.argv[1] if len(sys.argv) > 1 else ""
PROBE = "runs-tol0.01" + (f"-{VARIANT}" if VARIANT else "")
TRAINED_AT_01 = f"runs-{VARIANT}" if VARIANT else "runs"
OUT = HERE / ("tol001" + (f"_{VARIANT}" if VARIANT else "") + ".json")


def r64(path: Path) -> dict:
    x = json.loads(path.read_text())["results"]["64"]
    return {"score": x["score"], "iterations": x["iterations"]["mean"]}


out = {"what": __doc__.split("\n\n")[0].replace("\n", " "), "algorithms": {}}
for algo_dir in sorted((HERE / PROBE).glob("*")):
    a = algo_dir.name
    rows = []
    for d in sorted((algo_dir / "dear").glob("seed*")):
        if not (d / "results.json").exists() or not (d / "results_tol0.1.json").exists():
            continue
        rows.append({"seed": int(d.name[4:]), "test_tol_0.01": r64(d / "results.json"),
                     "test_tol_0.1": r64(d / "results_tol0.1.json"),
                     "dear_trained_0.1": r64(HERE / TRAINED_AT_01 / a / "dear" / d.name / "results.json"),
                     "nar": r64(HERE.parent / "quick-budget" / a / "nar" / d.name / "results.json")})
    mean = lambda key: statistics.fmean(r[key]["score"] for r in rows)  # noqa: E731
    out["algorithms"][a] = {"seeds": rows, "mean_score": {k: mean(k) for k in
                                                          ("test_tol_0.01", "test_tol_0.1", "dear_trained_0.1", "nar")},
                            "mean_iterations_tol_0.01": statistics.fmean(r["test_tol_0.01"]["iterations"] for r in rows)}
OUT.write_text(json.dumps(out, indent=1) + "\n")
for a, v in out["algorithms"].items():
    print(a, len(v["seeds"]), {k: round(100 * x, 1) for k, x in v["mean_score"].items()},
          round(v["mean_iterations_tol_0.01"], 2))
