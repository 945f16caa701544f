"""Five-seed means for the algorithms seeds34.sh extends (minimum and MST-Prim; the other eight
on 2026-12-02): DEAR (5-step phantom gradient) seeds
0-4 from runs-phantom5/, NAR seeds 0-2 from ../quick-budget/ (insertion sort: runs/) and 3-4 from runs-nar-seeds34/, test
score at n = 64. Also the NAR seed-0 retrain of minimum (one thread) against the committed one
(two threads). Writes seeds34.json.  Usage: python seeds34_summary.py"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

HERE = Path(__file__).resolve().parent


def score(run: Path) -> float | None:
    f = run / "results.json"
    return round(100 * json.loads(f.read_text())["results"]["64"]["score"], 2) if f.exists() else None


def stats(xs: list[float]) -> dict:
    return {"mean": round(statistics.mean(xs), 2), "std": round(statistics.stdev(xs), 2) if len(xs) > 1 else 0.0,
            "n": len(xs)}


out = {"algorithms": {}}
for algo in ("minimum", "mst_prim", "bfs", "dag_shortest_paths", "strongly_connected_components", "bellman_ford",
             "insertion_sort", "dfs", "floyd_warshall", "binary_search_dear"):
    dear = [score(HERE / "runs-phantom5" / algo / "dear" / f"seed{s}") for s in range(5)]
    # NAR seeds 0-2 as in table.py: ../quick-budget, except insertion sort (runs/, retrained and
    # scored with dm-clrs's permutation postprocess, as seeds 3-4 are)
    nar_root = HERE / "runs" / algo / "nar" if algo == "insertion_sort" else HERE.parent / "quick-budget" / algo / "nar"
    nar = [score(nar_root / f"seed{s}") for s in range(3)]
    nar += [score(HERE / "runs-nar-seeds34" / algo / "nar" / f"seed{s}") for s in (3, 4)]
    row = {"dear_per_seed": dear, "nar_per_seed": nar}
    for k, n in (("3_seeds", 3), ("5_seeds", 5)):
        d, r = [x for x in dear[:n] if x is not None], [x for x in nar[:n] if x is not None]
        if len(d) == n and len(r) == n:
            row[k] = {"dear": stats(d), "nar": stats(r), "dear_minus_nar": round(statistics.mean(d) - statistics.mean(r), 2)}
    out["algorithms"][algo] = row
    print(algo, json.dumps(row))
re0 = score(HERE / "runs-nar-seeds34" / "minimum" / "nar" / "seed0")
out["minimum_nar_seed0_retrained_one_thread"] = {"score": re0, "committed_two_threads": score(
    HERE.parent / "quick-budget" / "minimum" / "nar" / "seed0")}
print(out["minimum_nar_seed0_retrained_one_thread"])
(HERE / "seeds34.json").write_text(json.dumps(out, indent=1) + "\n")
