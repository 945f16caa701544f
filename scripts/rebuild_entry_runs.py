"""Rebuild the weights behind committed leaderboard entries, several workers side by side.

``dear leaderboard verify ENTRY --rebuild`` rebuilds an entry's runs and verifies it in one
command; this script does the rebuilding part for many entries at once, split over worker
processes, and logs each run as one JSON line. The work itself is
:func:`dear.leaderboard.rebuild.rebuild_run` (see its module docstring): a run is retrained in a
scratch folder with the thread count and MKL mode it recorded, and its weights are copied beside
the committed results only when the rebuild reproduces the committed record exactly. Nothing
committed is rewritten. Runs recorded on another instruction set are skipped unless ``--force``.

Measured 2026-12-02 (``leaderboards/runs/rebuild/``): the committed runs come from several host
kinds their early records do not tell apart. On an AMD EPYC host the NAR runs trained at
fd41359, 1c93d9d and db5c029 rebuilt bit for bit, those trained at 1a98464 and 054c6aa (DEAR)
did not, under any thread/MKL/oneDNN/ATen setting tried; on an Intel Xeon host all 30 runs of
the ten 054c6aa DEAR entries and a 1a98464 NAR run rebuilt bit for bit. The node-classification
MLP and GCN runs reproduced every recorded figure on the AMD host (the MLP's weights bit for
bit, the GCN's not). On a third host kind (AMD EPYC at kernel level AVX2) the 18 runs of the six
1-step DEAR entries, trained at 531e2a8, rebuilt bit for bit with ``--run-code`` (their own
commit's code), not with today's. The same host, with ``--run-code``, rebuilt the 27 NAR runs
of nine NAR entries (recorded at fd41359 to 18921c3) bit for bit too: the two AMD kinds agree on those.

    python scripts/rebuild_entry_runs.py leaderboards/clrs-ood/bfs--nar--*.json
    python scripts/rebuild_entry_runs.py --worker 0 --workers 2 ENTRY...   # two side by side
    python scripts/rebuild_entry_runs.py --run-code --scratch /tmp/rb0 ENTRY...  # each run's own code
    dear leaderboard verify ENTRY...                                       # then verify

Each run is one line of ``--log`` (JSON lines: run, threads, mkl_cbwr, identical, seconds);
rerunning skips runs that already have their weights. Each worker ends with a one-line count on
stderr and exits 1 when a run could not be rebuilt at all (an ``error`` row).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Sequence

from clrs_tasks.progress import progress_bar
from dear.leaderboard.rebuild import entry_runs as _entry_runs
from dear.leaderboard.rebuild import other_cpu, rebuild_run, remove_worktrees, run_has_weights, run_name

REPO = Path(__file__).resolve().parents[1]

__all__ = ["entry_runs", "main", "other_cpu", "rebuild"]


def entry_runs(entry_path: Path) -> list[Path]:
    """The run directories whose results an entry was built from."""
    return _entry_runs(json.loads(Path(entry_path).read_text()), REPO)


def rebuild(run: Path, scratch_root: Path, force: bool = False, run_code: bool = False) -> dict:
    """:func:`dear.leaderboard.rebuild.rebuild_run`, naming the run relative to the repository."""
    return rebuild_run(run, scratch_root, force=force, name=run_name(run, REPO), run_code=run_code, repo=REPO)


def _summary(rows: list[dict]) -> str:
    """``3 rebuilt: 2 identical, 1 different; 1 skipped; 0 errors``: the end of a worker's work."""
    skipped = sum("skipped" in r for r in rows)
    errors = sum("error" in r for r in rows)
    identical = sum(bool(r.get("identical")) for r in rows)
    different = len(rows) - skipped - errors - identical
    return (f"{identical + different} rebuilt: {identical} identical, {different} different; "
            f"{skipped} skipped; {errors} error(s)")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("entries", nargs="+", type=Path, help="leaderboard entry JSON files")
    p.add_argument("--worker", type=int, default=0, help="this process takes runs i with i %% workers == worker")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--log", type=Path, default=None, help="JSON-lines log, appended to (default: print only)")
    p.add_argument("--scratch", type=Path, default=None,
                   help="where to retrain; with --run-code the commits' worktrees stay there for the next call "
                        "(default: a temporary folder, removed at the end)")
    p.add_argument("--force", action="store_true", help="also retrain runs recorded on another instruction set")
    p.add_argument("--run-code", action="store_true",
                   help="retrain with the code of the commit each run records (a git worktree under --scratch)")
    args = p.parse_args(argv)
    if not 1 <= args.workers or not 0 <= args.worker < args.workers:
        p.error(f"--worker must be in 0..{args.workers - 1} and --workers at least 1 "
                f"(got --worker {args.worker} --workers {args.workers})")
    runs = []
    for entry in args.entries:
        try:
            named = entry_runs(entry)
        except FileNotFoundError:
            p.error(f"no leaderboard entry at {entry}")
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, AttributeError) as e:
            p.error(f"{entry} is not a leaderboard entry naming its source runs ({type(e).__name__}: {e})")
        if not named:
            p.error(f"{entry} names no source runs (its source.files is empty or missing)")
        gone = [run_name(r, REPO) for r in named if not r.is_dir()]
        if gone:
            p.error(f"{entry} names run folder(s) that are not in this checkout: {', '.join(gone)}")
        runs += named
    scratch = args.scratch or Path(tempfile.mkdtemp(prefix="rebuild_"))
    mine = [run for i, run in enumerate(runs)
            if i % args.workers == args.worker and not run_has_weights(run)]
    rows = []
    try:
        bar = progress_bar(mine, desc="rebuilding", unit="run", file=sys.stderr)
        for run in bar:
            bar.set_postfix_str("/".join(run.parts[-3:]))  # algorithm/model/seed
            rows.append(rebuild(run, scratch, force=args.force, run_code=args.run_code))
            line = json.dumps(rows[-1])
            bar.write(line, file=sys.stdout)
            sys.stdout.flush()
            if args.log is not None:
                with args.log.open("a") as f:
                    f.write(line + "\n")
    finally:
        if args.scratch is None:
            remove_worktrees(scratch, REPO)
    print(f"worker {args.worker} of {args.workers}: {_summary(rows)} "
          f"({len(runs) - len(mine)} of the entries' {len(runs)} runs are other workers' or have their weights)",
          file=sys.stderr)
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
