"""Learned-solver hooks for the node-classification trainer (:mod:`dear.nodecls.train`).

``dear nodecls train --solver learned`` builds IGNN with a learned solver per implicit layer;
:func:`learned_schedule` gives the trainer the alternating schedule for it (or ``None`` for
any other solver), so the trainer itself only calls four hooks.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from dear.solvers.learned import learned_solvers

from .problems import ignn_problems
from .schedule import AlternatingSchedule, fallback_report, model_parameters
from .training import SolverTrainConfig

__all__ = ["NODECLS_TRAINING_DEFAULTS", "NodeClsSchedule", "learned_schedule", "nodecls_training_options"]

#: Node classification's defaults over :class:`SolverTrainConfig`'s (which DEAR keeps): a light
#: alternating schedule (8 first steps, 2 fine-tune steps every 100 epochs, the 30-step fresh
#: last fit) whose training unroll is 2 steps, and the solver's training capped at 5% of the
#: model's. Measured (docs/learned-solver.md, "Training unroll" and "The 5% cap"): IGNN's
#: accuracy is decided in the loose-tolerance regime where a solve takes 1-4 evaluations, so the
#: first two learned steps are what pays; unrolling all ``K = 6`` costs three times as much per
#: step and took 7-36% of IGNN's training time, against 2.4-5.5% for the same speed-ups on ACM
#: and Citeseer with 2. Where IGNN's training is short (BlogCatalog, Flickr: 40-70 s) even that
#: took 4-12%; the cap cuts the last fit there to 6-11 steps with the same evaluation counts.
NODECLS_TRAINING_DEFAULTS: dict[str, Any] = {"first_steps": 8, "every": 100, "steps": 2, "unroll": 2,
                                             "max_share": 0.05}


def nodecls_training_options(options: dict[str, Any] | None) -> dict[str, Any]:
    """The solver-training options of a node-classification run: the user's over
    :data:`NODECLS_TRAINING_DEFAULTS`."""
    return {**NODECLS_TRAINING_DEFAULTS, **dict(options or {})}


class NodeClsSchedule:
    """The trainer's view of the alternating schedule on one full graph."""

    def __init__(self, model: nn.Module, x: Tensor, edge_index: Tensor, options: dict[str, Any], epochs: int) -> None:
        self.model = model
        options = nodecls_training_options(options)
        cfg = SolverTrainConfig.from_dict(options)
        self.schedule = AlternatingSchedule(model, lambda: ignn_problems(model, x, edge_index, cfg), options,
                                            total=epochs, per_fit=True)

    def model_parameters(self) -> list[nn.Parameter]:
        return model_parameters(self.model)

    def after_step(self, epoch: int) -> None:
        self.schedule.after_step(epoch)

    def finish(self, train_seconds: float) -> None:
        self.schedule.finish(train_seconds)

    def reset_counters(self) -> None:
        for s in learned_solvers(self.model):
            s.reset_counters()

    def record(self, train_seconds: float) -> dict[str, Any]:
        """Solver training report plus the fallback count of the solves since
        :meth:`reset_counters` (the trainer calls it before timing inference)."""
        return {**self.schedule.report(train_seconds), "inference": fallback_report(self.model)}


def learned_schedule(cfg: Any, model: nn.Module, x: Tensor, edge_index: Tensor) -> NodeClsSchedule | None:
    """The schedule for a model with learned solvers, ``None`` when it has none."""
    if not learned_solvers(model):
        return None
    return NodeClsSchedule(model, x, edge_index, dict(getattr(cfg, "solver_training", {}) or {}), cfg.epochs)
