"""The engine's DEQ semantics against hand-computed references written from torchdeq's
definitions (torchdeq 0.1.0: ``torchdeq.grad.backward_factory``, ``torchdeq.loss.jac_reg``,
``torchdeq.solver``). torchdeq itself is not imported: each reference is the formula, on a small
dense problem ``f(z) = tanh(z W^T + x U^T + b)`` with a contractive ``W`` and one graph, where
"per graph" and torchdeq's "per sample" coincide. Differences that are by design are in
docs/engine.md ("Differences from torchdeq"). float64 throughout."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dear.implicit import Equilibrium
from dear.solvers import solve

ROWS, DIM = 5, 4


class Step(nn.Module):
    def __init__(self, seed: int = 0, contraction: float = 0.5) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        W = torch.randn(DIM, DIM, generator=gen, dtype=torch.float64)
        self.W = nn.Parameter(contraction * W / torch.linalg.matrix_norm(W, 2))
        self.U = nn.Parameter(torch.randn(DIM, DIM, generator=gen, dtype=torch.float64))
        self.b = nn.Parameter(0.1 * torch.randn(DIM, generator=gen, dtype=torch.float64))

    def forward(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(z @ self.W.T + x @ self.U.T + self.b)


def _x(seed: int = 1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(ROWS, DIM, generator=gen, dtype=torch.float64).requires_grad_()


def _z0() -> torch.Tensor:
    return torch.zeros(ROWS, DIM, dtype=torch.float64)


def _loss(z: torch.Tensor) -> torch.Tensor:
    w = torch.linspace(-1.0, 2.0, z.numel(), dtype=z.dtype).view_as(z)
    return (w * z).sum() + (z**2).sum()


def _wrt(step: Step, x: torch.Tensor) -> list[torch.Tensor]:
    return [step.W, step.U, step.b, x]


def _close(got, want, tol: float = 1e-12) -> None:
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=tol, atol=tol)


@pytest.mark.parametrize("k, tau", [(1, 1.0), (1, 0.6), (3, 1.0), (3, 0.6)])
def test_phantom_gradient_is_backprop_through_k_damped_steps_from_detached_z_star(k: int, tau: float) -> None:
    """torchdeq's PhantomGrad (grad=k, tau): from the solver's detached z*, k steps
    z <- tau f(z) + (1 - tau) z with grad; output and gradients are those of the k steps."""
    step, x = Step(), _x()
    layer = Equilibrium(step, method="anderson", tol=1e-3, max_iter=50, stop_mode="rel",
                        backward="phantom", phantom_steps=k, phantom_tau=tau)
    out = layer(_z0(), x)
    got = torch.autograd.grad(_loss(out), _wrt(step, x))
    z = layer.last_stats.forward.z.detach()  # the same z* (loose tolerance: it matters)
    for _ in range(k):
        z = tau * step(z, x) + (1.0 - tau) * z
    torch.testing.assert_close(out, z, rtol=1e-15, atol=1e-15)
    _close(got, torch.autograd.grad(_loss(z), _wrt(step, x)))
    assert layer.last_stats.extra_nfe == k


def test_ift_gradient_is_the_dense_adjoint_formula() -> None:
    """IFT (torchdeq ``ift``): output f(z*); dL/dtheta = (df/dtheta)^T g with
    g = (I - J^T)^{-1} dL/dout, J = df/dz at z* (dense here)."""
    step, x = Step(), _x()
    layer = Equilibrium(step, tol=1e-13, max_iter=300, stop_mode="abs", backward="ift",
                        backward_tol=1e-13, backward_max_iter=300)
    out = layer(_z0(), x)
    got = torch.autograd.grad(_loss(out), _wrt(step, x))

    z_star = layer.last_stats.forward.z.detach().requires_grad_()
    fz = step(z_star, x)
    torch.testing.assert_close(out, fz, rtol=0, atol=0)
    (dl,) = torch.autograd.grad(_loss(fz), fz, retain_graph=True)
    J = torch.autograd.functional.jacobian(lambda z: step(z, x), z_star.detach()).reshape(ROWS * DIM, ROWS * DIM)
    eye = torch.eye(ROWS * DIM, dtype=torch.float64)
    g = torch.linalg.solve(eye - J.T, dl.reshape(-1)).view_as(fz)
    want = torch.autograd.grad(fz, _wrt(step, x), g)
    _close(got, want, tol=1e-10)


def _hand_jacobian_loss(step: Step, x: torch.Tensor, z_star: torch.Tensor, samples: int, seed: int) -> torch.Tensor:
    """torchdeq's jac_reg: sum_s ||v_s^T J||^2 / samples / numel(z), v_s ~ N(0, I), at a
    detached z* (the same random vectors as the layer draws after ``manual_seed(seed)``)."""
    z = z_star.detach().requires_grad_()
    fz = step(z, x)
    torch.manual_seed(seed)
    total = 0.0
    for _ in range(samples):
        v = torch.randn_like(fz)
        (vjp,) = torch.autograd.grad(fz, z, v, create_graph=True)
        total = total + vjp.pow(2).sum()
    return total / samples / z.numel()


@pytest.mark.parametrize("mode", ["ift", "phantom"])
@pytest.mark.parametrize("samples", [1, 3])
def test_jacobian_regulariser_value_and_gradient_are_the_estimates_own(mode: str, samples: int) -> None:
    """Same random vectors: the layer's jac_loss equals the hand estimate and so does its
    gradient, alone and added to the task loss. Regression: under ``ift`` the adjoint hook sat on
    f(z*) itself, and the regulariser's gradient reaches that node (tanh saves its output), so
    the hook applied (I - J^T)^{-1} to it as well: 7% off in the parameters' gradient."""
    step, x = Step(), _x()
    layer = Equilibrium(step, tol=1e-12, max_iter=300, stop_mode="abs", backward=mode, jac_reg_samples=samples)
    torch.manual_seed(3)
    out = layer(_z0(), x)
    jac = layer.last_stats.jac_loss
    ref = _hand_jacobian_loss(step, x, layer.last_stats.forward.z, samples, seed=3)
    torch.testing.assert_close(jac, ref, rtol=1e-14, atol=0)
    ref_grads = torch.autograd.grad(ref, _wrt(step, x)[:3])
    _close(torch.autograd.grad(jac, _wrt(step, x)[:3], retain_graph=True), ref_grads, tol=1e-13)

    # Combined with the task loss: the sum of the two gradients.
    task = Equilibrium(step, tol=1e-12, max_iter=300, stop_mode="abs", backward=mode)
    task_grads = torch.autograd.grad(_loss(task(_z0(), x)), _wrt(step, x)[:3])
    combined = torch.autograd.grad(_loss(out) + 10.0 * jac, _wrt(step, x)[:3])
    _close(combined, [t + 10.0 * r for t, r in zip(task_grads, ref_grads)], tol=1e-11)


