"""The ``dear leaderboard`` command: ``submit``, ``verify``, ``validate``, ``render``.

:func:`register_cli` adds it to the main ``dear`` parser. Building the parser imports nothing
heavy; handlers import what they need. A rejected entry raises
:class:`~dear.leaderboard.schema.EntryRejected` (a ``ValueError``) whose one-line message the
main CLI prints as ``error: rejected (<reason>): ...`` with exit status 2. ``validate`` prints one
line per problem, then fails the same way with a count.
"""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["register_cli", "cmd_submit", "cmd_verify", "cmd_validate", "cmd_render"]

TRACK_CHOICES = ("clrs-ood", "nodecls", "user-tasks")  # a test checks this equals tracks.TRACKS


def cmd_submit(args: argparse.Namespace) -> int:
    from dear.leaderboard.submit import submit  # noqa: PLC0415

    res = submit([Path(p) for p in args.results], model_name=args.model_name, variant=args.variant, track=args.track,
                 submitter=args.submitter, date=args.date, link=args.link, size=args.size,
                 task_module=args.task_module, verify=[Path(p) for p in args.verify], tolerance=args.tolerance,
                 device=args.device, root=args.root, base=args.repo, replace=args.replace,
                 dry_run=args.dry_run)
    e = res.entry
    s = e["scores"]
    ver = e.get("verification")
    line = (f"{e['track']}: {e['model']['name']} / {e['model']['variant']} on {e['task']}: "
            f"mean {s['mean']:.4g} (std {s['std']:.2g}, {len(s['per_seed'])} seeds)")
    if ver:  # the record holds one item per distinct seed, as the table counts them
        line += f"; verified {len(ver['seeds'])} of {len(s['per_seed'])} seed(s) within {ver['tolerance']:g}"
    print(line)
    for note in res.notes:
        print(f"note: {note}")
    print("dry run: nothing written" if res.path is None else f"wrote {res.path} and re-rendered {res.path.parent / 'README.md'}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """Re-verify committed entries from their runs' checkpoints; one line per entry, and a
    failure (exit 2) naming how many were refused, after trying them all."""
    from dear.leaderboard.submit import WeightsNotHere, reverify  # noqa: PLC0415

    failed = skipped = done = 0
    for name in args.entries:
        try:
            if args.rebuild:
                _rebuild_entry_runs(Path(name), args)
            res = reverify(Path(name), tolerance=args.tolerance, device=args.device, root=args.root, base=args.repo)
        except KeyboardInterrupt:  # each entry is written whole (atomically) or not at all
            raise KeyboardInterrupt(f"stopped while verifying {name}, which is unchanged; the {done} entr"
                                    f"{'y' if done == 1 else 'ies'} verified before it are written") from None
        except (ValueError, FileNotFoundError) as e:  # EntryRejected (and WeightsNotHere) is a ValueError
            if args.skip_missing and isinstance(e, WeightsNotHere):
                skipped += 1
                print(f"{name}: skipped: no weights of its runs here")
                continue
            failed += 1
            why = (("none of its runs rebuilt to its record on this machine (the lines above say why), so there are "
                    "no weights to verify") if args.rebuild and isinstance(e, WeightsNotHere)  # not "rebuild them first"
                   else str(e))
            print(f"{name}: not verified: {why}")
            continue
        done += 1
        ver = res.entry["verification"]
        seeds = ", ".join(str(i["seed"]) for i in ver["seeds"])
        print(f"{res.path.name}: verified {len(ver['seeds'])} of {len(res.entry['scores']['per_seed'])} seed(s) "
              f"(seeds {seeds}) within {ver['tolerance']:g}")
    if skipped:
        print(f"skipped {skipped} entr{'y' if skipped == 1 else 'ies'} without weights here")
    if failed:
        raise ValueError(f"{failed} of {len(args.entries)} entr{'y' if len(args.entries) == 1 else 'ies'} not verified")
    return 0


def _rebuild_entry_runs(path: Path, args: argparse.Namespace) -> None:
    """``verify --rebuild``: retrain the entry's runs that lack weights here (one line each on
    stderr, before and after), keeping only rebuilds that reproduce the run's record exactly (:mod:`dear.leaderboard.rebuild`)."""
    import json  # noqa: PLC0415
    import tempfile  # noqa: PLC0415

    from dear.leaderboard.board import Board  # noqa: PLC0415
    from dear.leaderboard.rebuild import entry_runs, run_has_weights  # noqa: PLC0415

    try:
        entry = json.loads(path.read_text())
    except (OSError, ValueError):
        return  # verification reports the unreadable file
    base = Board(args.root, args.repo).base
    missing = [r for r in entry_runs(entry, base) if r.is_dir() and not run_has_weights(r)]
    scratch = args.scratch or Path(tempfile.mkdtemp(prefix="dear-rebuild-"))
    try:
        _rebuild_each(missing, scratch, args, base)
    finally:
        if args.scratch is None:  # a temporary folder: drop it, and the worktrees --run-code made in it
            from dear.leaderboard.rebuild import remove_worktrees  # noqa: PLC0415

            remove_worktrees(scratch, base)


