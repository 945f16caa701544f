"""Graph-batched root finding: the solver base class, the result object, the stopping loop
and the registry.

Every solver here finds a fixed point ``z = f(z)`` of a map on a *node-state* tensor: a tensor
whose rows are nodes (``[num_nodes, ...]``) and whose membership in graphs is given by PyG's
``batch`` vector. Graphs are the unit of everything:

* residual norms are taken per graph (2-norm over the graph's rows and features);
* a graph stops when *its* residual is under tolerance, and its rows are frozen from then on;
* solvers that mix or model history (Anderson, Broyden) do so with per-graph inner products,
  so one graph never influences another's update.

The loop in :func:`run_solver` owns stopping, freezing, failure detection and statistics; a
solver (:class:`Solver`) only proposes the next iterate. A new solver is therefore one class
with two methods and one :func:`register_solver` call.

The map ``f`` must treat graphs independently (no coupling between graphs, e.g. no batch-level
normalisation): per-graph stopping and per-graph independence rely on it.
"""

from __future__ import annotations

import inspect
import math
import numbers
import operator
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Sequence

import torch
from torch import Tensor

__all__ = [
    "Solver",
    "SolverError",
    "SolverResult",
    "available",
    "get_solver",
    "graph_norm",
    "graph_residual",
    "graph_sq_norm",
    "make_solver",
    "prepare_batch",
    "register_solver",
    "run_solver",
]

#: Per-graph stopping rules (:func:`graph_residual`). ``"rel"`` is the DEAR paper's; ``"node"``
#: asks the same of every node, so a tolerance means the same at every graph size.
STOP_MODES = ("abs", "rel", "node")

# States in these dtypes are reduced (norms, inner products) and their small Anderson systems
# solved in float32: a float16 sum of squares overflows past 65504 (a norm of 256), and LAPACK
# has no half-precision solver.
HALF_DTYPES = (torch.float16, torch.bfloat16)


def reduction_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype per-graph reductions (norms, Gram matrices, counts) of a ``dtype`` state are
    kept in: float32 for the :data:`HALF_DTYPES`, the state's own otherwise."""
    return torch.float32 if dtype in HALF_DTYPES else dtype

# Added to the denominator of the relative residual so that a graph whose image f(z) is
# exactly zero has a finite residual (0 / eps = 0 when the residual is zero too).
REL_EPS = 1e-9


class SolverError(RuntimeError):
    """A solve failed (non-convergence or NaN/Inf) and the caller asked for an exception.

    The full :class:`SolverResult` is attached as ``.result`` so the caller can still inspect
    which graphs failed and how far they got.
    """

    def __init__(self, message: str, result: "SolverResult") -> None:
        super().__init__(message)
        self.result = result


