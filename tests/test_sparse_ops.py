"""Constant sparse operators (dear.sparse_ops) and the feature storage every node-classification
consumer shares (dear.nodecls.train.model_features)."""

from __future__ import annotations

import copy
import json

import torch

import pytest

from dear.sparse_ops import coo_operator, csr_mm, mean_operator, spmm


def _directed_graph() -> tuple[torch.Tensor, int]:
    # directed, with a duplicate edge (3 -> 0 twice), a self loop and a node (4) without in-edges
    return torch.tensor([[0, 1, 1, 2, 3, 3, 2], [1, 0, 2, 3, 0, 0, 2]]), 5


def test_spmm_is_the_dense_product_with_exact_first_and_second_derivatives():
    ei, n = _directed_graph()
    w = torch.rand(ei.shape[1], dtype=torch.float64) + 0.1
    adj = torch.sparse_coo_tensor(torch.stack([ei[1], ei[0]]), w, (n, n), check_invariants=True).coalesce()
    h = torch.randn(n, 3, dtype=torch.float64, requires_grad=True)
    op = coo_operator(adj)
    assert op[0].layout == torch.sparse_csr and coo_operator(adj) is op  # built once per tensor
    torch.testing.assert_close(spmm(op, h), adj.to_dense() @ h)
    g = torch.randn(n, 3, dtype=torch.float64)
    (grad,) = torch.autograd.grad((spmm(op, h) * g).sum(), h)
    torch.testing.assert_close(grad, adj.to_dense().t() @ g)  # the transpose, not A again
    assert torch.autograd.gradcheck(lambda x: spmm(op, x), (h,))
    assert torch.autograd.gradgradcheck(lambda x: spmm(op, x).pow(2), (h,))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16])
def test_csr_mm_is_the_dense_product_with_its_weight_gradient(dtype):
    # rows 1 and 4 empty, a repeated column in row 0, non-unit values; h not contiguous
    a = torch.sparse_coo_tensor(torch.tensor([[0, 0, 2, 3, 3], [1, 3, 0, 3, 2]]),
                                torch.tensor([0.5, -2.0, 1.5, 3.0, 0.25]), (5, 4)).coalesce()
    a = a.to(dtype).to_sparse_csr()
    h = torch.randn(3, 4, dtype=torch.float64).t().to(dtype).requires_grad_(True)
    out = csr_mm(a, h)
    want = a.to_dense().double() @ h.detach().double()
    tol = 1e-2 if dtype in (torch.bfloat16, torch.float16) else 1e-6
    torch.testing.assert_close(out.double(), want, rtol=tol, atol=tol)
    assert (out[[1, 4]] == 0).all()
    g = torch.randn(5, 3, dtype=torch.float64)
    (grad,) = torch.autograd.grad((out.double() * g).sum(), h)
    torch.testing.assert_close(grad.double(), a.to_dense().double().t() @ g, rtol=tol, atol=tol)
    empty = torch.sparse_coo_tensor(torch.zeros(2, 0, dtype=torch.long), torch.zeros(0, dtype=dtype), (2, 4))
    assert (csr_mm(empty.to_sparse_csr(), h.detach()) == 0).all()
    with pytest.raises(ValueError, match="cannot multiply"):
        csr_mm(a, torch.randn(5, 2, dtype=dtype))
    with pytest.raises(ValueError, match="needs a CSR matrix"):
        csr_mm(a.to_sparse_coo(), h.detach())


def test_mean_operator_averages_in_neighbours_counting_duplicates():
    ei, n = _directed_graph()
    h = torch.randn(n, 4, dtype=torch.float64)
    out = spmm(mean_operator(ei, n, h.dtype), h)
    for i in range(n):
        srcs = ei[0][ei[1] == i]
        want = h[srcs].mean(0) if srcs.numel() else torch.zeros(4, dtype=h.dtype)
        torch.testing.assert_close(out[i], want)
    empty = torch.zeros(2, 0, dtype=torch.long)
    assert spmm(mean_operator(empty, n, h.dtype), h).abs().sum() == 0


def test_ignn_with_cached_operators_deep_copies_and_matches_the_coo_product():
    from dear.nodecls.ignn import IGNN, IGNNMap, gcn_adjacency

    ei, n = _directed_graph()
    torch.manual_seed(0)
    model = IGNN(6, 3, hidden=8, solver="learned").double()
    x = torch.rand(n, 6, dtype=torch.float64)
    with torch.no_grad():
        before = model(x, ei)
    clone = copy.deepcopy(model)  # operators are cached beside the tensors, not on them
    with torch.no_grad():
        torch.testing.assert_close(clone(x, ei), before)
    adj = gcn_adjacency(ei, n, dtype=torch.float64)
    z, b = torch.randn(n, 8, dtype=torch.float64), torch.randn(n, 8, dtype=torch.float64)
    for act, phi in (("relu", torch.relu), ("tanh", torch.tanh)):
        f = IGNNMap(8, activation=act).double()
        want = phi(torch.sparse.mm(adj, z @ f.weight.t()) + b)
        torch.testing.assert_close(f(z, b, adj), want)  # training path (grad to W)
        b_before = b.clone()
        with torch.no_grad():  # inference path: in place on its own product, never on b
            torch.testing.assert_close(f(z, b, adj), want.detach())
        assert torch.equal(b, b_before)


def test_every_consumer_of_a_nodecls_run_sees_the_features_it_was_trained_on(tmp_path):
    """Training stores bag-of-words features as CSR; `dear pareto` (and leaderboard checks)
    must evaluate and time the model on the same storage, not on a dense copy."""
    from torch_geometric.data import Data

    from dear.cli import main
    from dear.nodecls.train import NodeClsConfig, model_features
    from dear.pareto import _load_nodecls

    g = torch.Generator().manual_seed(0)
    x = (torch.rand(40, 200, generator=g) < 0.02).float()  # 2% non-zeros, non-negative
    data = Data(x=x, edge_index=torch.randint(0, 40, (2, 120), generator=g), num_nodes=40)
    assert model_features(data, NodeClsConfig(dataset="sbm", model="ignn")).layout == torch.sparse_csr
    assert model_features(data, NodeClsConfig(dataset="sbm", model="ignn", sparse_features="no")).layout == torch.strided
    dense_model = NodeClsConfig(dataset="sbm", model="ignn", sampler="random", num_parts=2)
    assert model_features(data, dense_model).layout == torch.strided  # subgraph sampling slices rows
    torch.testing.assert_close(model_features(data, NodeClsConfig(dataset="sbm", model="ignn")).to_dense(),
                               x / x.sum(1, keepdim=True).clamp_min(1))

    out = tmp_path / "run"
    assert main(["nodecls", "train", "--dataset", "sbm", "--data-opt", "num_nodes=80", "--data-opt", "num_classes=2",
                 "--data-opt", "num_features=6", "--data-opt", "val_size=20", "--split", "10", "--hidden", "8",
                 "--seeds", "1", "--epochs", "2", "--patience", "2", "--sparse-features", "yes",
                 "--timing-repeats", "1", "--quiet", "--out", str(out)]) == 0
    assert json.loads((out / "results.json").read_text())["config"]["sparse_features"] == "yes"
    _, _, _, x_loaded, build = _load_nodecls(out, torch.device("cpu"))
    assert x_loaded.layout == torch.sparse_csr
    with torch.no_grad():
        assert torch.isfinite(build(0)(x_loaded, _load_nodecls(out, torch.device("cpu"))[2].edge_index)).all()
