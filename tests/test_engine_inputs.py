"""dear.solvers / dear.implicit on unusual but valid inputs, and clear errors on invalid ones.

Regression tests of the engine audit (docs/engine.md): compaction ending on a step that
``check_every`` skips, empty batches, compaction to one graph, half-precision states, maps
returning another dtype or device or modifying their input, and settings given as NumPy or
0-d tensor scalars.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dear.implicit import Equilibrium
from dear.solvers import Anderson, solve


def _batch(sizes: list[int]) -> torch.Tensor:
    return torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))


def _restrictable(sizes: list[int], dim: int = 3, dtype: torch.dtype = torch.float64, seed: int = 0,
                  scales: list[float] | None = None):
    """A row-wise map ``tanh(s_g * (z W) + x)`` whose graphs converge at different speeds, and
    ``restrict(graph_ids)``: the same map on those graphs' rows only."""
    gen = torch.Generator().manual_seed(seed)
    batch = _batch(sizes)
    W = (torch.randn(dim, dim, generator=gen) / dim ** 0.5).to(dtype)
    X = torch.randn(len(batch), dim, generator=gen).to(dtype)
    if scales is None:
        scales = torch.linspace(0.1, 0.9, len(sizes)).tolist()
    sc = torch.tensor(scales, dtype=dtype)

    def make(ids: torch.Tensor):
        rows = torch.isin(batch, ids)
        s, x = sc[batch[rows]][:, None], X[rows]
        return lambda z: torch.tanh(s * (z @ W) + x)

    return make(torch.arange(len(sizes))), make, batch


# --- #2: compaction never goes down to zero graphs ------------------------------------------

@pytest.mark.parametrize("check_every", [2, 3, 5])
@pytest.mark.parametrize("method", ["anderson", "picard"])
def test_check_every_with_restrict_ends_instead_of_compacting_to_nothing(method: str, check_every: int) -> None:
    f, restrict, batch = _restrictable([2, 5], seed=0)
    seen: list[list[int]] = []

    def spy(ids: torch.Tensor):
        seen.append(ids.tolist())
        return restrict(ids)

    z0 = torch.zeros(len(batch), 3, dtype=torch.float64)
    plain = solve(f, z0, batch, method=method, tol=1e-4, check_every=check_every)
    packed = solve(f, z0, batch, method=method, tol=1e-4, check_every=check_every, restrict=spy)
    assert [] not in seen
    assert packed.converged.all() and torch.equal(packed.iterations, plain.iterations)
    assert torch.allclose(packed.z, plain.z, rtol=0, atol=1e-12)  # up to summation order


@pytest.mark.parametrize("check_every", [2, 3])
def test_equilibrium_check_every_with_subset_args_forward_and_backward(check_every: int) -> None:
    sizes = [2, 5, 3]
    batch = _batch(sizes)
    W = torch.nn.Parameter(torch.randn(3, 3, dtype=torch.float64) * 0.3)
    X = torch.randn(len(batch), 3, dtype=torch.float64)
    scale = torch.tensor([0.1, 0.8, 0.5], dtype=torch.float64)[batch][:, None]

    def f(z, x, s):
        return torch.tanh(s * (z @ W) + x)

    def subset_args(ids):
        rows = torch.isin(batch, ids)
        return X[rows], scale[rows]

    grads = []
    for subset in (None, subset_args):
        deq = Equilibrium(f, tol=1e-8, max_iter=100, check_every=check_every)
        out = deq(torch.zeros(len(batch), 3, dtype=torch.float64), X, scale, batch=batch, subset_args=subset)
        out.square().sum().backward()
        assert deq.last_stats.forward.converged.all() and deq.last_stats.backward.converged.all()
        grads.append(W.grad.clone())
        W.grad = None
    assert torch.allclose(grads[0], grads[1], rtol=1e-6, atol=1e-10)


# --- #3: an empty batch is a valid input ----------------------------------------------------

@pytest.mark.parametrize("method", ["anderson", "picard", "broyden"])
def test_zero_rows_give_an_empty_result_without_calling_f(method: str) -> None:
    def f(z):
        raise AssertionError("f must not be called on an empty state")

    res = solve(f, torch.zeros(0, 3), torch.zeros(0, dtype=torch.long), method=method, return_trace=True)
    assert res.z.shape == (0, 3) and res.nfe == 0 and res.num_graphs == 0
    assert res.trace.shape == (0, 0) and res.all_converged and res.failure_message() is None
    assert res.summary()["nfe"] == 0.0
    single = solve(f, torch.zeros(0, 3), method=method)  # batch=None: one graph, with no rows
    assert single.converged.tolist() == [True] and single.iterations.tolist() == [0]
    named = solve(f, torch.zeros(0, 2, 2), torch.zeros(0, dtype=torch.long), num_graphs=2, method=method)
    assert named.z.shape == (0, 2, 2) and named.residual.tolist() == [0.0, 0.0]


