"""Broyden's (good) method with a per-graph low-rank inverse-Jacobian estimate."""

from __future__ import annotations

import torch
from torch import Tensor

from .base import Solver, check_int, register_solver

__all__ = ["Broyden"]


@register_solver("broyden")
class Broyden(Solver):
    r"""Limited-memory Broyden's method on :math:`g(z) = f(z) - z`, one quasi-Newton model per
    graph.

    Each graph keeps its own estimate of the inverse Jacobian of :math:`g`,

    .. math::
        B_g = -I + \sum_{i} u_i v_i^\top \quad(\text{restricted to the graph's rows}),

    applied as :math:`B_g y = -y + \sum_i u_i \langle v_i, y\rangle_g`, and steps
    :math:`z_{k+1} = z_k - B_g\, g(z_k)` (the first step is a Picard step). After a step
    :math:`\Delta z, \Delta g` the good-Broyden rank-one update adds

    .. math::
        v = B_g^\top \Delta z, \qquad
        u = \frac{\Delta z - B_g \Delta g}{\langle v, \Delta g\rangle_g}.

    Every inner product is a per-graph sum (row-wise dots and an ``index_add`` over the batch
    vector), so graphs never share a model, however they are batched. At most ``m`` rank-one
    terms are kept; when the memory is full the model restarts from :math:`B = -I` (restarted
    Broyden). Overwriting the oldest term instead (torchdeq's choice when its memory is capped)
    breaks the secant conditions the later terms were built on and diverged in our tests; a
    small memory converges, but slowly, so the default keeps enough terms for typical solves.
    An update whose denominator vanishes or is not finite (a frozen graph, a stalled step) is
    skipped for that graph. There is no line search: on a map that is far from contractive Broyden can diverge,
    which the loop reports.

    Args:
        m (int, optional): number of rank-one terms kept per graph before a restart. Memory
            grows by two copies of the state per step, up to ``2 m``. (default: ``50``)
    """

    def __init__(self, m: int = 50) -> None:
        super().__init__()
        self.m = check_int("broyden: m (memory)", m)

    def reset(self, x0: Tensor, batch: Tensor, num_graphs: int) -> None:
        super().reset(x0, batch, num_graphs)
        # Lists grow one term per step: memory is only spent on the terms a solve really uses.
        self._us: list[Tensor] = []
        self._vs: list[Tensor] = []
        self._prev_x: Tensor | None = None
        self._prev_r: Tensor | None = None

    def _low_rank(self, coef_from: list[Tensor], combine: list[Tensor], y: Tensor) -> Tensor:
        """``sum_i combine_i <coef_from_i, y>_g`` over the stored terms (zero if none)."""
        if not coef_from:
            return torch.zeros_like(y)
        return self.combine(self.graph_dots(coef_from, y), combine)

    def _matvec(self, y: Tensor) -> Tensor:  # B y
        return self._low_rank(self._vs, self._us, y) - y

    def _rmatvec(self, y: Tensor) -> Tensor:  # B^T y
        return self._low_rank(self._us, self._vs, y) - y

    def update(self, x: Tensor, fx: Tensor, r: Tensor, step: int) -> Tensor:
        if self._prev_x is not None:
            dx = x - self._prev_x
            dg = r - self._prev_r
            v = self._rmatvec(dx)
            u = dx - self._matvec(dg)
            den = self.graph_dot(v, dg)
            floor = torch.finfo(x.dtype).eps * (self.graph_dot(v, v) * self.graph_dot(dg, dg)).sqrt()
            usable = torch.isfinite(den) & (den.abs() > floor)
            inv = torch.where(usable, 1.0 / torch.where(usable, den, torch.ones_like(den)), 0.0)
            # .to: the per-graph products of a half-precision state are float32 (graph_dots);
            # the stored terms keep the state's dtype so the iterate does not drift to float32.
            u = u * self.to_nodes(inv).unsqueeze(1)
            if u.dtype != x.dtype:
                u = u.to(x.dtype)
            u = torch.nan_to_num(u, nan=0.0, posinf=0.0, neginf=0.0)
            v = torch.nan_to_num(v, nan=0.0, posinf=0.0, neginf=0.0)
            if len(self._us) == self.m:  # memory full: restart from B = -I
                self._us, self._vs = [], []
            self._us.append(u)
            self._vs.append(v)
        self._prev_x, self._prev_r = x, r
        return x - self._matvec(r)
