"""Tests of the learned (IGNN-Solver) solver: the alpha constraint for every window size, the
sparsifier, that solver training never changes the model, that on a trained small IGNN it
reaches a residual in fewer evaluations than Picard and Anderson, that the fallback rescues a
bad learned solve, save/load, per-graph independence, and the CLI wiring. One thread, tiny
graphs (well under a minute)."""

from __future__ import annotations

import copy
import io
import json

import pytest
import torch
import torch.nn.functional as F

from dear.learned.networks import sparsify_edges
from dear.learned.problems import ignn_problems
from dear.learned.schedule import AlternatingSchedule, model_parameters
from dear.learned.training import SolverTrainConfig, SolverTrainer
from dear.nodecls import load_dataset
from dear.nodecls.ignn import IGNN
from dear.solvers import available, solve
from dear.solvers.learned import LearnedSolver, LearnedSolverNN, learned_solvers



def tiny_sbm(num_nodes: int = 400):
    return load_dataset("sbm", num_nodes=num_nodes, num_classes=3, num_features=8, avg_degree=6, val_size=50,
                        split=10, seed=0)


def _train_ignn(data, epochs: int = 30, **opts) -> IGNN:
    torch.manual_seed(0)
    model = IGNN(8, 3, hidden=32, kappa=0.95, tol=1e-6, **opts)
    opt = torch.optim.Adam(model_parameters(model), lr=0.02)
    for _ in range(epochs):
        model.train()
        opt.zero_grad()
        out = model(data.x, data.edge_index)
        F.cross_entropy(out[data.train_mask], data.y[data.train_mask]).backward()
        opt.step()
        model.project_()
    model.eval()
    return model


@pytest.fixture(scope="module")
def trained():
    """A small IGNN trained 30 epochs (its untrained learned solver runs Anderson), then its
    solver fitted 30 steps on the frozen model (enough: 20 give the same evaluation counts)."""
    data = tiny_sbm()
    model = _train_ignn(data, solver="learned")
    cfg = SolverTrainConfig(lr=3e-3)
    trainer = SolverTrainer(model, learned_solvers(model), cfg, planned_steps=30)
    probs = ignn_problems(model, data.x, data.edge_index, cfg)
    trainer.fit(lambda: probs, 30)
    return data, model


def _layer_map(model: IGNN, x: torch.Tensor):
    layer, adj = model.layers[0], model._adj
    with torch.no_grad():
        b = layer.inject(x, adj)
    return layer, adj, b, (lambda z: layer.eq.f(z, b, adj))


def _randomise_head(solver: LearnedSolver, seed: int = 0, scale: float = 0.5) -> None:
    g = torch.Generator().manual_seed(seed)
    last = solver.predictor.head[2]
    with torch.no_grad():
        last.weight.copy_(torch.randn(last.weight.shape, generator=g) * scale)
        last.bias.copy_(torch.randn(last.bias.shape, generator=g) * scale)


# --------------------------------------------------------------------------- the update


@pytest.mark.parametrize("cls", [LearnedSolver, LearnedSolverNN])
@pytest.mark.parametrize("alpha_base", ["anderson", "last"])
def test_alpha_sums_to_one_for_every_window_size(cls, alpha_base):
    torch.manual_seed(1)
    m, n_graphs = 3, 3
    batch = torch.tensor([0] * 5 + [1] * 4 + [2] * 6)
    edge_index = torch.tensor([[0, 1, 2, 5, 6, 9, 10, 11], [1, 2, 3, 6, 7, 10, 11, 12]])
    solver = cls(6, 6, m=m, steps=20, alpha_base=alpha_base)
    _randomise_head(solver)
    solver.use_learned = True
    feats = torch.randn(15, 6)
    solver.bind(feats, edge_index, batch=batch, num_graphs=n_graphs)
    x = torch.randn(15, 6)
    solver.reset(x, batch, n_graphs)
    with torch.no_grad():
        for k in range(7):
            fx = torch.tanh(x @ torch.randn(6, 6) * 0.3 + 1.0)
            x_next = solver.update(x, fx, fx - x, k)
            alpha = solver.last_alpha
            assert alpha.shape == (n_graphs, min(k, m) + 1)
            torch.testing.assert_close(alpha.sum(dim=1), torch.ones(n_graphs), atol=1e-5, rtol=0)
            assert torch.isfinite(x_next).all()
            if k >= 2:  # the (randomised) network really moves alpha off its base
                base = torch.zeros_like(alpha)
                base[:, -1] = 1.0
                if alpha_base == "last":
                    assert (alpha - base).abs().max() > 1e-3
            assert ((solver.last_beta > 0) & (solver.last_beta < 2.0)).all()
            x = x_next


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_states_solve_like_float32(dtype):
    """Every engine solver takes float16 / bfloat16 states (docs/engine.md); the learned one
    raised a dtype error in its compressor and head (their float32 norms and Gram features met
    half-precision weights). It must solve as in float32, counting a graph's 300 rows exactly
    (a bfloat16 count stops at 256) for the compressor's RMS scaling."""
    torch.manual_seed(0)
    n, d = 300, 16
    chain = torch.stack([torch.arange(n - 1), torch.arange(1, n)])
    ei = torch.cat([chain, chain.flip(0)], dim=1)
    a, u = torch.randn(d, d) * 0.3, torch.randn(n, d)
    ref_solver = LearnedSolver(d, d, steps=4, init_activation="none")
    _randomise_head(ref_solver, seed=1, scale=0.3)
    ref_solver.use_learned = True
    results = {}
    for dt in (torch.float32, dtype):
        solver = copy.deepcopy(ref_solver).to(dt)
        ad = a.to(dt)
        solver.bind(u.to(dt), ei)
        res = solve(lambda z, _a=ad: torch.tanh(z @ _a + 0.5), solver.initial_state(), method=solver, tol=2e-2,
                    max_iter=50)
        assert res.z.dtype == dt and bool(res.converged.all()) and res.nfe > solver.steps, dt
        assert float(solver._rows_per_graph[0]) == n
        results[dt] = res
    assert abs(results[dtype].nfe - results[torch.float32].nfe) <= 2
    torch.testing.assert_close(results[dtype].z.float(), results[torch.float32].z, atol=5e-2, rtol=0)


