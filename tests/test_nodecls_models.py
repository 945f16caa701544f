"""Tests of the node-classification models and trainer: IGNN's projection, fixed point and
implicit gradient; every explicit baseline trains; the CLI writes the documented results.json
and resumes; a missing dataset is one clear line. Tiny graphs, well under a minute on a CPU."""

from __future__ import annotations

import argparse
import json

import pytest
import torch
import torch.nn.functional as F

from dear.nodecls import DatasetNotFoundError, load_dataset
from dear.nodecls.baselines import available_models, build_nodecls_model, graph_operand, model_options
from dear.nodecls.cli import MODEL_CHOICES, SOLVER_CHOICES, register_cli
from dear.nodecls.ignn import (
    IGNN,
    gcn_adjacency,
    perron_frobenius_bound,
    project_rows_l1_,
)
from dear.nodecls.train import NodeClsConfigError, RESULTS_SCHEMA


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny graphs run fastest on one thread, and do not fight other jobs for cores."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def tiny_sbm(num_nodes: int = 120, val_size: int = 30, seed: int = 0):
    return load_dataset("sbm", num_nodes=num_nodes, num_classes=3, num_features=8, avg_degree=6,
                        val_size=val_size, split=10, seed=seed)


def inf_norm(w: torch.Tensor) -> float:
    return float(w.detach().abs().sum(dim=1).max())


# ----------------------------------------------------------------------- graph helpers


def test_gcn_adjacency_matches_gcnconv_propagation():
    data = tiny_sbm()
    from torch_geometric.nn import GCNConv

    conv = GCNConv(8, 8, bias=False)
    torch.nn.init.eye_(conv.lin.weight)
    adj = gcn_adjacency(data.edge_index, data.num_nodes)
    torch.testing.assert_close(torch.sparse.mm(adj, data.x), conv(data.x, data.edge_index), rtol=1e-5, atol=1e-6)


def test_perron_frobenius_bound_is_tight_and_never_below():
    data = tiny_sbm()
    adj = gcn_adjacency(data.edge_index, data.num_nodes, dtype=torch.float64)
    exact = float(torch.linalg.eigvals(adj.to_dense()).abs().max())
    lam = perron_frobenius_bound(adj)
    assert exact - 1e-12 <= lam <= exact * (1 + 1e-6)
    # a general non-negative (non-normalised, non-symmetric) matrix
    g = torch.Generator().manual_seed(1)
    dense = torch.rand(30, 30, generator=g, dtype=torch.float64) * (torch.rand(30, 30, generator=g) < 0.2)
    dense += torch.eye(30, dtype=torch.float64)
    exact = float(torch.linalg.eigvals(dense).abs().max())
    lam = perron_frobenius_bound(dense.to_sparse())
    assert exact - 1e-9 <= lam <= exact * (1 + 1e-5)
    # IGNN's directed chains: triangular, lambda_pf = 1
    chains = load_dataset("chains", chains_per_class=2, chain_length=5)
    adj = gcn_adjacency(chains.edge_index, chains.num_nodes, dtype=torch.float64)
    assert perron_frobenius_bound(adj) == pytest.approx(1.0, abs=1e-9)


def test_row_l1_projection_is_the_euclidean_projection():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(6, 9, generator=g, dtype=torch.float64)
    w[0] *= 0.01  # already inside: must not move
    before = w.clone()
    r = 1.5
    project_rows_l1_(w, r)
    assert torch.equal(w[0], before[0])
    assert inf_norm(w) <= r
    for i in range(1, 6):
        assert float(w[i].abs().sum()) == pytest.approx(r, rel=1e-12)
        # optimality: the projection is soft-thresholding by some theta >= 0
        theta = (before[i].abs() - w[i].abs())[w[i] != 0]
        assert torch.allclose(theta, theta[0].expand_as(theta))
        assert bool((before[i].abs()[w[i] == 0] <= theta[0] + 1e-12).all())