def test_zero_feature_rows_are_fine() -> None:
    res = solve(lambda z: z * 0.5, torch.zeros(4, 0), torch.tensor([0, 0, 1, 1]))
    assert res.z.shape == (4, 0) and res.converged.all()


@pytest.mark.parametrize("backward", ["ift", "phantom", "unroll"])
def test_equilibrium_on_an_empty_batch(backward: str) -> None:
    W = torch.nn.Parameter(torch.randn(3, 3))
    deq = Equilibrium(lambda z: torch.tanh(z @ W), backward=backward, max_iter=5)
    out = deq(torch.zeros(0, 3), batch=torch.zeros(0, dtype=torch.long), num_graphs=0)
    assert out.shape == (0, 3)
    out.sum().backward()
    assert deq.last_stats.forward.num_graphs == 0
    assert Equilibrium(lambda z: torch.tanh(z))(torch.zeros(0, 3)).shape == (0, 3)


# --- #4: compaction agrees with the uncompacted solve up to summation order -----------------

@pytest.mark.parametrize("method", ["anderson", "picard"])
@pytest.mark.parametrize("first_hit", [False, True])
def test_float32_compaction_to_one_graph_agrees(method: str, first_hit: bool) -> None:
    """Compaction leaves one graph (the slowest) alone, whose reductions then take the
    single-graph path: answers and residuals agree up to float32 rounding, iterations within one."""
    sizes = [30, 50, 20, 60, 40]
    f, restrict, batch = _restrictable(sizes, dim=16, dtype=torch.float32, seed=3,
                                       scales=[0.1, 0.15, 0.12, 0.45, 0.2])
    z0 = torch.randn(len(batch), 16, generator=torch.Generator().manual_seed(1))
    seen: list[int] = []

    def spy(ids: torch.Tensor):
        seen.append(len(ids))
        return restrict(ids)

    kw = dict(method=method, tol=1e-6, max_iter=300, first_hit=first_hit)
    plain = solve(f, z0, batch, **kw)
    packed = solve(f, z0, batch, restrict=spy, **kw)
    assert seen and seen[-1] == 1  # the last compaction left a single graph
    assert plain.converged.all() and packed.converged.all() and abs(packed.nfe - plain.nfe) <= 1
    assert (plain.iterations - packed.iterations).abs().max() <= 1
    assert torch.allclose(plain.z, packed.z, rtol=0, atol=1e-5)


# --- #5: half-precision states ---------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("method", ["anderson", "picard", "broyden"])
def test_half_precision_states(method: str, dtype: torch.dtype) -> None:
    batch = torch.tensor([0, 0, 1, 1, 1])
    for b in (batch, None):
        res = solve(lambda z: torch.tanh(0.3 * z + 1), torch.zeros(5, 3, dtype=dtype), b, method=method, tol=1e-2)
        assert res.z.dtype == dtype and res.converged.all()
        assert torch.allclose(res.z.float(), torch.tanh(0.3 * res.z.float() + 1), atol=5e-2)


def test_half_precision_norms_do_not_overflow() -> None:
    """A float16 sum of squares overflows past 65504: large graphs must not read as diverged."""
    z0 = torch.zeros(3000, 64, dtype=torch.float16)
    batch = torch.zeros(3000, dtype=torch.long)
    batch[1500:] = 1
    for b in (batch, None):
        res = solve(lambda z: torch.tanh(0.3 * z + 2), z0, b, method="picard", tol=1e-2)
        assert res.converged.all() and not res.diverged.any()


@pytest.mark.parametrize("backward", ["ift", "phantom"])
def test_equilibrium_on_bfloat16(backward: str) -> None:
    W = torch.nn.Parameter(torch.randn(3, 3) * 0.2)
    deq = Equilibrium(lambda z: torch.tanh(z @ W.to(z.dtype) + 1), tol=1e-2, backward=backward)
    out = deq(torch.zeros(5, 3, dtype=torch.bfloat16), batch=torch.tensor([0, 0, 1, 1, 1]))
    out.float().sum().backward()
    assert out.dtype == torch.bfloat16 and deq.last_stats.forward.converged.all()
    assert W.grad is not None and torch.isfinite(W.grad).all() and W.grad.abs().sum() > 0


# --- #6 / #7: what f returns and what it does to its input ----------------------------------

@pytest.mark.parametrize("method", ["anderson", "picard"])
def test_f_returning_another_dtype_or_device_is_rejected(method: str) -> None:
    z0, batch = torch.zeros(5, 3), torch.tensor([0, 0, 1, 1, 1])
    with pytest.raises(ValueError, match="dtype torch.float32, got torch.float64"):
        solve(lambda z: torch.tanh(0.3 * z.double() + 1), z0, batch, method=method)
    with pytest.raises(ValueError, match="device cpu, got meta"):
        solve(lambda z: torch.empty_like(z, device="meta"), z0, batch, method=method)


