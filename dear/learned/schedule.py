"""The alternating schedule of Appendix B.2, as hooks a model trainer calls.

Node classification (``dear nodecls train --solver learned``) and DEAR (``dear train --model
dear --solver learned``) both train their model as usual and call:

* :meth:`AlternatingSchedule.after_step` after every model epoch / optimiser step: once
  ``warmup_epochs`` have passed the solver is fitted (``first_steps``), then fine-tuned
  (``steps``) every ``every`` epochs/steps, each time on the current frozen model;
* :meth:`AlternatingSchedule.finish` once the best checkpoint is restored: a last fine-tune
  (``final_steps``, a fresh Adam and loss-weight ramp with ``final_fresh``) so the saved
  solver matches the saved model, cut short when ``max_share`` caps the solver's share of the
  model's training time;
* :meth:`AlternatingSchedule.report` for the results file (solver seconds, its share of the
  model's training time, fits, losses).

The model optimiser must not hold the solver's parameters (:func:`model_parameters`): the
solver is trained only here, with the model frozen.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

from torch import nn

from dear.solvers.learned import LearnedSolver, learned_solvers

from .training import FixedPointProblem, SolverTrainConfig, SolverTrainer

__all__ = ["AlternatingSchedule", "fallback_report", "model_parameters"]


def model_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The model's parameters without those of its learned solvers (for the model optimiser)."""
    skip = {id(p) for s in learned_solvers(model) for p in s.parameters()}
    return [p for p in model.parameters() if id(p) not in skip]


class AlternatingSchedule:
    """Drives solver fits between model updates (see the module docstring).

    Args:
        model: the model owning the learned solvers.
        problems: called at each solver step, returns the ``(solver, problem)`` pairs to train
            on (built from the *current* model; for a single graph, build once per fit).
        options: :class:`~dear.learned.training.SolverTrainConfig` fields.
        total: planned model epochs/steps (sets how many fine-tunes to expect).
        per_fit: if ``True`` (single-graph node classification) ``problems`` is called once per
            fit and its result reused for every step of that fit (``Z*`` does not change while
            the model is frozen); if ``False`` (DEAR) it is called at every step.
    """

    def __init__(self, model: nn.Module, problems: Callable[[], Sequence[tuple[LearnedSolver, FixedPointProblem]]],
                 options: Mapping[str, Any] | None = None, total: int = 500, per_fit: bool = True) -> None:
        self.cfg = SolverTrainConfig.from_dict(options)
        self.model = model
        self.solvers = learned_solvers(model)
        fits = max(0, (total - self.cfg.warmup_epochs) // self.cfg.every)
        self.trainer = SolverTrainer(model, self.solvers, self.cfg, planned_fits=fits)
        self._problems = problems
        self.per_fit = per_fit
        self.in_loop_seconds = 0.0
        #: What the last fit planned and ran (``None`` until :meth:`finish`).
        self.last_fit: dict[str, Any] | None = None

    def _fit(self, steps: int, budget: float | None = None) -> dict[str, float]:
        """One fit of ``steps`` solver steps; ``budget`` (seconds, ``Z*``'s solve included)
        stops it early (:meth:`SolverTrainer.fit`); with no budget left nothing runs."""
        if budget is not None and budget <= 0:
            return {}
        if self.per_fit:
            import time  # noqa: PLC0415

            t0 = time.perf_counter()
            probs = list(self._problems())  # Z* of the current model, reused for this fit
            setup = time.perf_counter() - t0
            rec = self.trainer.fit(lambda: probs, steps, None if budget is None else budget - setup)
            self.trainer.seconds += setup
            if rec:
                rec["seconds"] += setup
            return rec
        return self.trainer.fit(self._problems, steps, budget)

    def after_step(self, step: int) -> dict[str, float] | None:
        """Call after model epoch/step ``step`` (1-based). Returns the fit record when a fit ran."""
        c = self.cfg
        # The hooks run after model steps 1, 2, ...: with warmup_epochs=0 the first fit follows
        # step 1 (the earliest the trainer calls), rather than never running at all.
        first = max(c.warmup_epochs, 1)
        if step < first:
            return None
        if step == first:
            steps = c.first_steps
        elif (step - c.warmup_epochs) % c.every == 0:
            steps = c.steps
        else:
            return None
        before = self.trainer.seconds
        rec = self._fit(steps)
        self.in_loop_seconds += self.trainer.seconds - before
        return rec

    def model_seconds(self, train_seconds: float) -> float:
        """The model's own training seconds: ``train_seconds`` (the trainer's clock) minus the
        fits that ran inside it."""
        return max(train_seconds - self.in_loop_seconds, 1e-12)

    def finish(self, train_seconds: float | None = None) -> dict[str, float]:
        """The final fine-tune on the restored (best) model; fits from scratch if the model
        stopped before the warm-up ended. With ``max_share`` set it needs ``train_seconds``
        (the trainer's clock over model training) and stops where the solver's total would
        cross ``max_share`` of the model's seconds; with no time left the last fit is skipped
        and the solver stays as the in-training fits left it."""
        steps = self.cfg.final_steps if self.trainer.fits else max(self.cfg.first_steps, self.cfg.final_steps)
        budget = None
        if self.cfg.max_share is not None:
            if train_seconds is None:
                raise ValueError("solver training: max_share needs the model's training seconds "
                                 "(AlternatingSchedule.finish(train_seconds)); DEAR's trainer does not pass them")
            budget = self.cfg.max_share * self.model_seconds(train_seconds) - self.trainer.seconds
        if self.cfg.final_fresh and (budget is None or budget > 0):
            self.trainer.restart(steps)
        rec = self._fit(steps, budget)
        # The trainer says whether its budget stopped it; no record at all means the fit was skipped
        # (no budget left) or had no steps to run.
        self.last_fit = {"planned_steps": steps, "steps": int(rec.get("steps_run", 0)), "budget_seconds": budget,
                         "stopped_by_budget": bool(rec.get("stopped_by_budget", budget is not None and steps > 0))}
        return rec

    def report(self, train_seconds: float) -> dict[str, Any]:
        """Solver training time against the model's: ``fraction`` = solver seconds (all fits,
        including the final one) / model training seconds (``train_seconds`` minus the fits
        that ran inside it)."""
        model_seconds = self.model_seconds(train_seconds)
        return {**self.trainer.summary(), "model_seconds": model_seconds,
                "fraction_of_model_training": self.trainer.seconds / model_seconds, "last_fit": self.last_fit}


def fallback_report(model: nn.Module) -> dict[str, Any]:
    """Solves and fallback solves counted by the model's learned solvers since their last
    ``reset_counters()``: how often the ``K`` learned steps were not enough."""
    solvers = learned_solvers(model)
    solves = sum(s.solves for s in solvers)
    fb = sum(s.fallback_solves for s in solvers)
    return {"solves": solves, "fallback_solves": fb, "fallback_rate": fb / solves if solves else None,
            "learned_steps": [s.steps for s in solvers], "trained": [bool(s.trained) for s in solvers]}
