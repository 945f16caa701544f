"""Progress bars that stay readable when written to a log file.

tqdm redraws a bar every 0.1 s. On a terminal that rewrites one line in place; redirected to a
file (``dear compare ... > log``, a CI job, a background run) every redraw stays in the file, so
a five-minute training leaves thousands of bar states (``dear demo > log``, one minute, kept 882).
:func:`progress_bar` is tqdm with one change: when the bar writes to something that is not a
terminal, it redraws at most every :data:`LOG_INTERVAL_S` seconds (its first and last state are
always written). tqdm's ``maxinterval`` (10 s by default: a monitor thread forces a redraw when a
bar has been silent that long) is raised to match, or a bar in a log would still redraw every
10 s. A ``mininterval`` passed by the caller, or the ``TQDM_MININTERVAL`` environment
variable (tqdm's own override), takes precedence. In a notebook (where ``tqdm.auto`` draws a
widget) nothing changes. Both packages' bars go through here, so the rule is the same
everywhere.
"""

from __future__ import annotations

import os
import sys
from typing import IO, Any

from tqdm.auto import tqdm

#: Seconds between redraws of a bar whose stream is not a terminal.
LOG_INTERVAL_S = 30.0


def _is_terminal(stream: IO[str] | None) -> bool:
    try:
        return bool(stream is not None and stream.isatty())
    except (AttributeError, ValueError, OSError):  # no isatty, or a closed stream
        return False


def progress_bar(*args: Any, **kwargs: Any) -> tqdm:
    """A ``tqdm.auto.tqdm(*args, **kwargs)`` that redraws every :data:`LOG_INTERVAL_S` seconds
    when its output (``file``, default ``sys.stderr``) is not a terminal; see the module
    docstring."""
    text_bar = not any(c.__module__ == "tqdm.notebook" for c in tqdm.__mro__)  # not a widget
    if (text_bar and "mininterval" not in kwargs and "TQDM_MININTERVAL" not in os.environ
            and not _is_terminal(kwargs.get("file") or sys.stderr)):
        kwargs["mininterval"] = LOG_INTERVAL_S
        kwargs.setdefault("maxinterval", LOG_INTERVAL_S)
    return tqdm(*args, **kwargs)
