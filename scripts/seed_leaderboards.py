"""Seed the leaderboards from our own measured runs under ``leaderboards/runs/``.

Every entry goes through the same code path as ``dear leaderboard submit``
(:func:`dear.leaderboard.submit`): conversion, every validation check (split fingerprints
recomputed locally), duplicate refusal, atomic write and re-rendering. Nothing is typed in by
hand, so no number reaches a table unless a results file measured it.

    python scripts/seed_leaderboards.py              # convert what is there, verify checkpoints
    python scripts/seed_leaderboards.py --dry-run    # say what would be submitted

Where runs are looked for:

* ``runs/clrs/<profile>/<algorithm>/<model>/seed<k>/results.json`` (``dear compare`` layout);
  one entry per (profile, algorithm, model) with at least 3 finished seeds. When every seed's
  ``checkpoint_best.pt`` is present the checkpoints are re-evaluated (``--verify``).
* ``runs/nodecls/**/results.json`` (``dear nodecls train --out``); when every seed's
  ``seeds/seed_<k>.pt`` is present they are re-evaluated too. Several folders holding the same
  configuration give one entry: the run with the most seeds (then the newest).

Configurations with fewer than 3 seeds, unfinished runs and entries that already exist are
skipped, and the script says which and why.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

REPO = Path(__file__).resolve().parents[1]

NODECLS_NAMES = {"ignn": "IGNN", "gcn": "GCN", "gat": "GAT", "sgc": "SGC", "appnp": "APPNP", "jknet": "JKNet",
                 "gcnii": "GCNII", "mlp": "MLP"}


def _submit(results: list[Path], verify: list[Path], args: argparse.Namespace, **kw) -> str:
    from dear.leaderboard import EntryRejected, submit  # noqa: PLC0415

    try:
        res = submit(results, submitter=args.submitter, verify=verify, device=args.device, root=args.root,
                     replace=args.replace, dry_run=args.dry_run, **kw)
    except EntryRejected as e:
        if e.reason == "duplicate":
            return "exists (use --replace to update it)"
        return f"not submitted: {e}"
    s = res.entry["scores"]
    ver = res.entry.get("verification")
    what = f"mean {s['mean']:.4g} +- {s['std']:.2g} over {len(s['per_seed'])} seeds"
    what += f", verified {len(ver['seeds'])} seeds" if ver else ", not verified (no checkpoints here)"
    what += "".join(f"; note: {note}" for note in res.notes)
    return what + (" [dry run]" if res.path is None else f" -> {res.path.relative_to(args.root.resolve().parent)}")


def seed_clrs(args: argparse.Namespace) -> None:
    from dear.leaderboard.convert import CLRS_MODEL_NAMES  # noqa: PLC0415
    from dear.training import is_complete  # noqa: PLC0415

    base = args.runs / "clrs"
    for model_dir in sorted(p for p in base.glob("*/*/*") if p.is_dir()):
        profile, algo, model = model_dir.relative_to(base).parts
        label = f"clrs {profile}/{algo}/{model}"
        seeds = sorted((p for p in model_dir.glob("seed*") if p.is_dir()), key=lambda p: p.name)
        done = [p for p in seeds if (p / "results.json").is_file() and is_complete(p)]
        if len(done) < args.min_seeds:
            print(f"skip {label}: {len(done)} finished seed(s) with results.json, {args.min_seeds} needed")
            continue
        verify = [p for p in done if (p / "checkpoint_best.pt").is_file()] if args.verify else []
        if len(verify) != len(done):
            verify = []
        print(f"{label}: {_submit([p / 'results.json' for p in done], verify, args, model_name=CLRS_MODEL_NAMES.get(model, model))}")


def seed_nodecls(args: argparse.Namespace) -> None:
    """One entry per configuration; when several run folders hold the same configuration (same
    dataset, split, model and options), the one with the most seeds (then the newest) is used."""
    from dear.leaderboard import Board, build_entry, entry_key  # noqa: PLC0415
    from dear.nodecls.train import seed_files  # noqa: PLC0415

    base = args.runs / "nodecls"
    board = Board(args.root)
    groups: dict[tuple, list[tuple[int, float, Path, dict]]] = {}
    for results in sorted(base.rglob("results.json")):
        label = f"nodecls {results.parent.relative_to(base)}"
        data = json.loads(results.read_text())
        n = len(data.get("per_seed", []))
        if not data.get("complete"):
            print(f"skip {label}: run not complete ({n} seed(s) so far)")
            continue
        if n < args.min_seeds:
            print(f"skip {label}: {n} seed(s), {args.min_seeds} needed")
            continue
        name = NODECLS_NAMES.get(data["model"], data["model"].upper())
        key = entry_key(build_entry([results], board, model_name=name, submitter=args.submitter))
        groups.setdefault(key, []).append((n, results.stat().st_mtime, results, data))
    for runs in groups.values():
        runs.sort(key=lambda r: (r[0], r[1]), reverse=True)
        n, _, results, data = runs[0]
        for other in runs[1:]:
            print(f"skip nodecls {other[2].parent.relative_to(base)}: same configuration as "
                  f"{results.parent.relative_to(base)}, which has {n} seeds (vs {other[0]})")
        ckpts = [seed_files(results.parent, r["seed"])[1] for r in data["per_seed"]]
        verify = ckpts if args.verify and all(p.is_file() for p in ckpts) else []
        name = NODECLS_NAMES.get(data["model"], data["model"].upper())
        print(f"nodecls {results.parent.relative_to(base)}: {_submit([results], verify, args, model_name=name)}")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=Path, default=REPO / "leaderboards" / "runs")
    p.add_argument("--root", type=Path, default=REPO / "leaderboards")
    p.add_argument("--submitter", default="dear maintainers")
    p.add_argument("--min-seeds", type=int, default=3, help="fewer seeds are skipped (the boards require 3)")
    p.add_argument("--no-verify", dest="verify", action="store_false", help="do not re-evaluate checkpoints")
    p.add_argument("--device", default="cpu", help="device for verification")
    p.add_argument("--replace", action="store_true", help="update entries that exist")
    p.add_argument("--dry-run", action="store_true")
    p.add_argument("--only", choices=("clrs", "nodecls"), default=None)
    args = p.parse_args(argv)
    import torch  # noqa: PLC0415

    torch.set_num_threads(1)
    if args.only in (None, "clrs"):
        seed_clrs(args)
    if args.only in (None, "nodecls"):
        seed_nodecls(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
