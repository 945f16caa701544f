"""Graph-batched root finders for ``z = f(z)`` on PyG node states.

Quick use::

    from dear.solvers import solve
    res = solve(f, z0, batch, method="anderson", tol=1e-4, max_iter=50, stop_mode="rel")
    res.z, res.nfe, res.iterations, res.residual, res.converged   # last three: per graph

``z0`` is ``[num_rows, ...]`` whose rows are nodes; ``batch[i]`` is the graph of row ``i``
(``None``: a single graph). Extra per-graph or per-edge state can ride along as extra rows
with their own graph ids (see ``docs/engine.md``). Solvers: ``picard``, ``anderson``,
``broyden``, ``learned`` / ``learned_nn`` (model-owned, see ``docs/learned-solver.md``) (``available()`` lists what is registered); a new one subclasses :class:`Solver`
and calls :func:`register_solver`.
"""

from __future__ import annotations

from typing import Any, Callable

from torch import Tensor

from .base import (
    Solver,
    SolverError,
    SolverResult,
    available,
    get_solver,
    graph_norm,
    graph_residual,
    graph_sq_norm,
    make_solver,
    register_solver,
    run_solver,
)
from .picard import Picard
from .anderson import Anderson
from .broyden import Broyden
from .learned import LearnedSolver, LearnedSolverNN

__all__ = [
    "Anderson",
    "Broyden",
    "LearnedSolver",
    "LearnedSolverNN",
    "Picard",
    "Solver",
    "SolverError",
    "SolverResult",
    "available",
    "get_solver",
    "graph_norm",
    "graph_residual",
    "graph_sq_norm",
    "make_solver",
    "register_solver",
    "solve",
]


def solve(
    f: Callable[[Tensor], Tensor],
    z0: Tensor,
    batch: Tensor | None = None,
    method: str | Solver = "anderson",
    *,
    tol: float = 1e-4,
    max_iter: int = 50,
    stop_mode: str = "rel",
    first_hit: bool = False,
    num_graphs: int | None = None,
    check_every: int = 1,
    return_trace: bool = False,
    return_trajectory: bool = False,
    raise_on_failure: bool = False,
    restrict: Callable[[Tensor], Callable[[Tensor], Tensor]] | None = None,
    compact_below: float = 0.75,
    return_best: bool = True,
    **solver_options: Any,
) -> SolverResult:
    r"""Find ``z = f(z)`` for every graph of a PyG batch, stopping each graph on its own.

    Runs without building an autograd graph (use :class:`dear.implicit.Equilibrium` for
    gradients). Each evaluation of ``f`` is on the whole batch; per graph ``g`` the residual is

    * ``"abs"``: :math:`\|f(z) - z\|_g` (2-norm over the graph's rows and features),
    * ``"rel"``: :math:`\|f(z) - z\|_g / (\|f(z)\|_g + 10^{-9})` (the DEAR paper's),
    * ``"node"``: :math:`\max_{i \in g} \|f(z)_i - z_i\| / (\|f(z)_i\| + 10^{-9})`, the worst
      node's relative residual: unlike ``"rel"`` it is not diluted by the graph's size, so one
      tolerance stops graphs of every size equally close to their fixed points.

    A graph whose residual goes under ``tol`` is *converged* and frozen: later steps never
    change its rows. A graph whose state or residual becomes NaN/Inf is *diverged* and is no
    longer iterated. The loop ends when no graph is active (checked every ``check_every``
    evaluations) or after ``max_iter`` evaluations. A graph that did not converge returns its
    lowest-residual iterate (``return_best``).

    Args:
        f: maps a tensor shaped like ``z0`` to one of the same shape, dtype and device; must
            treat graphs independently and must not modify its input in place (both are
            checked: ``ValueError``).
        z0: initial state ``[num_rows, ...]`` (floating point, half precision included; CPU or
            CUDA, the solve follows it). Zero rows give an empty result without calling ``f``.
        batch: ``[num_rows]`` graph id per row, or ``None`` for a single graph.
        method: a registered solver name or a :class:`Solver` instance. (default: ``"anderson"``)
        tol: tolerance, ``>= 0`` (``0``: run to ``max_iter``). (default: ``1e-4``)
        max_iter: maximum evaluations of ``f``. (default: ``50``)
        stop_mode: ``"rel"``, ``"node"`` or ``"abs"``. (default: ``"rel"``)
        first_hit: return each converged graph's first iterate under tolerance itself, instead
            of its image ``f(x)`` (one free step further). (default: ``False``)
        num_graphs: number of graphs; computed from ``batch`` if omitted (one host sync).
        check_every: test "all graphs done?" every this many evaluations; that test is the
            loop's only host synchronisation on CUDA. (default: ``1``)
        return_trace: keep the per-graph residual of every evaluation (``result.trace``).
        return_trajectory: keep every evaluated iterate (``result.trajectory``).
        raise_on_failure: raise :class:`SolverError` if any graph did not converge or diverged.
        restrict: ``restrict(graph_ids) -> f_sub``, the same map on a subset of the graphs
            (ascending original ids; their rows in order). With it the loop drops finished
            graphs once at most ``compact_below`` of those it iterates are active, so later
            evaluations only cost what the unfinished graphs cost (Picard and Anderson; results
            equal up to floating-point summation order; off with ``return_trace`` /
            ``return_trajectory``). (default: ``None``)
        compact_below: active fraction that triggers dropping finished graphs. (default:
            ``0.75``: measured faster than ``0.5`` and ``1.0`` on DEAR's evaluations, docs/engine.md)
        return_best: a graph that does not converge (``max_iter`` reached, or NaN/Inf later)
            returns its lowest-residual iterate (its image unless ``first_hit``) and that
            residual, as torchdeq's solvers do, instead of its last (or last finite) iterate.
            Converged graphs are unaffected: their accepted iterate is their lowest-residual
            one. (default: ``True``)
        **solver_options: options of the chosen solver (e.g. Anderson's ``m``, ``lam``,
            ``beta``); unknown ones raise ``ValueError`` listing the valid ones.

    Returns:
        :class:`SolverResult` with ``z``, ``nfe``, per-graph ``iterations``, ``residual``,
        ``converged`` and ``diverged``, and on request ``trace`` and ``trajectory``.
    """
    solver = make_solver(method, **solver_options)
    return run_solver(
        solver,
        f,
        z0,
        batch,
        tol=tol,
        max_iter=max_iter,
        stop_mode=stop_mode,
        first_hit=first_hit,
        num_graphs=num_graphs,
        check_every=check_every,
        return_trace=return_trace,
        return_trajectory=return_trajectory,
        raise_on_failure=raise_on_failure,
        restrict=restrict,
        compact_below=compact_below,
        return_best=return_best,
    )