@dataclass
class SolverResult:
    """What a solve returns. Per-graph fields have one entry per graph (``[num_graphs]``).

    Attributes:
        z: the solution, same shape, dtype and device as ``z0``. For a converged graph it is
            ``f(x)`` for the first iterate ``x`` whose residual passed the test (one free
            Picard step past it), or ``x`` itself with ``first_hit=True``. For a graph that
            did not converge (hit ``max_iter``, or its state or residual became NaN/Inf) it is
            ``f(x)`` (resp. ``x``) of its lowest-residual iterate (``return_best=True``, the
            default, as torchdeq); with ``return_best=False``, of its last iterate (a diverged
            graph: the last iterate evaluated).
        nfe: number of evaluations of ``f`` on the whole batch.
        iterations: ``[num_graphs]`` int64, evaluations each graph used until it converged,
            diverged or hit the cap.
        residual: ``[num_graphs]`` the residual (in ``stop_mode``) of the returned iterate
            (``z0``'s dtype; float32 for a float16/bfloat16 state).
        converged: ``[num_graphs]`` bool, residual went under ``tol``.
        diverged: ``[num_graphs]`` bool, state or residual became NaN/Inf (never converged).
        method, tol, max_iter, stop_mode: the settings used, so a result explains itself.
        trace: ``[T, num_graphs]`` residual at every evaluation (``return_trace=True``); a graph
            that is done repeats its accepted residual.
        trajectory: the ``T`` iterates at which ``f`` was evaluated, each shaped like ``z0``
            (``return_trajectory=True``). Memory grows with ``T``; for analysis only.
    """

    z: Tensor
    nfe: int
    iterations: Tensor
    residual: Tensor
    converged: Tensor
    diverged: Tensor
    method: str
    tol: float
    max_iter: int
    stop_mode: str
    trace: Tensor | None = None
    trajectory: list[Tensor] | None = field(default=None, repr=False)

    @property
    def num_graphs(self) -> int:
        return int(self.converged.numel())

    @property
    def all_converged(self) -> bool:
        """True when every graph converged (a host synchronisation on CUDA)."""
        return bool(self.converged.all())

    def failure_message(self) -> str | None:
        """A one-paragraph description of what failed, or ``None`` when every graph converged."""
        if self.all_converged:
            return None
        n_div = int(self.diverged.sum())
        n_cap = int((~self.converged & ~self.diverged).sum())
        parts = []
        if n_div:
            first = int(self.iterations[self.diverged].min())
            parts.append(
                f"{n_div} of {self.num_graphs} graph(s) produced NaN/Inf in the state or residual "
                f"(first at evaluation {first})"
            )
        if n_cap:
            worst = float(self.residual[~self.converged & ~self.diverged].max())
            parts.append(
                f"{n_cap} of {self.num_graphs} graph(s) did not reach {self.stop_mode} tolerance "
                f"{self.tol:g} within max_iter={self.max_iter} (worst residual {worst:.3g})"
            )
        return (
            f"solver '{self.method}' failed: " + "; ".join(parts) + ". Raise max_iter, relax tol, "
            "try another method, or make the map more contractive."
        )

    def raise_if_failed(self) -> "SolverResult":
        """Raise :class:`SolverError` if any graph failed; return ``self`` otherwise."""
        message = self.failure_message()
        if message is not None:
            raise SolverError(message, self)
        return self

    def summary(self) -> dict[str, float]:
        """Plain floats for logging (one host synchronisation)."""
        it = self.iterations.to(torch.float64)
        res = self.residual.to(torch.float64)
        return {
            "nfe": float(self.nfe),
            "iterations_mean": float(it.mean()) if it.numel() else 0.0,
            "iterations_max": float(it.max()) if it.numel() else 0.0,
            "residual_max": float(res.max()) if res.numel() else 0.0,
            "converged_frac": float(self.converged.to(torch.float64).mean()) if it.numel() else 1.0,
            "diverged": float(self.diverged.sum()),
        }


def graph_sq_norm(t: Tensor, batch: Tensor, num_graphs: int) -> Tensor:
    """Squared 2-norm of each graph's rows: ``[N, D] -> [num_graphs]`` (index_add over rows).

    One graph (node classification, a single large graph) takes a plain BLAS norm: no
    ``[N, D]`` temporary and no scatter, which matters when ``f`` itself is cheap. Half-precision
    inputs are reduced in float32 (and the result is float32).
    """
    if t.dtype in HALF_DTYPES:
        t = t.float()
    if num_graphs == 1:
        return torch.linalg.vector_norm(t).square().reshape(1)
    row = torch.linalg.vecdot(t, t)
    return row.new_zeros(num_graphs).index_add_(0, batch, row)


def graph_norm(t: Tensor, batch: Tensor, num_graphs: int) -> Tensor:
    """2-norm of each graph's rows: ``[N, D] -> [num_graphs]``."""
    return graph_sq_norm(t, batch, num_graphs).sqrt()


