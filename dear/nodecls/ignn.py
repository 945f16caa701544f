r"""Implicit Graph Neural Network (IGNN, Gu et al., NeurIPS 2020) on the ``dear`` engine.

One implicit layer finds the equilibrium

.. math::
    Z = \phi\big(\hat A\, Z\, W^\top + \Omega(X)\big), \qquad
    \hat A = \tilde D^{-1/2} (A + I) \tilde D^{-1/2},

written here with **node rows** (``Z`` is ``[num_nodes, hidden]``; IGNN's paper writes the
transpose, :math:`Z = \phi(W Z \hat A + \Omega U)`, with nodes as columns). Node rows are the
layout of :mod:`dear.solvers`, so the forward solve is any registered engine solver (Picard,
Anderson, Broyden, or a learned one) run per graph, and the gradient is the engine's implicit
function theorem backward (:class:`dear.implicit.Equilibrium`, ``backward="ift"``): no
activations are stored however many iterations the solve takes.

**Well-posedness.** IGNN guarantees a unique equilibrium, reached by Picard iteration, when
:math:`\lambda_{pf}(|W|)\,\lambda_{pf}(|\hat A|) < 1`. It enforces the sufficient condition
:math:`\|W\|_\infty \le \kappa / \lambda_{pf}(\hat A)` (``kappa < 1``) by projecting each row of
``W`` onto the L1 ball of that radius after every optimiser step
(:func:`project_rows_l1_`). :math:`\lambda_{pf}` is computed once per graph
(:func:`perron_frobenius_bound`); for the symmetric GCN normalisation it is exactly 1.

Reference code read for faithfulness (not copied): IGNN's ``ImplicitGraph`` layer (input
injection :math:`\Omega U \hat A`, i.e. features propagated once; projection before every
forward; no bias in the readout) and its Amazon script (hidden 128, kappa 0.95, dropout 0.5).
"""

from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn.conv.gcn_conv import gcn_norm

from dear.implicit import Equilibrium
from dear.nodecls.features import feature_dropout
from dear.solvers.learned import LearnedSolver, build_learned_solver, is_learned
from dear.sparse_ops import coo_operator, csr_mm, spmm

__all__ = [
    "IGNN",
    "IGNNLayer",
    "IGNNMap",
    "gcn_adjacency",
    "perron_frobenius_bound",
    "project_rows_l1_",
]

ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {"relu": F.relu, "tanh": torch.tanh}
INPLACE_ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {"relu": torch.relu_, "tanh": torch.tanh_}


# --------------------------------------------------------------------------- graph helpers


def gcn_adjacency(
    edge_index: Tensor,
    num_nodes: int,
    *,
    dtype: torch.dtype = torch.float32,
    add_self_loops: bool = True,
) -> Tensor:
    r"""The propagation matrix :math:`\hat A` as a coalesced ``torch.sparse_coo`` tensor.

    Row ``i`` holds the weights with which node ``i`` aggregates its in-neighbours (PyG's
    ``source_to_target`` flow), so ``A_hat @ H`` is one GCN propagation of node-row features.
    Weights come from PyG's :func:`~torch_geometric.nn.conv.gcn_conv.gcn_norm` (symmetric
    normalisation, degrees counted on targets, self loops added), i.e. the same operator
    ``GCNConv`` applies. Directed graphs (IGNN's chains) keep their direction.
    """
    ei, w = gcn_norm(edge_index, None, num_nodes, add_self_loops=add_self_loops, dtype=dtype)
    # gcn_norm returns edges source -> target; row = target, column = source.
    adj = torch.sparse_coo_tensor(torch.stack([ei[1], ei[0]]), w, (num_nodes, num_nodes),
                                  check_invariants=False)
    return adj.coalesce()


