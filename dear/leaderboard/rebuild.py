"""Rebuild the weights behind committed leaderboard entries, so they can be verified.

The runs under ``leaderboards/runs/`` keep configs and results, not weights (``*.pt`` is
git-ignored). For a run an entry names (``source.files``), :func:`rebuild_run` retrains a copy
in a scratch folder, in a subprocess with the thread count and MKL mode the run recorded
(another thread count sums floats in another order), and compares what it trained with the
committed record. Only the weights of a rebuild that reproduces the record exactly are copied
beside the committed results, where :func:`dear.leaderboard.reverify` (``dear leaderboard verify``) finds them;
nothing committed is rewritten.

* CLRS runs (``dear train``): ``dear train --out SCRATCH`` from the run's ``config.json``; the
  same model when the best validation step and loss equal ``train_summary.json``'s; the weights
  are ``checkpoint_best.pt``.
* Node-classification runs (``dear nodecls train``): ``dear nodecls train --out SCRATCH`` on a
  copy of the run's records; a seed is the same model when its test and validation accuracy,
  validation loss, best epoch and epochs run equal its committed ``seeds/seed_<k>.json``; the
  weights are ``seeds/seed_<k>.pt``.

With ``run_code=True`` the run is retrained with the code of the commit it records
(``git_commit``), checked out once per commit as a detached git worktree under the scratch
folder (:func:`commit_worktree`), instead of this checkout's: how a run whose training code has
changed since can still be rebuilt. CLRS runs then train through ``dear.training.train`` on the
saved config, an API all 62 commits recorded by the committed runs have (older CLIs cannot
retrain from ``--out`` alone); node-classification runs train every seed through
``dear.nodecls.train.run`` on the config their ``results.json`` records, into an empty folder.

A rebuild is the same model only with the same code, device, thread count and instruction set:
a run whose record names a GPU this machine lacks, other CPU flags or another PyTorch kernel
level than this machine's, or that was resumed with other numerics part way, is skipped unless
``force`` (docs/user-guide.md, section 3 on rebuilding a committed run). A CPU run is rebuilt
with CUDA hidden, since its config's device is usually "auto". A rebuild that does not
reproduce its record lists what may explain it (:func:`mismatch_causes`: other code, or a
record too old to rule out another CPU kind).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["RebuildError", "commit_worktree", "entry_runs", "mismatch_causes", "other_cpu", "rebuild_run",
           "remove_worktrees", "run_has_weights", "run_name"]

#: The repository this module belongs to: where the recorded commits' worktrees come from.
REPO = Path(__file__).resolve().parents[2]

# a record's config naming a setting the commit's code does not know: the run was made from
# uncommitted changes (records before 2026-12-02 do not say, ``git_uncommitted``)
_UNKNOWN_SETTINGS = (
    "def refuse_unknown(conf, cls):\n"
    "    import dataclasses\n"
    "    unknown = sorted(set(conf) - {f.name for f in dataclasses.fields(cls)})\n"
    "    if unknown:\n"
    "        sys.exit('the record names settings this commit\\'s code does not know (' + ', '.join(unknown) + '):'\n"
    "                 ' the run was made from changes not committed at its git_commit, so no commit holds its code')\n"
)
# ``python -c`` body that retrains a CLRS run from its saved config with whatever ``dear`` is first
# on the path (a recorded commit's worktree): argv = config.json, output folder
_TRAIN_FROM_CONFIG = (
    "import json, sys\n"
    "from pathlib import Path\n"
    "from dear.config import TrainConfig\n"
    "from dear.training import train\n"
    + _UNKNOWN_SETTINGS +
    "refuse_unknown(json.loads(Path(sys.argv[1]).read_text()), TrainConfig)\n"
    "train(TrainConfig.load(Path(sys.argv[1])), Path(sys.argv[2]), progress=False)\n"
)
# the same for a node-classification run: argv = its results.json, an empty output folder; the
# config is what that results file records (older NodeClsConfig.validate return None, so it is
# called for its checks only)
_NODECLS_FROM_RESULTS = (
    "import json, sys\n"
    "from pathlib import Path\n"
    "from dear.nodecls.train import NodeClsConfig, run\n"
    + _UNKNOWN_SETTINGS +
    "conf = {k: v for k, v in json.loads(Path(sys.argv[1]).read_text())['config'].items()\n"
    "        if k != 'resolved_model_options'}\n"
    "refuse_unknown(conf, NodeClsConfig)\n"
    "cfg = NodeClsConfig(**conf)\n"
    "getattr(cfg, 'validate', lambda: None)()\n"
    "run(cfg, Path(sys.argv[2]), progress=False)\n"
)


class RebuildError(RuntimeError):
    """A rebuild cannot start (e.g. the recorded commit is not in this repository's history)."""

# what a node-classification seed's rebuild must reproduce exactly to be the same model
_NODECLS_SAME = ("test_accuracy", "val_accuracy", "val_loss", "best_epoch", "epochs_run")


def entry_runs(entry: dict[str, Any], base: Path) -> list[Path]:
    """The run directories an entry was built from (``source.files``, relative to ``base``)."""
    return [(Path(base) / f).parent for f in (entry.get("source") or {}).get("files") or []]


def run_name(run: Path, base: Path) -> str:
    """How a run is named in rebuild rows and messages: relative to the repository when inside it."""
    run, base = Path(run).resolve(), Path(base).resolve()
    return run.relative_to(base).as_posix() if run.is_relative_to(base) else run.as_posix()


def _is_nodecls(run: Path) -> bool:
    return not (run / "config.json").is_file() and (run / "results.json").is_file()


def _nodecls_seeds(run: Path) -> list[int]:
    results = json.loads((run / "results.json").read_text())
    return [r["seed"] for r in results.get("per_seed") or [] if isinstance(r.get("seed"), int)]


def run_has_weights(run: Path) -> bool:
    """Whether every model of ``run`` has its weights here (nothing to rebuild)."""
    if _is_nodecls(run):
        from dear.nodecls.train import seed_files  # noqa: PLC0415

        return all(seed_files(run, s)[1].is_file() for s in _nodecls_seeds(run))
    return (run / "checkpoint_best.pt").is_file()


def _record(run: Path) -> dict[str, Any]:
    """The file that records how ``run`` was trained: CLRS ``train_summary.json``, nodecls
    ``results.json`` (both hold ``hardware``); empty when unreadable."""
    path = run / ("results.json" if _is_nodecls(run) else "train_summary.json")
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def other_cpu(run: Path, record: dict[str, Any] | None = None) -> str | None:
    """Why ``run`` cannot be rebuilt bit for bit here, if its record says so: it was trained on
    a GPU this machine lacks, the CPU flags or PyTorch's kernel level it was trained with differ
    from this machine's, or it was resumed with other numerics part way (``numerics_segments``,
    recorded since 2026-12-02). ``record``: the run's record when the caller has read it."""
    from dear.io import hardware  # noqa: PLC0415

    record = _record(run) if record is None else record
    segments = record.get("numerics_segments") or []
    if len(segments) > 1:
        return (f"it was trained in {len(segments)} segments with different numerics (resumed on another machine, "
                "thread count or MKL mode), which no single retraining reproduces")
    trained = record.get("hardware") or {}
    if str(trained.get("device") or "cpu").startswith("cuda"):
        import torch  # noqa: PLC0415

        gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
        if gpu != trained.get("gpu"):
            return f"trained on a GPU ({trained.get('gpu')}), this machine has {gpu or 'none'}"
    here = hardware()
    for key in ("cpu_capability", "cpu_flags"):
        if trained.get(key) is not None and trained[key] != here[key]:
            return f"trained with {key} {trained[key]}, this machine has {here[key]}"
    return None


def commit_worktree(commit: str, root: Path, repo: Path = REPO) -> Path:
    """A clean checkout of ``commit`` at ``root/code/<commit>``, made once as a detached git
    worktree of ``repo`` and reused after (one cut short by an interruption is made again). Raises :class:`RebuildError` when ``repo`` is not a git checkout or
    does not hold ``commit`` (a shallow clone: fetch its history first)."""
    dest = Path(root) / "code" / commit
    if (dest / "dear" / "__init__.py").is_file():
        return dest

    def git(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", "-C", str(repo), *argv], capture_output=True, text=True)

    if git("cat-file", "-e", f"{commit}^{{commit}}").returncode != 0:
        raise RebuildError(f"commit {commit[:12]} is not in the history of {repo} (not a git checkout, or a shallow "
                           "clone: `git fetch --unshallow`), so the run cannot be retrained with its own code")
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(dest, ignore_errors=True)  # a checkout cut short by an interruption
    git("worktree", "prune")
    made = git("worktree", "add", "--detach", "--force", str(dest), commit)
    if made.returncode != 0:
        raise RebuildError(f"could not check out commit {commit[:12]}: {made.stderr.strip()}")
    return dest


def remove_worktrees(scratch_root: Path, repo: Path = REPO) -> None:
    """Delete ``scratch_root`` with the commit worktrees :func:`commit_worktree` made in it, and
    drop their registration from ``repo`` (``git worktree prune``)."""
    shutil.rmtree(scratch_root, ignore_errors=True)
    subprocess.run(["git", "-C", str(repo), "worktree", "prune"], capture_output=True)


def mismatch_causes(record: dict[str, Any], code_commit: str | None = None) -> list[str]:
    """What may make a rebuild of the run with ``record`` another sample, given that the thread
    count and MKL mode are replayed: other code (the run's ``git_commit`` against this
    checkout's, unless no source file differs, :func:`dear.io.code_changes_since`; or changes
    the run was made from that its commit does not hold, ``git_uncommitted``), or another
    CPU kind that the record cannot rule out (no ``cpu_flags`` before
    2026-12-02; the committed runs of that time come from several CPU kinds,
    docs/user-guide.md). ``code_commit``: the commit whose code rebuilt it (default: this
    checkout's). Empty when neither applies."""
    from dear.io import code_changes_since, git_commit, name_files  # noqa: PLC0415

    causes = []
    trained, here = record.get("git_commit"), code_commit or git_commit()
    if isinstance(trained, str) and here and trained != here:
        changed = None if code_commit else code_changes_since(trained)
        if changed is None or changed:  # [] : the source files are the same as the run's, code is no cause
            files = f" ({len(changed)} source file(s) differ)" if changed else ""
            causes.append(f"trained at commit {trained[:7]}, rebuilt at {here[:7]}{files}: if the training code "
                          "changed in between, the rebuild is another sample (--run-code retrains it with its own "
                          "commit's code)")
    if record.get("git_uncommitted"):
        causes.append(f"it was made from changes not committed at its commit ({name_files(record['git_uncommitted'])})")
    if (record.get("hardware") or {}).get("cpu_flags") is None:
        causes.append("its record names no CPU flags (recorded since 2026-12-02), so it may come from another "
                      "CPU kind than this machine's")
    return causes


def _environment(record: dict[str, Any]) -> tuple[dict[str, str], int]:
    """The subprocess environment that replays the thread count, MKL mode (``MKL_CBWR`` unset
    for runs that record none, whatever this shell sets) and, for a CPU run, the CPU that the
    run's ``record`` states."""
    hw = record.get("hardware") or {}
    threads = int(hw.get("torch_threads") or 1)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    env.pop("MKL_CBWR", None)
    if hw.get("mkl_cbwr"):
        env["MKL_CBWR"] = str(hw["mkl_cbwr"])
    if str(hw.get("device") or "cpu").startswith("cpu"):
        env["CUDA_VISIBLE_DEVICES"] = ""  # a CPU run's config says device "auto": keep a GPU out of it
    return env, threads


def rebuild_run(run: Path, scratch_root: Path, *, force: bool = False, name: str | None = None,
                run_code: bool = False, repo: Path = REPO) -> dict[str, Any]:
    """Retrain ``run`` in ``scratch_root``; copy its weights beside the committed results where
    they are the same model. ``run_code``: retrain with the code of the commit the run records
    (a worktree of ``repo`` under ``scratch_root``, kept for the next run of that commit) instead
    of this checkout's. Returns a JSON-able row: ``run``, ``threads``, ``mkl_cbwr``, ``code`` (the
    recorded commit, with ``run_code``), ``seconds``, ``identical`` and what was compared (or
    ``skipped`` / ``error``)."""
    name = name or Path(run).as_posix()
    # absolute: with ``run_code`` the retraining runs in the commit's worktree, not here
    run, scratch_root = Path(run).resolve(), Path(scratch_root).resolve()
    record = _record(run)
    env, threads = _environment(record)
    row: dict[str, Any] = {"run": name, "threads": threads, "mkl_cbwr": env.get("MKL_CBWR")}
    reason = other_cpu(run, record)
    if reason and not force:
        return {**row, "identical": False, "skipped": f"{reason} (--force to try)"}
    cwd, code_commit = None, None
    nodecls = _is_nodecls(run)
    if run_code:
        code_commit = record.get("git_commit")
        if not isinstance(code_commit, str) or not code_commit:
            return {**row, "identical": False, "error": ["its record names no git_commit to take the code from"]}
        if record.get("git_uncommitted"):
            from dear.io import name_files  # noqa: PLC0415

            return {**row, "code": code_commit, "identical": False,
                    "error": [f"it was made from changes not committed at {code_commit[:7]} "
                              f"({name_files(record['git_uncommitted'])}), so no commit holds its code"]}
        try:
            cwd = commit_worktree(code_commit, scratch_root, repo)
        except RebuildError as e:
            return {**row, "code": code_commit, "identical": False, "error": [str(e)]}
        env = {**env, "PYTHONPATH": os.pathsep.join(filter(None, [str(cwd), env.get("PYTHONPATH")]))}
        if nodecls:  # the worktree has no ../shared/data beside it: this checkout's data folder
            from dear.nodecls.datasets.base import ENV_DATA, resolve_data_dir  # noqa: PLC0415

            env.setdefault(ENV_DATA, str(resolve_data_dir()))
        row["code"] = code_commit
    scratch = scratch_root / name.strip("/").replace("/", "__")
    shutil.rmtree(scratch, ignore_errors=True)
    if nodecls and run_code:  # every seed into an empty folder, from the config the results file records
        scratch.mkdir(parents=True)
        command = ["-c", _NODECLS_FROM_RESULTS, str(run / "results.json"), str(scratch)]
    elif nodecls:  # the records only: `--out` alone then trains every seed again
        shutil.copytree(run, scratch, ignore=shutil.ignore_patterns("*.pt"))
        command = ["-m", "dear.cli", "nodecls", "train", "--out", str(scratch), "--quiet"]
    else:
        scratch.mkdir(parents=True)
        shutil.copy(run / "config.json", scratch / "config.json")
        command = (["-c", _TRAIN_FROM_CONFIG, str(scratch / "config.json"), str(scratch)] if run_code
                   else ["-m", "dear.cli", "train", "--out", str(scratch), "--quiet"])
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, *command], env=env, cwd=cwd, capture_output=True, text=True)
    row["seconds"] = round(time.perf_counter() - t0, 1)
    try:
        if proc.returncode != 0:
            return {**row, "identical": False, "error": proc.stderr.strip().splitlines()[-1:]}
        try:
            row.update(_compare_nodecls(run, scratch) if nodecls else _compare_clrs(run, scratch, record.get("best")))
        except (OSError, ValueError, KeyError) as e:  # e.g. other code that writes another record layout
            return {**row, "identical": False, "error": [f"the rebuild left no comparable record ({e!r})"]}
        if not row["identical"]:
            row["possible_causes"] = mismatch_causes(record, code_commit)
        return row
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _compare_clrs(run: Path, scratch: Path, committed: dict[str, Any] | None) -> dict[str, Any]:
    """``committed``: the best validation record of the run's ``train_summary.json`` (its record)."""
    rebuilt = json.loads((scratch / "train_summary.json").read_text())["best"]
    same = committed == rebuilt
    if same:
        shutil.copy(scratch / "checkpoint_best.pt", run / "checkpoint_best.pt")
    return {"committed_best": committed, "rebuilt_best": rebuilt, "identical": same}


def _compare_nodecls(run: Path, scratch: Path) -> dict[str, Any]:
    from dear.nodecls.train import seed_files  # noqa: PLC0415

    same, differ = [], []
    for seed in _nodecls_seeds(run):
        record_path, weights = seed_files(run, seed)
        new_record, new_weights = seed_files(scratch, seed)
        committed = json.loads(record_path.read_text())["record"]
        rebuilt = json.loads(new_record.read_text())["record"]
        if all(committed.get(k) == rebuilt.get(k) for k in _NODECLS_SAME):
            same.append(seed)
            if not weights.is_file():
                shutil.copy(new_weights, weights)
        else:
            differ.append({"seed": seed, **{k: [committed.get(k), rebuilt.get(k)] for k in _NODECLS_SAME
                                            if committed.get(k) != rebuilt.get(k)}})
    return {"identical_seeds": same, "different_seeds": differ, "identical": not differ}

