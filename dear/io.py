"""Small I/O helpers shared by training, evaluation and leaderboards: atomic writes, run metadata."""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import subprocess
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from dear.runtime import allocator_tuned


def _atomic(path: Path, write: Callable[[Any], None], mode: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Write a text file so that readers see the old or the new content, never a mix."""
    _atomic(path, lambda f: f.write(text), "w")


def atomic_torch_save(path: Path, obj: Any) -> None:
    """``torch.save`` to a temporary file renamed into place (interrupted saves leave no file)."""
    _atomic(path, lambda f: torch.save(obj, f), "wb")


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float as ``None``: ``json.dumps`` would write
    ``Infinity``/``NaN`` (a run's initial best loss, a diverged validation), which is not JSON
    and breaks strict readers (``jq``, browsers, other languages)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def dumps_strict(obj: Any, indent: int = 1) -> str:
    """``obj`` as strict JSON text (non-finite floats as ``null``, see :func:`json_safe`)."""
    return json.dumps(json_safe(obj), indent=indent, allow_nan=False)


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks (checkpoints can be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def versions(extra: Sequence[str] = ()) -> dict[str, str]:
    """Installed versions of the packages a result depends on (plus ``extra`` ones, e.g. the
    JAX stack for a comparison against dm-clrs); missing ones read ``"not installed"``."""
    out = {"python": platform.python_version()}
    for pkg in ("torch", "torch-geometric", "dm-clrs", "numpy", "dear", *extra):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def git_commit() -> str | None:
    try:
        here = Path(__file__).resolve().parent
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


#: The source folders whose code a run's numbers depend on (the package and the CLRS loader).
CODE_PATHS = ("dear", "clrs_tasks")


def uncommitted_code(root: Path | str | None = None) -> list[str] | None:
    """The Python files of :data:`CODE_PATHS` whose working-tree state is not the ``HEAD`` commit's
    (modified, staged, new or deleted), sorted. Recorded beside ``git_commit`` because a run made
    from such a tree was trained by code that no commit holds: its commit alone cannot replay it.
    ``[]`` for a clean tree; ``None`` when git or the checkout is unavailable. ``root``: the
    checkout (default: the one this package runs from)."""
    root = Path(root) if root is not None else Path(__file__).resolve().parents[1]
    try:
        out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all", "--", *CODE_PATHS], cwd=root,
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    paths = (line[3:].split(" -> ")[-1].strip('"') for line in out.stdout.splitlines() if len(line) > 3)
    return sorted(p for p in paths if p.endswith(".py"))


def name_files(paths: Sequence[str], shown: int = 3) -> str:
    """``a, b, c and 4 more``: a file list short enough for a one-line message."""
    return ", ".join(paths[:shown]) + (f" and {len(paths) - shown} more" if len(paths) > shown else "")


def code_provenance() -> dict[str, Any]:
    """``git_commit`` and ``git_uncommitted`` (:func:`uncommitted_code`): which code made a record."""
    return {"git_commit": git_commit(), "git_uncommitted": uncommitted_code()}


def code_changes_since(commit: str) -> list[str] | None:
    """The Python files of :data:`CODE_PATHS` that differ between ``commit`` and the code running
    here (the working tree of this checkout), sorted; ``[]`` when none does, so a run trained at
    ``commit`` ran this very code. ``None`` when git, the checkout or the commit is unavailable
    (an installed package, a shallow clone)."""
    root = Path(__file__).resolve().parents[1]
    try:
        out = subprocess.run(["git", "diff", "--name-only", commit, "--", *CODE_PATHS], cwd=root,
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return sorted(f for f in out.stdout.split() if f.endswith(".py"))


def other_code_note(run_dir: Path | str, recorded_commit: str | None) -> str | None:
    """The note to print before a finished run without its weights is trained again with other
    code than it was trained with (:func:`code_changes_since` its ``git_commit`` is not empty):
    if a change touches training, the rebuild is another sample. ``None`` when the code is the
    same or the question cannot be answered here."""
    if not isinstance(recorded_commit, str) or not recorded_commit:
        return None
    changed = code_changes_since(recorded_commit)
    if not changed:
        return None
    return (f"note: {run_dir} was trained at commit {recorded_commit[:7]}, and {len(changed)} source file(s) differ "
            f"here ({name_files(changed)}): if a change touches training, the rebuild will be another sample; check out "
            f"{recorded_commit[:7]} to rebuild it with its own code (for the runs behind a leaderboard entry: "
            "`dear leaderboard verify --rebuild --run-code`)")


def cpu_model(cpuinfo: Path | str = "/proc/cpuinfo") -> str | None:
    """The CPU's model name (Linux ``/proc/cpuinfo``; elsewhere what :mod:`platform` knows, else
    ``None``). Timings from two machines are comparable only on the same model, and a retrained
    run reproduces its weights bit for bit only there (float kernels differ between CPUs)."""
    try:
        with open(cpuinfo) as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or None


def cpu_flags_digest(cpuinfo: Path | str = "/proc/cpuinfo") -> str | None:
    """A short digest of the CPU's feature flags (Linux ``/proc/cpuinfo``; else ``None``).

    Virtual machines often report a bare model name ("AMD EPYC"), and two hosts under one name
    can offer different instruction sets, so MKL and oneDNN pick different kernels and a
    retrained run comes out as another sample. Equal digests say the instruction sets match."""
    import hashlib  # noqa: PLC0415

    try:
        with open(cpuinfo) as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "flags" and value.strip():
                    return hashlib.sha256(" ".join(sorted(value.split())).encode()).hexdigest()[:12]
    except OSError:
        pass
    return None


def hardware(device: torch.device | None = None) -> dict[str, Any]:
    """Where a number was measured: the fields two runs must share to be comparable (timings)
    or reproducible bit for bit (weights): CPU model, instruction-set flags and the kernel level
    PyTorch dispatches to (``cpu_capability``, e.g. AVX512), MKL's reproducibility mode
    (``mkl_cbwr``: the ``MKL_CBWR`` environment variable, ``None`` when unset), thread count."""
    info: dict[str, Any] = {"platform": platform.platform(), "cpu": platform.processor() or platform.machine(),
                            "cpu_model": cpu_model(), "cpu_flags": cpu_flags_digest(),
                            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                            "mkl_cbwr": os.environ.get("MKL_CBWR"), "cpu_count": os.cpu_count(),
                            "torch_threads": torch.get_num_threads(), "allocator_tuned": allocator_tuned()}
    if device is not None and device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    info["device"] = str(device) if device is not None else "cpu"
    return info


NUMERICS_KEYS = ("device", "gpu", "cpu_flags", "cpu_capability", "mkl_cbwr", "torch_threads")


def numerics(device: torch.device | None = None) -> dict[str, Any]:
    """The part of :func:`hardware` that decides a run's float results bit for bit: device (and
    GPU), instruction set, MKL's reproducibility mode, thread count. Two segments of one run
    (an interrupted run resumed elsewhere) with different values give a run that no single
    retraining reproduces."""
    hw = hardware(device)
    return {k: _numerics_value(k, hw.get(k)) for k in NUMERICS_KEYS}


def _numerics_value(key: str, value: Any) -> Any:
    """The device's type only ("cuda", not "cuda:1"): the GPU's name says which kind it is."""
    return str(value).split(":")[0] if key == "device" and value is not None else value


def numerics_differences(recorded: dict[str, Any], here: dict[str, Any], keys: Sequence[str] = NUMERICS_KEYS,
                         *, unstated_differ: bool = False) -> list[str]:
    """``key recorded -> here`` for each of ``keys`` (by default :data:`NUMERICS_KEYS`) in which
    ``recorded`` (a run's ``hardware``) and ``here`` differ. A key ``recorded`` does not state
    (older records lack the newer keys) is skipped, unless ``unstated_differ``: then ``None``
    is a value like any other (two segments of one run, both recorded by the same code)."""
    return [f"{k} {recorded.get(k)!r} -> {here.get(k)!r}" for k in keys
            if (unstated_differ or recorded.get(k) is not None)
            and _numerics_value(k, recorded.get(k)) != _numerics_value(k, here.get(k))]


def other_numerics_note(run_dir: Path | str, recorded: dict[str, Any], device: str) -> str | None:
    """The note to print before a finished run without its weights is trained again on a machine
    whose numerics (:func:`numerics_differences` against the run's ``recorded`` hardware) differ:
    the rebuild is then another sample of its configuration. ``None`` when nothing differs or
    ``device`` is not available here (training reports that)."""
    try:
        here = numerics(resolve_device(device))
    except (ValueError, RuntimeError):
        return None
    diff = numerics_differences(recorded or {}, here)
    if not diff:
        return None
    hint = ""
    if any(d.startswith("torch_threads") for d in diff):
        hint = f" (OMP_NUM_THREADS={recorded['torch_threads']} sets the thread count)"
    return (f"note: {run_dir} was trained with other numerics than this machine's ({'; '.join(diff)}): the rebuild "
            f"will be another sample of its configuration, not the same weights{hint}")


def rebuild_notes(run_dir: Path | str, record: dict[str, Any], device: str) -> list[str]:
    """What to say before a finished run without its weights (a committed run) is trained again
    from its ``record`` (a CLRS ``train_summary.json`` or a nodecls ``results.json``): other
    numerics here (:func:`other_numerics_note`) and other code (:func:`other_code_note`)."""
    uncommitted = record.get("git_uncommitted")
    notes = (other_numerics_note(run_dir, record.get("hardware") or {}, device),
             other_code_note(run_dir, record.get("git_commit")),
             f"note: {run_dir} was made from changes not committed at its commit ({name_files(uncommitted)}): no "
             "commit holds its code, so the rebuild is another sample if they touched training" if uncommitted else None)
    return [n for n in notes if n]


def write_measurement(path: Path | str, fields: dict[str, Any], device: torch.device | None = None) -> Path:
    """Write a benchmark's JSON (``fields`` plus the provenance every measured number carries:
    the command line, torch threads, package versions, git commit and hardware), atomically,
    creating the folder. Returns the path."""
    import json  # noqa: PLC0415
    import sys  # noqa: PLC0415

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {**fields, "command": " ".join(sys.argv), "threads": torch.get_num_threads(), "versions": versions(),
              **code_provenance(), "hardware": hardware(device or torch.device("cpu"))}
    atomic_write_text(path, json.dumps(record, indent=1) + "\n")
    return path


def resolve_device(name: str = "auto") -> torch.device:
    """``auto``: CUDA when present, else CPU; anything else is passed to ``torch.device``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ValueError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device cuda requested but CUDA is not available on this machine")
    return dev