def test_untrained_solver_is_its_fallback_and_learned_steps_follow_algorithm_1():
    """Untrained: zero start and plain Anderson (identical to the engine's). Forced on with a
    zero head and alpha_base='last': each learned step is z + beta * g with beta = 1 (Picard)."""
    torch.manual_seed(0)
    a = torch.randn(12, 12, dtype=torch.float64) * 0.2
    f = lambda z: torch.tanh(z @ a.to(z.dtype) + 0.5)  # noqa: E731
    solver = LearnedSolver(12, 12, alpha_base="last")
    solver.bind(torch.randn(7, 12), torch.tensor([[0, 1], [1, 2]]))
    assert not solver.learned_active and (solver.initial_state() == 0).all()
    z0 = torch.zeros(7, 12, dtype=torch.float64)
    ref = solve(f, z0, method="anderson", m=6, tol=1e-10, max_iter=100)  # 6 stored, as learned m=5
    got = solve(f, z0, method=solver, tol=1e-10, max_iter=100)
    assert got.nfe == ref.nfe
    torch.testing.assert_close(got.z, ref.z, atol=1e-9, rtol=1e-9)
    solver.use_learned = True
    pic = solve(f, torch.zeros(7, 12), method="picard", tol=0.0, max_iter=solver.steps + 1)
    lrn = solve(f, torch.zeros(7, 12), method=solver, tol=0.0, max_iter=solver.steps + 1)
    # The initializer's output layer starts at zero and its skip is the identity: relu(0) = 0 start.
    torch.testing.assert_close(lrn.z, pic.z, atol=1e-6, rtol=1e-6)


