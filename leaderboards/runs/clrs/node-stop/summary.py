"""Summarise the worst-node stopping rule against the DEAR paper's (runs made by run.sh here).

For each algorithm and seed: the reference quick-profile DEAR config retrained on this host and
solved with the graph-level rule (``dear/seedN/results.json``), the same checkpoint solved with
the worst-node rule at test only (``results_stopnode.json``), and the config trained and tested
with the worst-node rule (``dear-node/seedN/results.json``); all at tolerance 0.1, test 100 graphs
at n = 64. Beside them the committed quick-profile scores of the same seeds
(``../quick-budget-anderson-fix/seeds34.json``: DEAR as committed, NAR). Means are over the seeds
every column has; the paired difference (node minus rel on the same checkpoints) is over every
seed that has both. Where ``validation.sh`` chose the test tolerance on the validation split
(``tol_on_validation[_stopnode].json``), each rule's choice and the test score and iterations
there are reported too, with means over the seeds that have both choices (a second table).
Writes ``summary.json`` here and prints the tables.

    python leaderboards/runs/clrs/node-stop/summary.py
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[3]
sys.path.insert(0, str(REPO))

from dear.evaluate import results_name  # noqa: E402
from dear.io import atomic_write_text  # noqa: E402

QUICK = HERE.parent / "quick-budget-anderson-fix" / "seeds34.json"
COLUMNS = ("rel", "node_at_test", "node_trained")


def _result(path: Path, size: str = "64") -> dict | None:
    try:
        r = json.loads(path.read_text())["results"][size]
    except (OSError, ValueError, KeyError):
        return None
    return {"score": round(100 * r["score"], 2), "iterations": round(r["iterations"]["mean"], 2),
            "ms_per_graph": round(1000 * r["seconds_per_sample"], 2)}


def _mean(xs: list[float]) -> float:
    return round(statistics.fmean(xs), 2)


def validation_choice(run_dir: Path) -> dict[str, dict]:
    """Per rule, the tolerance validation chose and the test score and iterations there (from the
    results file of that setting; the run was trained with ``rel`` at its config's tolerance)."""
    out = {}
    trained_tol = json.loads((run_dir / "config.json").read_text())["tol"]
    for rule, name in (("rel", "tol_on_validation.json"), ("node", "tol_on_validation_stopnode.json")):
        try:
            chosen = json.loads((run_dir / name).read_text())
        except (OSError, ValueError):
            continue
        tol = chosen["chosen_tol"]
        at = _result(run_dir / results_name(None if tol == trained_tol else tol, None if rule == "rel" else rule))
        if at is None:
            continue
        out[rule] = {"tol": tol, "score": at["score"], "iterations": at["iterations"]}
    return out


def summarize() -> dict:
    quick = json.loads(QUICK.read_text())["algorithms"]
    out = {}
    for algo_dir in sorted(p for p in HERE.iterdir() if p.is_dir()):
        algo = algo_dir.name
        seeds = {}
        for seed_dir in sorted((algo_dir / "dear").glob("seed*"), key=lambda p: int(p.name[4:])):
            seed = int(seed_dir.name[4:])
            row = {"rel": _result(seed_dir / "results.json"),
                   "node_at_test": _result(seed_dir / "results_stopnode.json"),
                   "node_trained": _result(algo_dir / "dear-node" / seed_dir.name / "results.json")}
            q = quick.get(algo, {})
            row["committed_dear"] = q.get("dear_per_seed", [None] * 5)[seed] if seed < 5 else None
            row["nar"] = q.get("nar_per_seed", [None] * 5)[seed] if seed < 5 else None
            row["validation_choice"] = validation_choice(seed_dir)
            seeds[str(seed)] = row
        complete = [s for s, r in seeds.items() if all(r[c] for c in COLUMNS) and r["nar"] is not None]
        means = None
        if complete:
            means = {c: {"score": _mean([seeds[s][c]["score"] for s in complete]),
                         "iterations": _mean([seeds[s][c]["iterations"] for s in complete])} for c in COLUMNS}
            means["nar"] = _mean([seeds[s]["nar"] for s in complete])
            means["committed_dear"] = _mean([seeds[s]["committed_dear"] for s in complete])
            for c in COLUMNS:
                means[c]["minus_nar"] = round(means[c]["score"] - means["nar"], 2)
        # the paired comparison (the same checkpoints, node against rel at test), over every
        # seed that has both, including seeds run without the node-trained variant
        paired = [s for s, r in seeds.items() if r["rel"] and r["node_at_test"]]
        if means and paired:
            means["node_at_test_minus_rel"] = {
                "seeds": [int(s) for s in paired],
                "per_seed": [round(seeds[s]["node_at_test"]["score"] - seeds[s]["rel"]["score"], 2) for s in paired],
                "mean": _mean([seeds[s]["node_at_test"]["score"] - seeds[s]["rel"]["score"] for s in paired]),
                "iterations_ratio": round(_mean([seeds[s]["node_at_test"]["iterations"] for s in paired])
                                          / _mean([seeds[s]["rel"]["iterations"] for s in paired]), 2)}
        chose = [s for s, r in seeds.items() if len(r["validation_choice"]) == 2 and r["nar"] is not None]
        chosen_means = None
        if chose:
            chosen_means = {"seeds": [int(s) for s in chose], "nar": _mean([seeds[s]["nar"] for s in chose])}
            for rule in ("rel", "node"):
                picks = [seeds[s]["validation_choice"][rule] for s in chose]
                score = _mean([c["score"] for c in picks])
                chosen_means[rule] = {"tols": [c["tol"] for c in picks], "score": score,
                                      "iterations": _mean([c["iterations"] for c in picks]),
                                      "minus_nar": round(score - chosen_means["nar"], 2)}
        out[algo] = {"seeds": seeds, "complete_seeds": [int(s) for s in complete], "means": means,
                     "validation_chosen": chosen_means}
    return {"what": "worst-node stopping rule (stop_mode node) vs the DEAR paper's (rel), quick profile, "
                    "tolerance 0.1, test 100 graphs at n = 64; leaderboards/runs/clrs/node-stop/summary.py",
            "algorithms": out}


def markdown(summary: dict) -> str:
    lines = ["| algorithm | seeds | rel: score (iterations) | node at test only | node trained and tested "
             "| NAR (committed) | DEAR rel as committed | rel - NAR | node at test - NAR | node trained - NAR "
             "| node at test - rel, same checkpoints (iterations x) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for algo, a in summary["algorithms"].items():
        m = a["means"]
        if not m:
            lines.append(f"| {algo} | none complete | | | | | | | | | |")
            continue
        cells = [f"{m[c]['score']:.1f} ({m[c]['iterations']:.1f})" for c in COLUMNS]
        gaps = [f"{m[c]['minus_nar']:+.1f}" for c in COLUMNS]
        seeds = ",".join(str(s) for s in a["complete_seeds"])
        paired = m["node_at_test_minus_rel"]
        paired_seeds = ",".join(str(s) for s in paired["seeds"])
        lines.append(f"| {algo} | {seeds} | {' | '.join(cells)} | {m['nar']:.1f} | {m['committed_dear']:.1f} | "
                     f"{' | '.join(gaps)} | {paired['mean']:+.1f} ({paired['iterations_ratio']:.2f}x; "
                     f"seeds {paired_seeds}) |")
    chosen = {algo: a["validation_chosen"] for algo, a in summary["algorithms"].items() if a.get("validation_chosen")}
    if chosen:
        lines += ["", "Test tolerance chosen on validation (n = 16), same checkpoints, test n = 64:", "",
                  "| algorithm | seeds | rel: tolerances chosen | rel: score (iterations) | node: tolerances chosen "
                  "| node: score (iterations) | NAR (committed) | rel - NAR | node - NAR |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for algo, c in chosen.items():
            cells = []
            for rule in ("rel", "node"):
                cells += ["/".join(f"{t:g}" for t in c[rule]["tols"]), f"{c[rule]['score']:.1f} ({c[rule]['iterations']:.1f})"]
            lines.append(f"| {algo} | {','.join(str(s) for s in c['seeds'])} | {' | '.join(cells)} | {c['nar']:.1f} | "
                         f"{c['rel']['minus_nar']:+.1f} | {c['node']['minus_nar']:+.1f} |")
    return "\n".join(lines)


def main() -> int:
    summary = summarize()
    atomic_write_text(HERE / "summary.json", json.dumps(summary, indent=1) + "\n")
    print(markdown(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