def perron_frobenius_bound(
    adj: Tensor, *, max_iter: int = 1000, tol: float = 1e-6
) -> float:
    r"""An upper bound on the Perron-Frobenius eigenvalue :math:`\lambda_{pf}(|\hat A|)`, tight
    to ``tol`` (relative) when power iteration converges.

    Why a bound and not an estimate: the projection radius :math:`\kappa/\lambda_{pf}` must
    never be too large, or well-posedness is lost. For a non-negative matrix ``M`` and any
    positive vector ``x``, the Collatz-Wielandt inequalities give
    :math:`\min_i (Mx)_i/x_i \le \lambda_{pf}(M) \le \max_i (Mx)_i/x_i`. Power iteration on the
    sparse ``|A_hat|`` drives both towards :math:`\lambda_{pf}`; we return the smallest upper
    bound seen, starting from the max row sum (:math:`x = \mathbf 1`, always valid). The first
    power-iteration vector is :math:`\sqrt{\text{row nnz}}`, the exact Perron vector of the
    GCN normalisation with self loops, so that common case is exact at step 0 even on graphs
    with many components or a tiny spectral gap (where plain power iteration is slow).

    Runs in float64 on ``adj``'s device; one ``O(nnz)`` sparse product per iteration.
    """
    m = torch.sparse_coo_tensor(adj.indices(), adj.values().abs().double(), adj.shape,
                                check_invariants=False).coalesce()
    n = m.shape[0]
    if n == 0 or m.values().numel() == 0:
        return 0.0
    ones = torch.ones(n, 1, dtype=torch.float64, device=m.device)
    best = float(torch.sparse.mm(m, ones).max())  # ||M||_inf: Collatz-Wielandt with x = 1
    nnz = torch.zeros(n, dtype=torch.float64, device=m.device).index_add_(
        0, m.indices()[0], torch.ones_like(m.values())
    )
    x = nnz.clamp_min(1.0).sqrt().unsqueeze(1)
    for _ in range(max_iter):
        mx = torch.sparse.mm(m, x)
        if not bool((x > 0).all()):  # a zero entry invalidates the bound; keep the last valid one
            break
        ratio = mx / x
        upper, lower = float(ratio.max()), float(ratio.min())
        best = min(best, upper)
        if upper - lower <= tol * max(upper, 1e-300):
            break
        x = mx / mx.norm()
    return best


@torch.no_grad()
def project_rows_l1_(weight: Tensor, radius: float) -> Tensor:
    r"""Project every row of ``weight`` onto the L1 ball of ``radius``, in place.

    This is the Euclidean projection onto :math:`\{W : \|W\|_\infty \le r\}` (the infinity
    norm of a matrix is its largest row L1 norm, and the set is a product of row balls), the
    operation IGNN applies after each optimiser step. Vectorised over rows with the
    sort-based algorithm of Duchi et al. (2008); rows already inside are untouched. A final
    rescale absorbs floating-point round-off so the returned rows never exceed ``radius``.
    """
    if radius <= 0:
        raise ValueError(f"projection radius must be > 0, got {radius!r}")
    a = weight.abs()
    over = a.sum(dim=1) > radius
    if not bool(over.any()):
        return weight
    rows = a[over]
    u, _ = torch.sort(rows, dim=1, descending=True)
    css = u.cumsum(dim=1)
    k = torch.arange(1, rows.shape[1] + 1, dtype=rows.dtype, device=rows.device)
    rho = (u * k > css - radius).sum(dim=1).clamp_min(1)
    theta = (css.gather(1, (rho - 1).unsqueeze(1)) - radius) / rho.unsqueeze(1).to(rows.dtype)
    projected = weight[over].sign() * (rows - theta).clamp_min(0)
    norm = projected.abs().sum(dim=1, keepdim=True)
    projected = projected * torch.where(norm > radius, radius / norm, torch.ones_like(norm))
    weight[over] = projected
    return weight


def _spmm(adj: Tensor, h: Tensor) -> Tensor:
    """``adj @ h`` for the constant propagation matrix, following autograd into ``h``; in CSR
    with its transpose kept beside it (:mod:`dear.sparse_ops`: 2-3.5x faster than the COO
    product on CPU, the main cost of an IGNN iteration). A COO ``adj`` that itself requires
    grad keeps the COO product (gradients into ``adj``)."""
    if adj.layout != torch.sparse_coo or adj.requires_grad:
        return torch.sparse.mm(adj, h)
    return spmm(coo_operator(adj), h)


