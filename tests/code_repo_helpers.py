"""A throwaway git repository holding this checkout's code, for the tests of rebuilding a run
with the code of the commit it records (``dear.leaderboard.rebuild``, ``run_code=True``)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: an environment variable naming a file: the committed code writes its own ``dear/__init__.py``
#: path there when imported, which proves a rebuild ran that commit's code
MARKER_ENV = "DEAR_TEST_MARKER"


def code_repo(where: Path) -> tuple[Path, str]:
    """A git repository at ``where`` with one commit: this checkout's ``dear`` and ``clrs_tasks``
    (working tree), plus the marker write. Returns the repository and the commit's sha."""
    for package in ("dear", "clrs_tasks"):
        shutil.copytree(ROOT / package, where / package, ignore=shutil.ignore_patterns("__pycache__"))
    with (where / "dear" / "__init__.py").open("a") as f:
        f.write(f"\nimport os as _os\nif _os.environ.get({MARKER_ENV!r}):\n"
                f"    open(_os.environ[{MARKER_ENV!r}], 'w').write(__file__)\n")
    for argv in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "code of the run"]):
        git(where, *argv)
    return where, git(where, "rev-parse", "HEAD").strip()


def git(repo: Path, *argv: str) -> str:
    """``git -C repo ARGV`` with a throwaway identity; its stdout."""
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.org", *argv],
                          check=True, capture_output=True, text=True).stdout


def record_made_at(path: Path, commit: str) -> dict:
    """Rewrite the run record at ``path`` (``train_summary.json`` / ``results.json``) as made by
    ``commit``'s code as committed (whatever the state of this checkout); returns the record."""
    record = json.loads(path.read_text())
    record.update(git_commit=commit, git_uncommitted=[])
    path.write_text(json.dumps(record))
    return record


def watch_code(monkeypatch, where: Path) -> Path:
    """The file the committed code of :func:`code_repo` writes its path to when imported."""
    monkeypatch.setenv(MARKER_ENV, str(where))
    return where