@pytest.mark.parametrize("method", ["anderson", "picard", "broyden"])
def test_f_modifying_its_input_in_place_is_rejected(method: str) -> None:
    z0, batch = torch.zeros(5, 3), torch.tensor([0, 0, 1, 1, 1])
    with pytest.raises(ValueError, match="must not modify its input in place"):
        solve(lambda z: z.mul_(0.3).add_(1).tanh_(), z0, batch, method=method)

    def sneaky(z):  # modifies its input, returns a new tensor
        z.mul_(0.3)
        return torch.tanh(z + 1)

    with pytest.raises(ValueError, match="must not modify its input in place"):
        solve(sneaky, z0, batch, method=method)
    with pytest.raises(ValueError, match="must not modify its input in place"):
        Equilibrium(sneaky)(z0, batch=batch)
    # under inference mode there is no version counter: still solvable with a well-behaved f
    with torch.inference_mode():
        assert solve(lambda z: torch.tanh(0.3 * z + 1), z0, batch, method=method).converged.all()


# --- #8: Equilibrium validates its tolerances when built -------------------------------------

@pytest.mark.parametrize("name", ["tol", "backward_tol"])
@pytest.mark.parametrize("value", [float("inf"), float("nan"), -1.0])
def test_equilibrium_rejects_non_finite_tolerances_at_construction(name: str, value: float) -> None:
    with pytest.raises(ValueError, match=f"{name} must be >= 0 and finite"):
        Equilibrium(lambda z: z, **{name: value})


# --- #9: NumPy and 0-d tensor scalars are numbers --------------------------------------------

def test_numpy_and_tensor_scalars_are_accepted() -> None:
    z0, batch = torch.zeros(5, 3), torch.tensor([0, 0, 1, 1, 1])

    def f(z):
        return torch.tanh(0.3 * z + 1)

    ref = solve(f, z0, batch, tol=1e-4, max_iter=5, num_graphs=2, check_every=1, m=3, lam=1e-4, beta=1.0)
    for tol, count, graphs in [(np.float32(1e-4), np.int64(5), np.int64(2)),
                               (torch.tensor(1e-4), torch.tensor(5), torch.tensor(2))]:
        res = solve(f, z0, batch, tol=tol, max_iter=count, num_graphs=graphs, check_every=np.int32(1),
                    m=np.int64(3), lam=np.float64(1e-4), beta=torch.tensor(1.0))
        assert torch.allclose(res.z, ref.z) and type(res.tol) is float and type(res.max_iter) is int
    res = solve(f, z0, batch, method="picard", tau=np.float32(0.5))
    assert res.converged.all()
    deq = Equilibrium(f, tol=np.float32(1e-3), max_iter=np.int64(20), backward_tol=torch.tensor(1e-3),
                      check_every=np.int64(1), phantom_steps=np.int64(2), eval_max_iter=np.int16(40))
    assert deq.max_iter == 20 and type(deq.max_iter) is int and type(deq.tol) is float
    deq(z0, batch=batch, num_graphs=np.int64(2))


@pytest.mark.parametrize("kwargs, message", [
    (dict(tol="1e-4"), r"tol must be a finite number >= 0, got '1e-4' \(str\)"),
    (dict(max_iter=5.0), r"max_iter must be a positive integer, got 5.0 \(float\)"),
    (dict(max_iter=True), r"max_iter must be a positive integer, got True \(bool\)"),
    (dict(check_every=np.float64(2)), r"check_every must be a positive integer, got .* \(float64\)"),
    (dict(num_graphs=torch.tensor([2])), r"num_graphs must be a non-negative integer, got .* \(Tensor\)"),
    (dict(num_graphs=-1), "num_graphs must be a non-negative integer"),
])
def test_rejected_scalars_name_their_type(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        solve(lambda z: z * 0.5, torch.zeros(5, 3), torch.tensor([0, 0, 1, 1, 1]), **kwargs)


# --- #10: Anderson's options must be finite --------------------------------------------------

@pytest.mark.parametrize("kwargs, message", [
    (dict(lam=float("inf")), "anderson: lam must be a finite number >= 0"),
    (dict(lam=float("nan")), "anderson: lam must be a finite number >= 0"),
    (dict(beta=float("nan")), r"anderson: beta must lie in \(0, 1\]"),
    (dict(beta=float("inf")), r"anderson: beta must lie in \(0, 1\]"),
    (dict(m=np.float64(6)), r"anderson: m \(history window\) must be a positive integer"),
    (dict(m=float("inf")), r"anderson: m \(history window\) must be a positive integer"),
])
def test_anderson_rejects_non_finite_options(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Anderson(**kwargs)
    with pytest.raises(ValueError, match=message):
        solve(lambda z: z * 0.5, torch.zeros(2, 2), **kwargs)
