"""Markdown table of equal-accuracy speed-ups over Picard from ``bench_learned_solver.py``
outputs, one row per (run set, dataset), with the learned-trained accuracy and the solver's
share of training time (docs/learned-solver.md).

    python scripts/table_learned_equal_accuracy.py leaderboards/runs/learned-finalfit \\
        leaderboards/runs/learned-noprop-finalfit

Each argument is a ``--out`` directory of ``bench_learned_solver.py``: its ``summary.json``
names, per dataset, the Pareto directory that was measured last.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def rows(root: Path) -> list[str]:
    if not (root / "summary.json").is_file():
        raise SystemExit(f"{root} has no summary.json: pass a --out directory of bench_learned_solver.py")
    summary = json.loads((root / "summary.json").read_text())
    out = []
    for ds, rec in summary["datasets"].items():
        pdir = Path(rec.get("pareto", {}).get("dir") or root / ds.replace(":", "_"))
        pareto = json.loads((pdir / "pareto.json").read_text())
        eq = pareto["equal_accuracy"]["solvers"]

        def speed(name: str) -> str:
            v = eq.get(name)
            return "-" if v is None else f"{v['speedup_vs_picard']:.2f}x"

        learned, picard = eq.get("learned"), eq.get("picard")

        def at(v: dict | None) -> str:
            return "-" if v is None else f"{v['tol']:g}, {v['nfe']:.1f}"

        share = rec["solver_training"]["fraction_of_model_training"]
        acc = rec["accuracy"]["ignn_learned_trained"]
        sched = rec.get("solver_training_schedule")
        sched = sched[0] if isinstance(sched, list) else sched
        ran = [n for n in rec["solver_training"].get("last_fit_steps", []) if n is not None]
        capped = "" if sched.get("max_share") is None else (
            f", cap {100 * sched['max_share']:g}%" + (f" (last fit ran {min(ran)}-{max(ran)})" if ran else ""))
        out.append(
            f"| {root.name} | {ds.split(':')[-1]} | {len(pareto['seeds'])} | "
            f"{sched['first_steps']}/{sched['steps']}/{sched['final_steps']}"
            f"{'' if sched.get('final_fresh', False) else ' (carried)'}"
            f"{'' if sched.get('unroll') is None else ', unroll ' + str(sched['unroll'])}{capped} | "
            f"{acc['mean']:.2f} | {pareto['equal_accuracy']['reference_accuracy']:.2f} | "
            f"{at(picard)} | "
            f"{at(learned)} | "
            f"{speed('anderson')} / {speed('learned_nn')} / **{speed('learned')}** | "
            f"{100 * min(share):.1f}-{100 * max(share):.1f}% |")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("roots", nargs="+", type=Path)
    args = ap.parse_args(argv)
    body = [r for root in args.roots for r in rows(root)]  # every directory read before printing
    print("| runs | dataset | seeds | solver steps first/fine-tune/final (unrolled steps if not K) | test acc. (learned-trained) | "
          "reference (Picard, 3e-6) | Picard at equal acc.: tol, evals | learned: tol, evals | "
          "speed-up vs Picard: Anderson / `learned_nn` / learned | solver training share |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in body:
        print(r)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