def graph_residual(r: Tensor, fx: Tensor, batch: Tensor, num_graphs: int, stop_mode: str) -> Tensor:
    """Per-graph residual from ``r = f(x) - x`` and ``f(x)`` (both ``[N, D]``).

    ``"abs"``: ``||r||_g``; ``"rel"``: ``||r||_g / (||f(x)||_g + REL_EPS)``; ``"node"``: the
    largest relative residual of one node, ``max_i ||r_i|| / (||f(x)_i|| + REL_EPS)`` over the
    graph's rows. ``"rel"`` pools the whole graph, so a few unsettled nodes weigh less the more
    nodes there are: at a fixed tolerance it stops a large graph further from its fixed point
    than a small one (a graph 4x larger with the same unsettled nodes reads about half the
    residual). ``"node"`` has no such dilution, so a tolerance chosen at training sizes means the
    same at test sizes. NaN/Inf anywhere in a graph's rows makes its entry non-finite, which is
    how divergence is detected.
    """
    if stop_mode == "node":
        if r.dtype in HALF_DTYPES:  # reduced in float32, as graph_sq_norm does
            r, fx = r.float(), fx.float()
        per_node = torch.linalg.vector_norm(r, dim=-1) / (torch.linalg.vector_norm(fx, dim=-1) + REL_EPS)
        # a NaN row must make its graph non-finite: amax may skip NaN, so count it as inf
        per_node = torch.where(torch.isnan(per_node), torch.full_like(per_node, math.inf), per_node)
        if num_graphs == 1:
            return per_node.amax().reshape(1) if per_node.numel() else per_node.new_zeros(1)
        return per_node.new_zeros(num_graphs).scatter_reduce_(0, batch, per_node, "amax", include_self=True)
    res = graph_norm(r, batch, num_graphs)
    if stop_mode == "rel":
        res = res / (graph_norm(fx, batch, num_graphs) + REL_EPS)
    return res


class Solver:
    """Base class of a graph-batched fixed-point solver.

    The loop (:func:`run_solver`) evaluates ``f``, measures per-graph residuals, freezes
    converged graphs and decides when to stop; a solver only turns the current iterate and its
    image into the next iterate. Subclasses implement:

    * :meth:`reset` -- allocate per-solve buffers (called once per solve, before iterating);
    * :meth:`update` -- propose the next iterate ``[N, D]`` for every row. Rows of graphs that
      are no longer active are discarded by the loop, so ``update`` need not mask them, but it
      must not raise on them (their history may be degenerate).

    Helpers :meth:`graph_dot` and :meth:`to_nodes` give per-graph inner products and broadcast
    per-graph coefficients back to rows. Options are constructor keyword arguments; validate
    them there with a ``ValueError`` that names the option and the accepted range.
    """

    name: ClassVar[str] = ""
    #: Whether :meth:`compact` can drop finished graphs mid-solve (see ``restrict`` of
    #: :func:`run_solver`). Solvers with per-solve state override :meth:`compact` to slice it.
    supports_compaction: ClassVar[bool] = False

    def __init__(self) -> None:
        self.batch: Tensor | None = None
        self.num_graphs: int = 0

    def reset(self, x0: Tensor, batch: Tensor, num_graphs: int) -> None:
        """Start a new solve. ``x0`` is ``[N, D]`` (the loop flattens trailing dimensions)."""
        self.batch = batch
        self.num_graphs = num_graphs

    def update(self, x: Tensor, fx: Tensor, r: Tensor, step: int) -> Tensor:
        """Next iterate from the current one. ``r = fx - x``; ``step`` counts from 0."""
        raise NotImplementedError

    def compact(self, rows: Tensor, graphs: Tensor, batch: Tensor, num_graphs: int) -> None:
        """Keep only ``rows`` (current row indices) of ``graphs`` (current graph indices);
        ``batch`` / ``num_graphs`` describe what is left. Only called when
        :attr:`supports_compaction` is true; overrides slice their per-solve buffers too."""
        self.batch = batch
        self.num_graphs = num_graphs

    def graph_dot(self, a: Tensor, b: Tensor) -> Tensor:
        """Per-graph inner product of two ``[N, D]`` tensors -> ``[num_graphs]``."""
        return self.graph_dots([a], b)[:, 0]

    def graph_dots(self, vectors: Sequence[Tensor], b: Tensor) -> Tensor:
        """Per-graph inner products of each of ``n`` ``[N, D]`` tensors with ``b`` -> ``[num_graphs, n]``.

        A single graph uses BLAS dot products (no ``[N, D]`` temporaries, no scatter).
        Half-precision inputs are reduced in float32 and give float32 products (a float16 sum
        over a graph's rows overflows past 65504).
        """
        if self.batch is None:
            raise RuntimeError(f"{type(self).__name__}.reset() must be called before graph_dots()")
        if b.dtype in HALF_DTYPES:
            vectors, b = [v.float() for v in vectors], b.float()
        if self.num_graphs == 1:
            flat = b.reshape(-1)
            return torch.stack([torch.dot(v.reshape(-1), flat) for v in vectors]).unsqueeze(0)
        rows = torch.stack([torch.linalg.vecdot(v, b) for v in vectors], dim=1)
        return rows.new_zeros(self.num_graphs, len(vectors)).index_add_(0, self.batch, rows)

    def combine(self, weights: Tensor, vectors: Sequence[Tensor]) -> Tensor:
        """``sum_j weights[g, j] * vectors[j]`` on each graph's rows: ``[num_graphs, n]`` weights,
        ``n`` tensors ``[N, D]`` -> ``[N, D]``. Accumulates in place (no ``[N, n, D]`` temporary).
        The weights are cast to the vectors' dtype (float32 weights of a half-precision state
        must not promote the iterate to float32)."""
        if self.batch is None:
            raise RuntimeError(f"{type(self).__name__}.reset() must be called before combine()")
        if weights.dtype != vectors[0].dtype:  # tested first: even a no-op .to() costs a microsecond
            weights = weights.to(vectors[0].dtype)
        single = self.num_graphs == 1
        w = weights[0] if single else self.to_nodes(weights).unsqueeze(-1)  # [n] or [N, n, 1]
        out = vectors[0] * w[0] if single else vectors[0] * w[:, 0]
        for j in range(1, len(vectors)):
            out.addcmul_(vectors[j], w[j] if single else w[:, j])
        return out

    def to_nodes(self, per_graph: Tensor) -> Tensor:
        """Broadcast a ``[num_graphs, ...]`` tensor to rows: ``[N, ...]``."""
        if self.batch is None:
            raise RuntimeError(f"{type(self).__name__}.reset() must be called before to_nodes()")
        return per_graph.index_select(0, self.batch)

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if k not in _RUNTIME_ATTRS
                         and not k.startswith("_"))
        return f"{type(self).__name__}({opts})"


