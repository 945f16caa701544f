"""dear.solvers: graph-batched root finders (convergence, per-graph semantics, failures, API)."""

from __future__ import annotations

import pytest
import torch

from dear.solvers import (
    Picard,
    Solver,
    SolverError,
    SolverResult,
    available,
    get_solver,
    graph_norm,
    register_solver,
    solve,
)
from dear.solvers import base as solvers_base

METHODS = ["picard", "anderson", "broyden"]
SIZES = [3, 9, 1, 14, 6]  # graphs of different sizes, one of them a single node
HIDDEN = 4


def _batch(sizes: list[int]) -> torch.Tensor:
    return torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))


def _block_linear_map(sizes: list[int], contraction: float, seed: int, symmetric: bool = False):
    """z -> A_g z_g + b_g per graph (float64); returns (f, z_star) with the exact fixed point."""
    gen = torch.Generator().manual_seed(seed)
    n_rows = sum(sizes)
    dim = n_rows * HIDDEN
    W = torch.zeros(dim, dim, dtype=torch.float64)
    off = 0
    for n in sizes:
        k = n * HIDDEN
        if symmetric:  # eigenvalues in [0.5, 1) * contraction: slow for Picard
            Q, _ = torch.linalg.qr(torch.randn(k, k, generator=gen, dtype=torch.float64))
            eig = contraction * torch.linspace(0.5, 1.0, k, dtype=torch.float64)
            A = Q @ torch.diag(eig) @ Q.T
        else:
            A = torch.randn(k, k, generator=gen, dtype=torch.float64)
            A = contraction * A / torch.linalg.matrix_norm(A, 2)
        W[off:off + k, off:off + k] = A
        off += k
    b = torch.randn(dim, generator=gen, dtype=torch.float64)
    z_star = torch.linalg.solve(torch.eye(dim, dtype=torch.float64) - W, b).view(n_rows, HIDDEN)

    def f(z: torch.Tensor) -> torch.Tensor:
        return (W @ z.reshape(-1) + b).view_as(z)

    return f, z_star


@pytest.mark.parametrize("method", METHODS)
def test_linear_contractive_map_reaches_fixed_point(method: str) -> None:
    f, z_star = _block_linear_map(SIZES, contraction=0.9, seed=0)
    batch = _batch(SIZES)
    res = solve(f, torch.zeros_like(z_star), batch, method=method, tol=1e-10, max_iter=500,
                stop_mode="abs")
    assert isinstance(res, SolverResult)
    assert res.converged.all() and not res.diverged.any()
    assert res.z.shape == z_star.shape and res.z.dtype == torch.float64
    assert res.iterations.shape == (len(SIZES),) and res.residual.shape == (len(SIZES),)
    assert (res.residual < 1e-10).all()
    # ||z - z*|| <= ||f(z) - z|| / (1 - L) per graph, and z is one further step of a contraction.
    err = graph_norm(res.z - z_star, batch, len(SIZES))
    assert (err < 1e-10 / (1 - 0.9)).all(), err
    assert res.nfe == int(res.iterations.max())


def test_accelerated_solvers_need_fewer_evaluations_on_slow_map() -> None:
    f, z_star = _block_linear_map(SIZES, contraction=0.99, seed=1, symmetric=True)
    batch = _batch(SIZES)
    nfe = {}
    for method in METHODS:
        res = solve(f, torch.zeros_like(z_star), batch, method=method, tol=1e-8, max_iter=5000)
        assert res.converged.all(), method
        assert torch.allclose(res.z, z_star, atol=1e-5), method
        nfe[method] = res.nfe
    assert nfe["anderson"] * 4 < nfe["picard"], nfe
    assert nfe["broyden"] * 4 < nfe["picard"], nfe


