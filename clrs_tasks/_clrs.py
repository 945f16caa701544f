"""Lazy, quiet access to dm-clrs.

Importing ``clrs`` pulls in TensorFlow and JAX (about 5 s and a page of log lines). Only
sampling, ``to_clrs`` and scoring need it, so every module imports it through :func:`clrs`,
which silences TensorFlow's C++ logging first and imports once.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
from importlib import metadata
from types import ModuleType


@contextlib.contextmanager
def _quiet_stderr():
    """Silence file descriptor 2 (C++ logging); Python exceptions still propagate."""
    try:
        saved = os.dup(2)
    except OSError:  # no usable stderr: nothing to silence
        yield
        return
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


@functools.lru_cache(maxsize=None)
def clrs() -> ModuleType:
    """Return the imported ``clrs`` package (imported on first use, logs silenced)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    with _quiet_stderr():  # TF's C++ start-up lines ignore TF_CPP_MIN_LOG_LEVEL
        import clrs as _clrs  # noqa: PLC0415  (deliberately lazy)

    from absl import logging as absl_logging  # noqa: PLC0415

    absl_logging.set_verbosity(absl_logging.ERROR)
    logging.getLogger("absl").setLevel(logging.ERROR)
    return _clrs


@functools.lru_cache(maxsize=None)
def clrs_version() -> str:
    """The installed dm-clrs version, read from package metadata (no import of clrs)."""
    return metadata.version("dm-clrs")
