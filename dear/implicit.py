"""The equilibrium layer: ``z* = f(z*)`` found by a graph-batched solver, differentiated by the
implicit function theorem, a phantom gradient or backprop through an unroll.

DEAR on CLRS and IGNN on node classification both wrap their processor step in
:class:`Equilibrium`; the choice of solver and of backward is configuration, not model code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import Tensor, nn

from .solvers import Solver, SolverResult, graph_residual, make_solver, run_solver
from .solvers.base import STOP_MODES, check_int, check_real, prepare_batch

__all__ = ["BACKWARD_MODES", "Equilibrium", "EquilibriumStats", "jacobian_frobenius"]

BACKWARD_MODES = ("ift", "phantom", "unroll")


def jacobian_frobenius(fz: Tensor, z: Tensor, samples: int = 1) -> Tensor:
    r"""Hutchinson estimate of :math:`\|\partial f/\partial z\|_F^2 / \mathrm{numel}(z)`.

    Uses :math:`\|J\|_F^2 = \mathbb{E}_{v \sim \mathcal{N}(0, I)} \|v^\top J\|^2` with
    ``samples`` random vectors and reverse-mode vector-Jacobian products built with
    ``create_graph=True``, so the estimate is differentiable and can be added to a loss (DEAR
    weights it by ``1e-4``). Normalised by the number of elements, as torchdeq does, so the
    weight does not depend on batch size. ``fz`` must be ``f(z)`` computed with grad from
    ``z``.
    """
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    total = fz.new_zeros(())
    for _ in range(samples):
        v = torch.randn_like(fz)
        (vjp,) = torch.autograd.grad(fz, z, v, create_graph=True, retain_graph=True)
        total = total + vjp.pow(2).sum()
    return total / (samples * z.numel())


@dataclass
class EquilibriumStats:
    """What the last forward (and, for ``ift``, its backward) did, for logging.

    Attributes:
        mode: the backward mode in use.
        forward: the forward solve (for ``unroll``: the explicit steps, summarised in the same
            form; ``converged`` then means the last step moved less than ``tol``).
        backward: the adjoint solve of the ``ift`` backward; filled in when backward runs.
        jac_loss: the Jacobian regulariser (differentiable scalar) if enabled, else ``None``.
        extra_nfe: evaluations of ``f`` made with grad after the solve (1 for ``ift``, ``k``
            for ``phantom``, 0 for ``unroll`` whose steps are all in ``forward.nfe``).
    """

    mode: str
    forward: SolverResult
    backward: SolverResult | None = None
    jac_loss: Tensor | None = None
    extra_nfe: int = 0

    def as_dict(self) -> dict[str, float]:
        """Flat floats for a logger (host synchronisation)."""
        out = {f"forward_{k}": v for k, v in self.forward.summary().items()}
        out["extra_nfe"] = float(self.extra_nfe)
        if self.backward is not None:
            out.update({f"backward_{k}": v for k, v in self.backward.summary().items()})
        if self.jac_loss is not None:
            out["jac_loss"] = float(self.jac_loss.detach())
        return out


class Equilibrium(nn.Module):
    r"""An equilibrium (deep equilibrium / implicit) layer over a batch of graphs.

    .. math::
        z^\star = f(z^\star;\ \text{inputs}), \qquad
        \text{output} \approx z^\star \ \text{(see backward modes for the exact value)}.

    The forward pass finds :math:`z^\star` with a graph-batched solver from
    :mod:`dear.solvers` under ``torch.no_grad`` (no activations stored however many iterations
    it takes), then re-attaches the gradient according to ``backward``:

    * ``"ift"``: output ``f(z*)`` computed with grad from a detached ``z*``; a hook replaces its
      incoming gradient :math:`\bar z` by the solution :math:`g` of the adjoint equation
      :math:`g = J^\top g + \bar z` (:math:`J = \partial f/\partial z` at :math:`z^\star`),
      solved per graph by a solver with vector-Jacobian products. Exact gradient for the
      parameters and inputs of ``f`` up to solver tolerance; memory of one step.
    * ``"phantom"``: ``k`` damped steps :math:`z \leftarrow (1-\tau) z + \tau f(z)` from the
      detached ``z*`` with grad; backprop through them (a phantom gradient; DEAR uses
      ``k=1, tau=1``). Memory of ``k`` steps.
    * ``"unroll"``: no solver; ``K`` explicit steps :math:`z \leftarrow f(z)` from ``z0`` with
      grad, backprop through all of them (NAR-style). Memory of ``K`` steps.

    When grad is disabled (``torch.no_grad`` / inference), ``ift`` and ``phantom`` return the
    solver's ``z*`` directly with no extra evaluation.

    ``f`` is called as ``f(z, *args, **kwargs)`` with the extra arguments of :meth:`forward`;
    gradients reach ``f``'s parameters and any tensor in ``args``/``kwargs`` (or captured by
    ``f``) that requires grad. ``f`` must treat graphs independently. If ``f`` itself needs the
    batch vector, pass it again in ``args``/``kwargs``: the ``batch`` keyword of
    :meth:`forward` is consumed by the layer.

    Args:
        f (callable): the step ``f(z, *args, **kwargs) -> z``; an ``nn.Module`` is registered
            as a submodule.
        method (str or Solver, optional): forward solver. (default: ``"anderson"``)
        tol (float, optional): forward tolerance. (default: ``1e-4``)
        max_iter (int, optional): forward cap on evaluations. (default: ``50``)
        eval_max_iter (int, optional): cap used when the module is in eval mode (DEAR: 40 in
            training, 160 at test). ``None``: same as ``max_iter``. (default: ``None``)
        stop_mode (str, optional): ``"rel"``, ``"node"`` or ``"abs"`` (:func:`dear.solvers.solve`). (default: ``"rel"``)
        first_hit (bool, optional): forward returns each graph's first iterate under tolerance
            (see :func:`dear.solvers.solve`). (default: ``False``)
        solver_options (dict, optional): options of the forward solver. (default: ``None``)
        backward (str, optional): ``"ift"``, ``"phantom"`` or ``"unroll"``. (default: ``"ift"``)
        backward_method (str or Solver, optional): solver of the adjoint equation.
            (default: ``"anderson"``)
        backward_tol (float, optional): adjoint tolerance; ``None``: ``tol``. (default: ``None``)
        backward_max_iter (int, optional): adjoint cap; ``None``: ``max_iter``.
            (default: ``None``)
        backward_options (dict, optional): options of the adjoint solver. (default: ``None``)
        phantom_steps (int, optional): ``k`` of the phantom gradient. (default: ``1``)
        phantom_tau (float, optional): damping of the phantom steps, in ``(0, 1]``.
            (default: ``1.0``)
        unroll_steps (int, optional): ``K`` of ``unroll``; ``None``: ``max_iter``.
            (default: ``None``)
        jac_reg_samples (int, optional): Hutchinson samples for the Jacobian regulariser
            (:func:`jacobian_frobenius` at the equilibrium, in ``last_stats.jac_loss``) when
            grad is enabled; ``0`` turns it off. (default: ``0``)
        check_every (int, optional): host-sync period of the stopping test. (default: ``1``)
        raise_on_failure (bool, optional): raise :class:`dear.solvers.SolverError` when the
            forward or adjoint solve does not converge or produces NaN/Inf. (default: ``False``)

    Shapes:
        - input ``z0``: ``[num_rows, ...]``; ``batch``: ``[num_rows]`` or ``None``.
        - output: same shape as ``z0``.

    After each call, :attr:`last_stats` (:class:`EquilibriumStats`) holds the solver results
    and the Jacobian regulariser; the ``ift`` adjoint statistics appear there after backward.
    A training loop should take them with :meth:`pop_stats`: while ``last_stats.jac_loss`` is
    held by the module it keeps that step's autograd graph alive and makes the module
    impossible to deep-copy or pickle.
    """

    def __init__(
        self,
        f: Callable[..., Tensor],
        method: str | Solver = "anderson",
        tol: float = 1e-4,
        max_iter: int = 50,
        *,
        eval_max_iter: int | None = None,
        stop_mode: str = "rel",
        first_hit: bool = False,
        solver_options: dict[str, Any] | None = None,
        backward: str = "ift",
        backward_method: str | Solver = "anderson",
        backward_tol: float | None = None,
        backward_max_iter: int | None = None,
        backward_options: dict[str, Any] | None = None,
        phantom_steps: int = 1,
        phantom_tau: float = 1.0,
        unroll_steps: int | None = None,
        jac_reg_samples: int = 0,
        check_every: int = 1,
        raise_on_failure: bool = False,
    ) -> None:
        super().__init__()
        if not callable(f):
            raise ValueError(f"f must be callable (an nn.Module or a function), got {type(f).__name__}")
        if backward not in BACKWARD_MODES:
            raise ValueError(f"backward must be one of {', '.join(BACKWARD_MODES)}, got {backward!r}")
        if stop_mode not in STOP_MODES:
            raise ValueError(f"stop_mode must be one of {', '.join(STOP_MODES)}, got {stop_mode!r}")
        # NumPy integers and 0-d tensors are valid settings (configs, arrays); bools are not.
        phantom_steps = check_int("phantom_steps", phantom_steps)
        max_iter = check_int("max_iter", max_iter)
        check_every = check_int("check_every", check_every)

        def optional_count(name: str, value: Any) -> int | None:
            return None if value is None else check_int(name, value, 1, "must be a positive integer or None")

        eval_max_iter = optional_count("eval_max_iter", eval_max_iter)
        backward_max_iter = optional_count("backward_max_iter", backward_max_iter)
        unroll_steps = optional_count("unroll_steps", unroll_steps)
        phantom_tau = check_real("phantom_tau", phantom_tau, lambda v: 0.0 < v <= 1.0, "must lie in (0, 1]")
        jac_reg_samples = check_int("jac_reg_samples", jac_reg_samples, 0, "must be an integer >= 0")
        # Finite, as run_solver requires: an infinite tolerance must fail here, not at the first
        # forward (tol) or the first backward (backward_tol).
        tol = check_real("tol", tol, lambda v: 0.0 <= v < math.inf, "must be >= 0 and finite")
        if backward_tol is not None:
            backward_tol = check_real("backward_tol", backward_tol, lambda v: 0.0 <= v < math.inf,
                                      "must be >= 0 and finite")
        self.f = f
        self.method = method
        self.tol = tol
        self.max_iter = max_iter
        self.eval_max_iter = eval_max_iter
        self.stop_mode = stop_mode
        self.first_hit = first_hit
        self.solver_options = dict(solver_options or {})
        self.backward = backward
        self.backward_method = backward_method
        self.backward_tol = self.tol if backward_tol is None else backward_tol
        self.backward_max_iter = max_iter if backward_max_iter is None else backward_max_iter
        self.backward_options = dict(backward_options or {})
        self.phantom_steps = phantom_steps
        self.phantom_tau = phantom_tau
        self.unroll_steps = max_iter if unroll_steps is None else unroll_steps
        self.jac_reg_samples = jac_reg_samples
        self.check_every = check_every
        self.raise_on_failure = raise_on_failure
        self.last_stats: EquilibriumStats | None = None
        # Keep every iterate of the forward solve in last_stats.forward.trajectory (detached;
        # memory grows with the iterations). DEAR's alignment regulariser switches it on.
        self.record_trajectory = False
        # Fail at construction, not at the first forward, on bad solver names or options.
        make_solver(method, **self.solver_options)
        if backward == "ift":
            make_solver(backward_method, **self.backward_options)

    def pop_stats(self) -> EquilibriumStats | None:
        """The last call's statistics, handed over: the module keeps no reference to them."""
        stats, self.last_stats = self.last_stats, None
        return stats

    def extra_repr(self) -> str:
        return (f"method={self.method!r}, tol={self.tol:g}, max_iter={self.max_iter}, "
                f"stop_mode={self.stop_mode!r}, backward={self.backward!r}")

    def forward(
        self,
        z0: Tensor,
        *args: Any,
        batch: Tensor | None = None,
        num_graphs: int | None = None,
        subset_args: Callable[[Tensor], tuple[Any, ...]] | None = None,
        **kwargs: Any,
    ) -> Tensor:
        """``z*`` with ``f(z*, *args, **kwargs) = z*`` per graph (see the class docstring).

        ``subset_args(graph_ids)`` (optional) returns ``args`` restricted to the given graphs
        (ascending original ids; rows, edges and graph rows of those graphs only, renumbered as
        their own batch); ``kwargs`` are passed unchanged to every call. With it the forward
        solve drops graphs as they finish (``restrict`` of :func:`dear.solvers.solve`): same
        result, cost proportional to each graph's own iterations.
        """
        batch, num_graphs = prepare_batch(batch, z0.shape[0], z0.device, num_graphs)

        def step(z: Tensor) -> Tensor:
            return self.f(z, *args, **kwargs)

        restrict = None
        if subset_args is not None:
            def restrict(graph_ids: Tensor) -> Callable[[Tensor], Tensor]:
                sub = subset_args(graph_ids)
                return lambda z: self.f(z, *sub, **kwargs)

        if self.backward == "unroll":
            return self._unroll(step, z0, batch, num_graphs)

        max_iter = self.max_iter if (self.training or self.eval_max_iter is None) else self.eval_max_iter
        result = run_solver(
            make_solver(self.method, **self.solver_options), step, z0, batch,
            tol=self.tol, max_iter=max_iter, stop_mode=self.stop_mode, first_hit=self.first_hit,
            num_graphs=num_graphs, check_every=self.check_every,
            raise_on_failure=self.raise_on_failure, return_trajectory=self.record_trajectory,
            restrict=restrict,
        )
        stats = EquilibriumStats(mode=self.backward, forward=result)
        self.last_stats = stats
        if not torch.is_grad_enabled():
            return result.z

        z_star = result.z.detach().requires_grad_()
        if self.backward == "ift":
            z_out = step(z_star)
            stats.extra_nfe = 1
            if self.jac_reg_samples:
                stats.jac_loss = jacobian_frobenius(z_out, z_star, self.jac_reg_samples)
            if z_out.requires_grad:
                return self._attach_adjoint(z_out, z_star, batch, num_graphs, stats, restrict)
            return z_out

        # phantom: k damped steps from the (detached) equilibrium, with grad.
        z = z_star
        for i in range(self.phantom_steps):
            fz = step(z)
            if i == 0 and self.jac_reg_samples:
                stats.jac_loss = jacobian_frobenius(fz, z_star, self.jac_reg_samples)
            z = fz if self.phantom_tau == 1.0 else (1.0 - self.phantom_tau) * z + self.phantom_tau * fz
        stats.extra_nfe = self.phantom_steps
        return z

    def _attach_adjoint(
        self, z_out: Tensor, z_star: Tensor, batch: Tensor, num_graphs: int,
        stats: EquilibriumStats,
        restrict: Callable[[Tensor], Callable[[Tensor], Tensor]] | None = None,
    ) -> Tensor:
        """Return ``f(z*)`` whose incoming gradient is replaced by the per-graph adjoint solution.

        The layer returns a copy of ``z_out`` and the hook sits on the copy, not on ``z_out``:

        * only the gradient that reaches the layer's output is transformed by the adjoint
          equation. The Jacobian regulariser is built from ``z_out``'s own graph
          (``create_graph=True``), and its gradient flows back into ``z_out``'s node whenever
          ``f``'s last operation saves its output (``tanh``, ``relu``, ``sigmoid``, ...); a hook
          on ``z_out`` applied the adjoint to that term too, so the regulariser's gradient was not
          its own (on a small tanh step, off by 7% of the largest entry; torchdeq's users
          differentiate ``jac_reg(f(z*), z*)`` directly);
        * the vector-Jacobian products read ``z_out``, which the caller cannot reach: an in-place
          op on the output (``h.mul_(2)``) used to run through them as well (wrong gradients
          with no error);
        * the hook may hold ``z_out`` strongly. When it sat on ``z_out``'s own node that was a
          reference cycle through C++ (node -> hook -> tensor -> node) that Python's garbage
          collector cannot see, leaking every training step's graph; the copy's node is not
          reachable from ``z_out``.

        The copy costs one state-sized tensor (no evaluation of ``f``).

        With ``restrict`` (the forward's map on a subset of graphs) the adjoint solve also drops
        graphs as they converge: the subset's vector-Jacobian products come from one extra
        evaluation of ``f`` on the remaining graphs' rows of ``z*`` (graphs never interact, so
        the products, and the gradients, are the same).
        """
        in_hook = False

        def hook(grad: Tensor) -> Tensor | None:
            nonlocal in_hook
            if in_hook:  # the vector-Jacobian products below must not re-enter
                return None
            in_hook = True
            try:
                def adjoint_map(g: Tensor) -> Tensor:
                    (vjp,) = torch.autograd.grad(z_out, z_star, g, retain_graph=True)
                    return vjp + grad

                restrict_adjoint = None
                if restrict is not None:
                    def restrict_adjoint(graph_ids: Tensor) -> Callable[[Tensor], Tensor]:
                        rows = torch.isin(batch, graph_ids).nonzero().squeeze(1)
                        z_sub = z_star.detach().index_select(0, rows).requires_grad_()
                        with torch.enable_grad():
                            out_sub = restrict(graph_ids)(z_sub)
                        stats.extra_nfe += 1
                        grad_sub = grad.index_select(0, rows)

                        def sub_map(g: Tensor) -> Tensor:
                            (vjp,) = torch.autograd.grad(out_sub, z_sub, g, retain_graph=True)
                            return vjp + grad_sub

                        return sub_map

                res = run_solver(
                    make_solver(self.backward_method, **self.backward_options), adjoint_map,
                    torch.zeros_like(grad), batch,
                    tol=self.backward_tol, max_iter=self.backward_max_iter,
                    stop_mode=self.stop_mode, num_graphs=num_graphs,
                    check_every=self.check_every, raise_on_failure=self.raise_on_failure,
                    restrict=restrict_adjoint,
                )
                stats.backward = res
                return res.z
            finally:
                in_hook = False

        output = z_out.clone()
        output.register_hook(hook)
        return output

    def _unroll(self, step: Callable[[Tensor], Tensor], z0: Tensor, batch: Tensor,
                num_graphs: int) -> Tensor:
        """``K`` explicit steps with grad; statistics describe the last step's residual."""
        z, prev = z0, z0
        for _ in range(self.unroll_steps):
            prev, z = z, step(z)
        with torch.no_grad():
            flat = (z.shape[0], math.prod(z.shape[1:]))  # not -1: a batch may have no rows
            res = graph_residual((z - prev).reshape(flat), z.reshape(flat), batch, num_graphs,
                                 self.stop_mode)
            finite = torch.isfinite(res)
        result = SolverResult(
            z=z.detach(), nfe=self.unroll_steps,
            iterations=torch.full((num_graphs,), self.unroll_steps, dtype=torch.long, device=z.device),
            residual=res, converged=finite & (res < self.tol), diverged=~finite,
            method="unroll", tol=self.tol, max_iter=self.unroll_steps, stop_mode=self.stop_mode,
        )
        stats = EquilibriumStats(mode="unroll", forward=result)
        if self.jac_reg_samples and z.requires_grad and prev.requires_grad:
            stats.jac_loss = jacobian_frobenius(z, prev, self.jac_reg_samples)
        self.last_stats = stats
        if self.raise_on_failure:
            result.raise_if_failed()
        return z