_RUNTIME_ATTRS = {"batch", "num_graphs"}

_REGISTRY: dict[str, type[Solver]] = {}


def register_solver(
    name: str, cls: type[Solver] | None = None, *, overwrite: bool = False
) -> Any:
    """Register a solver class under ``name``; usable as ``@register_solver("name")``.

    Raises ``ValueError`` if the name is taken (pass ``overwrite=True`` to replace it) and
    ``TypeError`` if ``cls`` is not a :class:`Solver` subclass.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"solver name must be a non-empty string, got {name!r}")

    def _register(solver_cls: type[Solver]) -> type[Solver]:
        if not (isinstance(solver_cls, type) and issubclass(solver_cls, Solver)):
            raise TypeError(
                f"register_solver('{name}', ...) needs a subclass of dear.solvers.Solver, "
                f"got {solver_cls!r}"
            )
        if name in _REGISTRY and _REGISTRY[name] is not solver_cls and not overwrite:
            raise ValueError(
                f"a solver named '{name}' is already registered ({_REGISTRY[name].__name__}); "
                "choose another name or pass overwrite=True"
            )
        solver_cls.name = name
        _REGISTRY[name] = solver_cls
        return solver_cls

    if cls is None:
        return _register
    return _register(cls)


def available() -> list[str]:
    """Names of the registered solvers, sorted."""
    return sorted(_REGISTRY)


def get_solver(name: str) -> type[Solver]:
    """The solver class registered under ``name``; ``ValueError`` listing valid names if unknown."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown solver {name!r}; available solvers: {', '.join(available())}"
        ) from None


def make_solver(method: str | Solver, **options: Any) -> Solver:
    """Instantiate ``method`` with ``options``, or pass an instance through (then no options).

    Unknown options raise a ``ValueError`` naming the solver's valid options.
    """
    if isinstance(method, Solver):
        if options:
            raise ValueError(
                f"options {sorted(options)} were given with a ready solver instance "
                f"{type(method).__name__}; set them when constructing it"
            )
        return method
    cls = get_solver(method)
    params = inspect.signature(cls.__init__).parameters
    valid = [p for p in params if p != "self"]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(
            f"solver '{method}' has no option(s) {', '.join(unknown)}; "
            f"valid options: {', '.join(valid) or '(none)'}"
        )
    return cls(**options)