def _rebuild_each(missing: list[Path], scratch: Path, args: argparse.Namespace, base: Path) -> None:
    """One ``rebuild_run`` per run, a line on stderr before and after each."""
    import sys  # noqa: PLC0415

    from dear.leaderboard.rebuild import rebuild_run, run_name  # noqa: PLC0415

    for i, run in enumerate(missing, 1):
        name = run_name(run, base)
        print(f"rebuilding {name} ({i} of {len(missing)})...", file=sys.stderr, flush=True)
        row = rebuild_run(run, scratch, force=args.force, name=name, run_code=args.run_code, repo=base)
        if row.get("skipped") or row.get("error"):
            outcome = f"skipped: {row['skipped']}" if row.get("skipped") else f"failed: {' '.join(row['error'])}"
        else:
            outcome = ("reproduces its record exactly, weights kept" if row["identical"] else
                       "does not reproduce its record, left without weights")
            outcome += f" ({row['seconds']:g} s"
            outcome += f", code of {row['code'][:7]})" if row.get("code") else ")"
            if row.get("possible_causes"):
                outcome += "; possible causes: " + "; ".join(row["possible_causes"])
        print(f"  {name}: {outcome}", file=sys.stderr, flush=True)


def cmd_validate(args: argparse.Namespace) -> int:
    from dear.leaderboard.board import Board  # noqa: PLC0415

    board = Board(args.root, args.repo)
    report = board.validate(args.track or None)
    for problem in report.problems:
        print(problem)
    counts = ", ".join(f"{t}: {n}" for t, n in report.checked.items())
    if not report.ok:
        raise ValueError(f"{len(report.problems)} problem(s) in {board.root} (entries checked: {counts})")
    print(f"ok: {sum(report.checked.values())} entries valid, tables up to date ({counts})")
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    from dear.leaderboard.board import Board  # noqa: PLC0415
    from dear.leaderboard.tracks import TRACKS  # noqa: PLC0415

    board = Board(args.root)
    for name in args.track or list(TRACKS):
        print(f"wrote {board.write_table(name)}")
    return 0