@pytest.mark.parametrize("method", METHODS)
def test_batch_equals_each_graph_alone(method: str) -> None:
    """Per-graph stopping and per-graph mixing: batching must not change any graph's solve."""
    f, z_star = _block_linear_map(SIZES, contraction=0.95, seed=2)
    batch = _batch(SIZES)
    z0 = torch.zeros_like(z_star)
    res = solve(f, z0, batch, method=method, tol=1e-9, max_iter=300)
    assert res.converged.all()
    assert len(set(res.iterations.tolist())) > 1  # graphs really stop at different times
    offsets = [0] + torch.tensor(SIZES).cumsum(0).tolist()
    for g, n in enumerate(SIZES):
        lo, hi = offsets[g], offsets[g + 1]

        def f_alone(zg: torch.Tensor, lo: int = lo, hi: int = hi) -> torch.Tensor:
            full = z_star.clone()  # other graphs' rows do not influence graph g (block map)
            full[lo:hi] = zg
            return f(full)[lo:hi]

        alone = solve(f_alone, z0[lo:hi], None, method=method, tol=1e-9, max_iter=300)
        assert int(alone.iterations[0]) == int(res.iterations[g]), (g, alone.iterations, res.iterations)
        assert torch.allclose(alone.z, res.z[lo:hi], rtol=0, atol=1e-12), g
        assert torch.allclose(alone.residual[0], res.residual[g], rtol=1e-6, atol=0), g  # reductions differ


@pytest.mark.parametrize("method", METHODS)
def test_converged_graph_is_frozen_and_returns_image(method: str) -> None:
    f, z_star = _block_linear_map(SIZES, contraction=0.9, seed=3)
    batch = _batch(SIZES)
    res = solve(f, torch.zeros_like(z_star), batch, method=method, tol=1e-6, max_iter=300,
                return_trace=True, return_trajectory=True)
    assert res.trace.shape == (res.nfe, len(SIZES)) and len(res.trajectory) == res.nfe
    for g in range(len(SIZES)):
        rows = batch == g
        k = int(res.iterations[g])
        accepted = res.trajectory[k - 1][rows]
        for later in res.trajectory[k:]:
            assert torch.equal(later[rows], accepted)  # never changed after convergence
        assert (res.trace[k - 1:, g] == res.trace[k - 1, g]).all()
        # default: the returned state is the image f(x) of the accepted iterate
        assert torch.allclose(res.z[rows], f(res.trajectory[k - 1])[rows], rtol=0, atol=1e-14)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("case", ["one_graph", "twins", "max_iter"])
def test_default_answer_is_the_image_when_every_graph_stops_together(method: str, case: str) -> None:
    """The loop skips its masked copies when no graph stopped early (one graph; identical
    graphs stopping at the same step; the iteration cap): the answer must still be the image
    f(x) of each graph's accepted iterate, and a fresh tensor (not the caller's z0)."""
    sizes = [7] if case == "one_graph" else [5, 5]
    f1, _ = _block_linear_map([sizes[0]], contraction=0.9, seed=11)
    if case == "twins":  # the same map on both graphs: they hit the tolerance at the same step
        def f(z: torch.Tensor) -> torch.Tensor:
            return torch.cat([f1(z[:5]), f1(z[5:])])
    else:
        f, _ = _block_linear_map(sizes, contraction=0.9, seed=11)
    batch = _batch(sizes)
    z0 = torch.zeros(sum(sizes), HIDDEN, dtype=torch.float64)
    max_iter = 3 if case == "max_iter" else 300
    res = solve(f, z0, batch, method=method, tol=1e-6, max_iter=max_iter, return_trajectory=True)
    k = int(res.iterations.max())
    assert (res.iterations == k).all()
    assert bool(res.converged.all()) == (case != "max_iter")
    assert torch.allclose(res.z, f(res.trajectory[k - 1]), rtol=0, atol=1e-14)
    assert res.z.data_ptr() != z0.data_ptr() and torch.equal(z0, torch.zeros_like(z0))


@pytest.mark.parametrize("method", METHODS)
def test_first_hit_returns_first_iterate_under_tolerance(method: str) -> None:
    f, z_star = _block_linear_map(SIZES, contraction=0.9, seed=4)
    batch = _batch(SIZES)
    tol = 1e-3
    res = solve(f, torch.zeros_like(z_star), batch, method=method, tol=tol, max_iter=300,
                first_hit=True, return_trace=True, return_trajectory=True)
    assert res.converged.all()
    for g in range(len(SIZES)):
        rows = batch == g
        under = (res.trace[:, g] < tol).nonzero().flatten()
        first = int(under[0])
        assert int(res.iterations[g]) == first + 1
        assert torch.equal(res.z[rows], res.trajectory[first][rows])
        # and the reported residual is exactly that iterate's relative residual
        x = res.trajectory[first]
        fx = f(x)
        rel = torch.linalg.vector_norm((fx - x)[rows]) / (torch.linalg.vector_norm(fx[rows]) + 1e-9)
        assert torch.allclose(res.residual[g], rel, rtol=1e-10)
    default = solve(f, torch.zeros_like(z_star), batch, method=method, tol=tol, max_iter=300)
    assert not torch.allclose(default.z, res.z)  # default returns f(x), one step further


