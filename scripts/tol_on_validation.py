"""Choose DEAR's test tolerance on the validation split, not on the test set.

A tolerance sweep read off the test set (``dear evaluate RUN --tol T`` for several T) shows how
the score moves with the tolerance, but picking the best of it is selection on test. This
scores a finished DEAR run's best checkpoint on its *validation* split at each tolerance, picks
the one with the highest validation score (ties go to the loosest tolerance, the cheapest
solve), and sets the test score at that tolerance beside it when the run already holds it
(``results.json`` for the trained tolerance, ``results_tol<T>.json`` for others). Writes
``RUN/tol_on_validation.json``. ``--stop-mode node`` solves with the worst-node stopping rule
instead of the run's (docs/engine.md) and writes ``RUN/tol_on_validation_stopnode.json``.
``--score-test`` runs the test evaluation at the chosen setting when the run does not hold it
yet (``dear evaluate RUN [--tol T] [--stop-mode M] --repeats 1``: the score counts, its one
timed pass is rough), so the honest choice and its test score come from one command.

    python scripts/tol_on_validation.py RUN_DIR [RUN_DIR ...] --tols 0.2,0.1,0.05,0.02,0.01 [--score-test]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

import clrs_tasks as ct  # noqa: E402
from dear.config import DEAR_STOP_MODES  # noqa: E402
from dear.evaluate import RunError, check_tol, evaluate_run, load_run, results_name  # noqa: E402
from dear.io import atomic_write_text, git_commit  # noqa: E402
from dear.training import load_data, validate  # noqa: E402


def _test_score(run_dir: Path, tol: float, stop_mode: str, trained: tuple[float, str], size: str) -> float | None:
    """Test score (percent) at ``tol`` and ``stop_mode`` if the run already holds an evaluation
    there (``results.json`` for the trained setting, else the file ``dear evaluate`` writes
    with the overrides)."""
    names = {results_name(None if tol == trained[0] else tol, None if stop_mode == trained[1] else stop_mode),
             results_name(tol, None if stop_mode == trained[1] else stop_mode)}
    for name in sorted(names):
        try:
            r = json.loads((run_dir / name).read_text())
        except (OSError, ValueError):
            continue
        same_tol = float(r.get("tol") or r.get("config", {}).get("tol", "nan")) == tol
        if same_tol and (r.get("stop_mode") or "rel") == stop_mode and size in r.get("results", {}):
            return round(100 * r["results"][size]["score"], 2)
    return None


def choose(run_dir: Path, tols: list[float], device: torch.device, size: str = "64",
           stop_mode: str | None = None) -> dict[str, Any]:
    """Validation score at each tolerance (with the run's stopping rule, or ``stop_mode``), the
    chosen one, and the test score there if known."""
    rows = []
    trained = None
    for tol in tols:
        cfg, model, _ = load_run(run_dir, device, tol=tol, stop_mode=stop_mode)
        if trained is None:
            saved = json.loads((run_dir / "config.json").read_text())
            trained = (float(saved["tol"]), saved.get("stop_mode", "rel"))
        ds = load_data(cfg, "val")
        loader = [ct.collate([ds[i] for i in range(s, min(s + cfg.batch_size, len(ds)))])
                  for s in range(0, len(ds), cfg.batch_size)]
        val = validate(model, loader, device)
        rows.append({"tol": tol, "val_score": round(100 * val["score"], 2), "val_loss": val["loss"],
                     "test_score": _test_score(run_dir, tol, cfg.stop_mode, trained, size)})
    best = max(rows, key=lambda r: (r["val_score"], r["tol"]))  # ties: the loosest tolerance
    return {"run_dir": str(run_dir), "trained_tol": trained[0], "trained_stop_mode": trained[1],
            "stop_mode": cfg.stop_mode, "test_size": int(size), "sweep": rows,
            "chosen_tol": best["tol"], "test_score_at_chosen": best["test_score"], "git_commit": git_commit()}


def score_test_at_choice(out: dict[str, Any], device: str, size: str = "64") -> dict[str, Any]:
    """Evaluate the test split at the chosen tolerance and rule when ``out`` has no test score
    there (overrides only where they differ from the run's own setting, so the file is the one
    ``dear evaluate`` would write), and set the score into ``out`` and its sweep row."""
    if out["test_score_at_chosen"] is not None:
        return out
    run_dir, tol = Path(out["run_dir"]), out["chosen_tol"]
    trained = (out["trained_tol"], out["trained_stop_mode"])
    evaluate_run(run_dir, tol=None if tol == trained[0] else tol,
                 stop_mode=None if out["stop_mode"] == trained[1] else out["stop_mode"],
                 device=device, repeats=1)
    score = _test_score(run_dir, tol, out["stop_mode"], trained, size)
    out["test_score_at_chosen"] = score
    for row in out["sweep"]:
        if row["tol"] == tol:
            row["test_score"] = score
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=Path, help="finished `dear train --model dear` run directories")
    ap.add_argument("--tols", default="0.2,0.1,0.05,0.02,0.01", help="comma-separated tolerances to try")
    ap.add_argument("--size", default="64", help="test size whose score to set beside the choice")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--stop-mode", default=None, choices=DEAR_STOP_MODES,
                    help="solve with this stopping rule instead of the run's (writes tol_on_validation_stop<MODE>.json)")
    ap.add_argument("--score-test", action="store_true",
                    help="evaluate the test split at the chosen setting when the run does not hold it yet")
    args = ap.parse_args(argv)
    try:
        tols = [check_tol(float(t)) for t in args.tols.split(",") if t.strip()]
    except ValueError:
        ap.error(f"--tols must be comma-separated numbers > 0, got {args.tols!r}")
    if not tols:
        ap.error("--tols is empty")
    for run_dir in args.runs:
        try:
            out = choose(run_dir, tols, torch.device(args.device), args.size, args.stop_mode)
            if args.score_test:
                out = score_test_at_choice(out, args.device, args.size)
        except RunError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        name = "tol_on_validation.json" if args.stop_mode is None else f"tol_on_validation_stop{args.stop_mode}.json"
        atomic_write_text(run_dir / name, json.dumps(out, indent=1) + "\n")
        sweep = ", ".join(f"{r['tol']:g}: {r['val_score']:.1f}" for r in out["sweep"])
        test = out["test_score_at_chosen"]
        print(f"{run_dir} ({out['stop_mode']} residual): validation {sweep} -> tol {out['chosen_tol']:g}; test score there "
              f"{'not evaluated' if test is None else f'{test:.1f}'}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