def check_int(name: str, value: Any, minimum: int = 1, requirement: str = "must be a positive integer") -> int:
    """``value`` as a Python ``int >= minimum``, else ``ValueError``: ``"{name} {requirement}, got
    {value!r} ({type})"``.

    Integers from NumPy or a 0-d integer tensor (anything ``operator.index`` takes) are valid
    settings, as values read from configs and arrays are; bools and floats (even ``2.0``) are not.
    """
    scalar = not isinstance(value, Tensor) or (value.dim() == 0 and value.dtype != torch.bool)
    if scalar and not isinstance(value, bool):
        try:
            number = operator.index(value)
        except TypeError:
            pass
        else:
            if number >= minimum:
                return number
    raise ValueError(f"{name} {requirement}, got {value!r} ({type(value).__name__})")


def check_real(name: str, value: Any, accept: Callable[[float], bool], requirement: str) -> float:
    """``value`` as a Python float that ``accept`` approves, else ``ValueError``: ``"{name}
    {requirement}, got {value!r} ({type})"``. NumPy scalars and 0-d real tensors are numbers too; bools,
    strings and complex numbers are not."""
    number = value
    if isinstance(value, Tensor) and value.dim() == 0 and value.dtype != torch.bool and not value.is_complex():
        number = value.item()
    if isinstance(number, numbers.Real) and not isinstance(number, bool):
        number = float(number)
        if accept(number):
            return number
    raise ValueError(f"{name} {requirement}, got {value!r} ({type(value).__name__})")


def prepare_batch(
    batch: Tensor | None, num_rows: int, device: torch.device, num_graphs: int | None
) -> tuple[Tensor, int]:
    """Validate ``batch`` and find ``num_graphs`` (one host sync if it has to be computed)."""
    if num_graphs is not None:
        num_graphs = check_int("num_graphs", num_graphs, 0, "must be a non-negative integer")
    if batch is None:
        if num_graphs not in (None, 1):
            raise ValueError(f"num_graphs={num_graphs} was given without a batch vector")
        return torch.zeros(num_rows, dtype=torch.long, device=device), 1
    if not isinstance(batch, Tensor) or batch.dim() != 1 or batch.numel() != num_rows:
        shape = tuple(batch.shape) if isinstance(batch, Tensor) else type(batch).__name__
        raise ValueError(
            f"batch must be a 1-D tensor with one graph id per row of z0 ({num_rows} rows), "
            f"got {shape}"
        )
    if batch.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"batch must hold integer graph ids, got dtype {batch.dtype}")
    if batch.device != device:
        raise ValueError(f"batch is on {batch.device} but z0 is on {device}; move one of them")
    batch = batch.long()
    if num_graphs is None:
        num_graphs = int(batch.max()) + 1 if num_rows else 0
    if device.type == "cpu" and num_rows:  # free on CPU; on CUDA it would cost a sync
        lo, hi = int(batch.min()), int(batch.max())
        if lo < 0 or hi >= num_graphs:
            raise ValueError(
                f"batch ids must lie in [0, num_graphs={num_graphs}), found range [{lo}, {hi}]"
            )
    return batch, num_graphs


def _rows(per_graph: Tensor, batch: Tensor) -> Tensor:
    """A per-graph boolean mask broadcast to rows, shaped ``[N, 1]`` for ``torch.where``."""
    return per_graph.index_select(0, batch).unsqueeze(1)


