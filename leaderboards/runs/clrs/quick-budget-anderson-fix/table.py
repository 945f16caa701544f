"""The ten-algorithm quick-profile table with the current code: DEAR retrained with the fixed
Anderson (runs/ALGO/dear/seed0-2) against NAR (../quick-budget/ALGO/nar/seed0-2; insertion sort:
runs/insertion_sort/nar/seed0-2, retrained and scored with dm-clrs's permutation postprocess),
test 100 graphs at n = 64, DEAR tolerance 0.1; paired speed-ups of the seed-0 checkpoints from
paired_timing_all.json. Writes table.json and prints a markdown table.
"""
import json
import statistics
from pathlib import Path

HERE = Path(__file__).resolve().parent
OLD = HERE.parent / "quick-budget"
ALGOS = ("dfs", "strongly_connected_components", "dag_shortest_paths", "insertion_sort", "floyd_warshall",
         "minimum", "mst_prim", "bellman_ford", "binary_search_dear", "bfs")


def res(path: Path) -> dict:
    r = json.loads((path / "results.json").read_text())
    return {"score": r["results"]["64"]["score"], "iterations": r["results"]["64"]["iterations"]["mean"],
            "true_steps": r["results"]["64"]["true_steps"]["mean"], "git_commit": r["git_commit"],
            "steps": r.get("trained_steps"), "path": str(path.relative_to(HERE.parents[2]))}


def stats(xs):
    return {"mean": statistics.fmean(xs), "std": statistics.stdev(xs) if len(xs) > 1 else 0.0}


paired = json.loads((HERE / "paired_timing_all.json").read_text())["pairs"] if (HERE / "paired_timing_all.json").exists() else {}
rows = {}
for a in ALGOS:
    dear = [res(HERE / "runs" / a / "dear" / f"seed{s}") for s in range(3)]
    nar_root = HERE / "runs" / a / "nar" if a == "insertion_sort" else OLD / a / "nar"
    nar = [res(nar_root / f"seed{s}") for s in range(3)]
    d, n = stats([r["score"] for r in dear]), stats([r["score"] for r in nar])
    p = paired.get(a)
    rows[a] = {
        "dear": {"scores": [r["score"] for r in dear], **d, "iterations": statistics.fmean(r["iterations"] for r in dear),
                 "runs": [r["path"] for r in dear], "eval_commits": sorted({r["git_commit"] for r in dear})},
        "nar": {"scores": [r["score"] for r in nar], **n, "true_steps": nar[0]["true_steps"],
                "runs": [r["path"] for r in nar], "eval_commits": sorted({r["git_commit"] for r in nar})},
        "steps": dear[0]["steps"],
        "dear_minus_nar": d["mean"] - n["mean"],
        "within_1_point": d["mean"] - n["mean"] >= -0.01,
        "paired_speedup_seed0": p["dear_speedup_median"] if p else None,
        "ms_per_graph_seed0": {k: v * 1e3 for k, v in p["seconds_per_graph_median"].items()} if p else None,
    }
summary = {
    "within_1_point": sum(r["within_1_point"] for r in rows.values()),
    "faster": sum(1 for r in rows.values() if (r["paired_speedup_seed0"] or 0) > 1.0),
    "at_least_5x": sum(1 for r in rows.values() if (r["paired_speedup_seed0"] or 0) >= 5.0),
    "of": len(rows),
}
(HERE / "table.json").write_text(json.dumps({"what": __doc__.strip().splitlines()[0], "summary": summary, "rows": rows},
                                            indent=1) + "\n")
print("| algorithm | steps | DEAR score | NAR score | DEAR - NAR | DEAR iters | true steps | DEAR / NAR ms per graph (seed 0) | paired speed-up |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for a, r in rows.items():
    ms = r["ms_per_graph_seed0"]
    sp = r["paired_speedup_seed0"]
    print(f"| {a} | {r['steps']} | {100 * r['dear']['mean']:.1f} +- {100 * r['dear']['std']:.1f} | "
          f"{100 * r['nar']['mean']:.1f} +- {100 * r['nar']['std']:.1f} | {100 * r['dear_minus_nar']:+.1f} | "
          f"{r['dear']['iterations']:.2f} | {r['nar']['true_steps']:.2f} | "
          + (f"{ms['dear']:.1f} / {ms['nar']:.1f} | {sp:.2f}x |" if ms else "- | - |"))
print(summary)