def test_predictor_input_layer_and_compressor_scale_equal_their_concatenated_forms():
    """The predictor applies its input layer slot by slot and the compressor scales after its
    first layer (no window stack, no scaled copy of the residual): both must equal the plain
    layers on the concatenated row ``[empty slots 0 | c_1 .. c_k | validity mask]`` and on
    ``r * scale``, for every window fill, with gradients."""
    from dear.learned.networks import AlphaBetaPredictor, ResidualCompressor

    g = torch.Generator().manual_seed(0)
    m, p, n = 4, 5, 23
    pred = AlphaBetaPredictor(m, p, hidden=8).double()
    w = m + 1
    for k in range(1, w + 1):
        comps = [torch.randn(n, p, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(k)]
        row = torch.cat([torch.zeros(n, (w - k) * p, dtype=torch.float64), *comps,
                         (torch.arange(w) >= w - k).double().expand(n, -1)], dim=1)
        ref = F.relu(pred.inp(row))
        got = pred.input_layer(comps)
        torch.testing.assert_close(got, ref)
        gr = torch.autograd.grad(ref.square().sum(), comps + [pred.inp.weight])
        gg = torch.autograd.grad(got.square().sum(), comps + [pred.inp.weight])
        for a, b in zip(gg, gr):
            torch.testing.assert_close(a, b)
        with torch.no_grad():  # the in-place accumulation of inference
            torch.testing.assert_close(pred.input_layer(comps), ref.detach())

    comp = ResidualCompressor(7, channels=3, hidden=6).double()
    r = torch.randn(n, 7, generator=g, dtype=torch.float64)
    scale = torch.rand(n, generator=g, dtype=torch.float64) * 1e3
    torch.testing.assert_close(comp(r, scale), comp.net(r * scale.unsqueeze(1)))
    torch.testing.assert_close(comp(r), comp.net(r))


@pytest.mark.parametrize("activation", ["relu", "none"])
@pytest.mark.parametrize("in_dim", [16, 12])
def test_initializer_inference_path_equals_the_differentiable_one(activation, in_dim):
    """The no-grad initializer (fused, in place) computes what the training path does."""
    from dear.learned.networks import Initializer

    torch.manual_seed(0)
    init = Initializer(in_dim, 16, 4, activation)
    for prm in init.parameters():
        torch.nn.init.normal_(prm)
    u = torch.randn(40, in_dim)
    trained = init(u)
    with torch.no_grad():
        fused = init(u)
    assert torch.allclose(trained, fused, atol=1e-5) and not torch.equal(trained, torch.zeros_like(trained))
    if activation == "relu":
        assert (fused >= 0).all() and (fused == 0).any()


def test_sparsifier_keeps_symmetry_coverage_and_the_fraction():
    data = tiny_sbm(200)
    ei, n = data.edge_index, data.num_nodes
    sp = sparsify_edges(ei, n, keep=0.4)
    e = ei.shape[1]
    assert 0.4 * e <= sp.shape[1] <= 0.6 * e
    pairs = {(int(a), int(b)) for a, b in sp.t()}
    assert all((b, a) in pairs for a, b in pairs)  # undirected stays undirected
    had_in = torch.zeros(n, dtype=torch.bool).index_fill_(0, ei[1], True)
    keeps_in = torch.zeros(n, dtype=torch.bool).index_fill_(0, sp[1], True)
    assert (keeps_in | ~had_in).all()  # no node loses all its in-edges
    assert torch.equal(sp, sparsify_edges(ei, n, keep=0.4))  # deterministic
    # Edges at low-degree nodes outrank hub-hub edges.
    deg = torch.bincount(ei[1], minlength=n).float()
    kept_score = (1 / deg[sp[0]] + 1 / deg[sp[1]]).mean()
    all_score = (1 / deg[ei[0]] + 1 / deg[ei[1]]).mean()
    assert kept_score > all_score
    assert sparsify_edges(ei, n, keep=1.0).shape[1] == e
    with pytest.raises(ValueError, match="keep"):
        sparsify_edges(ei, n, keep=0.0)
    with pytest.raises(ValueError, match="valid: resistance"):
        sparsify_edges(ei, n, method="rpi")


# ----------------------------------------------------------------------------- training


def test_solver_training_never_changes_the_model():
    data = tiny_sbm(150)
    model = _train_ignn(data, epochs=3, solver="learned")
    solver = model.layers[0].learned_solver
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    solver_names = {n for n, p in model.named_parameters() if any(p is q for q in solver.parameters())}
    assert solver_names and len(solver_names) < len(before)
    trainer = SolverTrainer(model, [solver], SolverTrainConfig(lr=1e-2), planned_steps=4)
    probs = ignn_problems(model, data.x, data.edge_index)
    trainer.fit(lambda: probs, 4)
    for n, p in model.named_parameters():
        if n in solver_names:
            continue
        assert torch.equal(p, before[n]), n
        assert p.requires_grad, n  # restored after the fit
    assert any(not torch.equal(p, before[n]) for n, p in model.named_parameters() if n in solver_names)
    assert bool(solver.trained) and trainer.step == 4 and trainer.seconds > 0
    assert all(id(p) not in {id(q) for q in solver.parameters()} for p in model_parameters(model))
    # an unroll past K would train learned steps that inference never runs
    with pytest.raises(ValueError, match=f"unroll {solver.steps + 1} exceeds the learned solver's K"):
        SolverTrainer(model, [solver], SolverTrainConfig(unroll=solver.steps + 1), planned_steps=4)


def test_node_classification_defaults_unroll_two_steps_and_the_light_schedule():
    """IGNN's schedule fills what the user leaves unset from NODECLS_TRAINING_DEFAULTS (DEAR
    keeps SolverTrainConfig's), the user's values win, and the trainer really unrolls 2 steps."""
    from dear.learned.nodecls import NODECLS_TRAINING_DEFAULTS, NodeClsSchedule

    data = load_dataset("sbm", num_nodes=120, num_classes=3, num_features=8, val_size=20, split=10)
    model = IGNN(8, 3, hidden=12, solver="learned").eval()
    sched = NodeClsSchedule(model, data.x, data.edge_index, {}, epochs=300).schedule
    cfg = sched.cfg
    assert (cfg.first_steps, cfg.every, cfg.steps, cfg.unroll) == (8, 100, 2, 2) == tuple(
        NODECLS_TRAINING_DEFAULTS[k] for k in ("first_steps", "every", "steps", "unroll"))
    assert cfg.final_steps == SolverTrainConfig().final_steps and cfg.final_fresh
    assert cfg.max_share == NODECLS_TRAINING_DEFAULTS["max_share"] == 0.05
    assert SolverTrainConfig().unroll is None and SolverTrainConfig().first_steps == 30  # DEAR's stay
    assert SolverTrainConfig().max_share is None
    mine = NodeClsSchedule(model, data.x, data.edge_index, {"unroll": None, "first_steps": 5, "max_share": None},
                           epochs=300).schedule.cfg
    assert mine.unroll is None and mine.first_steps == 5 and mine.every == 100 and mine.max_share is None

    calls = []
    solver = learned_solvers(model)[0]
    original = solver.propose

    def counting(*a, **k):
        calls.append(1)
        return original(*a, **k)

    solver.propose = counting
    sched._fit(1)
    assert len(calls) == 2  # one solver step = the 2 unrolled learned updates, not K = 6
    assert solver.steps == 6


def test_final_fit_restarts_adam_and_the_loss_weight_ramp():
    data = tiny_sbm(150)
    model = _train_ignn(data, epochs=2, solver="learned")
    probs = ignn_problems(model, data.x, data.edge_index)
    cfg = SolverTrainConfig(warmup_epochs=1, first_steps=3, every=1, steps=2, final_steps=4, rec_weight=0.1,
                            alpha_weight=1e-3, ramp=0.2)
    schedule = AlternatingSchedule(model, lambda: probs, cfg.to_dict(), total=3)
    schedule.after_step(1)  # first fit
    schedule.after_step(2)  # a fine-tune
    trainer = schedule.trainer
    before = trainer.optimizer
    assert before.state and trainer.weights()[0] == pytest.approx(0.1)  # ramped up, moments held
    seen = []
    fit = trainer.fit
    trainer.fit = lambda problems, steps, budget=None: (seen.append((trainer.weights(), len(trainer.optimizer.state))),
                                                        fit(problems, steps, budget))[1]
    schedule.finish()
    (lam1, _, lam3), moments = seen[0]
    assert trainer.optimizer is not before and moments == 0  # fresh Adam for the shipped solver
    assert lam1 == 0.0 and lam3 == pytest.approx(1e-3)  # the ramp starts again over final_steps
    assert trainer.phase_start == 5 and trainer.phase_len == 4 and trainer.step == 9
    # final_fresh=False keeps the fine-tunes' optimiser (the behaviour before 2026-11-30)
    model2 = _train_ignn(data, epochs=2, solver="learned")
    probs2 = ignn_problems(model2, data.x, data.edge_index)
    kept = AlternatingSchedule(model2, lambda: probs2, {**cfg.to_dict(), "final_fresh": False}, total=3)
    kept.after_step(1)
    opt = kept.trainer.optimizer
    kept.finish()
    assert kept.trainer.optimizer is opt and kept.trainer.phase_start == 0


def test_zero_warmup_still_runs_the_first_fit(monkeypatch):
    """The hooks run after model steps 1, 2, ...: warmup_epochs=0 must run the first fit
    (first_steps) after step 1, not skip it and fine-tune with `steps` only at `every`. A
    warm-up of 2 is unchanged: first fit after step 2, fine-tunes every `every` after it."""
    model = IGNN(8, 3, hidden=12, solver="learned").eval()
    for warmup, expected in ((0, [(1, 3), (5, 1), (10, 1)]), (2, [(2, 3), (7, 1)])):
        sched = AlternatingSchedule(model, lambda: [], {"warmup_epochs": warmup, "first_steps": 3, "every": 5,
                                                        "steps": 1}, total=10)
        monkeypatch.setattr(sched, "_fit", lambda steps, budget=None: {"steps": steps})  # record, do not fit
        ran = [(e, sched.after_step(e)) for e in range(1, 11)]
        assert [(e, r["steps"]) for e, r in ran if r] == expected, warmup


class _TickClock:
    """A clock that advances one second per reading (makes the budget arithmetic exact)."""

    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        self.now += 1.0
        return self.now


def test_solver_fit_stops_before_the_step_that_would_cross_its_budget(monkeypatch):
    import dear.learned.training as training

    data = tiny_sbm(120)
    model = _train_ignn(data, epochs=1, solver="learned")
    probs = ignn_problems(model, data.x, data.edge_index)
    trainer = SolverTrainer(model, learned_solvers(model), SolverTrainConfig(), planned_steps=10)
    monkeypatch.setattr(training, "time", _TickClock())
    # Each step reads the clock three times and lasts 1 s on this clock: the check before step k
    # (k >= 2) sees 3k - 2 elapsed + 1 s for the next step, so a 5.5 s budget allows exactly 2.
    rec = trainer.fit(lambda: probs, 10, budget=5.5)
    assert rec["steps_run"] == 2 and rec["stopped_by_budget"] and trainer.step == 2
    rec = trainer.fit(lambda: probs, 3, budget=100.0)
    assert rec["steps_run"] == 3 and not rec["stopped_by_budget"] and trainer.step == 5


def test_max_share_caps_the_last_fit_and_reports_it():
    data = tiny_sbm(150)
    cfg = {"warmup_epochs": 1, "first_steps": 3, "every": 100, "steps": 1, "final_steps": 4, "max_share": 0.05}
    model = _train_ignn(data, epochs=1, solver="learned")
    probs = ignn_problems(model, data.x, data.edge_index)
    sched = AlternatingSchedule(model, lambda: probs, cfg, total=2)
    sched.after_step(1)
    spent = sched.trainer.seconds
    # The model trained for less than the first fit took / 0.05: no time left, no last fit.
    before = [p.detach().clone() for p in learned_solvers(model)[0].parameters()]
    sched.finish(train_seconds=sched.in_loop_seconds + spent)  # model seconds = spent -> budget < 0
    assert sched.last_fit == {"planned_steps": 4, "steps": 0, "budget_seconds": pytest.approx(0.05 * spent - spent),
                              "stopped_by_budget": True}
    assert sched.trainer.step == 3
    assert all(torch.equal(a, b) for a, b in zip(before, learned_solvers(model)[0].parameters()))
    rep = sched.report(sched.in_loop_seconds + spent)
    assert rep["last_fit"]["steps"] == 0 and rep["config"]["max_share"] == 0.05
    # A long model training leaves room for every planned step.
    sched.finish(train_seconds=1e6)
    assert sched.last_fit["steps"] == 4 and not sched.last_fit["stopped_by_budget"] and sched.trainer.step == 7
    with pytest.raises(ValueError, match="max_share needs the model's training seconds"):
        sched.finish()
    for bad in (0, 1.5, True, "0.05"):
        with pytest.raises(ValueError, match="max_share must lie in"):
            SolverTrainConfig.from_dict({"max_share": bad})


def test_trained_learned_solver_needs_fewer_evaluations_than_picard_and_anderson(trained):
    data, model = trained
    layer, adj, b, f = _layer_map(model, data.x)
    tol = 1e-5
    picard = solve(f, torch.zeros_like(b), method="picard", tol=tol, max_iter=500)
    anderson = solve(f, torch.zeros_like(b), method="anderson", tol=tol, max_iter=500)
    solver = layer.learned_solver
    solver.bind(b, adj.indices(), transpose=True)
    learned = solve(f, solver.initial_state(), method=solver, tol=tol, max_iter=500)
    solver.release()
    assert picard.all_converged and anderson.all_converged and learned.all_converged
    assert learned.nfe < anderson.nfe < picard.nfe, (learned.nfe, anderson.nfe, picard.nfe)
    # The answer is the same fixed point.
    torch.testing.assert_close(learned.z, anderson.z, atol=1e-3, rtol=1e-3)


def test_fallback_makes_a_failed_learned_solve_converge(trained):
    data, model = trained
    layer, adj, b, f = _layer_map(model, data.x)
    for fallback in ("anderson", "picard"):
        solver = copy.deepcopy(layer.learned_solver)
        solver.fallback = fallback
        with torch.no_grad():  # sabotage: beta ~ 1e-4, the learned steps barely move
            solver.predictor.head[2].bias[-1] = -12.0
        solver.bind(b, adj.indices(), transpose=True)
        z0 = solver.initial_state()
        only_learned = solve(f, z0, method=solver, tol=1e-5, max_iter=solver.steps + 1)
        assert not only_learned.all_converged
        solver.reset_counters()
        rescued = solve(f, z0, method=solver, tol=1e-5, max_iter=500)
        assert rescued.all_converged, fallback
        assert bool(solver.fallback_graphs(rescued).all())
        assert solver.solves == 1 and solver.fallback_solves == 1


def test_save_load_round_trip_gives_identical_outputs(trained):
    data, model = trained
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    buf.seek(0)
    clone = IGNN(8, 3, hidden=32, kappa=0.95, tol=1e-6, solver="learned")
    assert not bool(clone.layers[0].learned_solver.trained)
    clone.load_state_dict(torch.load(buf, weights_only=True))
    clone.eval()
    assert bool(clone.layers[0].learned_solver.trained)
    with torch.no_grad():
        a = model(data.x, data.edge_index)
        nfe_a = model.solver_stats()[0]["forward_nfe"]
        b = clone(data.x, data.edge_index)
        nfe_b = clone.solver_stats()[0]["forward_nfe"]
    assert torch.equal(a, b) and nfe_a == nfe_b
    assert any(k.endswith("predictor.head.2.weight") for k in model.state_dict())


def test_graphs_of_a_batch_are_solved_independently():
    torch.manual_seed(3)
    sizes = [6, 9]
    blocks = [torch.randn(n, n).abs() for n in sizes]
    blocks = [bl / bl.sum(1, keepdim=True) * 0.8 for bl in blocks]
    w = torch.randn(5, 5) * 0.3
    inj = torch.randn(sum(sizes), 5)
    a_full = torch.block_diag(*blocks)
    edge_index = (a_full > 0).nonzero().t()
    batch = torch.tensor([0] * sizes[0] + [1] * sizes[1])
    solver = LearnedSolver(5, 5, init_activation="none")
    _randomise_head(solver, scale=0.3)
    solver.use_learned = True

    def run(rows: slice, ei, b, ng):
        a = a_full[rows][:, rows]
        f = lambda z: torch.tanh(a @ z @ w + inj[rows])  # noqa: E731
        solver.bind(inj[rows], ei, batch=b, num_graphs=ng)
        res = solve(f, solver.initial_state(), b, method=solver, tol=1e-6, max_iter=200, num_graphs=ng)
        solver.release()
        return res

    both = run(slice(0, 15), edge_index, batch, 2)
    first = run(slice(0, 6), edge_index[:, edge_index[0] < 6], None, 1)
    ei2 = edge_index[:, edge_index[0] >= 6] - 6
    second = run(slice(6, 15), ei2, None, 1)
    torch.testing.assert_close(both.z[:6], first.z, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(both.z[6:], second.z, atol=1e-5, rtol=1e-5)
    assert both.iterations.tolist() == [first.iterations.item(), second.iterations.item()]


def test_registry_and_clear_errors():
    assert {"learned", "learned_nn"} <= set(available())
    with pytest.raises(ValueError, match="sized to a model"):
        solve(lambda z: z * 0.5, torch.zeros(3, 2), method="learned")
    with pytest.raises(ValueError, match="graph-free"):
        LearnedSolverNN(4, 4, graph=True)
    with pytest.raises(ValueError, match="valid options"):
        IGNN(8, 3, solver="learned", solver_options={"window": 3})
    solver = LearnedSolver(4, 4)
    solver.use_learned = True
    with pytest.raises(RuntimeError, match="bind"):
        solve(lambda z: z * 0.5, torch.zeros(3, 4), method=solver)
    with pytest.raises(ValueError, match="classic"):
        LearnedSolver(4, 4, fallback="learned")
    with pytest.raises(ValueError, match="unknown solver-training option"):
        SolverTrainConfig.from_dict({"T1": 3})
    for bad in (0, -2, 1.5, True):  # 0 would silently mean K, a negative unroll no learned update
        with pytest.raises(ValueError, match="unroll must be an integer >= 1"):
            SolverTrainConfig.from_dict({"unroll": bad})


def test_equal_accuracy_speedups_pick_the_fastest_point_within_the_margin():
    from dear.pareto import equal_accuracy_speedups

    curves = {
        "picard": [{"test_accuracy": 70.0, "seconds": 1.0, "nfe": 10}, {"test_accuracy": 71.0, "seconds": 4.0, "nfe": 40}],
        "learned": [{"test_accuracy": 69.0, "seconds": 0.2, "nfe": 2}, {"test_accuracy": 70.6, "seconds": 0.5, "nfe": 5},
                    {"test_accuracy": 71.0, "seconds": 0.9, "nfe": 9}],
        "bad": [{"test_accuracy": 60.0, "seconds": 0.1, "nfe": 1}],
    }
    eq = equal_accuracy_speedups(curves, margin=0.5)
    assert eq["reference_accuracy"] == 71.0
    assert eq["solvers"]["picard"]["seconds"] == 4.0  # 70.0 is not within 0.5 of 71.0
    assert eq["solvers"]["learned"]["seconds"] == 0.5
    assert eq["solvers"]["learned"]["speedup_vs_picard"] == pytest.approx(8.0)
    assert eq["solvers"]["learned"]["nfe_ratio_vs_picard"] == pytest.approx(8.0)
    assert eq["solvers"]["bad"] is None


# ------------------------------------------------------------------------------- the CLI


def test_nodecls_cli_trains_with_the_alternating_schedule(tmp_path, capsys):
    from dear.cli import main

    out = tmp_path / "run"
    rc = main(["nodecls", "train", "--dataset", "sbm", "--data-opt", "num_nodes=150", "--data-opt", "num_classes=3",
               "--data-opt", "num_features=8", "--data-opt", "val_size=30", "--split", "10", "--solver", "learned",
               "--hidden", "16", "--seeds", "1", "--epochs", "12", "--patience", "12", "--solver-opt", "steps=3",
               "--solver-train", "warmup_epochs=4", "--solver-train", "every=4", "--solver-train", "first_steps=3",
               # max_share=null: exact step counts below (the default 5% cap would cut this tiny run by the clock)
               "--solver-train", "steps=2", "--solver-train", "final_steps=2", "--solver-train", "max_share=null",
               "--timing-repeats", "2",
               "--quiet", "--out", str(out)])
    assert rc == 0
    line = capsys.readouterr().out
    assert "[learned]" in line and "solver training" in line and "fallback in" in line
    res = json.loads((out / "results.json").read_text())
    assert res["solver"] == "learned" and res["config"]["solver_training"]["every"] == 4
    rec = res["per_seed"][0]["learned_solver"]
    # first fit at epoch 4, fine-tunes at 8 and 12, final fit: 3 + 2 + 2 + 2 solver steps.
    assert rec["solver_steps"] == 9 and rec["fits"] == 4
    assert rec["last_fit"]["planned_steps"] == 2
    # A cap the first fit alone exceeds: the last fit is skipped, and the summary line says so.
    capped = tmp_path / "capped"
    assert main(["nodecls", "train", "--dataset", "sbm", "--data-opt", "num_nodes=150", "--data-opt", "num_classes=3",
                 "--data-opt", "num_features=8", "--data-opt", "val_size=30", "--split", "10", "--solver", "learned",
                 "--hidden", "16", "--seeds", "1", "--epochs", "6", "--patience", "6", "--solver-train",
                 "warmup_epochs=2", "--solver-train", "first_steps=2", "--solver-train", "max_share=0.0001",
                 "--timing-repeats", "1", "--quiet", "--out", str(capped)]) == 0
    assert "last fit cut to 0 of 30 steps by the 0.01% cap in 1 seed(s)" in capsys.readouterr().out
    last = json.loads((capped / "results.json").read_text())["per_seed"][0]["learned_solver"]["last_fit"]
    assert last["steps"] == 0 and last["stopped_by_budget"] and last["budget_seconds"] < 0
    assert 0 < rec["fraction_of_model_training"] < 10
    inf = rec["inference"]
    assert inf["solves"] >= 2 and 0.0 <= inf["fallback_rate"] <= 1.0 and inf["trained"] == [True]
    weights = torch.load(out / "seeds" / "seed_0.pt", weights_only=True)
    assert bool(weights["layers.0.eq.method.trained"])

    # `dear pareto nodecls` on that run: the same model under each solver, JSON (+ PNG).
    pdir = tmp_path / "pareto"
    assert main(["pareto", "nodecls", str(out), "--solvers", "picard,anderson,learned_nn,learned",
                 "--tols", "1e-2,1e-5", "--repeats", "1", "--out", str(pdir)]) == 0
    par = json.loads((pdir / "pareto.json").read_text())
    assert set(par["curves"]) == {"picard", "anderson", "learned_nn", "learned"} and par["trained_with"] == "learned"
    for name, pts in par["curves"].items():
        assert [p["tol"] for p in pts] == [1e-2, 1e-5] and all(p["seconds"] > 0 for p in pts)
        assert pts[-1]["converged"] and pts[-1]["nfe"] >= pts[0]["nfe"]
    assert par["solver_training_post_hoc"]["learned_nn"][0]["steps"] > 0  # trained on the frozen model
    eq = par["equal_accuracy"]["solvers"]
    assert eq["picard"]["speedup_vs_picard"] == pytest.approx(1.0)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        pass
    else:
        assert (pdir / "pareto.png").stat().st_size > 1000
    # The same model and solver on a larger graph of the generator (the 1M-node scale check).
    from dear.pareto import _load_nodecls, nodecls_pareto

    assert _load_nodecls(out, torch.device("cpu"), {"num_nodes": 300})[2].num_nodes == 300
    big = nodecls_pareto(out, solvers=("picard", "learned"), tols=(1e-5,), repeats=1, warmup=0, plot=False,
                         out=tmp_path / "big", dataset_options={"num_nodes": 300})
    assert big["dataset_options"]["num_nodes"] == 300 and big["evaluated_off_training_graph"]
    assert all(c[0]["converged"] and c[0]["nfe"] > 0 for c in big["curves"].values())
    assert par["dataset_options"]["num_nodes"] == 150 and not par["evaluated_off_training_graph"]
    with pytest.raises(SystemExit):
        main(["nodecls", "train", "--dataset", "sbm", "--solver", "newton", "--out", str(tmp_path / "x")])
    assert main(["pareto", "nodecls", str(tmp_path / "nothing")]) == 2
    assert main(["nodecls", "train", "--dataset", "sbm", "--solver", "picard", "--solver-train", "steps=2",
                 "--out", str(tmp_path / "y")]) == 2
    assert "need a learned solver" in capsys.readouterr().err


def test_pareto_times_every_point_interleaved(tmp_path, monkeypatch, capsys):
    """Each timing round visits every (solver, tolerance) point once, in alternating order, so
    a drifting machine speed cannot favour the solver timed last; bad timing options are a
    one-line error."""
    import dear.nodecls.train as nodecls_train
    from dear.cli import main
    from dear.pareto import nodecls_pareto

    out = tmp_path / "run"
    assert main(["nodecls", "train", "--dataset", "sbm", "--data-opt", "num_nodes=120", "--data-opt", "num_classes=3",
                 "--data-opt", "num_features=8", "--data-opt", "val_size=20", "--split", "10", "--hidden", "8",
                 "--seeds", "1", "--epochs", "3", "--timing-repeats", "1", "--quiet", "--out", str(out)]) == 0
    calls = []
    real = nodecls_train.time_inference

    def recording(model, x, edge_index, *, warmup=3, repeats=10):
        eq = model.layers[0].eq
        calls.append((eq.method, eq.tol, warmup, repeats))
        return real(model, x, edge_index, warmup=warmup, repeats=repeats)

    monkeypatch.setattr(nodecls_train, "time_inference", recording)
    res = nodecls_pareto(out, solvers=("picard", "anderson"), tols=(1e-2, 1e-5), repeats=3, warmup=1, plot=False,
                         out=tmp_path / "p")
    points = [("picard", 1e-2), ("picard", 1e-5), ("anderson", 1e-2), ("anderson", 1e-5)]
    assert [(c[0], c[1]) for c in calls[:4]] == points and all(c[2:] == (1, 0) for c in calls[:4])  # warm-ups
    rounds = [[(c[0], c[1]) for c in calls[4 + 4 * r: 8 + 4 * r]] for r in range(3)]
    assert rounds == [points, points[::-1], points] and all(c[2:] == (0, 1) for c in calls[4:])
    assert len(calls) == 16
    for name in ("picard", "anderson"):
        assert all(pt["seconds"] > 0 for pt in res["curves"][name])
    assert main(["pareto", "nodecls", str(out), "--repeats", "0", "--out", str(tmp_path / "q")]) == 2
    assert "repeats >= 1" in capsys.readouterr().err


# ---------------------------------------------------------------------------------- DEAR


def test_dear_with_a_learned_solver_trains_it_and_round_trips(tmp_path):
    import clrs_tasks as ct
    from dear.learned.problems import dear_problems
    from dear.reasoners import build_model

    ds = ct.load_split("bfs", "train", protocol="dear", root=tmp_path, num_samples=6, sizes=(5, 6),
                       progress=False, include_hints=False)
    batch = ct.collate([ds[i] for i in range(len(ds))])
    torch.manual_seed(0)
    model = build_model("dear", ds.spec, hidden=16, solver="learned", solver_options={"steps": 3}, max_iter=10)
    solver = model.learned_solver
    assert solver is not None and solver.initializer.activation == "none" and solver.graph
    out, stats = model(batch)  # untrained: Anderson from h(0) = 0
    assert stats["fallback"].shape == (batch.num_graphs,)
    before = {n: p.detach().clone() for n, p in model.named_parameters() if not n.startswith("equilibrium.method.")}
    cfg = SolverTrainConfig(fp_tol=1e-3, fp_max_iter=30)
    trainer = SolverTrainer(model, [solver], cfg, planned_steps=2)
    trainer.fit(lambda: dear_problems(model, batch, cfg), 2)
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters() if n in before)
    assert bool(solver.trained)
    model.eval()
    with torch.no_grad():
        out1, stats1 = model(batch)
    assert all(torch.isfinite(v).all() for v in out1.values())
    clone = build_model("dear", ds.spec, hidden=16, solver="learned", solver_options={"steps": 3}, max_iter=10)
    clone.load_state_dict(model.state_dict())
    clone.eval()
    with torch.no_grad():
        out2, stats2 = clone(batch)
    assert all(torch.equal(out1[k], out2[k]) for k in out1)
    assert torch.equal(stats1["iterations"], stats2["iterations"])


def test_evaluate_reports_how_often_the_learned_solver_falls_back():
    from dear.config import profile_config
    from dear.evaluate import evaluate_size, format_results
    from dear.training import build, load_data

    cfg = profile_config("quick", algorithm="bfs", model="dear", num_test=4, hidden=16, device="cpu",
                         solver="learned", extra={"solver_options": {"steps": 2}})
    spec = load_data(cfg, "val", num_samples=1).spec
    torch.manual_seed(0)
    model = build(cfg, spec).eval()
    res, _ = evaluate_size(cfg, model, 8, torch.device("cpu"), repeats=1, warmup=0)
    # untrained: no learned step is taken, so every graph's solve is the fallback's
    assert res["fallback_fraction"] == 1.0
    text = format_results({"algorithm": "bfs", "model": "dear", "seed": 0, "protocol": "dear", "results": {"8": res}})
    assert "fallback in 100% of graphs" in text
    classic = build(profile_config("quick", algorithm="bfs", model="dear", num_test=4, hidden=16, device="cpu"),
                    spec).eval()
    assert evaluate_size(cfg, classic, 8, torch.device("cpu"), repeats=1, warmup=0)[0]["fallback_fraction"] is None
    from dear.config import ConfigError

    with pytest.raises(ConfigError, match="max_share is for node classification"):
        profile_config("quick", algorithm="bfs", model="dear", solver="learned", solver_training={"max_share": 0.05})