# ------------------------------------------------------------------------------- IGNN


def test_projection_holds_after_every_optimiser_step():
    data = tiny_sbm()
    kappa = 0.8
    model = IGNN(8, 3, hidden=16, num_layers=2, kappa=kappa, tol=1e-5)
    opt = torch.optim.SGD(model.parameters(), lr=5.0)  # large steps push W out of the ball
    for _ in range(5):
        opt.zero_grad()
        loss = F.cross_entropy(model(data.x, data.edge_index)[data.train_mask], data.y[data.train_mask])
        loss.backward()
        opt.step()
        model.project_()
        for layer in model.layers:
            assert inf_norm(layer.weight) <= kappa / model.lambda_pf * (1 + 1e-6)
    assert model.lambda_pf == pytest.approx(1.0, abs=1e-6)


def test_forward_is_a_fixed_point():
    data = tiny_sbm()
    model = IGNN(8, 3, hidden=12, num_layers=2, tol=1e-10, max_iter=500).double().eval()
    x = data.x.double()
    with torch.no_grad():
        model(x, data.edge_index)
        adj = model._adj
        h = x
        for layer in model.layers:
            z = layer.eq.last_stats.forward.z
            assert layer.eq.last_stats.forward.all_converged
            fz = layer.eq.f(z, layer.inject(h, adj), adj)
            assert float((z - fz).norm() / fz.norm()) < 1e-9
            # and it is the equilibrium the layer returns (eval: dropout off)
            torch.testing.assert_close(layer(h, adj), z)
            h = z


def _grad_setup():
    torch.manual_seed(0)
    data = tiny_sbm(num_nodes=40, val_size=5)
    x = data.x.double()
    model = IGNN(8, 3, hidden=5, dropout=0.0, kappa=0.9, tol=1e-13, max_iter=1000).double()
    model.train()
    model(x, data.edge_index)  # builds A_hat and lambda_pf
    with torch.no_grad():  # strictly inside the ball: projection never acts during the check
        w = model.layers[0].weight
        w.mul_(0.6 / inf_norm(w))
    target = torch.randn(data.num_nodes, 3, dtype=torch.float64)
    return model, x, data.edge_index, target


def test_ift_gradient_matches_unrolled_autograd_and_finite_differences():
    model, x, ei, target = _grad_setup()

    def loss_fn() -> torch.Tensor:
        return (model(x, ei) * target).sum()

    model.zero_grad()
    loss_fn().backward()
    ift = {n: p.grad.clone() for n, p in model.named_parameters()}
    assert model.solver_stats()[0]["backward_converged_frac"] == 1.0

    # long unrolled autograd through Picard steps from zero
    model.zero_grad()
    layer = model.layers[0]
    adj = model._adj
    b = layer.inject(x, adj)
    z = torch.zeros_like(b)
    for _ in range(300):
        z = layer.eq.f(z, b, adj)
    (model.readout(z) * target).sum().backward()
    for n, p in model.named_parameters():
        torch.testing.assert_close(ift[n], p.grad, rtol=1e-7, atol=1e-9, msg=n)

    # central finite differences on a few entries of W and Omega
    g = torch.Generator().manual_seed(3)
    for param, name in ((layer.weight, "layers.0.eq.f.weight"), (layer.omega.weight, "layers.0.omega.weight")):
        for _ in range(3):
            i = int(torch.randint(param.shape[0], (1,), generator=g))
            j = int(torch.randint(param.shape[1], (1,), generator=g))
            eps = 1e-6
            with torch.no_grad():
                param[i, j] += eps
                up = float(loss_fn())
                param[i, j] -= 2 * eps
                down = float(loss_fn())
                param[i, j] += eps
            assert (up - down) / (2 * eps) == pytest.approx(float(ift[name][i, j]), rel=1e-5, abs=1e-8)


