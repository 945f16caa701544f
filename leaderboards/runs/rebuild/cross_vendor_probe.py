"""Does MKL's vendor-neutral mode make a CLRS training run give the same weights on an Intel and
an AMD host? Retrains committed runs here, once with MKL's default and once with
``MKL_CBWR=COMPATIBLE``, and compares the best validation record (loss, score, step) with what
the AMD EPYC host of 2026-12-02 gave for the same runs in the same two modes
(``other_host_2026-12-02.json``, ``mkl_compatible_mode_cost``) and with the committed record.

Each retraining is ``dear train --out SCRATCH`` on a copy of the run's ``config.json`` (the code
of ``dear.leaderboard.rebuild``), with the thread count the run recorded; one run at a time.

    python leaderboards/runs/rebuild/cross_vendor_probe.py --out leaderboards/runs/rebuild/intel_host_2026-12-02.json
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

from dear.io import atomic_write_text, git_commit, hardware, versions

REPO = Path(__file__).resolve().parents[3]
AMD = REPO / "leaderboards/runs/rebuild/other_host_2026-12-02.json"
MODES = {"default": None, "MKL_CBWR=COMPATIBLE": "COMPATIBLE"}


def retrain(run: Path, mkl_cbwr: str | None, scratch_root: Path) -> dict:
    """Train ``run``'s config again in a scratch folder; its best record and the seconds taken."""
    record = json.loads((run / "train_summary.json").read_text())
    env = {**os.environ, "OMP_NUM_THREADS": str(record["hardware"].get("torch_threads") or 1),
           "CUDA_VISIBLE_DEVICES": ""}
    env.pop("MKL_CBWR", None)
    if mkl_cbwr:
        env["MKL_CBWR"] = mkl_cbwr
    scratch = Path(tempfile.mkdtemp(dir=scratch_root))
    try:
        shutil.copy(run / "config.json", scratch / "config.json")
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "dear.cli", "train", "--out", str(scratch), "--quiet"],
                       env=env, check=True)
        seconds = round(time.perf_counter() - t0, 1)
        return {"best": json.loads((scratch / "train_summary.json").read_text())["best"], "train_seconds": seconds}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--scratch", type=Path, default=Path(tempfile.gettempdir()))
    args = ap.parse_args()
    amd = json.loads(AMD.read_text())
    done = json.loads(args.out.read_text()) if args.out.exists() else {"rows": []}
    for amd_row in amd["mkl_compatible_mode_cost"]["rows"]:
        run = REPO / amd_row["run"]
        committed = json.loads((run / "train_summary.json").read_text())["best"]
        for mode, value in MODES.items():
            if any(r["run"] == amd_row["run"] and r["mode"] == mode for r in done["rows"]):
                continue  # resumable
            here = retrain(run, value, args.scratch)
            row = {"run": amd_row["run"], "mode": mode, "here": here, "amd_epyc_host": amd_row[mode]["best"],
                   "committed": committed, "same_as_amd_epyc_host": here["best"] == amd_row[mode]["best"],
                   "same_as_committed": here["best"] == committed}
            done["rows"].append(row)
            done.update({"this_host": hardware(), "versions": versions(), "git_commit": git_commit(),
                         "amd_epyc_host": amd["this_host"]})
            atomic_write_text(args.out, json.dumps(done, indent=1) + "\n")
            print(f"{amd_row['run']} [{mode}]: here {here['best']['loss']:.6g} in {here['train_seconds']} s; "
                  f"AMD EPYC host {amd_row[mode]['best']['loss']:.6g}; committed {committed['loss']:.6g}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
