"""Side-by-side table of measured node-classification runs and the IGNN-Solver paper's Table 3.

Reads every ``results.json`` under ``--runs`` (laid out ``<runs>/<dataset>/<model>/``, as
``dear nodecls train --out`` writes them) and writes ``--out`` (JSON: per dataset and model,
the measured test accuracy mean / sample std / seeds, inference seconds, solver iterations,
and the paper's number for the same model where it has one) plus a Markdown table on stdout.
The paper's numbers are reference values copied from its Table 3 (60 labels per class,
5 trials), never measured here; missing runs are shown as missing, never as zero.

    python scripts/summarize_nodecls.py                      # leaderboards/runs/nodecls/amgcn60
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

from dear.io import atomic_write_text

DATASETS = ("citeseer", "acm", "blogcatalog", "flickr")
#: Table 3 of the IGNN-Solver paper (shared/papers/004_*.txt): mean test accuracy, 5 trials.
PAPER_TABLE3: dict[str, dict[str, float]] = {
    "gcn": {"citeseer": 64.80, "acm": 83.78, "blogcatalog": 71.30, "flickr": 76.98},
    "gat": {"citeseer": 71.24, "acm": 80.60, "blogcatalog": 76.24, "flickr": 72.64},
    "sgc": {"citeseer": 70.32, "acm": 85.40, "blogcatalog": 69.76, "flickr": 71.88},
    "appnp": {"citeseer": 61.56, "acm": 84.16, "blogcatalog": 61.34, "flickr": 73.42},
    "jknet": {"citeseer": 63.78, "acm": 64.96, "blogcatalog": 72.62, "flickr": 75.68},
    "gcnii": {"citeseer": 71.98, "acm": 85.36, "blogcatalog": 74.94, "flickr": 79.92},
    "ignn-picard": {"citeseer": 72.96, "acm": 90.88, "blogcatalog": 75.68, "flickr": 75.80},
    "ignn-anderson": {"citeseer": 72.96, "acm": 90.88, "blogcatalog": 75.68, "flickr": 75.80},
}
ORDER = ("mlp", "gcn", "gat", "sgc", "appnp", "jknet", "gcnii", "ignn-picard", "ignn-anderson")


def row(results: dict[str, Any]) -> dict[str, Any]:
    acc = results["test_accuracy"]
    per_seed = list(acc["per_seed"])
    out = {"mean": acc["mean"], "std": statistics.stdev(per_seed) if len(per_seed) > 1 else 0.0,
           "seeds": len(per_seed), "inference_seconds": (results.get("inference_seconds") or {}).get("median")}
    it = results.get("iterations")
    if it:
        out["iterations_mean"] = it.get("mean")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", default="leaderboards/runs/nodecls/amgcn60")
    ap.add_argument("--out", default="leaderboards/runs/nodecls/amgcn60/summary.json")
    args = ap.parse_args(argv)
    runs = Path(args.runs)
    table: dict[str, dict[str, Any]] = {}
    for ds in DATASETS:
        for model_dir in sorted((runs / ds).glob("*/results.json")):
            model = model_dir.parent.name
            res = json.loads(model_dir.read_text())
            if not res.get("complete", True):
                continue
            entry = row(res)
            paper = PAPER_TABLE3.get(model, {}).get(ds)
            entry["paper"] = paper
            entry["minus_paper"] = entry["mean"] - paper if paper is not None else None
            table.setdefault(model, {})[ds] = entry
    models = [m for m in ORDER if m in table] + sorted(m for m in table if m not in ORDER)
    summary = {"description": "AM-GCN 60-label split, measured test accuracy (mean, sample std over seeds) beside "
                              "the IGNN-Solver paper's Table 3 (reference values, not measured here)",
               "runs": str(runs), "table": {m: table[m] for m in models}}
    atomic_write_text(Path(args.out), json.dumps(summary, indent=1))
    print("| model | " + " | ".join(f"{ds} (ours)" + f" | {ds} (paper)" for ds in DATASETS) + " |")
    print("|---" * (1 + 2 * len(DATASETS)) + "|")
    for m in models:
        cells = []
        for ds in DATASETS:
            e = table[m].get(ds)
            cells.append(f"{e['mean']:.2f} ± {e['std']:.2f} ({e['seeds']})" if e else "not run")
            p = PAPER_TABLE3.get(m, {}).get(ds)
            cells.append(f"{p:.2f}" if p is not None else "-")
        print(f"| {m} | " + " | ".join(cells) + " |")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
