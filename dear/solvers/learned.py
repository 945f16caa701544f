r"""The learned graph-neural Anderson solver (IGNN-Solver, Lin et al. 2024) and its ``nn``
ablation, as engine solvers.

A learned solver has weights and needs per-call context the classic solvers do not: the layer
input features (for the initializer :math:`h_\phi`) and the graph (for the tiny GNN
:math:`s_\xi`). It is therefore an ``nn.Module`` *owned by the model* (saved and loaded with
it), bound to the current inputs before each solve, then passed as ``method=`` like any other
:class:`~dear.solvers.Solver` instance::

    solver = LearnedSolver(in_dim=128, state_dim=128)          # or IGNN(solver="learned")
    solver.bind(features, edge_index, batch=batch, num_graphs=B)
    z0 = solver.initial_state()                                # h_phi(features)
    res = solve(f, z0, batch, method=solver, tol=1e-5, max_iter=300)
    solver.release()                                           # drop the history buffers

``dear.solvers.solve`` and the stopping loop are unchanged: the loop still owns stopping,
per-graph freezing, first hit and NaN detection; the learned solver only proposes iterates.

**Iterations.** Algorithm 1 of the paper, per graph: with the window of the last
``m_k + 1 = min(m, k) + 1`` iterates :math:`z_i`, residuals :math:`g_i = f(z_i) - z_i`,

.. math::
    \alpha^{[k]}, \beta^{[k]} = s_\xi(\bar G^{[k]}, \hat A_s), \qquad
    z^{[k+1]} = \sum_i \alpha^{[k]}_i \big(z_i + \beta^{[k]} g_i\big),
    \qquad \mathbf 1^\top \alpha^{[k]} = 1,

for the first ``steps`` (``K``) updates. **Fallback:** from update ``K`` on, if the loop has
not stopped (some graph is not yet under tolerance), the solver continues with a classic
method so the answer still converges: ``"anderson"`` continues least-squares Anderson on the
*same* window (warm: nothing is thrown away), any other registered name starts that solver
from the current iterate. A graph used the fallback iff ``result.iterations > K + 1``
(:meth:`LearnedSolver.fallback_graphs`); ``fallback_solves`` / ``solves`` count it over
calls.

**Untrained = classic.** Until the solver has been trained (``trained`` buffer, saved in the
``state_dict``), it starts from zero and runs its fallback from the first step, so a model
built with ``solver="learned"`` trains like one with the fallback solver until the solver is
fitted (the warm-up of the paper's alternating schedule, Appendix B.2).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from dear.learned.networks import SPARSIFIERS, AlphaBetaPredictor, Initializer, ResidualCompressor, sparsify_edges

from .base import Solver, SolverResult, get_solver, make_solver, reduction_dtype, register_solver

__all__ = ["LEARNED_SOLVERS", "LearnedSolver", "LearnedSolverNN", "anderson_weights", "build_learned_solver",
           "is_learned", "learned_solvers"]

ALPHA_BASES = ("anderson", "last")


def anderson_weights(gram: Tensor, lam: float = 1e-4) -> Tensor:
    r"""Least-squares Anderson weights per graph: :math:`\arg\min_{\mathbf 1^\top\alpha=1}
    \alpha^\top G \alpha + \lambda s \|\alpha\|^2` with :math:`s` the mean diagonal of
    :math:`G` (the engine's relative regularisation). ``gram`` ``[B, n, n]`` -> ``[B, n]``;
    a singular or non-finite system gives the newest slot (a plain step) for that graph."""
    b, n, _ = gram.shape
    eye = torch.eye(n, dtype=gram.dtype, device=gram.device)
    if n == 1:
        return gram.new_ones(b, 1)
    scale = gram.diagonal(dim1=1, dim2=2).mean(dim=1) + torch.finfo(gram.dtype).tiny
    system = gram.new_zeros(b, n + 1, n + 1)
    system[:, 0, 1:] = 1.0
    system[:, 1:, 0] = 1.0
    system[:, 1:, 1:] = gram / scale[:, None, None] + lam * eye
    rhs = gram.new_zeros(b, n + 1)
    rhs[:, 0] = 1.0
    sol, info = torch.linalg.solve_ex(system, rhs)
    alpha = sol[:, 1:]
    ok = (info == 0) & torch.isfinite(alpha).all(dim=1)
    return torch.where(ok.unsqueeze(1), alpha, eye[n - 1].expand_as(alpha))


@register_solver("learned")
class LearnedSolver(nn.Module, Solver):
    r"""IGNN-Solver: learned initializer + tiny-GNN-predicted Anderson weights, per graph.

    Args:
        in_dim (int): width of the features the initializer reads (IGNN: the injection
            :math:`\Omega(X)`, i.e. the state width; DEAR: the encoded node inputs).
        state_dim (int): width of the state ``z`` (trailing dimensions flattened).
        m (int, optional): history: the window holds ``min(m, k) + 1`` iterates (``m = 5``:
            6 stored, as the engine's Anderson ``m = 6``). (default: ``5``)
        steps (int, optional): ``K``, learned updates before the fallback takes over.
            (default: ``6``)
        channels (int, optional): ``p``, channels of a compressed residual. (default: ``16``)
        init_dim (int, optional): ``d'``, the initializer's intermediate width. (default: ``32``)
        hidden (int, optional): width of the tiny GNN and its head. (default: ``32``)
        gnn_layers (int, optional): message-passing layers of the tiny GNN. (default: ``1``)
        graph (bool, optional): use the graph (IGNN-Solver); ``False`` is the ``nn`` ablation.
            (default: ``True``)
        keep (float, optional): sparsity knob: fraction of edges the tiny GNN keeps.
            (default: ``0.5``)
        sparsifier (str, optional): ``"resistance"``, ``"random"`` or ``"none"``
            (:func:`dear.learned.networks.sparsify_edges`). (default: ``"resistance"``)
        alpha_base (str, optional): what the predicted offsets are added to: ``"anderson"``
            (least-squares Anderson weights of the window; the network corrects them) or
            ``"last"`` (the newest slot; the network predicts the whole mixing, as in the
            paper). Either way ``alpha`` sums to 1 and the untrained network reproduces its
            base. (default: ``"anderson"``)
        gram_features (bool, optional): give the head the window's normalised Gram matrix and
            log residual-norm ratios. (default: ``True``)
        beta_max (float, optional): ``beta`` lies in ``(0, beta_max)``. (default: ``2.0``)
        delta_max (float, optional): bound on each predicted offset of ``alpha`` from its base
            (``tanh``-squashed): a poorly trained predictor can then only perturb, not wreck,
            the base method. (default: ``0.5``)
        lam (float, optional): Anderson regularisation (relative), for ``alpha_base`` and the
            warm Anderson fallback. (default: ``1e-4``)
        fallback (str, optional): classic solver after ``K`` learned updates. (default:
            ``"anderson"``)
        fallback_options (dict, optional): its options (not for the warm ``"anderson"``).
        init_activation (str, optional): ``"relu"`` or ``"none"`` on the initializer's output.
            (default: ``"relu"``)
    """

    def __init__(
        self,
        in_dim: int | None = None,
        state_dim: int | None = None,
        *,
        m: int = 5,
        steps: int = 6,
        channels: int = 16,
        init_dim: int = 32,
        hidden: int = 32,
        gnn_layers: int = 1,
        graph: bool = True,
        keep: float = 0.5,
        sparsifier: str = "resistance",
        alpha_base: str = "anderson",
        gram_features: bool = True,
        beta_max: float = 2.0,
        delta_max: float = 0.5,
        lam: float = 1e-4,
        fallback: str = "anderson",
        fallback_options: dict[str, Any] | None = None,
        init_activation: str = "relu",
    ) -> None:
        nn.Module.__init__(self)
        Solver.__init__(self)
        if in_dim is None or state_dim is None:
            raise ValueError(
                f"solver '{self.name or 'learned'}' has weights sized to a model: build it with "
                "LearnedSolver(in_dim=..., state_dim=...) or through a model "
                "(IGNN(solver='learned'), DEAR(solver='learned')), then pass the instance as method="
            )
        for name, v, lo in (("m", m, 0), ("steps", steps, 0), ("channels", channels, 1), ("init_dim", init_dim, 1),
                            ("hidden", hidden, 1), ("gnn_layers", gnn_layers, 0)):
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ValueError(f"learned solver: {name} must be an integer >= {lo}, got {v!r}")
        if alpha_base not in ALPHA_BASES:
            raise ValueError(f"learned solver: alpha_base must be one of {', '.join(ALPHA_BASES)}, got {alpha_base!r}")
        if sparsifier not in SPARSIFIERS:
            raise ValueError(f"learned solver: unknown sparsifier {sparsifier!r}; valid: {', '.join(SPARSIFIERS)}")
        if not 0.0 < float(keep) <= 1.0:
            raise ValueError(f"learned solver: keep must lie in (0, 1], got {keep!r}")
        if fallback in LEARNED_SOLVERS:
            raise ValueError("learned solver: the fallback must be a classic solver (e.g. anderson, picard)")
        get_solver(fallback)  # unknown names list the valid ones
        self.fallback_options = dict(fallback_options or {})
        if fallback != "anderson":
            make_solver(fallback, **self.fallback_options)  # validate options now
        elif self.fallback_options:
            raise ValueError("learned solver: the warm anderson fallback shares the window; set m and lam on the "
                             "learned solver, not in fallback_options")
        self.in_dim, self.state_dim = int(in_dim), int(state_dim)
        self.m, self.steps, self.graph = m, steps, bool(graph)
        self.keep, self.sparsifier = float(keep), sparsifier
        self.alpha_base, self.lam, self.fallback = alpha_base, float(lam), fallback
        self.initializer = Initializer(in_dim, state_dim, init_dim, init_activation)
        self.compressor = ResidualCompressor(state_dim, channels)
        self.predictor = AlphaBetaPredictor(m, channels, hidden, gnn_layers, graph=self.graph,
                                            gram_features=gram_features, beta_max=beta_max,
                                            delta_max=delta_max)
        self.register_buffer("trained", torch.zeros((), dtype=torch.bool))
        #: ``None``: learned steps iff trained; ``True`` / ``False`` force them on / off.
        self.use_learned: bool | None = None
        #: Solves run and solves in which the fallback proposed at least one iterate.
        self.solves = 0
        self.fallback_solves = 0
        self._ctx: dict[str, Any] | None = None
        self._sparse_key: tuple | None = None
        self._sparse_src: Tensor | None = None
        self._sparse_edges: Tensor | None = None
        self._clear()

    # ------------------------------------------------------------------------- context

    @property
    def learned_active(self) -> bool:
        """Whether solves use the initializer and learned steps (else: zero start + fallback)."""
        return bool(self.trained) if self.use_learned is None else bool(self.use_learned)

    def bind(self, features: Tensor, edge_index: Tensor | None = None, *, batch: Tensor | None = None,
             num_graphs: int | None = None, transpose: bool = False) -> "LearnedSolver":
        """Attach the context of the next solve(s): the features ``[N, in_dim]`` the initializer
        reads and the ``[2, E]`` source -> target graph the tiny GNN runs on (sparsified once
        per graph and cached; ``transpose=True`` for target -> source indices, e.g. those of a
        row-normalised sparse adjacency). Returns ``self`` so ``method=solver.bind(...)``
        reads naturally."""
        if features.shape[-1] != self.in_dim:
            raise ValueError(f"learned solver: features have width {features.shape[-1]}, expected in_dim={self.in_dim}")
        if self.graph and edge_index is None:
            raise ValueError("learned solver: the graph variant needs edge_index in bind(); use learned_nn without one")
        self._ctx = {"features": features, "edge_index": edge_index, "batch": batch, "num_graphs": num_graphs,
                     "transpose": bool(transpose)}
        return self

    def initial_state(self, features: Tensor | None = None) -> Tensor:
        r""":math:`Z^{[0]} = h_\phi(\text{features})` (detached), or zeros while untrained."""
        u = features if features is not None else self._context()["features"]
        if not self.learned_active:
            return u.new_zeros(u.shape[0], self.state_dim)
        with torch.no_grad():
            return self.initializer(u)

    def release(self) -> None:
        """Drop the history of the last solve (large ``[m + 1, N, D]`` buffers) and the context."""
        self._clear()
        self._ctx = None

    def _context(self) -> dict[str, Any]:
        if self._ctx is None:
            raise RuntimeError("learned solver: call solver.bind(features, edge_index, ...) before solving")
        return self._ctx

    def sparse_edges(self, edge_index: Tensor, num_nodes: int, transpose: bool = False) -> Tensor:
        """The sparsified graph of the tiny GNN, computed once per ``edge_index`` tensor.

        The cache holds the tensor itself and compares identity (plus its in-place version), not
        its address: a freed batch's address can be reused by the next batch's edges."""
        key = (edge_index._version, num_nodes, transpose)
        if self._sparse_edges is None or self._sparse_src is not edge_index or key != self._sparse_key:
            ei = edge_index.flip(0) if transpose else edge_index
            self._sparse_edges = sparsify_edges(ei, num_nodes, self.keep, self.sparsifier)
            self._sparse_src, self._sparse_key = edge_index, key
        return self._sparse_edges

    # ------------------------------------------------------------------ solver protocol

    def _clear(self) -> None:
        self._xs: list[Tensor] = []
        self._rs: list[Tensor] = []
        self._comps: list[Tensor] = []
        self._gram: Tensor | None = None
        self._fallback: Solver | None = None
        self._used_fallback = False
        self.last_alpha: Tensor | None = None
        self.last_beta: Tensor | None = None
        self.last_gram: Tensor | None = None

    def reset(self, x0: Tensor, batch: Tensor, num_graphs: int) -> None:
        Solver.reset(self, x0, batch, num_graphs)
        self._clear()
        # Counted in the Gram matrix's dtype: float32 for a half-precision state (a bfloat16
        # count stops at 256 rows), the state's dtype otherwise.
        cdt = reduction_dtype(x0.dtype)
        self._rows_per_graph = x0.new_zeros(num_graphs, dtype=cdt).index_add_(
            0, batch, x0.new_ones(x0.shape[0], dtype=cdt))
        self._edges = None
        if self.graph and self.learned_active:
            ctx = self._context()
            if ctx["edge_index"] is None:
                raise ValueError("learned solver: bind(edge_index=...) is needed by the graph variant")
            self._edges = self.sparse_edges(ctx["edge_index"], x0.shape[0], ctx["transpose"])
        self.solves += 1

    def update(self, x: Tensor, fx: Tensor, r: Tensor, step: int) -> Tensor:
        learned = self.learned_active
        k_learned = self.steps if learned else 0
        if step < k_learned:
            self.observe(x, fx, r)
            return self.propose()
        if not self._used_fallback:
            self._used_fallback = True
            self.fallback_solves += 1
        if self.fallback == "anderson":
            self.observe(x, fx, r, compress=False)
            return self.propose(classic=True)
        if self._fallback is None:
            self._fallback = make_solver(self.fallback, **self.fallback_options)
            self._fallback.reset(x, self.batch, self.num_graphs)
        return self._fallback.update(x, fx, r, step - k_learned)

    # ------------------------------------------------------------- the learned step

    def observe(self, x: Tensor, fx: Tensor, r: Tensor, compress: bool = True) -> None:
        """Add ``(x, r)`` to the window (dropping the oldest beyond ``m + 1``), extend the
        per-graph Gram matrix by one row (no grad: it is an input feature) and store the
        compressed, RMS-normalised residual."""
        if len(self._xs) == self.m + 1:
            self._xs.pop(0)
            self._rs.pop(0)
            if self._comps:
                self._comps.pop(0)
            self._gram = self._gram[:, 1:, 1:]
        with torch.no_grad():
            rd = r.detach()
            col = self.graph_dots([old.detach() for old in self._rs] + [rd], rd)
            n = col.shape[1]
            gram = col.new_zeros(self.num_graphs, n, n)
            if n > 1:
                gram[:, : n - 1, : n - 1] = self._gram
            gram[:, n - 1, :] = col
            gram[:, :, n - 1] = col
            self._gram = gram
        self._xs.append(x)
        self._rs.append(r)
        if compress:
            with torch.no_grad():
                rms = (col[:, -1] / (self._rows_per_graph * rd.shape[1]).clamp_min(1.0)).sqrt()
                inv_rms = self.to_nodes(1.0 / (rms + 1e-30))
            self._comps.append(self.compressor(rd, inv_rms))
        elif self._comps:  # classic steps after learned ones: keep the lists aligned
            self._comps.append(self._comps[-1])

    def propose(self, classic: bool = False) -> Tensor:
        """The next iterate from the window: learned ``(alpha, beta)`` or, with ``classic``,
        least-squares Anderson (``beta = 1``)."""
        n, w = len(self._xs), self.m + 1
        gram = self._gram
        base = anderson_weights(gram, self.lam) if (classic or self.alpha_base == "anderson") else None
        if classic:
            alpha, beta = base, None
        else:
            dev, dt = gram.device, gram.dtype
            b = self.num_graphs
            pad = w - n
            if base is None:
                base = torch.zeros(b, n, dtype=dt, device=dev)
                base[:, -1] = 1.0
            base_w = torch.cat([base.new_zeros(b, pad), base], dim=1)
            newest = gram[:, -1, -1].clamp_min(torch.finfo(dt).tiny)
            g_norm = gram / newest[:, None, None]
            g_w = g_norm.new_zeros(b, w, w)
            g_w[:, pad:, pad:] = g_norm
            diag = g_norm.diagonal(dim1=1, dim2=2).clamp_min(torch.finfo(dt).tiny)
            logs = torch.cat([diag.new_zeros(b, pad), 0.5 * diag.log()], dim=1)
            # The head's features in its own dtype (a half-precision state keeps its Gram
            # matrix in float32; a no-op otherwise). alpha stays in the Gram matrix's dtype.
            hdt = self.predictor.head[0].weight.dtype
            alpha_w, beta = self.predictor(self._comps, base_w, self._edges, self.batch, b,
                                           gram=g_w.nan_to_num(0.0).clamp(-1e6, 1e6).to(hdt),
                                           log_norms=logs.nan_to_num(0.0).clamp(-50, 50).to(hdt))
            alpha = alpha_w[:, pad:]
        self.last_alpha, self.last_beta, self.last_gram = alpha, beta, gram
        # sum_i alpha_i (x_i + beta r_i), beta = 1 for classic Anderson (= sum_i alpha_i f(x_i)).
        a_r = alpha if beta is None else alpha * beta.unsqueeze(1)
        if torch.is_grad_enabled():  # training unroll: out-of-place, differentiable
            a_rows, ar_rows = self.to_nodes(alpha), self.to_nodes(a_r)  # [N, n]
            out = a_rows[:, :1] * self._xs[0] + ar_rows[:, :1] * self._rs[0]
            for j in range(1, n):
                out = out + a_rows[:, j:j + 1] * self._xs[j] + ar_rows[:, j:j + 1] * self._rs[j]
            return out
        # Inference: accumulate in place (scalar weights for a single graph), no [n, N, D] stack.
        return self.combine(torch.cat([alpha, a_r], dim=1), self._xs + self._rs)

    # ---------------------------------------------------------------------- reporting

    def fallback_graphs(self, result: SolverResult) -> Tensor:
        """``[num_graphs]`` bool: graphs on which the fallback solver ran (more than ``K + 1``
        evaluations). For a converged graph its accepted iterate came from the fallback; one
        that did not converge returns its lowest-residual iterate (``return_best``), which may
        be a learned one."""
        k = self.steps if self.learned_active else 0
        return result.iterations > k + 1

    def reset_counters(self) -> None:
        self.solves = 0
        self.fallback_solves = 0

    def extra_repr(self) -> str:
        return (f"m={self.m}, steps={self.steps}, graph={self.graph}, keep={self.keep}, sparsifier={self.sparsifier!r}, "
                f"alpha_base={self.alpha_base!r}, fallback={self.fallback!r}, trained={bool(self.trained)}")

    def __repr__(self) -> str:  # nn.Module's, not Solver's option dump
        return nn.Module.__repr__(self)


@register_solver("learned_nn")
class LearnedSolverNN(LearnedSolver):
    """The ``nn`` ablation of the paper (``IGNN w. NN``): the same solver whose predictor does
    not use the graph (no message passing; residuals pooled per graph)."""

    def __init__(self, in_dim: int | None = None, state_dim: int | None = None, **options: Any) -> None:
        if options.get("graph", False):
            raise ValueError("learned_nn is the graph-free variant; use 'learned' for graph=True")
        options["graph"] = False
        super().__init__(in_dim, state_dim, **options)


LEARNED_SOLVERS: dict[str, type[LearnedSolver]] = {"learned": LearnedSolver, "learned_nn": LearnedSolverNN}


def is_learned(method: Any) -> bool:
    """Whether ``method`` names (or is) a learned solver."""
    return isinstance(method, LearnedSolver) or (isinstance(method, str) and method in LEARNED_SOLVERS)


def build_learned_solver(name: str, in_dim: int, state_dim: int, **options: Any) -> LearnedSolver:
    """Construct the learned solver ``name`` (``learned`` / ``learned_nn``) for a model;
    unknown options raise ``ValueError`` listing the valid ones."""
    if name not in LEARNED_SOLVERS:
        raise ValueError(f"unknown learned solver {name!r}; valid: {', '.join(LEARNED_SOLVERS)}")
    import inspect  # noqa: PLC0415

    valid = [p for p in inspect.signature(LearnedSolver.__init__).parameters if p not in ("self", "in_dim", "state_dim")]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(f"learned solver has no option(s) {', '.join(unknown)}; valid options: {', '.join(valid)}")
    return LEARNED_SOLVERS[name](in_dim, state_dim, **options)


def learned_solvers(module: nn.Module) -> list[LearnedSolver]:
    """Every learned solver inside a model (one per implicit layer), each once."""
    seen: dict[int, LearnedSolver] = {}
    for sub in module.modules():
        if isinstance(sub, LearnedSolver):
            seen.setdefault(id(sub), sub)
    return list(seen.values())