def _empty_result(
    z0: Tensor, n_graphs: int, res_dtype: torch.dtype, method: str, tol: float, max_iter: int,
    stop_mode: str, return_trace: bool, return_trajectory: bool, raise_on_failure: bool,
) -> SolverResult:
    """The result for a state with no rows (an empty PyG batch): ``f`` is never called; each
    graph (none, or one for ``batch=None``, or ``num_graphs`` given) has no rows, so residual 0,
    0 iterations, and converged exactly when ``0 < tol``."""
    dev = z0.device
    residual = torch.zeros(n_graphs, dtype=res_dtype, device=dev)
    result = SolverResult(
        z=z0.detach().clone(), nfe=0,
        iterations=torch.zeros(n_graphs, dtype=torch.long, device=dev),
        residual=residual, converged=residual < tol,
        diverged=torch.zeros(n_graphs, dtype=torch.bool, device=dev),
        method=method, tol=tol, max_iter=max_iter, stop_mode=stop_mode,
        trace=residual.new_zeros(0, n_graphs) if return_trace else None,
        trajectory=[] if return_trajectory else None,
    )
    if raise_on_failure:
        result.raise_if_failed()
    return result


def run_solver(
    solver: Solver,
    f: Callable[[Tensor], Tensor],
    z0: Tensor,
    batch: Tensor | None = None,
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
) -> SolverResult:
    """The per-graph stopping loop shared by every solver (see :func:`dear.solvers.solve`).

    ``restrict(graphs)`` (optional) returns ``f`` on a subset of the graphs: given the original
    ids of the graphs to keep (ascending), a map of their rows only (in their original order).
    With it, once at most ``compact_below`` of the graphs being iterated are still active, the
    loop drops the finished ones (their results are final) and continues on the rest, so a
    batch costs in proportion to the iterations each graph needs rather than to the slowest
    graph's. Results are the same up to floating-point summation order, as graphs never
    interact (a batch compacted to one graph takes the faster single-graph reductions; a
    graph within rounding of ``tol`` can stop one iteration earlier or later; see
    docs/engine.md). When every
    graph is done on a step that ``check_every`` does not test, the loop ends there (there is
    nothing left to compact to). It needs a solver that
    :attr:`~Solver.supports_compaction` and host-side counts (CPU, or ``check_every=1``), and is
    off when a trace or trajectory is recorded.

    A state with no rows (an empty PyG batch) gives an empty result without calling ``f``.
    ``f`` must return a tensor of ``z0``'s shape, dtype and device and must not modify its input
    in place (checked at every evaluation, in O(1): shape, dtype, device and the input's
    version counter).
    """
    compact_below = check_real("compact_below", compact_below, lambda v: 0.0 < v <= 1.0, "must lie in (0, 1]")
    if not isinstance(z0, Tensor) or z0.dim() < 1:
        raise ValueError("z0 must be a tensor whose first dimension indexes rows (nodes)")
    if not z0.is_floating_point():
        raise ValueError(f"z0 must be a floating-point tensor, got dtype {z0.dtype}")
    tol = check_real("tol", tol, lambda v: 0.0 <= v < math.inf, "must be a finite number >= 0")
    max_iter = check_int("max_iter", max_iter)
    check_every = check_int("check_every", check_every)
    if stop_mode not in STOP_MODES:
        raise ValueError(f"stop_mode must be one of {', '.join(STOP_MODES)}, got {stop_mode!r}")

    shape = z0.shape
    n_rows = shape[0]
    # Explicit, not -1: reshape cannot infer -1 for a tensor with no elements.
    n_feat = math.prod(shape[1:])
    batch, n_graphs = prepare_batch(batch, n_rows, z0.device, num_graphs)
    method_name = solver.name or type(solver).__name__
    # Residuals of half-precision states are computed (and kept) in float32.
    res_dtype = reduction_dtype(z0.dtype)
    if n_rows == 0:
        return _empty_result(z0, n_graphs, res_dtype, method_name, tol, max_iter, stop_mode,
                             return_trace, return_trajectory, raise_on_failure)

    def checked(fn: Callable[[Tensor], Tensor], cur_shape: torch.Size) -> Callable[[Tensor], Tensor]:
        rows = cur_shape[0]

        def F(x: Tensor) -> Tensor:
            # O(1) checks only (attributes, no reductions, no host sync): this runs every step.
            xv = x.view(cur_shape)
            # The version counter moves on any in-place op on x or a view of it (inference
            # tensors have none). An in-place f would make r = f(x) - x = 0: false convergence.
            version = None if xv.is_inference() else xv._version
            out = fn(xv)
            if version is not None and xv._version != version:
                raise ValueError(
                    "f must not modify its input in place (it changed the state tensor passed "
                    "to it, which is the solver's iterate); return a new tensor instead, e.g. "
                    "z = z * a rather than z.mul_(a)"
                )
            if not isinstance(out, Tensor) or out.shape != cur_shape:
                got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
                raise ValueError(f"f must return a tensor shaped like z0 {tuple(cur_shape)}, got {got}")
            if out.dtype != x.dtype:
                raise ValueError(
                    f"f must return a tensor of z0's dtype {x.dtype}, got {out.dtype}; "
                    f"cast its result (e.g. .to(z.dtype)) or start from z0.to({out.dtype})"
                )
            if out.device != x.device:
                raise ValueError(f"f must return a tensor on z0's device {x.device}, got {out.device}")
            return out.reshape(rows, n_feat)

        return F

    F = checked(f, shape)

    with torch.no_grad():
        # A copy: the result must never alias the caller's z0.
        x = z0.detach().reshape(n_rows, n_feat).clone()
        solver.reset(x, batch, n_graphs)

        dev = z0.device
        active = torch.ones(n_graphs, dtype=torch.bool, device=dev)
        converged = torch.zeros(n_graphs, dtype=torch.bool, device=dev)
        diverged = torch.zeros(n_graphs, dtype=torch.bool, device=dev)
        iterations = torch.zeros(n_graphs, dtype=torch.long, device=dev)
        residual = torch.full((n_graphs,), float("inf"), dtype=res_dtype, device=dev)
        keep_img = not first_hit and not return_best  # best_z holds the images under return_best
        z_img = torch.empty_like(x) if keep_img else x
        # return_best: each graph's lowest-residual iterate so far (its image unless first_hit)
        # and that residual. A converged graph's is its accepted one (every earlier residual
        # was >= tol); a graph that never converges returns it instead of its last iterate.
        best_res = torch.full((n_graphs,), float("inf"), dtype=res_dtype, device=dev)
        best_z = x
        trace: list[Tensor] = []
        trajectory: list[Tensor] = []
        nfe = 0
        fx = x
        # Reading counts on the host is free on CPU (and on CUDA when we synchronise every
        # step anyway): it lets a step skip the row masking while no graph has stopped, which
        # is most steps and, for a single graph, every step but the last.
        counts_on_host = dev.type == "cpu" or check_every == 1
        compacting = (restrict is not None and counts_on_host and solver.supports_compaction
                      and not return_trace and not return_trajectory)
        # After the first compaction the loop works on a subset: `row_ids` / `graph_ids` map its
        # rows and graphs to the original ones, and finished graphs' results live in `final`.
        row_ids: Tensor | None = None
        graph_ids: Tensor | None = None
        final: dict[str, Tensor] = {}
        cur_graphs = n_graphs
        n_active = n_graphs

        def accepted(x: Tensor, fx: Tensor, z_img: Tensor, converged: Tensor, active: Tensor,
                     batch: Tensor) -> Tensor:
            """Each graph's answer (rows of graphs still active: provisional). return_best:
            its lowest-residual iterate. Otherwise frozen rows hold its accepted (or last
            finite) iterate, active rows the last evaluated one."""
            if return_best:
                return best_z
            z = x
            if not first_hit:
                # Host counts make the common cases free (a single graph always is one):
                # nothing stopped, or every graph converged.
                if counts_on_host and n_active == cur_graphs:
                    return fx
                if counts_on_host and n_active == 0 and bool(converged.all()):
                    return z_img
                z = torch.where(_rows(converged, batch), z_img, z)
                z = torch.where(_rows(active, batch), fx, z)
            return z

        def flush(z_cur: Tensor) -> None:
            """Write the current subset's rows and per-graph records into `final`."""
            assert row_ids is not None and graph_ids is not None
            final["z"].index_copy_(0, row_ids, z_cur)
            for key, val in (("iterations", iterations), ("residual", best_res if return_best else residual),
                             ("converged", converged), ("diverged", diverged)):
                final[key].index_copy_(0, graph_ids, val)

        for k in range(max_iter):
            fx = F(x)
            nfe += 1
            r = fx - x
            res = graph_residual(r, fx, batch, cur_graphs, stop_mode)
            bad = active & ~torch.isfinite(res)
            hit = active & (res < tol)  # NaN < tol is False
            better = active & (res < best_res) if return_best else hit
            residual = torch.where(active, res, residual)
            iterations.masked_fill_(active, k + 1)
            converged |= hit
            diverged |= bad
            active &= ~(hit | bad)
            n_hit = n_better = 1
            if counts_on_host:  # one host synchronisation for all counts
                n_hit, n_active, n_better = torch.stack([hit.sum(), active.sum(), better.sum()]).tolist()
            if return_best and n_better:
                best_res = torch.where(better, res, best_res)
                new = x if first_hit else fx
                # Every graph improved (the usual step of a contracting solve): no masked copy.
                best_z = new if counts_on_host and n_better == cur_graphs else \
                    torch.where(_rows(better, batch), new, best_z)
            if keep_img and n_hit:  # keep the image f(x) of each graph's accepted iterate
                all_hit = counts_on_host and n_hit == cur_graphs  # every row is fx: no masked copy
                z_img = fx if all_hit else torch.where(_rows(hit, batch), fx, z_img)
            if return_trace:
                trace.append(residual.clone())
            if return_trajectory:
                trajectory.append(x.clone().view(shape))
            if k == max_iter - 1:
                break
            # The loop's host synchronisation (every `check_every` evaluations).
            if (k + 1) % check_every == 0 and not (n_active if counts_on_host else bool(active.any())):
                break
            if compacting and not n_active:
                # Every graph is done (on a step check_every skipped): their results are
                # final, and there is nothing left to compact to.
                break
            if compacting and n_active <= compact_below * cur_graphs and n_active < cur_graphs:
                # Drop the finished graphs: their answers are final.
                if row_ids is None:
                    row_ids = torch.arange(n_rows, device=dev)
                    graph_ids = torch.arange(n_graphs, device=dev)
                    final = {"z": x.new_empty(x.shape), "iterations": iterations.clone(),
                             "residual": residual.clone(), "converged": converged.clone(),
                             "diverged": diverged.clone()}
                flush(accepted(x, fx, z_img, converged, active, batch))
                keep_graphs = active.nonzero().squeeze(1)
                keep_rows = _rows(active, batch).squeeze(1).nonzero().squeeze(1)
                renumber = torch.cumsum(active, 0) - 1
                batch = renumber.index_select(0, batch.index_select(0, keep_rows))
                row_ids = row_ids.index_select(0, keep_rows)
                graph_ids = graph_ids.index_select(0, keep_graphs)
                x, fx, r, best_z = (t.index_select(0, keep_rows) for t in (x, fx, r, best_z))
                if keep_img:
                    z_img = z_img.index_select(0, keep_rows)
                iterations, residual, converged, diverged, best_res = (
                    t.index_select(0, keep_graphs) for t in (iterations, residual, converged, diverged, best_res))
                active = torch.ones(n_active, dtype=torch.bool, device=dev)
                cur_graphs = n_active
                solver.compact(keep_rows, keep_graphs, batch, cur_graphs)
                F = checked(restrict(graph_ids), torch.Size((row_ids.numel(), *shape[1:])))
            x_next = solver.update(x, fx, r, k)
            # Done graphs are frozen: their rows of x keep the accepted (or last finite) iterate.
            x = x_next if counts_on_host and n_active == cur_graphs else torch.where(_rows(active, batch), x_next, x)
        z_out = accepted(x, fx, z_img, converged, active, batch)
        if return_best:
            residual = best_res
        if row_ids is not None:
            flush(z_out)
            z_out = final["z"]
            iterations, residual, converged, diverged = (
                final[k] for k in ("iterations", "residual", "converged", "diverged"))

    result = SolverResult(
        z=z_out.view(shape),
        nfe=nfe,
        iterations=iterations,
        residual=residual,
        converged=converged,
        diverged=diverged,
        method=method_name,
        tol=tol,
        max_iter=max_iter,
        stop_mode=stop_mode,
        trace=torch.stack(trace) if return_trace else None,
        trajectory=trajectory if return_trajectory else None,
    )
    if raise_on_failure:
        result.raise_if_failed()
    return result