@pytest.mark.parametrize("solver", ["anderson", "broyden"])
def test_other_engine_solvers_reach_the_same_equilibrium(solver):
    data = tiny_sbm()
    ref = IGNN(8, 3, hidden=8, tol=1e-8, max_iter=500).eval()
    other = IGNN(8, 3, hidden=8, solver=solver, tol=1e-8, max_iter=500).eval()
    other.load_state_dict(ref.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(other(data.x, data.edge_index), ref(data.x, data.edge_index),
                                   rtol=1e-4, atol=1e-5)


def test_featureless_graph_uses_a_sparse_identity():
    data = tiny_sbm()
    n = data.num_nodes
    idx = torch.arange(n)
    eye = torch.sparse_coo_tensor(torch.stack([idx, idx]), torch.ones(n), (n, n),
                                  check_invariants=False).coalesce()
    model = IGNN(n, 3, hidden=8, input_dropout=0.2)
    out = model(eye, data.edge_index)
    out.sum().backward()
    assert out.shape == (n, 3) and model.layers[0].omega.weight.grad is not None


# -------------------------------------------------------------------------- baselines


def test_registry_lists_every_model_and_rejects_unknown_names_and_options():
    assert set(available_models()) == set(MODEL_CHOICES)
    from dear.solvers import available

    assert set(SOLVER_CHOICES) <= set(available())
    with pytest.raises(ValueError, match="valid models: .*gcn"):
        build_nodecls_model("gin", 8, 3)
    with pytest.raises(ValueError, match="valid options"):
        build_nodecls_model("sgc", 8, 3, hidden=16)
    assert model_options("gcn")["hidden"] == 64 and model_options("gcn")["dropout"] == 0.5


@pytest.mark.parametrize("name", ["gcn", "gat", "sgc", "appnp", "jknet", "gcnii", "mlp"])
def test_explicit_baseline_trains(name):
    torch.manual_seed(0)
    data = tiny_sbm()
    model = build_nodecls_model(name, 8, 3)
    assert not getattr(model, "implicit", False)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)

    def eval_loss() -> float:
        model.eval()
        with torch.no_grad():
            out = model(data.x, data.edge_index)
        return float(F.cross_entropy(out[data.train_mask], data.y[data.train_mask]))

    before = eval_loss()
    for _ in range(15):
        model.train()
        opt.zero_grad()
        F.cross_entropy(model(data.x, data.edge_index)[data.train_mask], data.y[data.train_mask]).backward()
        opt.step()
    assert eval_loss() < before


@pytest.mark.parametrize("name", ["gcn", "gat", "sgc", "appnp", "jknet", "gcnii", "mlp"])
def test_graph_operand_gives_the_edge_index_model(name):
    """The sparse adjacency the trainer hands SpMM models gives the same logits and gradients as
    edge_index (a graph with a self loop, a duplicate-free directed edge and an isolated node)."""
    torch.manual_seed(0)
    data = tiny_sbm()
    ei = torch.cat([data.edge_index, torch.tensor([[0, 5], [0, 7]])], dim=1)  # self loop 0->0, edge 5->7
    keep = (ei[0] != 11) & (ei[1] != 11)  # node 11 isolated
    ei = ei[:, keep]
    a_model = build_nodecls_model(name, 8, 3).eval()
    b_model = build_nodecls_model(name, 8, 3).eval()
    b_model.load_state_dict(a_model.state_dict())
    graph = graph_operand(b_model, ei, data.num_nodes)
    assert graph.layout == (torch.sparse_csr if getattr(b_model, "sparse_adjacency", False) else torch.strided)
    a = a_model(data.x, ei)
    b = b_model(data.x, graph)
    assert torch.allclose(a, b, atol=1e-5)
    a.square().sum().backward()
    b.square().sum().backward()
    for (n, pa), pb in zip(a_model.named_parameters(), b_model.parameters()):
        assert torch.allclose(pa.grad, pb.grad, atol=1e-4), n


# --------------------------------------------------------------------------------- CLI


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dear")
    register_cli(parser.add_subparsers(dest="command"))
    return parser


