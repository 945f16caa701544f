"""Rebuild the checkpoints behind committed CLRS leaderboard entries, so they can be verified.

The runs under ``leaderboards/runs/`` keep configs and results, not weights. For every run an
entry names (``source.files``), this retrains a scratch copy from the run's ``config.json``
(``dear train --out SCRATCH``, with the thread count the run recorded: another count sums floats
in another order) and compares its best validation step and loss with the committed
``train_summary.json``. Only a bit-identical rebuild is copied next to the committed results
(``checkpoint_best.pt``, git-ignored), where ``dear leaderboard verify ENTRY`` finds it; a run
that rebuilds differently (other code, CPU model or kernel build) is reported and left alone.
Nothing committed is rewritten.

Float kernels differ between instruction sets, so a run recording other CPU flags or another
PyTorch kernel level (``cpu_flags``, ``cpu_capability`` in its ``train_summary.json``
hardware, recorded since 2026-12-02) is skipped unless ``--force``; older runs record neither
and are tried. The run's ``MKL_CBWR`` (MKL's reproducibility mode, recorded as ``mkl_cbwr``)
is set again, and unset for runs that record none. Measured 2026-12-02
(``leaderboards/runs/rebuild/other_host_2026-12-02.json``): on a host with the committed runs'
"AMD EPYC" model name but another platform build, no run rebuilt identically, NAR or DEAR,
under any thread/MKL/oneDNN/ATen setting tried, while the code of 054c6aa and of today gave
each other's weights bit for bit there.

    python scripts/rebuild_entry_runs.py leaderboards/clrs-ood/bfs--nar--*.json
    python scripts/rebuild_entry_runs.py --worker 0 --workers 2 ENTRY...   # two side by side

Each run is one line of ``--log`` (JSON lines: run, threads, mkl_cbwr, identical, seconds); rerunning
skips runs that already have their checkpoint.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

from tqdm import tqdm

REPO = Path(__file__).resolve().parents[1]


def entry_runs(entry_path: Path) -> list[Path]:
    """The run directories whose results an entry was built from."""
    entry = json.loads(entry_path.read_text())
    files = (entry.get("source") or {}).get("files") or []
    if entry.get("track") == "nodecls":
        raise SystemExit(f"{entry_path}: node-classification runs rebuild with `dear nodecls train --out DIR`")
    return [(REPO / f).parent for f in files]


def other_cpu(run: Path) -> str | None:
    """Why ``run`` cannot be rebuilt bit for bit here, if its record says so: the CPU flags or
    PyTorch's kernel level it was trained with differ from this machine's, or it was resumed
    with other numerics part way (``numerics_segments``, recorded since 2026-12-02)."""
    from dear.io import hardware  # noqa: PLC0415

    try:
        summary = json.loads((run / "train_summary.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    segments = summary.get("numerics_segments") or []
    if len(segments) > 1:
        return (f"it was trained in {len(segments)} segments with different numerics (resumed on another machine, "
                "thread count or MKL mode), which no single retraining reproduces")
    trained = summary.get("hardware") or {}
    here = hardware()
    for key in ("cpu_capability", "cpu_flags"):
        if trained.get(key) is not None and trained[key] != here[key]:
            return f"trained with {key} {trained[key]}, this machine has {here[key]}"
    return None


def trained_mkl_cbwr(run: Path) -> str | None:
    """The ``MKL_CBWR`` a run was trained under (recorded since 2026-12-02; earlier runs: none)."""
    try:
        return (json.loads((run / "train_summary.json").read_text()).get("hardware") or {}).get("mkl_cbwr")
    except (OSError, json.JSONDecodeError):
        return None


def rebuild(run: Path, scratch_root: Path, force: bool = False) -> dict:
    """Retrain ``run`` in a scratch folder; copy its checkpoint over if it is the same model.
    A run trained on another instruction set (:func:`other_cpu`) is skipped unless ``force``."""
    threads = json.loads((run / "results.json").read_text())["hardware"].get("torch_threads") or 1
    name = run.relative_to(REPO).as_posix() if run.is_relative_to(REPO) else run.as_posix()
    reason = other_cpu(run)
    if reason and not force:
        return {"run": name, "threads": threads, "identical": False, "skipped": f"{reason} (--force to try)"}
    scratch = scratch_root / name.strip("/").replace("/", "__")
    scratch.mkdir(parents=True, exist_ok=True)
    shutil.copy(run / "config.json", scratch / "config.json")
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    env.pop("MKL_CBWR", None)  # MKL's reproducibility mode changes the numbers: the run's own, or none
    if trained_mkl_cbwr(run):
        env["MKL_CBWR"] = trained_mkl_cbwr(run)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "dear.cli", "train", "--out", str(scratch), "--quiet"],
                          env=env, capture_output=True, text=True)
    row = {"run": name, "threads": threads, "mkl_cbwr": env.get("MKL_CBWR"),
           "seconds": round(time.perf_counter() - t0, 1)}
    if proc.returncode != 0:
        return {**row, "identical": False, "error": proc.stderr.strip().splitlines()[-1:]}
    committed = json.loads((run / "train_summary.json").read_text())["best"]
    rebuilt = json.loads((scratch / "train_summary.json").read_text())["best"]
    row.update(committed_best=committed, rebuilt_best=rebuilt, identical=committed == rebuilt)
    if row["identical"]:
        shutil.copy(scratch / "checkpoint_best.pt", run / "checkpoint_best.pt")
    shutil.rmtree(scratch, ignore_errors=True)
    return row


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("entries", nargs="+", type=Path, help="CLRS leaderboard entry JSON files")
    p.add_argument("--worker", type=int, default=0, help="this process takes runs i with i %% workers == worker")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--log", type=Path, default=None, help="JSON-lines log (default: print only)")
    p.add_argument("--scratch", type=Path, default=None, help="where to retrain (default: a temporary folder)")
    p.add_argument("--force", action="store_true", help="also retrain runs recorded on another instruction set")
    args = p.parse_args(argv)
    runs = [r for e in args.entries for r in entry_runs(e)]
    scratch = args.scratch or Path(tempfile.mkdtemp(prefix="rebuild_"))
    mine = [run for i, run in enumerate(runs)
            if i % args.workers == args.worker and not (run / "checkpoint_best.pt").exists()]
    bar = tqdm(mine, desc="rebuilding", unit="run", file=sys.stderr)
    for run in bar:
        bar.set_postfix_str("/".join(run.parts[-3:]))  # algorithm/model/seed
        row = rebuild(run, scratch, force=args.force)
        line = json.dumps(row)
        bar.write(line, file=sys.stdout)
        sys.stdout.flush()
        if args.log is not None:
            with args.log.open("a") as f:
                f.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