# --------------------------------------------------------------------------------- modules


class IGNNMap(nn.Module):
    r"""The IGNN step :math:`f(Z) = \phi(\hat A Z W^\top + B)` whose fixed point a layer solves.

    Kept separate from :class:`IGNNLayer` so the engine sees exactly the map it iterates
    (``f(z, b, adj)``), with ``W`` as its only parameter.

    Args:
        hidden (int): state width.
        activation (str, optional): ``"relu"`` (IGNN's :math:`\phi`) or ``"tanh"``; must be
            1-Lipschitz and monotone for the well-posedness guarantee. (default: ``"relu"``)
    """

    def __init__(self, hidden: int, activation: str = "relu") -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; valid: {', '.join(ACTIVATIONS)}")
        self.activation = activation
        self._act = ACTIVATIONS[activation]
        self.weight = nn.Parameter(torch.empty(hidden, hidden))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / self.weight.shape[1] ** 0.5  # IGNN's uniform(-1/sqrt(m), 1/sqrt(m))
        nn.init.uniform_(self.weight, -bound, bound)

    def forward(self, z: Tensor, b: Tensor, adj: Tensor) -> Tensor:
        y = _spmm(adj, z @ self.weight.t())
        if torch.is_grad_enabled():
            return self._act(y + b)
        # Inference (every solver iteration): y is a fresh tensor, so add and activate in place
        # (two fewer N x H passes and allocations per iteration; same values).
        return INPLACE_ACTIVATIONS[self.activation](y.add_(b))


