"""Anderson acceleration with mixing weights solved per graph."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .base import Solver, check_int, check_real, reduction_dtype, register_solver

__all__ = ["Anderson"]


@register_solver("anderson")
class Anderson(Solver):
    r"""Anderson acceleration (type II, with mixing), one set of mixing weights per graph.

    With a window of the last :math:`n \le m` iterates :math:`x_i`, images :math:`f(x_i)` and
    residuals :math:`r_i = f(x_i) - x_i`, each graph :math:`g` takes

    .. math::
        \alpha^{(g)} = \arg\min_{\mathbf{1}^\top \alpha = 1}
            \Big\| \sum_i \alpha_i r_i \Big\|_g^2 + \lambda s_g \|\alpha\|^2, \qquad
        x_{k+1} = \sum_i \alpha^{(g)}_i \big(\beta f(x_i) + (1 - \beta) x_i\big),

    where :math:`\|\cdot\|_g` sums over the graph's rows only and
    :math:`s_g = \operatorname{tr}(G_g)/n` is the mean squared residual norm in the window. The
    per-graph Gram matrix :math:`G_g = [\langle r_i, r_j\rangle_g]` is kept incrementally (one
    new column per step: ``n`` row-wise dot products and an ``index_add`` over the batch
    vector; BLAS dot products for a single graph), and the small bordered systems
    :math:`\begin{bmatrix}0 & \mathbf{1}^\top\\ \mathbf{1} & G_g/s_g + \lambda I\end{bmatrix}`
    of all graphs are solved together with ``torch.linalg.solve_ex``.

    Why per graph: a node-wise or batch-wise least-squares problem (what a DEQ library does when
    dim 0 is the batch) lets one graph's residual pull another's update; per-graph weights are
    Anderson's method applied to each graph's own system, whatever else is in the batch.

    Why a relative :math:`\lambda`: the usual absolute :math:`\lambda` vanishes next to large
    residuals (no regularisation where it is needed) and dominates tiny ones (near a tight
    tolerance the weights drift to a plain average and convergence stalls). Scaling by
    :math:`s_g` makes the regularisation act the same at every residual scale and keeps the
    systems well-conditioned in float32. A system that is still singular or non-finite (for
    example a frozen graph whose history repeats, or ``lam=0``) falls back to a plain
    (damped) Picard step for that graph instead of raising.

    Half-precision states (float16, bfloat16) keep the Gram matrices and solve the systems in
    float32 (LAPACK has no half solver, and a float16 Gram entry overflows past 65504); the
    weights are cast back to the state's dtype to mix the window.

    Args:
        m (int, optional): history window. (default: ``6``)
        lam (float, optional): Tikhonov regularisation, relative to the mean squared residual
            norm of the window, ``>= 0``. (default: ``1e-4``)
        beta (float, optional): mixing parameter in ``(0, 1]``; ``1`` mixes images only.
            (default: ``1.0``)
    """

    def __init__(self, m: int = 6, lam: float = 1e-4, beta: float = 1.0) -> None:
        super().__init__()
        self.m = check_int("anderson: m (history window)", m)
        # Finite: lam=inf makes every system non-finite, i.e. silent Picard steps throughout.
        self.lam = check_real("anderson: lam", lam, lambda v: 0.0 <= v < math.inf, "must be a finite number >= 0")
        self.beta = check_real("anderson: beta", beta, lambda v: 0.0 < v <= 1.0, "must lie in (0, 1]")

    def reset(self, x0: Tensor, batch: Tensor, num_graphs: int) -> None:
        super().reset(x0, batch, num_graphs)
        n_rows, dim = x0.shape
        # Slots are written cyclically; slot i holds the mixing target and the residual of the
        # same iterate. Layout [m, N, D] keeps every slot contiguous. Uninitialised: update()
        # writes a slot before any step reads it (zeroing 2 m N D floats cost a fifth of a
        # 100,000-node forward).
        self._targets = x0.new_empty(self.m, n_rows, dim)
        self._residuals = x0.new_empty(self.m, n_rows, dim)
        # Half-precision states keep the Gram matrices (and solve the bordered systems) in
        # float32: graph_dots returns float32 for them, and LAPACK has no half solver.
        self._gram = x0.new_zeros(num_graphs, self.m, self.m, dtype=reduction_dtype(x0.dtype))

    supports_compaction = True

    def compact(self, rows: Tensor, graphs: Tensor, batch: Tensor, num_graphs: int) -> None:
        super().compact(rows, graphs, batch, num_graphs)
        self._targets = self._targets.index_select(1, rows)
        self._residuals = self._residuals.index_select(1, rows)
        self._gram = self._gram.index_select(0, graphs)

    def update(self, x: Tensor, fx: Tensor, r: Tensor, step: int) -> Tensor:
        slot = step % self.m
        n = min(step + 1, self.m)
        target = self._targets[slot]
        if self.beta == 1.0:
            target.copy_(fx)
        else:
            torch.add(x, r, alpha=self.beta, out=target)  # beta f(x) + (1 - beta) x
        self._residuals[slot].copy_(r)
        # New Gram column: <r_j, r>_g for every slot j in the window. Also at the first step,
        # whose <r_0, r_0>_g every later system of the first window reads.
        col = self.graph_dots([self._residuals[j] for j in range(n)], r)
        self._gram[:, slot, :n] = col
        self._gram[:, :n, slot] = col
        if n == 1:
            return target.clone()
        gram = self._gram[:, :n, :n]

        dtype = gram.dtype  # x.dtype, or float32 for a half-precision state
        eye = torch.eye(n, dtype=dtype, device=x.device)
        scale = gram.diagonal(dim1=1, dim2=2).mean(dim=1) + torch.finfo(dtype).tiny
        system = gram.new_zeros(self.num_graphs, n + 1, n + 1)
        system[:, 0, 1:] = 1.0
        system[:, 1:, 0] = 1.0
        system[:, 1:, 1:] = gram / scale[:, None, None] + self.lam * eye
        rhs = gram.new_zeros(self.num_graphs, n + 1)
        rhs[:, 0] = 1.0
        sol, info = torch.linalg.solve_ex(system, rhs)  # no error check: no host sync
        alpha = sol[:, 1:]
        ok = (info == 0) & torch.isfinite(alpha).all(dim=1)
        alpha = torch.where(ok.unsqueeze(1), alpha, eye[slot].expand_as(alpha))
        return self.combine(alpha, [self._targets[j] for j in range(n)])  # casts alpha back
