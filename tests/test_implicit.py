"""dear.implicit.Equilibrium: forward by a solver, ift / phantom / unroll gradients, Jacobian
regulariser, statistics and errors. float64 throughout: gradients are compared tightly."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dear.implicit import Equilibrium, EquilibriumStats, jacobian_frobenius
from dear.solvers import SolverError

SIZES = [3, 6, 2, 5]
HIDDEN = 3
N = sum(SIZES)


def _batch() -> torch.Tensor:
    return torch.repeat_interleave(torch.arange(len(SIZES)), torch.tensor(SIZES))


class Step(nn.Module):
    """A small graph-separable nonlinear step: z -> tanh(z W + mean-neighbour(z) U + x)."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.W = nn.Parameter(0.3 * torch.randn(HIDDEN, HIDDEN, generator=gen, dtype=torch.float64))
        self.U = nn.Parameter(0.3 * torch.randn(HIDDEN, HIDDEN, generator=gen, dtype=torch.float64))
        batch = _batch()
        # mixing within each graph only: average over the graph's nodes
        same = (batch[:, None] == batch[None, :]).double()
        self.register_buffer("P", same / same.sum(1, keepdim=True))

    def forward(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(z @ self.W + (self.P @ z) @ self.U + x)


def _inputs(seed: int = 1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(N, HIDDEN, generator=gen, dtype=torch.float64).requires_grad_()


def _loss(z: torch.Tensor) -> torch.Tensor:
    weights = torch.linspace(-1.0, 2.0, z.numel(), dtype=z.dtype).view_as(z)
    return (weights * z).sum() + (z**2).sum()


def _reference_grads(step: Step, x: torch.Tensor, steps: int = 300):
    """Plain autograd through a long explicit iteration (converged to machine precision)."""
    z = torch.zeros(N, HIDDEN, dtype=torch.float64)
    for _ in range(steps):
        z = step(z, x)
    return torch.autograd.grad(_loss(z), [step.W, step.U, x])


def _layer_grads(layer: Equilibrium, x: torch.Tensor):
    z = layer(torch.zeros(N, HIDDEN, dtype=torch.float64), x, batch=_batch())
    return z, torch.autograd.grad(_loss(z), [layer.f.W, layer.f.U, x])


@pytest.mark.parametrize("adjoint", ["anderson", "broyden", "picard"])
def test_ift_matches_autograd_through_long_unroll(adjoint: str) -> None:
    step, x = Step(), _inputs()
    ref = _reference_grads(step, x)
    layer = Equilibrium(step, tol=1e-12, max_iter=300, backward="ift", backward_method=adjoint)
    _, grads = _layer_grads(layer, x)
    for g, r in zip(grads, ref):
        assert torch.allclose(g, r, rtol=1e-8, atol=1e-9), (g - r).abs().max()
    stats = layer.last_stats
    assert isinstance(stats, EquilibriumStats)
    assert stats.backward is not None and stats.backward.converged.all()
    assert stats.backward.method == adjoint and stats.extra_nfe == 1


def test_ift_matches_finite_differences() -> None:
    step, x = Step(seed=3), _inputs(seed=4)
    layer = Equilibrium(step, tol=1e-13, max_iter=300, backward="ift")
    _, (gW, _, gx) = _layer_grads(layer, x)

    def loss_at() -> float:
        with torch.no_grad():
            return float(_loss(layer(torch.zeros(N, HIDDEN, dtype=torch.float64), x, batch=_batch())))

    eps = 1e-6
    for tensor, grad, idx in ((step.W, gW, (0, 1)), (step.W, gW, (2, 0)), (x, gx, (4, 2)), (x, gx, (10, 0))):
        with torch.no_grad():
            tensor[idx] += eps
            up = loss_at()
            tensor[idx] -= 2 * eps
            down = loss_at()
            tensor[idx] += eps
        fd = (up - down) / (2 * eps)
        assert abs(fd - float(grad[idx])) < 1e-6 * max(1.0, abs(fd)), (idx, fd, float(grad[idx]))


def test_unroll_matches_plain_autograd_including_z0() -> None:
    step, x = Step(), _inputs()
    K = 7
    z0 = torch.randn(N, HIDDEN, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    z0.requires_grad_()
    z = z0
    for _ in range(K):
        z = step(z, x)
    ref = torch.autograd.grad(_loss(z), [step.W, step.U, x, z0])
    layer = Equilibrium(step, backward="unroll", unroll_steps=K)
    out = layer(z0, x, batch=_batch())
    assert torch.equal(out, z)
    grads = torch.autograd.grad(_loss(out), [step.W, step.U, x, z0])
    for g, r in zip(grads, ref):
        assert torch.equal(g, r)
    assert layer.last_stats.forward.nfe == K and layer.last_stats.forward.method == "unroll"


def test_phantom_approaches_ift_with_more_steps() -> None:
    step, x = Step(), _inputs()
    ift = Equilibrium(step, tol=1e-12, max_iter=300, backward="ift")
    _, g_ift = _layer_grads(ift, x)

    def error(k: int, tau: float) -> float:
        layer = Equilibrium(step, tol=1e-12, max_iter=300, backward="phantom", phantom_steps=k,
                            phantom_tau=tau)
        _, g = _layer_grads(layer, x)
        return max(float((a - b).abs().max() / b.abs().max()) for a, b in zip(g, g_ift))

    e1, e5, e40 = error(1, 1.0), error(5, 1.0), error(40, 1.0)
    assert e1 > 1e-2  # one step is a genuinely different (cheap) estimate
    assert e40 < e5 < e1 and e40 < 1e-8
    assert error(80, 0.5) < 1e-8  # damped steps converge to the same gradient


def test_jacobian_regulariser_estimates_frobenius_norm() -> None:
    torch.manual_seed(0)
    A = torch.randn(HIDDEN, HIDDEN, dtype=torch.float64, requires_grad=True)
    z = torch.randn(N, HIDDEN, dtype=torch.float64, requires_grad=True)
    fz = z @ A.T  # J is block-diagonal with N copies of A: ||J||_F^2 = N ||A||_F^2
    est = jacobian_frobenius(fz, z, samples=4000)
    exact = float(N * (A.detach() ** 2).sum() / z.numel())
    assert abs(float(est.detach()) - exact) < 0.05 * exact
    (g,) = torch.autograd.grad(est, A)  # differentiable, to be added to a loss
    assert torch.isfinite(g).all() and g.abs().sum() > 0


@pytest.mark.parametrize("mode", ["ift", "phantom", "unroll"])
def test_layer_jac_loss_and_stats(mode: str) -> None:
    torch.manual_seed(0)
    step, x = Step(), _inputs()
    layer = Equilibrium(step, tol=1e-8, max_iter=100, backward=mode, jac_reg_samples=2)
    z = layer(torch.zeros(N, HIDDEN, dtype=torch.float64), x, batch=_batch())
    stats = layer.last_stats
    assert stats.mode == mode and stats.jac_loss is not None and stats.jac_loss.requires_grad
    (_loss(z) + 1e-4 * stats.jac_loss).backward()
    assert step.W.grad is not None and torch.isfinite(step.W.grad).all()
    logged = stats.as_dict()
    assert {"forward_nfe", "forward_iterations_max", "forward_residual_max", "jac_loss"} <= set(logged)
    assert stats.forward.iterations.shape == (len(SIZES),)
    if mode == "ift":
        assert "backward_nfe" in logged


def test_pop_stats_hands_over_and_frees_the_module() -> None:
    import copy

    torch.manual_seed(0)
    step, x = Step(), _inputs()
    layer = Equilibrium(step, tol=1e-8, max_iter=100, backward="phantom", jac_reg_samples=1)
    layer(torch.zeros(N, HIDDEN, dtype=torch.float64), x, batch=_batch())
    with pytest.raises(RuntimeError):  # a non-leaf tensor in module state cannot be deep-copied
        copy.deepcopy(layer)
    stats = layer.pop_stats()
    assert stats is not None and stats.jac_loss.requires_grad and layer.last_stats is None
    copy.deepcopy(layer)


def test_no_grad_and_eval_use_solver_output() -> None:
    step, x = Step(), _inputs()
    layer = Equilibrium(step, tol=1e-10, max_iter=100, eval_max_iter=3, backward="phantom")
    with torch.no_grad():
        z = layer(torch.zeros(N, HIDDEN, dtype=torch.float64), x, batch=_batch())
    assert not z.requires_grad and layer.last_stats.extra_nfe == 0
    assert torch.equal(z, layer.last_stats.forward.z) and layer.last_stats.forward.nfe > 3
    layer.eval()
    with torch.no_grad():
        layer(torch.zeros(N, HIDDEN, dtype=torch.float64), x, batch=_batch())
    assert layer.last_stats.forward.nfe == 3 and not layer.last_stats.forward.converged.all()


def test_adjoint_is_per_graph() -> None:
    """A loss on graph 0 gives the same input gradient whether other graphs share the batch."""
    step, x = Step(), _inputs()
    batch = _batch()
    layer = Equilibrium(step, tol=1e-12, max_iter=300, backward="ift")
    z = layer(torch.zeros(N, HIDDEN, dtype=torch.float64), x, batch=batch)
    (gx,) = torch.autograd.grad(z[batch == 0].sum(), [x])
    assert (gx[batch != 0] == 0).all()
    # graph 0 alone: its rows only (P restricted to the graph is the same averaging)
    rows = batch == 0
    P0 = step.P[rows][:, rows]

    def step0(z0: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        return torch.tanh(z0 @ step.W + (P0 @ z0) @ step.U + x0)

    alone = Equilibrium(step0, tol=1e-12, max_iter=300, backward="ift")
    x0 = x.detach()[rows].clone().requires_grad_()
    z_alone = alone(torch.zeros(int(rows.sum()), HIDDEN, dtype=torch.float64), x0)
    (gx0,) = torch.autograd.grad(z_alone.sum(), [x0])
    assert torch.allclose(gx0, gx[rows], atol=1e-10)


def test_failures_raise_when_asked() -> None:
    def f(z: torch.Tensor) -> torch.Tensor:
        return z + 1.0 + z * z  # no fixed point

    layer = Equilibrium(f, tol=1e-6, max_iter=20, raise_on_failure=True)
    with pytest.raises(SolverError, match="failed"):
        layer(torch.zeros(4, 2, dtype=torch.float64))
    quiet = Equilibrium(f, tol=1e-6, max_iter=20)
    quiet(torch.zeros(4, 2, dtype=torch.float64))
    assert not quiet.last_stats.forward.converged.any()


def test_module_registration_and_bad_options() -> None:
    step = Step()
    layer = Equilibrium(step)
    assert {id(p) for p in step.parameters()} <= {id(p) for p in layer.parameters()}
    for kwargs, message in [
        (dict(backward="adjoint"), "backward must be one of ift, phantom, unroll"),
        (dict(method="newton"), "unknown solver 'newton'"),
        (dict(solver_options={"window": 3}), "valid options: m, lam, beta"),
        (dict(backward_method="nope"), "unknown solver 'nope'"),
        (dict(phantom_tau=0.0), "phantom_tau"),
        (dict(phantom_steps=0), "phantom_steps"),
        (dict(tol=-1.0), "tol must be >= 0"),
        (dict(stop_mode="worst"), "stop_mode"),
        (dict(jac_reg_samples=-1), "jac_reg_samples"),
    ]:
        with pytest.raises(ValueError, match=message):
            Equilibrium(step, **kwargs)
    with pytest.raises(ValueError, match="callable"):
        Equilibrium(3)


def test_ift_backward_leaks_nothing_and_needs_no_live_output() -> None:
    import gc
    import warnings

    torch.manual_seed(0)
    step, x = Step(), _inputs()
    layer = Equilibrium(step, tol=1e-10, max_iter=200, backward="ift")
    z0 = torch.zeros(N, HIDDEN, dtype=torch.float64)

    def grads(keep_output: bool) -> torch.Tensor:
        step.zero_grad()
        if keep_output:
            z = layer(z0, x, batch=_batch())
            _loss(z).backward()
        else:  # the layer's output tensor object is gone before backward: f(z*) is re-evaluated
            _loss(layer(z0, x, batch=_batch())).backward()
        return step.W.grad.clone()

    torch.testing.assert_close(grads(False), grads(True), rtol=1e-7, atol=1e-10)
    counts = []
    for _ in range(4):
        grads(True)
        gc.collect()
        with warnings.catch_warnings():  # isinstance on some torch module objects warns
            warnings.simplefilter("ignore")
            counts.append(sum(1 for o in gc.get_objects() if isinstance(o, torch.Tensor)))
    assert counts[-1] <= counts[1], counts  # no graph kept alive per step (a hook cycle did that)


def test_ift_gradient_survives_in_place_ops_on_the_output() -> None:
    """The adjoint's vector-Jacobian products read f(z*) itself, which the caller never holds:
    an in-place op on the layer's output (allowed when f's last op does not save its output)
    must give the gradient of the out-of-place op. It used to run through the products too."""
    step, x = Step(), _inputs()

    def linear_last(z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(z) @ step.W + (step.P @ z) @ step.U + x  # matmul/add: nothing saved

    def grads(in_place: bool):
        layer = Equilibrium(linear_last, tol=1e-12, max_iter=300, backward="ift")
        out = layer(torch.zeros(N, HIDDEN, dtype=torch.float64), x, batch=_batch())
        out = out.mul_(2.0) if in_place else out * 2.0
        return torch.autograd.grad(_loss(out), [step.W, step.U, x])

    for a, b in zip(grads(True), grads(False)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