def test_residual_definitions_abs_and_rel() -> None:
    f, z_star = _block_linear_map(SIZES, contraction=0.9, seed=5)
    batch = _batch(SIZES)
    z0 = torch.randn(z_star.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    fz = f(z0)
    abs_res = graph_norm(fz - z0, batch, len(SIZES))
    rel_res = abs_res / (graph_norm(fz, batch, len(SIZES)) + 1e-9)
    per_row = torch.linalg.vector_norm(fz - z0, dim=-1) / (torch.linalg.vector_norm(fz, dim=-1) + 1e-9)
    node_res = torch.stack([per_row[batch == g].max() for g in range(len(SIZES))])  # the worst row per graph
    for mode, expected in (("abs", abs_res), ("rel", rel_res), ("node", node_res)):
        res = solve(f, z0, batch, method="picard", tol=1e-30, max_iter=1, stop_mode=mode)
        assert torch.allclose(res.residual, expected, rtol=1e-12)
        assert not res.converged.any() and res.nfe == 1
    one = solve(f, z0, None, method="picard", tol=1e-30, max_iter=1, stop_mode="node")  # one graph: no scatter
    assert torch.allclose(one.residual, per_row.max().reshape(1), rtol=1e-12)


def test_node_residual_is_not_diluted_by_settled_rows() -> None:
    """One unsettled row among n settled ones: the graph's relative residual falls as n grows
    (about 1 / sqrt(n)), so `rel` stops a large graph with the row still far off; the worst
    row's residual does not move, so `node` keeps iterating it at every size."""
    def lagging(n: int):
        # rows 1..n-1 are at their fixed point (1), row 0 contracts slowly from 0 towards 1
        def f(z: torch.Tensor) -> torch.Tensor:
            out = torch.ones_like(z)
            out[0] = 0.7 * z[0] + 0.3
            return out
        return f, torch.ones(n, HIDDEN, dtype=torch.float64).index_fill_(0, torch.tensor([0]), 0.0)

    residuals, iters = {}, {}
    for n in (4, 64):
        for mode in ("rel", "node"):
            f, z0 = lagging(n)
            residuals[n, mode] = float(solve(f, z0, None, method="picard", tol=1e-30, max_iter=1,
                                             stop_mode=mode).residual)
            iters[n, mode] = int(solve(f, z0, None, method="picard", tol=0.05, max_iter=100,
                                       stop_mode=mode, first_hit=True).iterations)
    assert residuals[64, "rel"] < residuals[4, "rel"] / 3  # diluted by the settled rows
    assert residuals[64, "node"] == pytest.approx(residuals[4, "node"])  # not diluted
    assert iters[64, "node"] == iters[4, "node"] > iters[64, "rel"]
    assert iters[4, "rel"] > iters[64, "rel"]  # rel stops the larger graph earlier


def test_node_residual_flags_nan_rows_and_reduces_half_in_float32() -> None:
    r = torch.tensor([[3.0, 4.0], [0.0, 0.0], [1.0, 0.0], [float("nan"), 0.0]])
    fx = torch.tensor([[0.0, 10.0], [1.0, 0.0], [0.0, 2.0], [1.0, 0.0]])
    res = solvers_base.graph_residual(r, fx, torch.tensor([0, 0, 1, 2]), 3, "node")
    assert res[:2].tolist() == pytest.approx([0.5, 0.5]) and res[2] == float("inf")  # NaN: non-finite, so diverged
    big = torch.full((2, 256), 300.0, dtype=torch.float16)  # a float16 sum of squares would overflow
    half = solvers_base.graph_residual(big, big, torch.zeros(2, dtype=torch.long), 1, "node")
    assert half.dtype == torch.float32 and half.item() == pytest.approx(1.0, rel=1e-6)


@pytest.mark.parametrize("method", METHODS)
def test_map_without_fixed_point_is_reported_and_can_raise(method: str) -> None:
    """f(z) = z + 1 + z^2 has no fixed point: every solver must say so, never return NaN."""
    batch = _batch([4, 6])

    def f(z: torch.Tensor) -> torch.Tensor:
        return z + 1.0 + z * z

    z0 = torch.zeros(10, 3, dtype=torch.float64)
    res = solve(f, z0, batch, method=method, tol=1e-6, max_iter=40)
    assert not res.converged.any()
    assert torch.isfinite(res.z).all()
    assert res.failure_message().startswith(f"solver '{method}' failed: ")
    with pytest.raises(SolverError, match=f"solver '{method}' failed: .*2 graph") as info:
        solve(f, z0, batch, method=method, tol=1e-6, max_iter=40, raise_on_failure=True)
    assert isinstance(info.value.result, SolverResult)


def test_linear_expansion_is_reported_as_cap_failure() -> None:
    """Picard on f(z) = 2z + 1 moves away from the (repelling) fixed point -1."""
    res = solve(lambda z: 2.0 * z + 1.0, torch.zeros(5, 2, dtype=torch.float64),
                _batch([2, 3]), method="picard", tol=1e-6, max_iter=30)
    assert not res.converged.any() and not res.diverged.any()
    assert "2 of 2 graph(s) did not reach rel tolerance 1e-06 within max_iter=30" in res.failure_message()


@pytest.mark.parametrize("method", METHODS)
def test_nan_in_one_graph_is_flagged_and_does_not_leak(method: str) -> None:
    f_lin, z_star = _block_linear_map(SIZES, contraction=0.9, seed=6)
    batch = _batch(SIZES)
    poisoned = batch == 3

    def f(z: torch.Tensor) -> torch.Tensor:
        out = f_lin(z)
        return torch.where(poisoned.unsqueeze(1), out * float("nan"), out)

    res = solve(f, torch.zeros_like(z_star), batch, method=method, tol=1e-9, max_iter=300)
    assert res.diverged.tolist() == [False, False, False, True, False]
    assert res.converged.tolist() == [True, True, True, False, True]
    assert torch.isfinite(res.z).all()  # the diverged graph keeps its last finite iterate
    clean = ~poisoned
    assert torch.allclose(res.z[clean], z_star[clean], atol=1e-7)
    with pytest.raises(SolverError, match="NaN/Inf"):
        res.raise_if_failed()


def test_overflow_is_diverged_not_silent_inf() -> None:
    z0 = torch.ones(5, 2)
    res = solve(lambda z: z * 1e30 + 1.0, z0, None, method="anderson", tol=1e-4, max_iter=20)
    assert res.diverged.all() and not res.converged.any()
    assert torch.isfinite(res.z).all()


@pytest.mark.parametrize("lam", [0.0, 1e-4])
def test_anderson_singular_history_never_crashes(lam: float) -> None:
    """Identical residuals (a translation has no fixed point) make every Gram matrix singular."""
    c = torch.randn(6, 3, generator=torch.Generator().manual_seed(0))
    batch = _batch([2, 4])
    res = solve(lambda z: z + c, torch.zeros(6, 3), batch, method="anderson", tol=1e-6,
                max_iter=15, lam=lam)
    assert not res.converged.any() and not res.diverged.any()
    assert torch.isfinite(res.z).all()
    # zero residual everywhere (exact fixed point) is equally harmless
    res = solve(lambda z: z, torch.ones(6, 3), batch, method="anderson", tol=1e-6, stop_mode="abs")
    assert res.converged.all() and res.nfe == 1


def test_anderson_float32_large_scale_residuals() -> None:
    """Residual norms ~1e6 in float32: relative regularisation keeps the systems solvable."""
    f64, z_star = _block_linear_map(SIZES, contraction=0.95, seed=7)
    scale = 1e6

    def f(z: torch.Tensor) -> torch.Tensor:
        return (f64(z.double() / scale) * scale).float()

    batch = _batch(SIZES)
    res = solve(f, torch.zeros(z_star.shape), batch, method="anderson", tol=1e-5, max_iter=200)
    assert res.converged.all()
    assert torch.allclose(res.z.double() / scale, z_star, atol=1e-3)


def test_check_every_gives_same_answer() -> None:
    f, z_star = _block_linear_map(SIZES, contraction=0.9, seed=8)
    batch = _batch(SIZES)
    z0 = torch.zeros_like(z_star)
    a = solve(f, z0, batch, tol=1e-8, max_iter=200)
    b = solve(f, z0, batch, tol=1e-8, max_iter=200, check_every=4)
    assert torch.equal(a.z, b.z) and torch.equal(a.iterations, b.iterations)
    assert a.nfe <= b.nfe < a.nfe + 4


def test_extra_state_rows_and_trailing_dims() -> None:
    """Graph latents ride along as extra rows with their graph's id; trailing dims are kept."""
    sizes = [3, 5]
    node_batch = _batch(sizes)
    batch = torch.cat([node_batch, torch.arange(2)])  # 8 node rows, then 2 graph rows
    gen = torch.Generator().manual_seed(0)
    W = 0.3 * torch.randn(2, 2, generator=gen, dtype=torch.float64)
    x = torch.randn(8, 3, 2, generator=gen, dtype=torch.float64)

    def f(z: torch.Tensor) -> torch.Tensor:
        h, g = z[:8], z[8:]
        pooled = torch.zeros(2, 3, 2, dtype=z.dtype).index_add_(0, node_batch, h) / 8
        h_new = torch.tanh(h @ W + x + g[node_batch])
        g_new = torch.tanh(0.5 * pooled)
        return torch.cat([h_new, g_new])

    z0 = torch.zeros(10, 3, 2, dtype=torch.float64)
    res = solve(f, z0, batch, tol=1e-12, max_iter=200, stop_mode="abs")
    assert res.converged.all() and res.z.shape == z0.shape
    assert torch.allclose(f(res.z), res.z, atol=1e-11)


def test_single_graph_without_batch_and_wrong_shape() -> None:
    res = solve(lambda z: 0.5 * z + 1.0, torch.zeros(4, 2, dtype=torch.float64), tol=1e-12,
                stop_mode="abs", max_iter=200)
    assert res.converged.shape == (1,) and torch.allclose(res.z, torch.full((4, 2), 2.0, dtype=torch.float64))
    with pytest.raises(ValueError, match="shaped like z0"):
        solve(lambda z: z[:2], torch.zeros(4, 2))


def test_result_never_aliases_z0() -> None:
    z0 = torch.zeros(3, 2)
    res = solve(lambda z: z, z0, method="picard", first_hit=True)
    res.z.add_(1.0)
    assert (z0 == 0).all()


def test_registry_and_clear_errors() -> None:
    assert {"picard", "anderson", "broyden"} <= set(available())
    assert get_solver("picard") is Picard
    with pytest.raises(ValueError, match="unknown solver 'newton'; available solvers: anderson, broyden"):
        solve(lambda z: z, torch.zeros(2, 2), method="newton")
    with pytest.raises(ValueError, match="valid options: tau"):
        solve(lambda z: z, torch.zeros(2, 2), method="picard", lam=1e-4)
    bad_calls = [
        (dict(tol=-1.0), "tol must be"),
        (dict(max_iter=0), "max_iter must be a positive integer"),
        (dict(stop_mode="max"), "stop_mode must be one of abs, rel"),
        (dict(check_every=0), "check_every"),
        (dict(method="anderson", m=0), "m \\(history window\\)"),
        (dict(method="anderson", beta=0.0), "beta"),
        (dict(method="anderson", lam=-1.0), "lam"),
        (dict(method="picard", tau=1.5), "tau"),
        (dict(method="broyden", m=-2), "memory"),
    ]
    for kwargs, message in bad_calls:
        with pytest.raises(ValueError, match=message):
            solve(lambda z: z, torch.zeros(2, 2), **kwargs)
    with pytest.raises(ValueError, match="one graph id per row"):
        solve(lambda z: z, torch.zeros(3, 2), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="batch ids must lie in"):
        solve(lambda z: z, torch.zeros(3, 2), torch.tensor([0, 1, 5]), num_graphs=2)
    with pytest.raises(ValueError, match="already registered"):
        register_solver("picard", type("Other", (Solver,), {}))
    with pytest.raises(TypeError, match="subclass of dear.solvers.Solver"):
        register_solver("not_a_solver", object)


def test_register_new_solver_is_one_class() -> None:
    @register_solver("halfstep_test")
    class HalfStep(Solver):
        def update(self, x, fx, r, step):
            return x + 0.5 * r

    try:
        assert "halfstep_test" in available()
        res = solve(lambda z: 0.5 * z + 1.0, torch.zeros(3, 2, dtype=torch.float64),
                    method="halfstep_test", tol=1e-10, stop_mode="abs", max_iter=500)
        assert res.converged.all() and res.method == "halfstep_test"
        assert torch.allclose(res.z, torch.full((3, 2), 2.0, dtype=torch.float64))
        # an instance can be passed directly too
        res2 = solve(lambda z: 0.5 * z + 1.0, torch.zeros(3, 2, dtype=torch.float64),
                     method=HalfStep(), tol=1e-10, stop_mode="abs", max_iter=500)
        assert res2.nfe == res.nfe
    finally:
        del solvers_base._REGISTRY["halfstep_test"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("method", METHODS)
def test_cuda_matches_cpu(method: str) -> None:
    f, z_star = _block_linear_map(SIZES, contraction=0.9, seed=9)
    batch = _batch(SIZES)
    cpu = solve(f, torch.zeros_like(z_star), batch, method=method, tol=1e-10, max_iter=300)
    def f_cuda(z: torch.Tensor) -> torch.Tensor:  # the map's tensors live on CPU
        return f(z.cpu()).cuda()

    gpu = solve(f_cuda, torch.zeros_like(z_star).cuda(), batch.cuda(), method=method, tol=1e-10,
                max_iter=300, num_graphs=len(SIZES))
    assert gpu.z.is_cuda and gpu.converged.all()
    assert torch.allclose(gpu.z.cpu(), cpu.z, atol=1e-9)
    assert torch.equal(gpu.iterations.cpu(), cpu.iterations)


def _restrictable_map(sizes: list[int], seed: int):
    """A block map with per-graph contraction (graphs converge at very different speeds), the
    rows each call evaluated, and ``restrict(graph_ids)``: the same map on those graphs only."""
    gen = torch.Generator().manual_seed(seed)
    blocks, biases = [], []
    for g, n in enumerate(sizes):
        k = n * HIDDEN
        A = torch.randn(k, k, generator=gen, dtype=torch.float64)
        blocks.append((0.3 + 0.65 * g / len(sizes)) * A / torch.linalg.matrix_norm(A, 2))
        biases.append(torch.randn(k, generator=gen, dtype=torch.float64))
    calls: list[int] = []

    def make(ids: list[int]):
        def f(z: torch.Tensor) -> torch.Tensor:
            calls.append(z.shape[0])
            out, off = [], 0
            for g in ids:
                k = sizes[g] * HIDDEN
                out.append(blocks[g] @ z.reshape(-1)[off:off + k] + biases[g])
                off += k
            return torch.cat(out).view_as(z)
        return f

    return make(list(range(len(sizes)))), (lambda ids: make(ids.tolist())), calls


@pytest.mark.parametrize("method", ["picard", "anderson"])
@pytest.mark.parametrize("first_hit", [False, True])
def test_compaction_drops_finished_graphs_without_changing_results(method: str, first_hit: bool) -> None:
    """With ``restrict`` the loop stops evaluating graphs that are done: identical answers,
    iterations, residuals and flags, and fewer rows evaluated."""
    sizes = [3, 9, 1, 14, 6, 5, 7, 2]
    f, restrict, calls = _restrictable_map(sizes, seed=4)
    batch = _batch(sizes)
    z0 = torch.zeros(sum(sizes), HIDDEN, dtype=torch.float64)
    kw = dict(method=method, tol=1e-8, max_iter=200, first_hit=first_hit)
    plain = solve(f, z0, batch, **kw)
    rows_plain = sum(calls)
    calls.clear()
    packed = solve(f, z0, batch, restrict=restrict, **kw)
    assert plain.converged.all() and len(set(plain.iterations.tolist())) > 3
    assert torch.equal(plain.iterations, packed.iterations) and packed.nfe == plain.nfe
    assert torch.equal(plain.converged, packed.converged) and torch.equal(plain.diverged, packed.diverged)
    assert torch.allclose(plain.z, packed.z, rtol=0, atol=1e-12)
    # a residual near tol 1e-8 is a difference of nearly equal states: summation order (other
    # row sets after compaction) moves it by eps * |f| / |r| ~ 1e-8 relative; the states agree to 1e-12
    assert torch.allclose(plain.residual, packed.residual, rtol=1e-6, atol=0)
    assert min(calls) < sum(sizes) and sum(calls) < rows_plain, (sum(calls), rows_plain)
    # no compaction where the solver cannot slice its state, or a trace is recorded
    calls.clear()
    solve(f, z0, batch, method="broyden", tol=1e-8, max_iter=200, restrict=restrict)
    assert min(calls) == sum(sizes)
    calls.clear()
    traced = solve(f, z0, batch, restrict=restrict, return_trace=True, **kw)
    assert min(calls) == sum(sizes) and traced.trace.shape[1] == len(sizes)
    with pytest.raises(ValueError, match="compact_below"):
        solve(f, z0, batch, restrict=restrict, compact_below=0.0, **kw)


def test_anderson_never_reads_a_window_slot_before_writing_it() -> None:
    """Step k may only mix slots 0..min(k, m-1), each written before (a zero slot read too
    early would bias the mix silently): poisoning the window with NaN after ``reset`` must
    change nothing, when the solve stops before the window fills, when it cycles, and when
    finished graphs are dropped (compaction)."""
    from dear.solvers import Anderson

    class Poisoned(Anderson):
        def reset(self, x0, batch, num_graphs):
            super().reset(x0, batch, num_graphs)
            self._targets.fill_(float("nan"))
            self._residuals.fill_(float("nan"))
            self._gram.fill_(float("nan"))  # every Gram entry a system reads must be written first

    f, _ = _block_linear_map(SIZES, contraction=0.9, seed=11)
    batch = _batch(SIZES)
    z0 = torch.zeros(sum(SIZES), HIDDEN, dtype=torch.float64)
    for tol, max_iter in ((1e-10, 60), (1e-2, 3)):  # window full and cycled / solve shorter than m
        ref = solve(f, z0, batch, method=Anderson(m=4), tol=tol, max_iter=max_iter)
        got = solve(f, z0, batch, method=Poisoned(m=4), tol=tol, max_iter=max_iter)
        assert torch.isfinite(got.z).all()
        torch.testing.assert_close(got.z, ref.z, rtol=0, atol=0)
        assert torch.equal(got.iterations, ref.iterations)

    # With compaction: a row-wise map whose graphs converge at different speeds (scale per graph).
    scale = torch.tensor([0.2, 0.9, 0.5, 0.95, 0.3], dtype=torch.float64)
    rate = scale.repeat_interleave(torch.tensor(SIZES)).unsqueeze(1)
    b = torch.randn(sum(SIZES), HIDDEN, generator=torch.Generator().manual_seed(3), dtype=torch.float64)

    def restrict(graph_ids: torch.Tensor):
        rows = torch.isin(batch, graph_ids)
        return lambda z: rate[rows] * torch.tanh(z) + b[rows]

    g = restrict(torch.arange(len(SIZES)))
    ref = solve(g, z0, batch, method=Anderson(m=4), tol=1e-9, max_iter=80, restrict=restrict)
    got = solve(g, z0, batch, method=Poisoned(m=4), tol=1e-9, max_iter=80, restrict=restrict)
    assert ref.converged.all() and len(set(ref.iterations.tolist())) > 1
    torch.testing.assert_close(got.z, ref.z, rtol=0, atol=0)


def test_anderson_iterates_match_a_textbook_anderson_per_graph() -> None:
    """The engine's iterates, graph by graph, against a dense single-graph Anderson written from
    the definition (window m, weights minimising ||sum_i a_i r_i||^2 + lam * mean_i ||r_i||^2 *
    ||a||^2 with sum_i a_i = 1, next iterate sum_i a_i f(x_i)). Catches a Gram entry that is
    missing or stale, e.g. <r_0, r_0> never stored, which skews the whole first window."""
    m, lam = 3, 1e-4
    f, _ = _block_linear_map(SIZES, contraction=0.9, seed=5)
    batch = _batch(SIZES)
    z0 = torch.zeros(sum(SIZES), HIDDEN, dtype=torch.float64)
    res = solve(f, z0, batch, method="anderson", m=m, lam=lam, tol=0.0, max_iter=8, return_trajectory=True)
    traj = torch.stack(list(res.trajectory))  # [T, rows, hidden]: the iterates f was evaluated at
    offsets = [0, *torch.tensor(SIZES).cumsum(0).tolist()]
    for g in range(len(SIZES)):
        rows = slice(offsets[g], offsets[g + 1])

        def f_g(z: torch.Tensor) -> torch.Tensor:
            full = torch.zeros_like(z0)
            full[rows] = z
            return f(full)[rows]  # block-diagonal: graph g's rows depend only on graph g's rows

        xs, fs, rs = [z0[rows]], [], []
        for _ in range(traj.shape[0] - 1):
            fx = f_g(xs[-1])
            fs, rs = (fs + [fx])[-m:], (rs + [fx - xs[-1]])[-m:]
            n = len(rs)
            gram = torch.stack([torch.stack([(a * b).sum() for b in rs]) for a in rs])
            system = torch.zeros(n + 1, n + 1, dtype=torch.float64)
            system[0, 1:] = system[1:, 0] = 1.0
            system[1:, 1:] = gram / gram.diagonal().mean() + lam * torch.eye(n, dtype=torch.float64)
            rhs = torch.zeros(n + 1, dtype=torch.float64)
            rhs[0] = 1.0
            alpha = torch.linalg.solve(system, rhs)[1:]
            xs.append(sum(a * fx_i for a, fx_i in zip(alpha, fs)))
        for t, x in enumerate(xs):
            torch.testing.assert_close(traj[t, rows], x, rtol=1e-9, atol=1e-9, msg=f"graph {g}, iterate {t}")


def _scripted_map(sizes: list[int]):
    """Per graph: 0 and 1 contract (0.1 z + 1: converge in a few evaluations); 2 moves by a
    scripted step s_k at its k-th evaluation (f(z) = z + s_k: abs residual |s_k| sqrt(rows D),
    lowest at the third evaluation); 3 contracts but turns NaN from the fourth evaluation on.
    Returns ``f`` and ``restrict`` sharing one call counter."""
    steps = [4.0, 2.0, 1.0, 3.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0]
    calls = [0]

    def make(ids: list[int]):
        def f(z: torch.Tensor) -> torch.Tensor:
            k = calls[0]
            calls[0] += 1
            out, off = [], 0
            for g in ids:
                zg = z[off:off + sizes[g]]
                off += sizes[g]
                if g == 2:
                    out.append(zg + steps[k])
                elif g == 3:
                    out.append(0.9 * zg + 1.0 if k < 3 else zg * float("nan"))
                else:
                    out.append(0.1 * zg + 1.0)
            return torch.cat(out)
        return f

    def restrict(ids: torch.Tensor):
        calls.append(ids.tolist())  # the subsets compaction asked for, after the counter
        return make(ids.tolist())

    return make(list(range(len(sizes)))), restrict, calls


@pytest.mark.parametrize("first_hit", [False, True])
@pytest.mark.parametrize("compact", [False, True])
def test_a_graph_that_never_converges_returns_its_lowest_residual_iterate(first_hit: bool, compact: bool) -> None:
    """As torchdeq's solvers: a graph that does not converge (cap reached, or NaN later)
    returns its lowest-residual iterate (its image unless ``first_hit``) and that residual, not
    its last iterate; converged graphs are unchanged; ``return_best=False`` keeps the last."""
    sizes = [2, 3, 2, 4]
    batch = _batch(sizes)
    z0 = torch.zeros(sum(sizes), HIDDEN, dtype=torch.float64)
    kw = dict(method="picard", tol=1e-3, max_iter=8, stop_mode="abs", first_hit=first_hit)
    f, restrict, calls = _scripted_map(sizes)
    res = solve(f, z0, batch, restrict=restrict if compact else None, **kw)
    subsets = calls[1:]
    calls[:] = [0]
    last = solve(f, z0, batch, return_best=False, **kw)
    assert res.converged.tolist() == [True, True, False, False] and res.diverged.tolist() == [False, False, False, True]
    g2, g3 = batch == 2, batch == 3
    # graph 2: Picard iterates x_k = 0, 4, 6, 7, 10, ...; its third evaluation (of x_2 = 6) is
    # the lowest residual, |s_2| = 1 per entry; its image is 7
    assert torch.equal(res.z[g2], torch.full_like(res.z[g2], 6.0 if first_hit else 7.0))
    assert res.residual[2].item() == pytest.approx((sizes[2] * HIDDEN) ** 0.5)
    assert last.z[g2].max().item() > 20.0 and last.residual[2].item() > 5 * res.residual[2].item()
    # graph 3: contracting for 3 evaluations (residual falling), then NaN: its third iterate
    x = [0.0, 1.0, 1.9]
    assert torch.allclose(res.z[g3], torch.full_like(res.z[g3], x[2] if first_hit else 0.9 * x[2] + 1.0))
    assert torch.isfinite(res.residual[3])
    ok = ~(g2 | g3)
    assert torch.allclose(res.z[ok], last.z[ok], rtol=0, atol=1e-12)
    assert torch.equal(res.iterations, last.iterations)
    # compacted (more than once) down to graph 2 alone, its best iterate carried along
    assert (bool(subsets) and subsets[-1] == [2]) == compact, subsets
