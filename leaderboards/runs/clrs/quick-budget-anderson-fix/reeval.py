"""Re-evaluate the quick-budget DEAR checkpoints (trained with the Anderson of before the
first-Gram-entry fix, commit 531e2a8) with the fixed Anderson: same checkpoints,
same test split (100 graphs, n = 64), tolerance 0.1, nothing retrained. Writes
reeval.json (resumable: finished (algorithm, seed) pairs are kept)."""
import json
import sys
from pathlib import Path

from dear.evaluate import evaluate_run
from dear.runtime import tune_allocator

HERE = Path(__file__).resolve().parent
RUNS = HERE.parent / "quick-budget"
ALGOS = ["dfs", "strongly_connected_components", "dag_shortest_paths", "insertion_sort", "floyd_warshall",
         "minimum", "mst_prim", "bellman_ford", "binary_search_dear", "bfs"]
TOLS = [float(t) for t in (sys.argv[1].split(",") if len(sys.argv) > 1 else ["0.1"])]

tune_allocator()
out = HERE / "reeval.json"
done = json.loads(out.read_text()) if out.exists() else {}
for tol in TOLS:
    for seed in (0, 1, 2):
        for algo in ALGOS:
            key = f"{algo}/seed{seed}/tol{tol:g}"
            if key in done:
                continue
            run = RUNS / algo / "dear" / f"seed{seed}"
            old_file = run / ("results.json" if tol == 0.1 else f"results_tol{tol:g}.json")
            old = json.loads(old_file.read_text())["results"]["64"] if old_file.exists() else None
            r = evaluate_run(run, tol=None if tol == 0.1 else tol, device="cpu", repeats=1, warmup=0,
                             write=False)["results"]["64"]
            done[key] = {
                "algorithm": algo, "seed": seed, "tol": tol,
                "fixed": {"score": r["score"], "iterations": r["iterations"], "nfe": r["nfe"],
                          "seconds_per_sample": r["seconds_per_sample"]},
                "before": None if old is None else {"score": old["score"], "iterations": old["iterations"],
                                                    "nfe": old.get("nfe"),
                                                    "seconds_per_sample": old["seconds_per_sample"]},
            }
            b = done[key]["before"]
            print(f"{key}: score {b and round(b['score'], 4)} -> {round(r['score'], 4)}, iterations "
                  f"{b and b['iterations']['mean']} -> {r['iterations']['mean']}", flush=True)
            out.write_text(json.dumps(done, indent=1) + "\n")