def test_jacobian_regulariser_expectation_is_frobenius_over_numel() -> None:
    """E[jac_loss] = ||J||_F^2 / numel(z) (torchdeq normalises by z's element count too)."""
    step, x = Step(), _x()
    z_star = solve(lambda z: step(z, x), _z0(), tol=1e-12, max_iter=300).z
    J = torch.autograd.functional.jacobian(lambda z: step(z, x), z_star)
    exact = float(J.pow(2).sum() / z_star.numel())
    est = float(_hand_jacobian_loss(step, x, z_star, samples=4000, seed=0).detach())
    assert abs(est - exact) < 0.05 * exact


def test_residuals_are_torchdeqs_abs_and_rel_diff() -> None:
    """abs_diff = ||f(x) - x||, rel_diff = abs_diff / (||f(x)|| + 1e-9), of every evaluated x
    (Picard: torchdeq's fixed_point_iter measures the same iterates)."""
    step, x = Step(contraction=0.9), _x()

    def f(z: torch.Tensor) -> torch.Tensor:
        return step(z, x).detach()

    for mode in ("abs", "rel"):
        res = solve(f, _z0(), method="picard", tol=0.0, max_iter=12, stop_mode=mode, return_trace=True)
        z, want = _z0(), []
        for _ in range(12):
            fz = f(z)
            diff = torch.linalg.vector_norm(fz - z)
            want.append(diff if mode == "abs" else diff / (torch.linalg.vector_norm(fz) + 1e-9))
            z = fz
        torch.testing.assert_close(res.trace[:, 0], torch.stack(want), rtol=1e-14, atol=0)
        torch.testing.assert_close(res.z, z, rtol=0, atol=0)  # cap hit: f(x) of the last evaluation


