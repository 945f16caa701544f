"""Picard (fixed-point) iteration, optionally damped."""

from __future__ import annotations

from torch import Tensor

from .base import Solver, check_real, register_solver

__all__ = ["Picard"]


@register_solver("picard")
class Picard(Solver):
    r"""Damped fixed-point iteration

    .. math::
        z_{k+1} = (1 - \tau)\, z_k + \tau\, f(z_k).

    The baseline every accelerated solver is measured against: it converges linearly at the
    rate of the map's contraction factor, so it is slow on nearly non-contractive maps but never
    worse-conditioned than the map itself. Damping (``tau < 1``) can make an oscillating map
    converge; it is a per-row operation, so graphs are trivially independent.

    Args:
        tau (float, optional): step size in ``(0, 1]``; ``1`` is plain Picard. (default: ``1.0``)
    """

    supports_compaction = True  # no per-solve state

    def __init__(self, tau: float = 1.0) -> None:
        super().__init__()
        self.tau = check_real("picard: tau", tau, lambda v: 0.0 < v <= 1.0, "must lie in (0, 1]")

    def update(self, x: Tensor, fx: Tensor, r: Tensor, step: int) -> Tensor:
        if self.tau == 1.0:
            return fx
        return x + self.tau * r