def _run(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    return args.func(args)


SBM = ["--dataset", "sbm", "--data-opt", "num_nodes=120", "--data-opt", "num_features=8",
       "--data-opt", "val_size=30", "--data-opt", "num_classes=3", "--split", "10"]


def test_cli_writes_results_json_and_resumes(tmp_path, capsys):
    out = tmp_path / "ignn"

    def argv(seeds: str = "2", tol: str = "1e-5") -> list[str]:
        return ["nodecls", "train", *SBM, "--model", "ignn", "--seeds", seeds, "--epochs", "4",
                "--patience", "2", "--hidden", "8", "--tol", tol, "--timing-repeats", "2",
                "--timing-warmup", "1", "--out", str(out), "--quiet", "--cache-dir", str(tmp_path / "cache")]

    assert _run(argv()) == 0
    assert "ignn [picard]" in capsys.readouterr().out
    res = json.loads((out / "results.json").read_text())
    assert res["schema"] == RESULTS_SCHEMA and res["complete"]
    assert (res["dataset"], res["split"], res["model"], res["solver"]) == ("sbm", 10, "ignn", "picard")
    for key in ("test_accuracy", "val_accuracy"):
        assert set(res[key]) == {"mean", "std", "per_seed"} and len(res[key]["per_seed"]) == 2
        assert all(0.0 <= a <= 100.0 for a in res[key]["per_seed"])
    assert len(res["inference_seconds"]["per_seed"]) == 2 and res["inference_seconds"]["median"] > 0
    assert res["iterations"]["max"] >= res["iterations"]["mean"] >= 1
    assert res["fingerprint"] == load_dataset("sbm", num_nodes=120, num_features=8, val_size=30,
                                              num_classes=3, split=10).fingerprint
    assert res["versions"]["torch"] and res["hardware"]["device"] == "cpu"
    assert res["config"]["resolved_model_options"]["hidden"] == 8
    assert res["seeds"] == [0, 1] and {r["seed"] for r in res["per_seed"]} == {0, 1}
    assert all(r["best_epoch"] <= r["epochs_run"] for r in res["per_seed"])

    # rerun with one more seed: the two finished seeds are reused, not retrained
    stamps = {p.name: p.stat().st_mtime_ns for p in (out / "seeds").iterdir()}
    assert _run(argv(seeds="3")) == 0
    assert {p.name: p.stat().st_mtime_ns for p in (out / "seeds").iterdir() if p.name in stamps} == stamps
    res3 = json.loads((out / "results.json").read_text())
    assert res3["test_accuracy"]["per_seed"][:2] == res["test_accuracy"]["per_seed"]
    assert len(res3["per_seed"]) == 3

    # rerun with nothing to train: results.json (and the commit recorded in it) is left alone
    stamp = (out / "results.json").stat().st_mtime_ns
    assert _run(argv(seeds="3")) == 0
    assert (out / "results.json").stat().st_mtime_ns == stamp

    # another configuration into the same directory is refused
    with pytest.raises(NodeClsConfigError, match="different configuration"):
        _run(argv(tol="1e-4"))


def test_cli_explicit_model_has_no_solver_fields(tmp_path):
    out = tmp_path / "gcn"
    assert _run(["nodecls", "train", *SBM, "--model", "gcn", "--seeds", "1", "--epochs", "3",
                 "--timing-repeats", "1", "--out", str(out), "--quiet"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["solver"] is None and res["iterations"] is None and res["per_seed"][0]["solver"] is None
    with pytest.raises(NodeClsConfigError, match="ignn only"):
        _run(["nodecls", "train", *SBM, "--model", "gcn", "--kappa", "0.5", "--out", str(out)])


def test_cli_missing_dataset_is_one_line(tmp_path):
    with pytest.raises(DatasetNotFoundError) as err:
        _run(["nodecls", "train", "--dataset", "amgcn:citeseer", "--data-root", str(tmp_path / "none"),
              "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "o"), "--quiet"])
    assert "\n" not in str(err.value) and "citeseer.zip" in str(err.value)
    assert not (tmp_path / "o" / "results.json").exists()


# ----------------------------------------------------------------------- sparse features


def test_sparse_features_give_the_dense_model_and_gradients():
    from dear.nodecls.baselines import available_models, build_nodecls_model, nodecls_model_class
    from dear.nodecls.features import to_sparse_features

    torch.manual_seed(0)
    data = tiny_sbm()
    x = (torch.rand(data.num_nodes, 40) < 0.04).float()  # bag-of-words-like
    xs = to_sparse_features(x, "auto")
    assert xs.layout == torch.sparse_csr
    capable = [m for m in available_models() if getattr(nodecls_model_class(m), "sparse_features", False)]
    assert {"ignn", "gcn", "gat", "appnp", "jknet", "gcnii", "mlp"} <= set(capable)
    assert "sgc" not in capable
    for name in capable:
        torch.manual_seed(1)
        dense_model = build_nodecls_model(name, 40, 3).eval()
        sparse_model = build_nodecls_model(name, 40, 3).eval()
        sparse_model.load_state_dict(dense_model.state_dict())
        a, b = dense_model(x, data.edge_index), sparse_model(xs, data.edge_index)
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=name)
        a.square().sum().backward()
        b.square().sum().backward()
        for (pname, p), q in zip(dense_model.named_parameters(), sparse_model.parameters()):
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-3, atol=1e-5, msg=f"{name}.{pname}")
        sparse_model.train()
        assert torch.isfinite(sparse_model(xs, data.edge_index)).all()  # dropout on CSR input


def test_ignn_inference_on_sparse_features_follows_weight_changes():
    """Inference on sparse features reuses one contiguous copy of Omega^T: it must give the
    dense model's output and follow every change of the weight (optimiser step, load_state_dict,
    a dtype change), never serve a stale copy."""
    from dear.nodecls.baselines import build_nodecls_model
    from dear.nodecls.features import to_sparse_features

    torch.manual_seed(0)
    data = tiny_sbm()
    x = (torch.rand(data.num_nodes, 40) < 0.05).float()
    xs = to_sparse_features(x, "yes")
    coo = x.to_sparse()
    model = build_nodecls_model("ignn", 40, 3, omega_bias=True)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)

    def check() -> None:
        model.eval()
        with torch.no_grad():
            dense = model(x, data.edge_index)
            for feats in (xs, coo):
                torch.testing.assert_close(model(feats, data.edge_index), dense, rtol=1e-4, atol=1e-5)

    check()
    model.train()
    model(xs, data.edge_index).square().sum().backward()  # the training path: gradients reach Omega
    assert model.layers[0].omega.weight.grad is not None and model.layers[0].omega.weight.grad.abs().sum() > 0
    opt.step()
    check()
    other = build_nodecls_model("ignn", 40, 3, omega_bias=True)
    model.load_state_dict(other.state_dict())
    check()
    model.double()
    x, xs, coo = x.double(), xs.to(torch.float64), coo.double()
    check()


def test_feature_dropout_on_csr_drops_stored_entries_only():
    from dear.nodecls.features import feature_dropout, to_sparse_features

    torch.manual_seed(0)
    x = torch.rand(200, 300) * (torch.rand(200, 300) < 0.02)
    xs = to_sparse_features(x, "yes")
    out = feature_dropout(xs, 0.5, True).to_dense()
    assert not out[x == 0].any()  # zeros stay zeros
    kept = out[x != 0] != 0
    assert 0.4 < kept.float().mean() < 0.6
    torch.testing.assert_close(out[x != 0][kept], 2 * x[x != 0][kept])
    assert feature_dropout(xs, 0.5, False) is xs
    assert to_sparse_features(torch.rand(5, 5), "auto").layout == torch.strided  # dense stays dense
    with pytest.raises(ValueError, match="auto, yes or no"):
        to_sparse_features(x, "maybe")