@pytest.mark.parametrize("beta", [1.0, 0.5])
def test_anderson_with_absolute_lam_zero_is_torchdeqs_anderson(beta: float) -> None:
    """torchdeq's anderson_solver with lam=0 (our relative lam and its absolute one coincide
    there): alpha from [[0, 1^T], [1, G G^T]] [mu; alpha] = [1; 0] over the last m residuals,
    next iterate tau sum_i alpha_i f(x_i) + (1 - tau) sum_i alpha_i x_i. The one difference: our
    first step is damped like every other (x_1 = x_0 + beta r_0), torchdeq's is x_1 = f(x_0)."""
    m, steps = 4, 12
    step, x = Step(contraction=0.9), _x()

    def f(z: torch.Tensor) -> torch.Tensor:
        return step(z, x).detach()

    res = solve(f, _z0(), method="anderson", m=m, lam=0.0, beta=beta, tol=0.0, max_iter=steps,
                return_trajectory=True)
    xs, fs = [_z0().reshape(-1)], []
    for k in range(steps - 1):
        fs.append(f(xs[-1].view(ROWS, DIM)).reshape(-1))
        X, F = torch.stack(xs[-m:]), torch.stack(fs[-m:])
        if k == 0:
            xs.append(beta * F[0] + (1.0 - beta) * X[0])
            continue
        G = F - X
        n = G.shape[0]
        H = torch.zeros(n + 1, n + 1, dtype=torch.float64)
        H[0, 1:] = H[1:, 0] = 1.0
        H[1:, 1:] = G @ G.T
        y = torch.zeros(n + 1, dtype=torch.float64)
        y[0] = 1.0
        alpha = torch.linalg.solve(H, y)[1:]
        xs.append(beta * alpha @ F + (1.0 - beta) * alpha @ X)
    for t, (got, want) in enumerate(zip(res.trajectory, xs)):
        torch.testing.assert_close(got.reshape(-1), want, rtol=1e-8, atol=1e-10, msg=f"iterate {t}")


def test_a_solve_that_hits_the_cap_returns_the_lowest_residual_image():
    """torchdeq returns the image of the lowest-residual iterate. On the expanding map
    f(z) = 2 - 1.3 z (Picard from 0, 15 evaluations) that is evaluation 1, f(0) = 2, abs
    residual sqrt(20) * 2 = 8.94 (measured with torchdeq 0.1.0: docs/engine.md); the last
    iterate's residual is 352."""
    res = solve(lambda z: 2.0 - 1.3 * z, _z0(), None, method="picard", tol=1e-9, max_iter=15, stop_mode="abs")
    assert torch.equal(res.z, torch.full_like(res.z, 2.0))
    assert res.residual.item() == pytest.approx(2.0 * (ROWS * DIM) ** 0.5)
    assert not res.converged.any() and res.iterations.item() == 15
    last = solve(lambda z: 2.0 - 1.3 * z, _z0(), None, method="picard", tol=1e-9, max_iter=15, stop_mode="abs",
                 return_best=False)
    assert last.residual.item() == pytest.approx(352.17, abs=0.01)