class IGNNLayer(nn.Module):
    r"""One implicit graph layer: :math:`Z^\star = \phi(\hat A Z^\star W^\top + \Omega(X))`.

    :math:`\Omega(X) = \hat A X \Omega^\top` when ``propagate_input`` (IGNN's injection
    :math:`\Omega U \hat A`), else :math:`X \Omega^\top`. ``X`` may be a ``torch.sparse``
    matrix (e.g. the identity for featureless graphs).

    Args:
        in_dim (int): input feature width.
        hidden (int): state width.
        kappa (float, optional): well-posedness margin; rows of ``W`` are kept in the L1 ball
            of radius ``kappa / lambda_pf(A_hat)``. ``0`` disables the projection (as
            IGNN-Solver's training scripts do; then nothing guarantees convergence).
            (default: ``0.9``)
        solver (str, optional): forward solver, any name in :func:`dear.solvers.available`.
            (default: ``"picard"``)
        tol (float, optional): forward tolerance on the relative residual
            :math:`\|f(Z)-Z\|/\|f(Z)\|`. (default: ``3e-6``, IGNN's)
        max_iter (int, optional): forward iteration cap. (default: ``300``, IGNN's)
        stop_mode (str, optional): ``"rel"``, ``"node"`` or ``"abs"`` (:func:`dear.solvers.solve`). (default: ``"rel"``)
        solver_options (dict, optional): options of the forward solver (e.g. Anderson ``m``).
        backward_solver (str, optional): solver of the IFT adjoint equation; ``None``: the
            forward solver. (default: ``None``)
        backward_tol (float, optional): adjoint tolerance; ``None``: ``tol``.
        backward_max_iter (int, optional): adjoint cap; ``None``: ``max_iter``.
        backward (str, optional): engine backward mode, ``"ift"``, ``"phantom"`` or
            ``"unroll"``. (default: ``"ift"``)
        propagate_input (bool, optional): propagate the injection once by ``A_hat``.
            (default: ``True``)
        omega_bias (bool, optional): bias in :math:`\Omega`. (default: ``False``, as IGNN)
        activation (str, optional): :math:`\phi`. (default: ``"relu"``)
    """

    def __init__(
        self,
        in_dim: int,
        hidden: int,
        *,
        kappa: float = 0.9,
        solver: str = "picard",
        tol: float = 3e-6,
        max_iter: int = 300,
        stop_mode: str = "rel",
        solver_options: dict[str, Any] | None = None,
        backward_solver: str | None = None,
        backward_tol: float | None = None,
        backward_max_iter: int | None = None,
        backward: str = "ift",
        propagate_input: bool = True,
        omega_bias: bool = False,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        if not 0.0 <= float(kappa) < 1.0:
            raise ValueError(f"kappa must lie in [0, 1) (0 disables the projection), got {kappa!r}")
        self.kappa = float(kappa)
        self.propagate_input = propagate_input
        self.omega = nn.Linear(in_dim, hidden, bias=omega_bias)
        self._omega_t: Tensor | None = None  # inference cache of Omega^T (see _omega_weight_t)
        self._omega_t_key: tuple | None = None
        method: Any = solver
        forward_options = solver_options
        if is_learned(solver):
            # A learned solver (docs/learned-solver.md) is a module of this layer, saved with
            # it; its initializer reads the injection Omega(X). The adjoint is a different
            # equation, solved by the learned solver's classic fallback unless told otherwise.
            opts = dict(solver_options or {})
            opts.setdefault("init_activation", "relu" if activation == "relu" else "none")
            method = build_learned_solver(solver, hidden, hidden, **opts)
            forward_options = None
            backward_solver = backward_solver or method.fallback
        self.eq = Equilibrium(
            IGNNMap(hidden, activation),
            method=method,
            tol=tol,
            max_iter=max_iter,
            stop_mode=stop_mode,
            solver_options=forward_options,
            backward=backward,
            backward_method=backward_solver or solver,
            backward_tol=backward_tol,
            backward_max_iter=backward_max_iter,
            backward_options=solver_options if backward_solver in (None, solver) else None,
        )

    @property
    def weight(self) -> Tensor:
        """``W`` of the implicit map (the matrix the projection acts on)."""
        return self.eq.f.weight

    def solver_edges(self, adj: Tensor) -> Tensor:
        """``adj.indices()`` as one tensor per adjacency (the learned solver caches its
        sparsified graph per edge tensor; ``indices()`` returns a new view at every call)."""
        if getattr(self, "_edges_of", None) is not adj:
            self._edges_of, self._edges = adj, adj.indices()
        return self._edges

    @property
    def learned_solver(self) -> LearnedSolver | None:
        """The layer's learned solver, if its forward solver is one."""
        return self.eq.method if isinstance(self.eq.method, LearnedSolver) else None

    def reset_parameters(self) -> None:
        self.omega.reset_parameters()
        self.eq.f.reset_parameters()

    def inject(self, x: Tensor, adj: Tensor) -> Tensor:
        r""":math:`\Omega(X)`, computed once per forward (outside the solver loop)."""
        w = self.omega.weight
        if x.layout in (torch.sparse_coo, torch.sparse_csr):
            # A sparse x dense product needs Omega^T contiguous, which it copies ([in_dim,
            # hidden], e.g. 1.6 ms of a ~40 ms BlogCatalog forward); at inference one copy is
            # reused while the weight is unchanged. CSR features go through csr_mm (an
            # embedding_bag on CPU, about 2x faster than PyTorch's CSR product).
            wt = w.t() if torch.is_grad_enabled() and w.requires_grad else self._omega_weight_t()
            b = torch.sparse.mm(x, wt) if x.is_sparse else csr_mm(x, wt)
            if self.omega.bias is not None:
                b = b + self.omega.bias
        else:
            b = self.omega(x)
        return _spmm(adj, b) if self.propagate_input else b

    def _omega_weight_t(self) -> Tensor:
        """``Omega^T`` contiguous, detached; recomputed when the weight's storage, in-place
        version (optimiser steps, ``load_state_dict``), dtype or device changes."""
        w = self.omega.weight
        key = (w.data_ptr(), w._version, w.dtype, w.device)
        if self._omega_t is None or key != self._omega_t_key:
            self._omega_t = w.detach().t().contiguous()
            self._omega_t_key = key
        return self._omega_t

    def project_(self, lambda_pf: float) -> None:
        """Enforce ``||W||_inf <= kappa / lambda_pf`` (no-op when ``kappa == 0``)."""
        if self.kappa > 0 and lambda_pf > 0:
            project_rows_l1_(self.weight.data, self.kappa / lambda_pf)

    def forward(
        self, x: Tensor, adj: Tensor, batch: Tensor | None = None, num_graphs: int | None = None
    ) -> Tensor:
        b = self.inject(x, adj)
        solver = self.learned_solver
        if solver is None:
            return self.eq(torch.zeros_like(b), b, adj, batch=batch, num_graphs=num_graphs)
        # adj rows are targets: its indices are (target, source), hence transpose=True.
        solver.bind(b.detach(), self.solver_edges(adj), batch=batch, num_graphs=num_graphs, transpose=True)
        try:
            return self.eq(solver.initial_state(), b, adj, batch=batch, num_graphs=num_graphs)
        finally:
            solver.release()


class IGNN(nn.Module):
    r"""IGNN for node classification: ``num_layers`` implicit layers and a linear readout.

    .. math::
        H_0 = \mathrm{drop}_{in}(X), \quad
        H_l = Z^\star_l = \phi(\hat A Z^\star_l W_l^\top + \Omega_l(\mathrm{drop}(H_{l-1}))),
        \quad \text{logits} = \mathrm{drop}(H_L)\, V^\top

    (dropout between implicit layers only for ``l > 1``; never inside a fixed-point map, which
    would make the map random). :math:`\hat A` and :math:`\lambda_{pf}(\hat A)` are computed
    once per graph and cached (keyed on the ``edge_index`` tensor, like ``GCNConv(cached=True)``),
    and every ``W_l`` is projected onto :math:`\|W_l\|_\infty \le \kappa/\lambda_{pf}` at the
    start of every forward and by :meth:`project_` (called by the trainer after every optimiser
    step), so the constraint holds whatever training loop drives the model.

    Args:
        in_dim (int): node feature width.
        num_classes (int): output width.
        hidden (int, optional): state width. (default: ``128``, IGNN's)
        num_layers (int, optional): implicit layers (IGNN uses 1-3). (default: ``1``)
        dropout (float, optional): dropout before the readout and between layers.
            (default: ``0.5``)
        input_dropout (float, optional): dropout on the input features. (default: ``0.0``)
        kappa, solver, tol, max_iter, stop_mode, solver_options, backward_solver,
        backward_tol, backward_max_iter, backward, propagate_input, omega_bias, activation:
            passed to every :class:`IGNNLayer` (defaults there).
        readout_bias (bool, optional): bias in the readout ``V``. (default: ``False``, as IGNN)
        add_self_loops (bool, optional): self loops in :math:`\hat A`. (default: ``True``)
        cached (bool, optional): reuse :math:`\hat A` and :math:`\lambda_{pf}` while the same
            ``edge_index`` tensor is passed. (default: ``True``)

    Shapes:
        - input ``x`` ``[N, in_dim]`` (dense or ``torch.sparse``), ``edge_index`` ``[2, E]``,
          optional ``batch`` ``[N]`` for several graphs (per-graph stopping).
        - output ``[N, num_classes]`` logits.
    """

    #: Marks models whose forward runs an equilibrium solve (the trainer reports its stats).
    implicit: bool = True
    #: Omega(X) is a linear map, which takes CSR features (see dear.nodecls.features).
    sparse_features: bool = True

    def __init__(
        self,
        in_dim: int,
        num_classes: int,
        *,
        hidden: int = 128,
        num_layers: int = 1,
        dropout: float = 0.5,
        input_dropout: float = 0.0,
        kappa: float = 0.9,
        solver: str = "picard",
        tol: float = 3e-6,
        max_iter: int = 300,
        stop_mode: str = "rel",
        solver_options: dict[str, Any] | None = None,
        backward_solver: str | None = None,
        backward_tol: float | None = None,
        backward_max_iter: int | None = None,
        backward: str = "ift",
        propagate_input: bool = True,
        omega_bias: bool = False,
        activation: str = "relu",
        readout_bias: bool = False,
        add_self_loops: bool = True,
        cached: bool = True,
    ) -> None:
        super().__init__()
        for name, v in (("num_layers", num_layers), ("hidden", hidden)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        for name, p in (("dropout", dropout), ("input_dropout", input_dropout)):
            if not 0.0 <= float(p) < 1.0:
                raise ValueError(f"{name} must lie in [0, 1), got {p!r}")
        self.dropout = float(dropout)
        self.input_dropout = float(input_dropout)
        self.add_self_loops = add_self_loops
        self.cached = cached
        layer_opts = dict(
            kappa=kappa, solver=solver, tol=tol, max_iter=max_iter, stop_mode=stop_mode,
            solver_options=solver_options, backward_solver=backward_solver,
            backward_tol=backward_tol, backward_max_iter=backward_max_iter, backward=backward,
            propagate_input=propagate_input, omega_bias=omega_bias, activation=activation,
        )
        dims = [in_dim] + [hidden] * num_layers
        self.layers = nn.ModuleList(IGNNLayer(dims[i], hidden, **layer_opts) for i in range(num_layers))
        self.readout = nn.Linear(hidden, num_classes, bias=readout_bias)
        self._cache_key: tuple | None = None
        self._adj: Tensor | None = None
        self.lambda_pf: float | None = None

    def reset_parameters(self) -> None:
        for layer in self.layers:
            layer.reset_parameters()
        self.readout.reset_parameters()

    # -- graph operator -------------------------------------------------------------------

    def graph_operator(self, edge_index: Tensor, num_nodes: int, dtype: torch.dtype) -> Tensor:
        """``A_hat`` for this graph, building it (and ``lambda_pf``) only when the graph changes."""
        key = (edge_index.data_ptr(), edge_index._version, tuple(edge_index.shape), num_nodes,
               edge_index.device, dtype)
        if self._adj is None or not self.cached or key != self._cache_key:
            self._adj = gcn_adjacency(edge_index, num_nodes, dtype=dtype,
                                      add_self_loops=self.add_self_loops)
            self.lambda_pf = perron_frobenius_bound(self._adj)
            self._cache_key = key
        return self._adj

    def project_(self) -> None:
        """Project every ``W_l`` onto ``||W_l||_inf <= kappa / lambda_pf`` (call after each
        optimiser step; needs one forward first, which computes ``lambda_pf``)."""
        if self.lambda_pf is None:
            raise RuntimeError("IGNN.project_() needs lambda_pf: run one forward on the graph first")
        for layer in self.layers:
            layer.project_(self.lambda_pf)

    # -- forward --------------------------------------------------------------------------

    def forward(self, x: Tensor, edge_index: Tensor, batch: Tensor | None = None) -> Tensor:
        num_nodes = x.shape[0]
        dtype = x.dtype if x.is_floating_point() else torch.get_default_dtype()
        adj = self.graph_operator(edge_index, num_nodes, dtype)
        self.project_()
        num_graphs = None if batch is None else int(batch.max()) + 1 if num_nodes else 0
        h = _dropout(x, self.input_dropout, self.training)
        for i, layer in enumerate(self.layers):
            if i > 0:
                h = F.dropout(h, self.dropout, self.training)
            h = layer(h, adj, batch=batch, num_graphs=num_graphs)
        h = F.dropout(h, self.dropout, self.training)
        return self.readout(h)

    def solver_stats(self) -> list[dict[str, float]]:
        """Per implicit layer, the last forward solve (and IFT adjoint, after backward):
        ``forward_nfe``, ``forward_iterations_mean/max``, ``forward_residual_max``,
        ``forward_converged_frac``, ... (see :meth:`dear.implicit.EquilibriumStats.as_dict`)."""
        return [layer.eq.last_stats.as_dict() for layer in self.layers if layer.eq.last_stats is not None]


def _dropout(x: Tensor, p: float, training: bool) -> Tensor:
    """Dropout that also works on a sparse (COO or CSR) feature matrix (drops stored entries)."""
    return feature_dropout(x, p, training)
