"""What the processor-step optimisations of GatedMPNN buy, measured (GitHub issue 4).

Two changes make a step cheaper without changing its result (both tested in
``tests/test_reasoners.py``):

* **static terms once per forward**: the edge term ``W_e e_ij`` and the input halves ``W^x x``
  of the node maps of ``z = [x | h]`` do not depend on the state, so models whose encoding is
  fixed over steps (``nar``, ``nar-lt``, ``dear``) compute them once
  (:meth:`dear.reasoners.models.Reasoner.static_terms`,
  :meth:`dear.processors.GatedMPNN.project_static`) instead of at every step;
* **max aggregation into -inf**: :meth:`dear.processors.GatedMPNN.aggregate` instead of PyG's
  ``aggr="max"`` (whose ``include_self=False`` backward re-scatters a zero fill over ``E x H``).

For each (algorithm, model) this times a training step (forward, loss, backward, Adam; batch
``--batch-size`` of the dear protocol's train split at n=16, hidden 128, the quick profile's
init) and an inference forward (``--infer-batch`` graphs of the test split, n=64, no grad) in
three variants, interleaved
round by round so that load changes on a shared machine hit all alike:

* ``before``: static terms at every step and PyG's aggregation;
* ``static``: static terms once, PyG's aggregation;
* ``after``: both (what the package does).

(Each step's node maps are one fused product in all three; the per-step edge and input
products of ``before`` cost what the code before these changes spent on them.)

It reports per-variant medians and the speed-up of ``after`` over ``before``, and writes them
to ``leaderboards/runs/bench/processor_step.json``. The allocator setting of
:mod:`dear.runtime` is on as in the ``dear`` CLI; run once more with ``DEAR_MALLOC_TUNING=0``
(and another ``--out``) to measure what it adds::

    OMP_NUM_THREADS=1 python scripts/bench_processor_step.py
    DEAR_MALLOC_TUNING=0 OMP_NUM_THREADS=1 python scripts/bench_processor_step.py \
        --out leaderboards/runs/bench/processor_step_glibc_default.json
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch
from torch_geometric.nn import MessagePassing

from dear.io import write_measurement
from dear.processors import GatedMPNN
from dear.runtime import tune_allocator

sys.path.insert(0, str(Path(__file__).resolve().parent))
from time_commits import step_functions  # noqa: E402  (a sibling script)

VARIANTS = ("before", "static", "after")


@contextmanager
def variant(model: torch.nn.Module, name: str) -> Iterator[None]:
    """Run the block with the code path of ``name`` (see the module docstring)."""
    saved_aggregate = GatedMPNN.aggregate
    if name == "before":
        model.static_terms = lambda enc, layout: None  # type: ignore[method-assign]
    if name in ("before", "static"):
        GatedMPNN.aggregate = MessagePassing.aggregate  # type: ignore[method-assign]
    try:
        yield
    finally:
        GatedMPNN.aggregate = saved_aggregate  # type: ignore[method-assign]
        model.__dict__.pop("static_terms", None)


def measure(algorithm: str, model_name: str, batch_size: int, infer_batch: int, rounds: int,
            reps: int) -> dict[str, Any]:
    model, train_step, infer, b_train, b_test = step_functions(algorithm, model_name, batch_size, infer_batch)
    times: dict[str, dict[str, list[float]]] = {v: {"train_step": [], "inference": []} for v in VARIANTS}
    for r in range(rounds + 1):  # round 0 warms every path up and is not kept
        for v in VARIANTS:
            with variant(model, v):
                for key, fn in (("train_step", train_step), ("inference", infer)):
                    t = time.perf_counter()
                    for _ in range(reps):
                        fn()
                    if r:
                        times[v][key].append((time.perf_counter() - t) / reps)
    med = {v: {k: statistics.median(x) for k, x in d.items()} for v, d in times.items()}
    return {
        "algorithm": algorithm, "model": model_name, "batch_size": batch_size, "inference_batch": infer_batch,
        "edges_train_batch": int(b_train.edge_index.shape[1]), "edges_test_batch": int(b_test.edge_index.shape[1]),
        "seconds_median": med,
        "speedup_after_vs_before": {k: med["before"][k] / med["after"][k] for k in ("train_step", "inference")},
        "rounds": rounds, "reps_per_round": reps,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", nargs="+", default=["dfs:nar", "floyd_warshall:nar", "bellman_ford:dear",
                                                   "binary_search:dear"], metavar="ALGO:MODEL")
    ap.add_argument("--batch-size", type=int, default=32, help="training batch (n=16)")
    ap.add_argument("--infer-batch", type=int, default=8, help="inference batch (test split, n=64)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--out", default="leaderboards/runs/bench/processor_step.json")
    args = ap.parse_args(argv)
    tune_allocator()  # as the dear CLI does; DEAR_MALLOC_TUNING=0 measures glibc's default
    rows = []
    for case in args.cases:
        algo, _, model_name = case.partition(":")
        if not model_name:
            ap.error(f"--cases entries are ALGO:MODEL, got {case!r}")
        r = measure(algo, model_name, args.batch_size, args.infer_batch, args.rounds, args.reps)
        rows.append(r)
        s, m = r["speedup_after_vs_before"], r["seconds_median"]
        print(f"{algo:>16} {model_name:<5} train step {m['before']['train_step']:.3f} -> {m['after']['train_step']:.3f} s "
              f"({s['train_step']:.2f}x), inference {m['before']['inference']:.3f} -> {m['after']['inference']:.3f} s "
              f"({s['inference']:.2f}x)", flush=True)
    out = write_measurement(args.out, {"cases": rows})
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
