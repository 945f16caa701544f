"""The learned fixed-point solver (IGNN-Solver, Lin et al. 2024): its networks
(:mod:`.networks`), its label-free training and the alternating schedule (:mod:`.training`),
and the problem builders that turn a frozen IGNN or DEAR into training problems
(:mod:`.problems`). The solver itself is :class:`dear.solvers.learned.LearnedSolver`,
registered as ``learned`` (and ``learned_nn``, the graph-free ablation). See
``docs/learned-solver.md``.

Submodules other than :mod:`.networks` load on first attribute access, so importing
:mod:`dear.solvers` (which imports the networks) never imports the trainers.
"""

from __future__ import annotations

import importlib
from typing import Any

from .networks import AlphaBetaPredictor, Initializer, ResidualCompressor, sparsify_edges

_LAZY = {
    "FixedPointProblem": "training", "SolverTrainConfig": "training", "SolverTrainer": "training",
    "exact_fixed_point": "training", "frozen": "training", "solver_loss": "training",
    "ignn_problems": "problems", "dear_problems": "problems",
}

__all__ = ["AlphaBetaPredictor", "Initializer", "ResidualCompressor", "sparsify_edges", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
