"""Process-wide performance settings that the command-line tools apply when they start.

The one setting today is the C allocator's treatment of large blocks. glibc serves every
allocation above its mmap threshold (at most 32 MiB) with a fresh ``mmap`` and returns it to the
OS on ``free``, so each such tensor costs a page fault per 4 KiB page on first touch. A CLRS
step at test size allocates several of them: at n=64 and batch 32 a complete graph has
131,072 edges and every ``[E, 128]`` float32 intermediate is 64 MiB. Measured on one CPU
thread: gathering ``[131072, 128]`` rows took 84 ms into a new tensor against 11 ms into a
reused one, and a DEAR forward on binary search (32 graphs, n=64, 19 solver iterations) went
from 11.9 s to 5.9 s with the setting below (resident memory 1.06 -> 1.56 GB). It raises the
mmap threshold to 256 MiB (``M_MMAP_THRESHOLD``) and keeps up to 1 GiB of freed memory at the
heap's top (``M_TRIM_THRESHOLD``; with 256 MiB there the same forward kept re-faulting and
took 11.0 s), so blocks up to 256 MiB are reused instead of re-mapped: what
PyTorch's CUDA caching allocator does on the GPU side and what the jemalloc/tcmalloc
``LD_PRELOAD`` advice for CPU PyTorch achieves. Blocks above 256 MiB (e.g. edge tensors of
out-of-distribution sizes n >= 128 at batch 32) are mapped as before, which bounds what the
process keeps: glibc's aligned allocations fragment the heap until several freed blocks of a
size sit in it (measured: freeing and re-allocating one 64 MiB tensor settles after ~7 rounds
with ~450 MiB more resident memory, then faults no more pages).

It is applied by ``dear``'s CLI and the timing scripts, not on ``import dear`` (a library
should not change its host process's allocator); set ``DEAR_MALLOC_TUNING=0`` to opt out.
Results files record whether it was on (``hardware.allocator_tuned``), since it changes
timings.

:func:`pin_cores` is for benchmarks that compare us with another framework in one process:
thread-count flags do not bound every runtime (jaxlib runs work on threads XLA's flags do not
reach), so a fair N-core comparison pins the process to N cores.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

__all__ = ["allocator_tuned", "pin_cores", "tune_allocator"]

# glibc's <malloc.h> parameter numbers
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD_BYTES = 256 << 20
_TRIM_THRESHOLD_BYTES = 1 << 30  # (mallopt takes a C int: at most 2 GiB - 1)

_tuned = False


def tune_allocator() -> bool:
    """Reuse freed blocks up to 256 MiB (see the module docstring); returns whether the
    setting is now on. A no-op returning ``False`` when ``DEAR_MALLOC_TUNING=0``, off Linux, or
    when the C library has no ``mallopt`` (e.g. musl)."""
    global _tuned
    if _tuned:
        return True
    if os.environ.get("DEAR_MALLOC_TUNING", "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    _tuned = (mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_BYTES) == 1
              and mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD_BYTES) == 1)
    return _tuned


def allocator_tuned() -> bool:
    """Whether :func:`tune_allocator` has taken effect in this process."""
    return _tuned


def pin_cores(n: int) -> list[int] | None:
    """Restrict this process, and every thread it starts from now on, to ``n`` of the cores it
    may run on (the lowest-numbered ones); returns the cores it may use afterwards, or None
    where the OS has no affinity call (not Linux). Asking for at least as many cores as are
    allowed changes nothing."""
    if n < 1:
        raise ValueError(f"pin_cores needs at least one core, got {n}")
    if not hasattr(os, "sched_setaffinity"):
        return None
    allowed = sorted(os.sched_getaffinity(0))
    if n < len(allowed):
        allowed = allowed[:n]
        os.sched_setaffinity(0, allowed)
    return allowed
