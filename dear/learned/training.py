r"""Training the learned solver with the implicit model frozen and without labels
(IGNN-Solver, Sec. 4.2 and Appendix B).

The targets are exact fixed points :math:`Z^\star` of the frozen map, from a high-precision
classic solve. The solver is unrolled for ``K`` steps from its initializer's guess, with
gradients through the iterations (the map's parameters are frozen, its Jacobian is not), and
trained on

.. math::
    \mathcal L = \lambda_1(t) \sum_k w_k \mathcal L_{rec}^{[k]} + \lambda_2 \mathcal L_{init}
                 + \lambda_3(t) \mathcal L_\alpha,

* :math:`\mathcal L_{init} = \|h_\phi(X) - Z^\star\| / \|Z^\star\|` per graph (the initializer
  alone: the unroll starts from its *detached* output, as the paper separates the two);
* :math:`\mathcal L_{rec}^{[k]} = \|Z^{[k]} - Z^\star\| / \|Z^\star\|` with weights
  :math:`w_k \propto k` increasing over the steps (later iterates matter most);
* :math:`\mathcal L_\alpha = \sum_k \|G^{[k]} \alpha^{[k]}\| / \|g_k\|` (the Anderson objective
  of the predicted weights; computed from the Gram matrix the solver keeps);
* :math:`\lambda_1` ramps up linearly from 0 over the first ``ramp`` fraction of the solver's
  training steps and :math:`\lambda_3` decays linearly to 0 (the paper's Table 2 note).

Norms are relative and per graph (averaged over graphs) so graphs of different sizes and
scales weigh the same; the paper's public code takes absolute norms of one batch tensor.

**Alternating schedule** (Appendix B.2), driven by the model's trainer through
:class:`SolverTrainer`: train the model with its classic solver for ``warmup_epochs``, fit the
solver (``first_steps``), then repeatedly train the model ``every`` epochs with the frozen
learned solver and fine-tune the solver ``steps`` steps on the current model; after the best
checkpoint is restored, fit once more (``final_steps``) so the shipped solver matches the
shipped model. That last fit restarts Adam and the loss-weight ramp (``final_fresh``): carried
over, Adam's moments and the decayed weights belong to models the solver no longer serves, and
the shipped initializer was measured far worse for it (docs/learned-solver.md). Each fit freezes every parameter that is not the solver's
(``requires_grad_(False)``, restored after) and the optimizer holds solver parameters only, so
the model cannot change (tested). The public code's defects are avoided: targets are true
fixed points (not the initial point), nothing is selected on test labels (no labels are used
at all), timing is the trainer's (warm-up, medians).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import asdict, dataclass, fields
from typing import Any, Callable, Iterator, Mapping, Sequence

import torch
from torch import Tensor, nn

from dear.solvers.base import graph_norm, make_solver, run_solver
from dear.solvers.learned import LearnedSolver

__all__ = [
    "FixedPointProblem",
    "SolverTrainConfig",
    "SolverTrainer",
    "exact_fixed_point",
    "frozen",
    "solver_loss",
]


@dataclass
class SolverTrainConfig:
    """Hyper-parameters of solver training and of the alternating schedule.

    Attributes:
        warmup_epochs: model epochs (or optimiser steps, for DEAR) with the classic solver
            before the first solver fit (``0`` fits after the first one: the schedule's hooks
            run after model steps).
        first_steps: solver optimiser steps of the first fit.
        every: ``T1``, model epochs/steps between two solver fine-tunes.
        steps: ``T2``, solver steps per fine-tune.
        final_steps: solver steps after the best model is restored (as many as the first fit:
            what the shipped solver is, mostly its initializer, comes from this fit).
        final_fresh: start that fit with a fresh Adam and the loss weights' ramp restarted
            over its ``final_steps`` (``False``: continue the fine-tunes' optimiser and ramp).
        lr: Adam's learning rate for the solver.
        rec_weight, init_weight, alpha_weight: ``lambda_1``, ``lambda_2``, ``lambda_3``
            (the public code's 0.1, 5, 1e-4).
        ramp: fraction of the planned solver steps over which ``lambda_1`` ramps up from 0.
        unroll: learned updates unrolled per solver step (``None``: the solver's ``steps``,
            ``K``). Fewer trains only the updates that loose-tolerance solves use and costs
            proportionally less; the later learned updates then run on weights not trained for
            them, kept within ``delta_max`` of Anderson's mixing. Node classification defaults
            to 2 (:data:`dear.learned.nodecls.NODECLS_TRAINING_DEFAULTS`, measured on IGNN:
            same speed-ups, a third of the training time); DEAR keeps ``K``: its solves take
            10 or more evaluations, so every learned update is used.
        fp_tol, fp_max_iter, fp_method: the high-precision solve that gives ``Z*``
            (relative tolerance).
        grad_clip: gradient-norm clip of solver updates (``0``: off).
        max_share: cap on the solver's training time as a share of the model's (every fit,
            the last one included, over the model's training seconds without the fits that ran
            inside them). The last fit stops early, between two steps, once one more step would
            cross it; the in-training fits are not shortened but count against it. The last
            fit's steps then depend on this machine's speed and are recorded in the report
            (``last_fit``); the model itself never depends on it (the last fit runs after model
            training). ``None``: no cap. Node classification only (its trainer passes the
            model's seconds); node classification defaults to 0.05.
    """

    warmup_epochs: int = 20
    first_steps: int = 30
    every: int = 50
    steps: int = 5
    final_steps: int = 30
    final_fresh: bool = True
    lr: float = 5e-3
    rec_weight: float = 0.1
    init_weight: float = 5.0
    alpha_weight: float = 1e-4
    ramp: float = 0.2
    unroll: int | None = None
    fp_tol: float = 1e-6
    fp_max_iter: int = 500
    fp_method: str = "anderson"
    grad_clip: float = 1.0
    max_share: float | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> "SolverTrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d or {}) - known)
        if unknown:
            raise ValueError(f"unknown solver-training option(s) {', '.join(unknown)}; valid: {', '.join(sorted(known))}")
        cfg = cls(**dict(d or {}))
        for name in ("warmup_epochs", "first_steps", "steps", "final_steps"):
            if getattr(cfg, name) < 0:
                raise ValueError(f"solver training: {name} must be >= 0, got {getattr(cfg, name)}")
        if cfg.every < 1:
            raise ValueError(f"solver training: every must be >= 1, got {cfg.every}")
        if not cfg.lr > 0:
            raise ValueError(f"solver training: lr must be > 0, got {cfg.lr}")
        if cfg.unroll is not None and (isinstance(cfg.unroll, bool) or not isinstance(cfg.unroll, int)
                                       or cfg.unroll < 1):
            raise ValueError(f"solver training: unroll must be an integer >= 1 (or null for the solver's K), "
                             f"got {cfg.unroll!r}")
        if cfg.max_share is not None and (isinstance(cfg.max_share, bool) or not isinstance(cfg.max_share, (int, float))
                                          or not 0.0 < cfg.max_share <= 1.0):
            raise ValueError(f"solver training: max_share must lie in (0, 1] (or null for no cap), got {cfg.max_share!r}")
        return cfg

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class FixedPointProblem:
    """One fixed-point problem of a frozen model: ``z = f(z)`` with the solver's context.

    ``f`` must be differentiable in ``z`` (the model's own parameters may be frozen);
    ``z_star`` is the exact fixed point (see :func:`exact_fixed_point`) and ``mask`` marks the
    graphs whose ``z_star`` converged (others are left out of the loss); ``transpose`` says
    ``edge_index`` holds ``(target, source)`` pairs (a sparse adjacency's indices).
    """

    f: Callable[[Tensor], Tensor]
    features: Tensor
    edge_index: Tensor | None
    batch: Tensor
    num_graphs: int
    z_star: Tensor
    mask: Tensor
    transpose: bool = False


@torch.no_grad()
def exact_fixed_point(f: Callable[[Tensor], Tensor], z0: Tensor, batch: Tensor, num_graphs: int, *,
                      tol: float = 1e-6, max_iter: int = 500, method: str = "anderson") -> tuple[Tensor, Tensor]:
    """``Z*`` of ``f`` by a classic solver run to ``tol`` (relative); returns ``(z*, converged)``."""
    res = run_solver(make_solver(method), f, z0, batch, tol=tol, max_iter=max_iter, stop_mode="rel",
                     num_graphs=num_graphs)
    return res.z, res.converged


@contextlib.contextmanager
def frozen(model: nn.Module, keep: Sequence[nn.Module]) -> Iterator[None]:
    """Within the block, every parameter of ``model`` that is not in a ``keep`` module has
    ``requires_grad=False`` (restored on exit): gradients reach the solver only."""
    keep_ids = {id(p) for k in keep for p in k.parameters()}
    changed = [p for p in model.parameters() if id(p) not in keep_ids and p.requires_grad]
    for p in changed:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in changed:
            p.requires_grad_(True)


def _rel_dist(a: Tensor, b: Tensor, batch: Tensor, num_graphs: int, mask: Tensor) -> Tensor:
    """Mean over the ``mask``-ed graphs of ``||a - b||_g / ||b||_g``."""
    d = graph_norm((a - b).reshape(a.shape[0], -1), batch, num_graphs)
    s = graph_norm(b.reshape(b.shape[0], -1), batch, num_graphs)
    rel = d / (s + 1e-12)
    w = mask.to(rel.dtype)
    return (rel * w).sum() / w.sum().clamp_min(1.0)


def solver_loss(solver: LearnedSolver, problem: FixedPointProblem, *, unroll: int, rec_weight: float,
                init_weight: float, alpha_weight: float) -> tuple[Tensor, dict[str, float]]:
    """The joint loss of one problem (Algorithm 1 in training mode); also returns its parts
    and the relative error of the last unrolled iterate."""
    b, ng, mask = problem.batch, problem.num_graphs, problem.mask
    z_star = problem.z_star.detach()
    solver.bind(problem.features, problem.edge_index, batch=b, num_graphs=ng, transpose=problem.transpose)
    z0 = solver.initializer(problem.features)
    l_init = _rel_dist(z0, z_star, b, ng, mask)
    x = z0.detach().reshape(z0.shape[0], -1)
    shape = z_star.shape
    previous = solver.use_learned
    solver.use_learned = True
    try:
        solver.reset(x, b, ng)
        weights = torch.arange(1, unroll + 1, dtype=x.dtype, device=x.device)
        weights = weights / weights.sum()
        l_rec = x.new_zeros(())
        l_alpha = x.new_zeros(())
        w = mask.to(x.dtype)
        for k in range(unroll):
            fx = problem.f(x.view(shape)).reshape(x.shape[0], -1)
            r = fx - x
            solver.observe(x, fx, r)
            x = solver.propose()
            l_rec = l_rec + weights[k] * _rel_dist(x, z_star.reshape(x.shape[0], -1), b, ng, mask)
            alpha, gram = solver.last_alpha, solver.last_gram
            if alpha_weight > 0 and alpha is not None:
                quad = torch.einsum("bi,bij,bj->b", alpha, gram, alpha).clamp_min(0.0)
                newest = gram[:, -1, -1].clamp_min(torch.finfo(x.dtype).tiny)
                l_alpha = l_alpha + ((quad / newest).sqrt() * w).sum() / w.sum().clamp_min(1.0)
        last = float(_rel_dist(x.detach(), z_star.reshape(x.shape[0], -1), b, ng, mask))
    finally:
        solver.use_learned = previous
        solver.release()
    loss = rec_weight * l_rec + init_weight * l_init + alpha_weight * l_alpha
    return loss, {"loss": float(loss.detach()), "rec": float(l_rec.detach()), "init": float(l_init.detach()),
                  "alpha": float(l_alpha.detach()),
                  "last_rel_error": last}


class SolverTrainer:
    """Fits learned solvers on frozen models, keeping optimizer state, the loss-weight schedule
    and the time spent across the fine-tunes of an alternating schedule.

    Args:
        model: the model that owns the solvers (everything else in it is frozen during fits).
        solvers: the learned solvers to train (e.g. one per implicit layer).
        cfg: :class:`SolverTrainConfig`.
        planned_steps: total solver steps expected (sets the ``lambda_1`` ramp and the
            ``lambda_3`` decay); ``None`` estimates it from ``cfg`` and ``planned_fits``.
        planned_fits: fine-tunes expected after the first fit (for that estimate).
    """

    def __init__(self, model: nn.Module, solvers: Sequence[LearnedSolver], cfg: SolverTrainConfig | None = None,
                 planned_steps: int | None = None, planned_fits: int = 5) -> None:
        if not solvers:
            raise ValueError("SolverTrainer needs at least one learned solver")
        self.model = model
        self.solvers = list(solvers)
        self.cfg = cfg or SolverTrainConfig()
        too_short = [s.steps for s in self.solvers if self.cfg.unroll is not None and self.cfg.unroll > s.steps]
        if too_short:
            # Inference runs K learned steps, then the classic fallback: learned steps past K
            # would be trained but never used.
            raise ValueError(f"solver training: unroll {self.cfg.unroll} exceeds the learned solver's K = "
                             f"{too_short[0]} steps (inference never runs more); use unroll <= K")
        self.optimizer = self._new_optimizer()
        self.planned = planned_steps or max(1, self.cfg.first_steps + planned_fits * self.cfg.steps + self.cfg.final_steps)
        self.step = 0
        # The loss weights ramp over [phase_start, phase_start + phase_len) (restart() moves it).
        self.phase_start = 0
        self.phase_len = self.planned
        self.seconds = 0.0
        self.fits = 0
        self.history: list[dict[str, float]] = []

    def weights(self) -> tuple[float, float, float]:
        """``(lambda_1, lambda_2, lambda_3)`` at the current solver step."""
        c = self.cfg
        t = (self.step - self.phase_start) / self.phase_len
        lam1 = c.rec_weight * min(1.0, t / c.ramp) if c.ramp > 0 else c.rec_weight
        lam3 = c.alpha_weight * max(0.0, 1.0 - t)
        return lam1, c.init_weight, lam3

    def _new_optimizer(self) -> torch.optim.Optimizer:
        """Adam over the solvers' parameters only: the model is never stepped here."""
        return torch.optim.Adam([p for s in self.solvers for p in s.parameters()], lr=self.cfg.lr)

    def restart(self, steps: int) -> None:
        """Start a new phase of ``steps`` solver steps: a fresh Adam (no moments carried over)
        and the loss weights' ramp restarted over those steps, as for a first fit. Step,
        seconds and history keep counting."""
        self.optimizer = self._new_optimizer()
        self.phase_start = self.step
        self.phase_len = max(1, int(steps))

    def fit(self, problems: Callable[[], Sequence[tuple[LearnedSolver, FixedPointProblem]]], steps: int,
            budget: float | None = None) -> dict[str, float]:
        """``steps`` solver updates; ``problems()`` is called once per update and returns the
        ``(solver, problem)`` pairs of that update (the same single graph every time for node
        classification, a fresh batch for DEAR). Marks every solver trained once a step ran.

        ``budget`` (seconds): stop before the update that would cross it, judged by the
        previous update's duration (the first always runs when ``budget > 0``). The record
        gives ``steps_run`` and ``stopped_by_budget``."""
        if steps <= 0:
            return {}
        t0 = time.perf_counter()
        was_training = self.model.training
        self.model.eval()  # the map must be the deterministic inference map
        last: dict[str, float] = {}
        ran, last_dt, stopped = 0, 0.0, False
        with frozen(self.model, self.solvers):
            for _ in range(steps):
                if budget is not None and time.perf_counter() - t0 + last_dt > budget:
                    stopped = True
                    break
                t_step = time.perf_counter()
                lam1, lam2, lam3 = self.weights()
                self.optimizer.zero_grad(set_to_none=True)
                total = None
                parts: dict[str, float] = {}
                for solver, problem in problems():
                    loss, p = solver_loss(solver, problem, unroll=self.cfg.unroll or solver.steps, rec_weight=lam1,
                                          init_weight=lam2, alpha_weight=lam3)
                    total = loss if total is None else total + loss
                    for k, v in p.items():
                        parts[k] = parts.get(k, 0.0) + v
                if total is None:
                    break
                if torch.isfinite(total):
                    total.backward()
                    if self.cfg.grad_clip > 0:
                        torch.nn.utils.clip_grad_norm_([p for s in self.solvers for p in s.parameters()],
                                                       self.cfg.grad_clip)
                    self.optimizer.step()
                self.step += 1
                ran += 1
                last = parts
                last_dt = time.perf_counter() - t_step
        if ran:
            for s in self.solvers:
                s.trained.fill_(True)
        self.model.train(was_training)
        dt = time.perf_counter() - t0
        self.seconds += dt
        self.fits += 1
        rec = {"step": self.step, "seconds": dt, "steps_run": ran, "stopped_by_budget": stopped, **last}
        self.history.append(rec)
        return rec

    def summary(self) -> dict[str, Any]:
        return {"solver_steps": self.step, "solver_seconds": self.seconds, "fits": self.fits,
                "config": self.cfg.to_dict(), "history": self.history}
