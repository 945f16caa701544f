"""Summarise the `paper`-profile runs trained on a CPU (leaderboards/runs/clrs/paper-cpu/).

Each algorithm there holds ``dear/seed0`` and ``nar/seed0`` (``dear train --profile paper`` then
``dear evaluate``; the folder's README has the commands). This reads their ``results.json`` and
``train_summary.json``, sets them beside the quick profile's scores of the same algorithm
(``quick-budget-anderson-fix/seeds34.json``: five seeds each, and seed 0), writes
``summary.json`` next to the runs and prints a markdown table. Algorithms with one model
missing, or not yet evaluated, are listed as such and left out of the table. ``dear evaluate``'s
seconds are taken beside whatever else ran; where the folder has ``paired_timing.json``
(``scripts/time_pairs.py --runs DIR --seed 0``: DEAR and NAR passes alternated) its median
speed-up is reported beside them. DEAR evaluated again at other solver tolerances
(``dear evaluate RUN --tol T`` writes ``results_tol<T>.json``) is reported per tolerance. DEAR
trained with other settings lives beside the plain run as ``ALGO/dear-LABEL/seed0`` (for example
``dear-tol0.05``: trained and tested at tolerance 0.05) and is reported as a variant, with the
settings its ``config.json`` changes and its gap to the same NAR. Seeds other than 0 are listed
in numeric order. DEAR solved with the worst-node stopping rule (``dear evaluate RUN
--stop-mode node [--tol T]``) is reported per tolerance, and the tolerance
``scripts/tol_on_validation.py`` chose on validation under each rule beside its test score; the
same for every other seed, and seed means (``over_seeds``: at the trained tolerance, and at each
rule's validation choice over the seeds that have one) once seed 0 has company.

    python scripts/summarize_paper_cpu.py            # default folder
    python scripts/summarize_paper_cpu.py --dir DIR --size 64
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dear.io import atomic_write_text  # noqa: E402

RUNS = REPO / "leaderboards" / "runs" / "clrs"
QUICK = RUNS / "quick-budget-anderson-fix" / "seeds34.json"


def _load(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def model_row(run_dir: Path, size: str) -> dict | None:
    """Test score (percent), iterations, ms per graph and best validation of one finished,
    evaluated run; None when the run has no results at ``size``."""
    results, summary = _load(run_dir / "results.json"), _load(run_dir / "train_summary.json")
    if not results or not summary or size not in results.get("results", {}):
        return None
    r = results["results"][size]
    return {
        "test_score": round(100 * r["score"], 2),
        "iterations": r["iterations"],
        "true_steps": r["true_steps"],
        "ms_per_graph": round(1000 * r["seconds_per_sample"], 2),
        "trained_steps": summary["steps"],
        "best_validation": {"step": summary["best"]["step"], "score": round(100 * summary["best"]["score"], 2)},
        # a resumed run's summary times only its last call: the whole training time is unknown
        "train_hours": (None if summary.get("resumed_from")
                        else round(summary.get("seconds_this_call", float("nan")) / 3600, 2)),
        "resumed_from": summary.get("resumed_from"),
        "last_call_hours": round(summary.get("seconds_this_call", float("nan")) / 3600, 2),
        "git_commit": results.get("git_commit"),
        "hardware": {k: results.get("hardware", {}).get(k) for k in ("cpu_model", "cpu_capability", "torch_threads")},
    }


def _by_tolerance(paths: list[Path], size: str, stop_mode: str | None = None) -> dict[str, dict]:
    """Score and iterations at ``size`` from results files, keyed by the tolerance each was solved
    at (from the file, else its name's ``tol`` suffix), tightest first as numbers; with
    ``stop_mode``, only files solved with that rule."""
    out = {}
    for path in paths:
        results = _load(path)
        if not results or size not in results.get("results", {}):
            continue
        if stop_mode is not None and results.get("stop_mode") != stop_mode:
            continue
        tol = results.get("tol")
        key = f"{tol:g}" if tol is not None else path.stem.rpartition("_tol")[2]
        r = results["results"][size]
        out[key] = {"test_score": round(100 * r["score"], 2), "iterations": r["iterations"]}
    return dict(sorted(out.items(), key=lambda kv: float(kv[0])))


def other_tolerances(run_dir: Path, size: str) -> dict[str, dict]:
    """Score and iterations of the run re-evaluated at other solver tolerances, keyed by the
    tolerance as ``dear evaluate --tol`` wrote it (empty when there are none)."""
    return _by_tolerance(sorted(run_dir.glob("results_tol*.json")), size)


# Settings a DEAR variant may change; the summary names those that differ from the plain run.
_VARIANT_KEYS = ("tol", "max_iter", "max_iter_test", "solver", "backward", "phantom_steps", "jac_reg",
                 "noise", "processor", "hidden", "lr", "steps", "batch_size", "align_weight")


def _seed_number(seed_dir: Path) -> tuple[int, str]:
    """Sort key for ``seedN`` folders: by N as a number (seed10 after seed2)."""
    digits = seed_dir.name.removeprefix("seed")
    return (int(digits), "") if digits.isdigit() else (10**9, seed_dir.name)


def node_stop(run_dir: Path, size: str) -> dict[str, dict]:
    """Score and iterations of the run solved with the worst-node stopping rule
    (``dear evaluate RUN --stop-mode node [--tol T]``), keyed by tolerance, loosest last."""
    paths = [run_dir / "results_stopnode.json", *sorted(run_dir.glob("results_stopnode_tol*.json"))]
    return _by_tolerance(paths, size, stop_mode="node")


def validation_choices(run_dir: Path) -> dict[str, dict]:
    """The tolerance ``scripts/tol_on_validation.py`` picked on the validation split, per
    stopping rule (``rel``: the run's own, ``node``: with ``--stop-mode node``), and the test score there."""
    out = {}
    for rule, name in (("rel", "tol_on_validation.json"), ("node", "tol_on_validation_stopnode.json")):
        chosen = _load(run_dir / name)
        if chosen:
            out[rule] = {"tol": chosen["chosen_tol"], "test_score": chosen["test_score_at_chosen"],
                         "tols_tried": [r["tol"] for r in chosen["sweep"]]}
    return out


def dear_sweeps(run_dir: Path, size: str) -> dict[str, dict]:
    """What a DEAR run holds beside ``results.json``: its other test tolerances, the worst-node
    rule per tolerance and the validation choices (the same for every seed)."""
    return {"other_tolerances": other_tolerances(run_dir, size), "node_stop": node_stop(run_dir, size),
            "validation_choice": validation_choices(run_dir)}


def _mean(values: list[float]) -> float:
    return round(sum(values) / len(values), 2)


def over_seeds(dear: dict, nar: dict, more: dict[str, dict]) -> dict | None:
    """Seed means where seed 0 has company: DEAR and NAR at the trained tolerance, and DEAR at the
    tolerance validation chose under each stopping rule, over the seeds that have that choice
    (their NAR's mean beside it, so the gap pairs the same seeds). None with seed 0 alone."""
    if not more:
        return None
    seeds = {"0": {"dear": dear["test_score"], "nar": nar["test_score"],
                   "validation_choice": dear.get("validation_choice", {})}, **more}
    out = {"seeds": list(seeds), "dear": _mean([s["dear"] for s in seeds.values()]),
           "nar": _mean([s["nar"] for s in seeds.values()])}
    out["dear_minus_nar"] = round(out["dear"] - out["nar"], 2)
    chosen = {}
    for rule in ("rel", "node"):
        have = {k: s for k, s in seeds.items()
                if s["validation_choice"].get(rule, {}).get("test_score") is not None}
        if len(have) < 2:
            continue
        d = _mean([s["validation_choice"][rule]["test_score"] for s in have.values()])
        n = _mean([s["nar"] for s in have.values()])
        chosen[rule] = {"seeds": list(have), "tols": [s["validation_choice"][rule]["tol"] for s in have.values()],
                        "dear": d, "nar": n, "dear_minus_nar": round(d - n, 2)}
    out["validation_chosen"] = chosen
    return out


def summarize(folder: Path, size: str) -> dict:
    quick = (_load(QUICK) or {}).get("algorithms", {})
    paired = (_load(folder / "paired_timing.json") or {}).get("pairs", {})
    rows, incomplete = {}, []
    for algo_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        dear, nar = (model_row(algo_dir / m / "seed0", size) for m in ("dear", "nar"))
        if dear is None or nar is None:
            incomplete.append(algo_dir.name)
            continue
        q = quick.get(algo_dir.name, {})
        dear.update(dear_sweeps(algo_dir / "dear" / "seed0", size))
        more = {}
        for seed_dir in sorted((algo_dir / "dear").glob("seed*"), key=_seed_number):
            if seed_dir.name == "seed0":
                continue
            d_more, n_more = model_row(seed_dir, size), model_row(algo_dir / "nar" / seed_dir.name, size)
            if d_more and n_more:
                more[seed_dir.name.removeprefix("seed")] = {
                    "dear": d_more["test_score"], "nar": n_more["test_score"],
                    "dear_minus_nar": round(d_more["test_score"] - n_more["test_score"], 2),
                    "dear_iterations": d_more["iterations"]["mean"], **dear_sweeps(seed_dir, size)}
        variants = {}
        base_config = _load(algo_dir / "dear" / "seed0" / "config.json") or {}
        for variant_dir in sorted(algo_dir.glob("dear-*")):
            v = model_row(variant_dir / "seed0", size)
            if v is None:
                continue
            config = _load(variant_dir / "seed0" / "config.json") or {}
            variants[variant_dir.name] = {
                "test_score": v["test_score"], "iterations": v["iterations"],
                "dear_minus_nar": round(v["test_score"] - nar["test_score"], 2),
                "best_validation": v["best_validation"], "train_hours": v["train_hours"],
                "changed": {k: config[k] for k in _VARIANT_KEYS if k in config and config[k] != base_config.get(k)}}
        rows[algo_dir.name] = {
            "dear": dear, "nar": nar,
            "dear_minus_nar": round(dear["test_score"] - nar["test_score"], 2),
            "other_seeds": more,
            "over_seeds": over_seeds(dear, nar, more),
            "variants": variants,
            "speedup_per_graph": round(nar["ms_per_graph"] / dear["ms_per_graph"], 2),
            "paired_speedup": (round(paired[algo_dir.name]["dear_speedup_median"], 2)
                               if algo_dir.name in paired else None),
            "quick_profile": {
                "seed0": {"dear": q.get("dear_per_seed", [None])[0], "nar": q.get("nar_per_seed", [None])[0]},
                "five_seeds": {"dear": q.get("5_seeds", {}).get("dear", {}).get("mean"),
                               "nar": q.get("5_seeds", {}).get("nar", {}).get("mean"),
                               "dear_minus_nar": q.get("5_seeds", {}).get("dear_minus_nar")},
            } if q else None,
        }
    return {"what": "paper profile (seed 0) on a CPU, DEAR vs NAR, against the quick profile; "
                    "scripts/summarize_paper_cpu.py", "size": int(size), "rows": rows, "incomplete": incomplete}


def _choice_lines(prefix: str, choices: dict[str, dict]) -> list[str]:
    """One line per stopping rule: the tolerance validation chose and the test score there."""
    lines = []
    for rule, c in choices.items():
        test = "not evaluated" if c["test_score"] is None else f"test {c['test_score']:.1f}"
        lines.append(f"\n{prefix}, tolerance chosen on validation, {rule} rule: {c['tol']:g} ({test})")
    return lines


def markdown(summary: dict) -> str:
    lines = ["| algorithm | DEAR | NAR | DEAR - NAR | quick, 5 seeds: DEAR - NAR | DEAR iterations (true steps) "
             "| ms per graph DEAR / NAR | speed-up | paired speed-up | DEAR at other tolerances: score (iterations) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for algo, r in summary["rows"].items():
        d, n = r["dear"], r["nar"]
        quick = (r["quick_profile"] or {}).get("five_seeds", {}).get("dear_minus_nar")
        paired = r["paired_speedup"]
        tols = "; ".join(f"{t}: {o['test_score']:.1f} ({o['iterations']['mean']:.1f})"
                         for t, o in d.get("other_tolerances", {}).items()) or "n/a"
        lines.append(f"| {algo} | {d['test_score']:.1f} | {n['test_score']:.1f} | {r['dear_minus_nar']:+.1f} | "
                     f"{'n/a' if quick is None else f'{quick:+.1f}'} | {d['iterations']['mean']:.1f}, max "
                     f"{d['iterations']['max']} ({d['true_steps']['mean']:.1f}) | {d['ms_per_graph']:.1f} / "
                     f"{n['ms_per_graph']:.1f} | {r['speedup_per_graph']:.2f}x | "
                     f"{'n/a' if paired is None else f'{paired:.2f}x'} | {tols} |")
    for algo, r in summary["rows"].items():
        for seed, o in r.get("other_seeds", {}).items():
            lines.append(f"\n{algo}, seed {seed}: DEAR {o['dear']:.1f}, NAR {o['nar']:.1f}, "
                         f"DEAR - NAR {o['dear_minus_nar']:+.1f} ({o['dear_iterations']:.1f} iterations)")
            lines += _choice_lines(f"{algo}, seed {seed}", o.get("validation_choice", {}))
        means = r.get("over_seeds")
        if means:
            lines.append(f"\n{algo}, seeds {', '.join(means['seeds'])}: DEAR {means['dear']:.1f}, NAR "
                         f"{means['nar']:.1f}, DEAR - NAR {means['dear_minus_nar']:+.1f}")
            for rule, c in means["validation_chosen"].items():
                tols = ", ".join(f"{t:g}" for t in c["tols"])
                lines.append(f"\n{algo}, seeds {', '.join(c['seeds'])}, tolerance chosen on validation ({rule} rule: "
                             f"{tols}): DEAR {c['dear']:.1f}, NAR {c['nar']:.1f}, DEAR - NAR {c['dear_minus_nar']:+.1f}")
        node = r["dear"].get("node_stop", {})
        if node:
            lines.append(f"\n{algo}, DEAR solved with the worst-node rule (--stop-mode node): " + "; ".join(
                f"{t}: {o['test_score']:.1f} ({o['iterations']['mean']:.1f})" for t, o in node.items()))
        lines += _choice_lines(algo, r["dear"].get("validation_choice", {}))
        for name, v in r.get("variants", {}).items():
            changed = ", ".join(f"{k} {val}" for k, val in v["changed"].items()) or "no setting changed"
            lines.append(f"\n{algo}, {name} ({changed}), seed 0: DEAR {v['test_score']:.1f}, "
                         f"DEAR - NAR {v['dear_minus_nar']:+.1f} ({v['iterations']['mean']:.1f} iterations)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", type=Path, default=RUNS / "paper-cpu", help="folder of ALGO/{dear,nar}/seed0 runs")
    ap.add_argument("--size", default="64", help="test size to read (default 64)")
    args = ap.parse_args(argv)
    if not args.dir.is_dir():
        print(f"error: {args.dir} is not a folder of paper-profile runs", file=sys.stderr)
        return 2
    summary = summarize(args.dir, args.size)
    atomic_write_text(args.dir / "summary.json", json.dumps(summary, indent=1) + "\n")
    print(markdown(summary))
    if summary["incomplete"]:
        print(f"not finished or not evaluated (left out): {', '.join(summary['incomplete'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
