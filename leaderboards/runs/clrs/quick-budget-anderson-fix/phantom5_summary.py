"""Summarise phantom5.sh (DEAR with the 5-step phantom gradient, fixed Anderson,
runs-phantom5/ALGO/dear/seed0-2) against the reference table (table.json: DEAR with the 1-step
phantom gradient, same data and seeds, and NAR), with the paired speed-ups of the seed-0 pairs
(paired_timing_phantom5.json, scripts/time_pairs.py; the 1-step ones from table.json). Writes
phantom5.json and prints a markdown table.
"""
import json
import statistics
from pathlib import Path

HERE = Path(__file__).resolve().parent
table = json.loads((HERE / "table.json").read_text())["rows"]
timing_file = HERE / "paired_timing_phantom5.json"
paired = json.loads(timing_file.read_text())["pairs"] if timing_file.exists() else {}
out = {"what": __doc__.split("\n\n")[0].replace("\n", " "), "rows": {}}
for a, ref in table.items():
    seeds = []
    for s in range(3):
        d = HERE / "runs-phantom5" / a / "dear" / f"seed{s}"
        if not (d / "results.json").exists():
            continue
        r = json.loads((d / "results.json").read_text())["results"]["64"]
        t = json.loads((d / "train_summary.json").read_text())
        seeds.append({"seed": s, "score": r["score"], "iterations": r["iterations"]["mean"],
                      "train_seconds": t["seconds_this_call"]})
    if not seeds:
        continue
    mean = statistics.fmean(x["score"] for x in seeds)
    out["rows"][a] = {
        "phantom5": {"seeds": seeds, "mean": mean,
                     "std": statistics.stdev(x["score"] for x in seeds) if len(seeds) > 1 else 0.0,
                     "iterations": statistics.fmean(x["iterations"] for x in seeds)},
        "phantom1_mean": ref["dear"]["mean"], "phantom1_iterations": ref["dear"]["iterations"],
        "nar_mean": ref["nar"]["mean"], "true_steps": ref["nar"]["true_steps"],
        "phantom5_minus_nar": mean - ref["nar"]["mean"], "phantom1_minus_nar": ref["dear"]["mean"] - ref["nar"]["mean"],
        "paired_speedup": paired[a]["dear_speedup_median"] if a in paired else None,
        "paired_ms_per_graph": ({k: 1000 * v for k, v in paired[a]["seconds_per_graph_median"].items()}
                                if a in paired else None),
        "phantom1_paired_speedup": ref.get("paired_speedup_seed0"),
    }
rows = out["rows"]
complete = [a for a, v in rows.items() if len(v["phantom5"]["seeds"]) == 3]
out["within_1_point"] = {
    "phantom5": sorted(a for a in complete if rows[a]["phantom5_minus_nar"] >= -0.01),
    "phantom1": sorted(a for a in complete if rows[a]["phantom1_minus_nar"] >= -0.01),
    "algorithms_with_3_seeds": len(complete),
}
timed = [a for a, v in rows.items() if v["paired_speedup"] is not None]
out["faster"] = {"phantom5": sorted(a for a in timed if rows[a]["paired_speedup"] > 1),
                 "phantom5_at_least_5x": sorted(a for a in timed if rows[a]["paired_speedup"] >= 5),
                 "algorithms_timed": len(timed)}
(HERE / "phantom5.json").write_text(json.dumps(out, indent=1) + "\n")
print("| algorithm | DEAR 5-step (per seed) | DEAR 1-step | NAR | 5-step - NAR | 1-step - NAR | iterations 5-step / 1-step | true steps | DEAR / NAR ms per graph (seed 0) | paired speed-up 5-step / 1-step |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for a, v in rows.items():
    p = v["phantom5"]
    per = " / ".join(f"{100 * x['score']:.1f}" for x in p["seeds"])
    ms = v["paired_ms_per_graph"]
    ms_text = f"{ms['dear']:.1f} / {ms['nar']:.1f}" if ms else "-"
    sp = f"{v['paired_speedup']:.2f}x" if v["paired_speedup"] is not None else "-"
    sp1 = f"{v['phantom1_paired_speedup']:.2f}x" if v["phantom1_paired_speedup"] is not None else "-"
    print(f"| {a} | {100 * p['mean']:.1f} ({per}) | {100 * v['phantom1_mean']:.1f} | {100 * v['nar_mean']:.1f} | "
          f"{100 * v['phantom5_minus_nar']:+.1f} | {100 * v['phantom1_minus_nar']:+.1f} | "
          f"{p['iterations']:.2f} / {v['phantom1_iterations']:.2f} | {v['true_steps']:.1f} | {ms_text} | {sp} / {sp1} |")
print(out["within_1_point"])
print(out["faster"])