def register_cli(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``leaderboard`` (``submit``, ``verify``, ``validate``, ``render``) to ``subparsers``; returns its parser."""
    lb = subparsers.add_parser(
        "leaderboard", help="submit, verify, validate and render leaderboard entries",
        description="Leaderboards under leaderboards/<track>/: one JSON entry per file, a rendered README.md "
        "table per track. See docs/leaderboards.md.",
    )
    sub = lb.add_subparsers(dest="leaderboard_command", metavar="SUBCOMMAND")
    sub.required = True
    root_help = ("boards folder (default: $DEAR_LEADERBOARDS, else ./leaderboards in the working directory); "
                 "it must exist, except that submit and render create a named --root called leaderboards")
    repo_help = "repository root that task_module paths are relative to (default: the parent of the boards folder)"

    p = sub.add_parser(
        "submit", help="validate results, write an entry atomically, re-render the track's table",
        description="RESULTS: `dear evaluate` results.json files, one per seed (at least 3), or one "
        "`dear nodecls train` results.json, or one ready-made entry JSON.",
    )
    p.add_argument("results", nargs="+", help="results file(s)")
    p.add_argument("--model-name", required=True, help="name shown in the table, e.g. DEAR")
    p.add_argument("--variant", default=None, help="what distinguishes this configuration (default: from the config)")
    p.add_argument("--track", default=None, choices=TRACK_CHOICES,
                   help="default: clrs-ood for CLRS-30 algorithms, user-tasks for other tasks, nodecls for datasets")
    p.add_argument("--submitter", default=None, help="who submits (default: anonymous)")
    p.add_argument("--link", default=None, help="optional https:// link (paper, code)")
    p.add_argument("--date", default=None, help="YYYY-MM-DD (default: today)")
    p.add_argument("--size", type=int, default=None, help="CLRS: which evaluated test size to submit")
    p.add_argument("--task-module", default=None,
                   help="user tasks: the .py file (inside the repository) that registers the task")
    p.add_argument("--verify", action="append", default=[], metavar="CHECKPOINT",
                   help="re-evaluate this checkpoint (a run dir or its checkpoint_best.pt; nodecls: "
                   "OUT/seeds/seed_<k>.pt) on the official split and refuse the entry unless it reproduces its "
                   "seed's claimed score; repeat for more seeds")
    p.add_argument("--tolerance", type=float, default=None,
                   help="largest accepted |claimed - reproduced| (default: 0.005 for CLRS scores, 0.5 points of accuracy)")
    p.add_argument("--device", default="auto", help="device for --verify (auto, cpu, cuda)")
    p.add_argument("--replace", action="store_true", help="replace an existing entry with the same model and variant")
    p.add_argument("--dry-run", action="store_true", help="validate (and verify) only; write nothing")
    p.add_argument("--root", type=Path, default=None, help=root_help)
    p.add_argument("--repo", type=Path, default=None, help=repo_help)
    p.set_defaults(func=cmd_submit)

    p = sub.add_parser(
        "verify", help="verify committed entries again from their runs' checkpoints on this machine",
        description="For each ENTRY (a JSON file under the boards folder), re-evaluate the checkpoints of the runs "
        "it names (CLRS: checkpoint_best.pt beside each results.json; nodecls: seeds/seed_<k>.pt) and store the new "
        "verification record in the entry, keeping every other field. Weights are not committed: --rebuild "
        "retrains the runs that lack them first (scripts/rebuild_entry_runs.py does it for many entries in parallel).",
    )
    p.add_argument("entries", nargs="+", metavar="ENTRY", help="committed entry file(s)")
    p.add_argument("--skip-missing", action="store_true",
                   help="report entries none of whose runs has weights here as skipped, not failed "
                   "(e.g. `dear leaderboard verify leaderboards/*/*.json --skip-missing` after a rebuild)")
    p.add_argument("--rebuild", action="store_true",
                   help="first retrain the runs that lack weights here (minutes per run), keeping only rebuilds "
                   "that reproduce the run's record exactly (needs its code, thread count and instruction set)")
    p.add_argument("--scratch", type=Path, default=None, help="--rebuild: where to retrain (default: a temporary folder)")
    p.add_argument("--force", action="store_true",
                   help="--rebuild: also retrain runs recorded on another instruction set (they rarely match)")
    p.add_argument("--run-code", action="store_true",
                   help="--rebuild: retrain each run with the code of the commit it records (a git worktree per "
                   "commit under --scratch) instead of this checkout's; for runs whose training code changed since")
    p.add_argument("--tolerance", type=float, default=None,
                   help="largest accepted |claimed - reproduced| (default: the track's)")
    p.add_argument("--device", default="auto", help="device for the re-evaluation (auto, cpu, cuda)")
    p.add_argument("--root", type=Path, default=None, help=root_help)
    p.add_argument("--repo", type=Path, default=None, help=repo_help)
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("validate", help="check every committed entry and that the tables are up to date (CI)")
    p.add_argument("--track", action="append", choices=TRACK_CHOICES, help="only this track (repeatable)")
    p.add_argument("--root", type=Path, default=None, help=root_help)
    p.add_argument("--repo", type=Path, default=None, help=repo_help)
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("render", help="re-render the tracks' README.md tables from their entries")
    p.add_argument("--track", action="append", choices=TRACK_CHOICES, help="only this track (repeatable)")
    p.add_argument("--root", type=Path, default=None, help=root_help)
    p.set_defaults(func=cmd_render)
    return lb
