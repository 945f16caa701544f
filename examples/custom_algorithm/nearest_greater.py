"""A new algorithm, registered from outside the package: *nearest greater to the left*.

For each position ``i`` of an array of keys, point to the nearest earlier position ``j < i``
whose key is larger (``key[j] > key[i]``), or to ``i`` itself when there is none. The classic
solution scans left to right with a monotonic stack (each element is pushed and popped at most
once, so O(n) time). It is not one of the CLRS-30 algorithms.

This module is everything the suite needs to know about the task:

* ``SPEC``: the dm-clrs-style spec, probe name -> (stage, location, type);
* :func:`nearest_greater`: the reference implementation, recording input, hint and output probes
  with dm-clrs's ``probing`` helpers at every step of the scan;
* :class:`NearestGreaterSampler`: a ``clrs.Sampler`` subclass drawing the keys;
* the ``register_task`` call that adds the task to ``clrs_tasks``'s registry on import.

Importing it is all a user does; nothing in ``clrs_tasks`` or ``dear`` is edited. The task's
data fingerprint covers this module's name (``nearest_greater``) and the qualified names of the
algorithm and sampler, so import it under this name (which ``python run_example.py`` and
``dear leaderboard`` both do).
"""

from __future__ import annotations

import os

import numpy as np

# dm-clrs imports JAX and TensorFlow; keep them on the CPU and quiet (clrs_tasks does the same).
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import clrs_tasks as ct  # noqa: E402

ct.list_tasks()  # loads dm-clrs through clrs_tasks, which silences TensorFlow's start-up logging

import clrs  # noqa: E402
from clrs._src import probing  # noqa: E402  (dm-clrs exports no public probing module)

TASK = "nearest_greater"

SPEC = {
    "pos": ("input", "node", "scalar"),     # position i / n, as every CLRS array algorithm has
    "key": ("input", "node", "scalar"),     # the keys
    "ng": ("output", "node", "pointer"),    # i -> nearest earlier larger key (itself if none)
    "ng_h": ("hint", "node", "pointer"),    # pointers assigned so far (unassigned: self)
    "stack_h": ("hint", "node", "mask"),    # which positions are on the monotonic stack
    "i": ("hint", "node", "mask_one"),      # the position being scanned
}


def nearest_greater(key: np.ndarray) -> tuple[np.ndarray, dict]:
    """Reference implementation with probes: ``(pointers, probes)``.

    Hints are recorded before the scan and after each position, so a trace of ``n`` keys has
    ``n + 1`` steps. Ties are not "greater" (``key[j] > key[i]`` strictly); the sampler draws
    continuous keys, so ties have probability zero anyway.
    """
    n = key.shape[0]
    probes = probing.initialize(SPEC)
    probing.push(probes, "input", next_probe={"pos": np.arange(n) / n, "key": np.copy(key)})
    ptr = np.arange(n)
    on_stack = np.zeros(n)
    stack: list[int] = []

    def hint(i: int) -> None:
        probing.push(probes, "hint", next_probe={"ng_h": np.copy(ptr), "stack_h": np.copy(on_stack),
                                                 "i": probing.mask_one(i, n)})

    hint(0)
    for i in range(n):
        while stack and key[stack[-1]] <= key[i]:
            on_stack[stack.pop()] = 0
        ptr[i] = stack[-1] if stack else i
        stack.append(i)
        on_stack[i] = 1
        hint(i)
    probing.push(probes, "output", next_probe={"ng": np.copy(ptr)})
    probing.finalize(probes)
    return ptr, probes


def brute_force(key: np.ndarray) -> np.ndarray:
    """O(n^2) definition of the output, used to test the stack algorithm."""
    out = np.arange(key.shape[0])
    for i in range(key.shape[0]):
        for j in range(i - 1, -1, -1):
            if key[j] > key[i]:
                out[i] = j
                break
    return out


class NearestGreaterSampler(clrs.Sampler):
    """Keys drawn uniformly from [low, high), like dm-clrs's array samplers."""

    CAN_TRUNCATE_INPUT_DATA = True

    def _sample_data(self, length: int, low: float = 0.0, high: float = 1.0):
        return [self._random_sequence(length=length, low=low, high=high)]


# Register on import; importing the file a second time (by path and by name) registers once.
if TASK not in ct.list_tasks():
    ct.register_task(TASK, spec=SPEC, algorithm=nearest_greater, sampler=NearestGreaterSampler,
                     description="nearest earlier larger key, by a monotonic stack (example, not CLRS-30)")
