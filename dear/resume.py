"""Finished pieces of a long sweep, kept on disk so an interrupted sweep resumes where it stopped.

``dear pareto`` measures many (seed, solver, tolerance) points, minutes to hours on a large
graph, and writes its JSON only at the end. :class:`PartialResults` keeps each finished unit (a
seed of a node-classification sweep, a run's tolerance point of a DEAR sweep) in one JSON file
beside the output, written atomically as soon as the unit is done; the same command run again
takes the finished units from it and measures only the rest. The file also records the sweep's
settings: a file written with other settings measured something else, so it is set aside with a
note and the sweep starts over. Units are keyed by what they measured (e.g. a seed and the
sha256 of its weights), so retrained weights are measured again. The sweep removes the file
after writing its final output.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Mapping

from dear.io import atomic_write_text

__all__ = ["PartialResults"]

SCHEMA = "dear.partial/1"


def _plain(value: Any) -> Any:
    """``value`` as JSON reads it back (tuples become lists), so settings compare as stored."""
    return json.loads(json.dumps(value))


class PartialResults:
    """The finished units of one sweep (see the module docstring).

    Args:
        path: the file (e.g. ``OUT/pareto.partial.json``).
        settings: everything that defines what a unit measures besides its key (solvers,
            tolerances, repeats, device, ...); JSON-serialisable.
        announce: print one line on stderr when units are resumed or a file is set aside.
    """

    def __init__(self, path: Path, settings: Mapping[str, Any], *, announce: bool = True) -> None:
        self.path = Path(path)
        self.settings = _plain(dict(settings))
        self.units: dict[str, Any] = {}
        #: Keys taken from the file by :meth:`get` (what this call did not measure itself).
        self.resumed: list[str] = []
        self._announce = announce
        if not self.path.is_file():
            return
        try:
            data = json.loads(self.path.read_text())
            ok = isinstance(data, dict) and data.get("schema") == SCHEMA and isinstance(data.get("units"), dict)
        except (OSError, ValueError):
            data, ok = None, False
        if ok and data["settings"] == self.settings:
            self.units = data["units"]
            return
        why = "its settings differ from this call's" if ok else "it is not a readable partial-results file"
        aside = self.path.with_name(self.path.name + ".old")
        self.path.replace(aside)
        self._say(f"note: {self.path} set aside as {aside.name} ({why}); measuring everything")

    def _say(self, text: str) -> None:
        if self._announce:
            print(text, file=sys.stderr)

    def get(self, key: str) -> Any | None:
        """The stored unit ``key`` (and remember it was resumed), or ``None``."""
        if key not in self.units:
            return None
        if key not in self.resumed:
            self.resumed.append(key)
            if len(self.resumed) == 1:
                self._say(f"note: resuming from {self.path} (finished units are not measured again)")
        return self.units[key]

    def put(self, key: str, value: Any) -> None:
        """Store a finished unit now (atomic rewrite of the file)."""
        self.units[key] = _plain(value)
        atomic_write_text(self.path, json.dumps({"schema": SCHEMA, "settings": self.settings,
                                                 "units": self.units}, indent=1) + "\n")

    def done(self) -> None:
        """Remove the file: the sweep's final output now holds everything."""
        self.path.unlink(missing_ok=True)
