"""The boards on disk: reading entries, submitting (validate, verify, write atomically, re-render),
validating every committed entry, rendering the tables.

Layout::

    leaderboards/
      README.md                 what the tracks are (hand-written)
      <track>/README.md         rendered table (generated; validate fails if it is stale)
      <track>/<entry>.json      one file per entry, named by :func:`entry_filename`
      runs/                     measured runs behind our own entries (not entries)

Writes are atomic (temporary file + rename) and serialised per track by a lock, so two
concurrent submissions cannot both pass the duplicate check and a reader never sees half a
file or a table that lags its entries by a half-written entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from filelock import FileLock

from dear.io import atomic_write_text
from dear.leaderboard.render import render_track
from dear.leaderboard.schema import EntryRejected
from dear.leaderboard.tracks import TRACKS, Track, get_track
from dear.leaderboard.validation import entry_filename, entry_key, validate_entry

ENV_ROOT = "DEAR_LEADERBOARDS"
BOARDS_DIRNAME = "leaderboards"


class BoardNotFoundError(ValueError):
    """The boards folder does not exist (or is not one); the message says what to pass instead."""


def default_root() -> Path:
    """``$DEAR_LEADERBOARDS``, else ``./leaderboards`` (relative to the working directory).

    Nothing else: falling back to the installed package's own checkout would make a command run
    from anywhere read (and, for ``submit``/``render``, write) the source tree's boards without
    saying so. Run from the repository root, set the variable, or pass ``--root``.
    """
    env = os.environ.get(ENV_ROOT)
    if env:
        return Path(env).expanduser()
    return Path.cwd() / BOARDS_DIRNAME


def dump_entry(entry: Mapping[str, Any]) -> str:
    """The canonical text of an entry file (stable key order, so diffs are reviewable)."""
    return json.dumps(entry, indent=1, sort_keys=True, allow_nan=True) + "\n"


@dataclass
class Problem:
    """One failed check found by :meth:`Board.validate`."""

    path: Path
    reason: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


@dataclass
class Report:
    """What :meth:`Board.validate` found: entries checked per track, and problems."""

    checked: dict[str, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


class Board:
    """The leaderboards under ``root``; ``base`` (default: ``root``'s parent, the repository) is
    where ``task_module`` paths of user tasks resolve."""

    def __init__(self, root: Path | None = None, base: Path | None = None):
        # a root the caller named (argument or $DEAR_LEADERBOARDS) may be created, see check_root
        self.named = root is not None or bool(os.environ.get(ENV_ROOT))
        self.root = Path(root) if root is not None else default_root()
        self.base = Path(base) if base is not None else self.root.resolve().parent

    def check_root(self, write: bool) -> None:
        """Refuse a boards folder that is not there, so a mistyped ``--root`` fails instead of
        validating nothing ("ok: 0 entries") or starting a fresh board in a stray folder.

        Reading (``validate``) needs an existing folder holding at least one track folder.
        Writing (``submit``, ``render``) also accepts a missing folder when the caller named
        it and it is called ``leaderboards`` inside an existing folder: that is asking for a new
        board. Anywhere else, create the folder first (``mkdir``), which is asking just as clearly.
        """
        root = self.root
        if root.is_dir():
            if write or any((root / t).is_dir() for t in TRACKS):
                return
            raise BoardNotFoundError(f"{root} holds no boards (none of {', '.join(f'{t}/' for t in TRACKS)}); "
                                     "pass the leaderboards folder with --root")
        if root.exists():
            raise BoardNotFoundError(f"the boards folder {root} is not a directory; check --root")
        if write and self.named and root.name == BOARDS_DIRNAME and root.parent.is_dir():
            return
        how = ("pass --root (or set $DEAR_LEADERBOARDS), or run from the repository root"
               if not self.named else "check --root")
        if write:
            how += f"; to start a new board, create the folder first or name it {BOARDS_DIRNAME}/"
        raise BoardNotFoundError(f"no boards folder at {root}; {how}")

    # ------------------------------------------------------------------------- reading

    def track_dir(self, track: str) -> Path:
        return self.root / get_track(track).name

    def entry_files(self, track: str) -> list[Path]:
        d = self.track_dir(track)
        return sorted(p for p in d.glob("*.json")) if d.is_dir() else []

    def entries(self, track: str) -> Iterator[tuple[Path, dict[str, Any]]]:
        """(path, entry) for every JSON file of the track; unreadable files raise EntryRejected."""
        for path in self.entry_files(track):
            try:
                data = json.loads(path.read_text())
            except json.JSONDecodeError as e:
                raise EntryRejected("schema", f"{path.name} is not valid JSON ({e})") from None
            yield path, data

    def path_for(self, entry: Mapping[str, Any]) -> Path:
        """Where an entry is stored; refuses any path that is not directly in its track's folder."""
        folder = self.track_dir(entry["track"]).resolve()
        path = (folder / entry_filename(entry)).resolve()
        if path.parent != folder:
            raise EntryRejected("path", f"the entry's file name would leave the track folder {folder}")
        return path

    def _lock(self, track: str) -> FileLock:
        digest = hashlib.sha256(str(self.track_dir(track).resolve()).encode()).hexdigest()[:16]
        return FileLock(str(Path(tempfile.gettempdir()) / f"dear-leaderboard-{digest}.lock"))

    # ---------------------------------------------------------------------- submitting

    def find_duplicate(self, entry: Mapping[str, Any]) -> Path | None:
        """The file of an existing entry with the same :func:`entry_key`, if any."""
        key = entry_key(entry)
        for path, other in self.entries(entry["track"]):
            try:
                if entry_key(other) == key:
                    return path
            except (KeyError, TypeError, ValueError):
                continue  # a malformed file is validate's business, not a duplicate
        return None

    def add(self, entry: dict[str, Any], replace: bool = False) -> Path:
        """Validate ``entry``, write it atomically and re-render its track's table.

        A duplicate (same track, task, test split, model name and variant) is refused unless
        ``replace``; the check and the write happen under the track's lock.
        """
        self.check_root(write=True)
        track = validate_entry(entry, self.base)
        path = self.path_for(entry)
        with self._lock(track.name):
            dup = self.find_duplicate(entry)
            if dup is not None and not replace:
                raise EntryRejected("duplicate", f"{dup.name} already holds {entry['model']['name']} / "
                                                 f"{entry['model']['variant']} on {entry['task']} for this test "
                                                 "split; use another --variant (or --replace to update it)")
            if dup is not None and dup.resolve() != path:
                dup.unlink()
            atomic_write_text(path, dump_entry(entry))
            self.write_table(track.name)
        return path

    # ------------------------------------------------------------------------ rendering

    def render(self, track: str) -> str:
        return render_track(get_track(track), [e for _, e in self.entries(track)])

    def write_table(self, track: str) -> Path:
        self.check_root(write=True)
        path = self.track_dir(track) / "README.md"
        atomic_write_text(path, self.render(track))
        return path

    # ----------------------------------------------------------------------- validating

    def validate(self, tracks: Sequence[str] | None = None) -> Report:
        """Check every entry of ``tracks`` (default: all): per-entry checks, the file's location
        and name, duplicates, and that README.md equals the table rendered from the entries.

        Every bad file is one :class:`Problem` (one line); none stops the others being checked.
        A missing boards folder raises :class:`BoardNotFoundError` rather than passing empty.
        """
        self.check_root(write=False)
        report = Report()
        for name in tracks or list(TRACKS):
            track: Track = get_track(name)
            seen: dict[tuple, Path] = {}
            good: list[dict[str, Any]] = []
            count = 0
            for path in self.entry_files(name):
                count += 1
                try:
                    entry = json.loads(path.read_text())
                    validate_entry(entry, self.base)
                    if entry["track"] != name:
                        raise EntryRejected("path", f"the entry is for track {entry['track']!r} but lies in "
                                                    f"{name}/")
                    if path.name != entry_filename(entry):
                        raise EntryRejected("path", f"file name must be {entry_filename(entry)} (derived from "
                                                    "task, model and variant)")
                    key = entry_key(entry)
                    if key in seen:
                        raise EntryRejected("duplicate", f"same task, split, model and variant as {seen[key].name}")
                    seen[key] = path
                    good.append(entry)
                except json.JSONDecodeError as e:
                    report.problems.append(Problem(path, "schema", f"rejected (schema): not valid JSON ({e})"))
                except EntryRejected as e:
                    report.problems.append(Problem(path, e.reason, str(e)))
                except Exception as e:  # noqa: BLE001  a malformed file can fail anywhere; report it, go on
                    msg = " ".join(str(e).split())[:300]
                    report.problems.append(Problem(path, "schema", f"rejected (schema): the entry cannot be "
                                                                   f"checked ({type(e).__name__}: {msg})"))
            report.checked[name] = count
            readme = self.track_dir(name) / "README.md"
            bad_here = any(p.path.parent == self.track_dir(name) for p in report.problems)
            if (count or readme.exists()) and not bad_here:
                expected = render_track(track, good)
                if not readme.exists() or readme.read_text() != expected:
                    report.problems.append(Problem(readme, "stale", "the table does not match the entries; run "
                                                                    "`dear leaderboard render`"))
        return report
