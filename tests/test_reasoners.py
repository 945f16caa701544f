"""dear.processors and dear.reasoners: processors, encoders/decoders/losses per (location, type),
scoring formats, the four models, DEAR's blindness to hints and lengths, and short training runs.

Sizes are tiny (n = 5..8) and torch runs single-threaded here: on shared CPUs intra-op
threads contend and make these small kernels slower, not faster.
"""

from __future__ import annotations

import copy
import time

import pytest
import torch
from torch_geometric.utils import scatter

import clrs_tasks as ct
from clrs_tasks import Field, GraphSpec
from dear.processors import available, get_processor, triplet_edge_latents
from dear.reasoners import (
    MODELS,
    BatchLayout,
    GraphInputs,
    build_model,
    dense_from_data,
    predictions_for_scoring,
)

# Tasks covering every output (location, type) of CLRS-30:
OUTPUT_TASKS = {
    "bfs": "node pointer",
    "activity_selector": "node mask",
    "minimum": "node mask_one",
    "insertion_sort": "node permutation_pointer + mask_one",
    "floyd_warshall": "edge pointer",
    "mst_kruskal": "edge mask",
    "lcs_length": "edge categorical",
    "segments_intersect": "graph mask",
}



@pytest.fixture(scope="module")
def split(tmp_path_factory):
    """``split(task, ...)``: a tiny cached split (one cache directory for this module)."""
    root = tmp_path_factory.mktemp("clrs_cache")
    cache: dict = {}

    def get(task: str, name: str = "train", num_samples: int = 6, sizes=(5, 6), **kw):
        key = (task, name, num_samples, sizes, tuple(sorted(kw.items())))
        if key not in cache:
            cache[key] = ct.load_split(task, name, protocol="dear", root=root, num_samples=num_samples,
                                       sizes=sizes, progress=False, **kw)
        return cache[key]

    return get


def _batch(ds, count: int | None = None):
    return ct.collate([ds[i] for i in range(count or len(ds))])


# --------------------------------------------------------------------------- processors


def test_processor_registry():
    assert available() == ["mpnn", "triplet_gmpnn", "gatv2"]
    with pytest.raises(ValueError, match="mpnn, triplet_gmpnn, gatv2"):
        get_processor("gcn", 8)


@pytest.mark.parametrize("name", ["mpnn", "triplet_gmpnn", "gatv2"])
def test_processors_shape_and_graph_independence(name, split):
    """Output ``[N, H]``; changing one graph's state never changes another graph's output (the
    per-graph solvers rely on it)."""
    torch.manual_seed(0)
    b = _batch(split("bfs"), 3)
    hidden = 8
    proc = get_processor(name, hidden)
    n, e, g = b.num_nodes, b.edge_index.shape[1], b.num_graphs
    h, x = torch.randn(n, hidden), torch.randn(n, hidden)
    ea, ga = torch.randn(e, hidden), torch.randn(g, hidden)
    out = proc(h, x, b.edge_index, ea, ga, b.batch)
    assert out.shape == (n, hidden) and torch.isfinite(out).all()
    h2 = h.clone()
    h2[b.batch == 2] += 1.0
    out2 = proc(h2, x, b.edge_index, ea, ga, b.batch)
    keep = b.batch != 2
    assert torch.allclose(out[keep], out2[keep], atol=1e-6)
    assert not torch.allclose(out[~keep], out2[~keep])


def test_max_aggregation_matches_pyg():
    """GatedMPNN's own max aggregation (reduce into -inf) gives PyG's ``aggr="max"`` values and
    gradients, including tied messages (gradient split between them) and a node without
    incoming messages (0, as PyG)."""
    from torch_geometric.utils import scatter

    proc = get_processor("mpnn", 8)
    torch.manual_seed(0)
    index = torch.tensor([0, 0, 1, 1, 1, 3, 3, 5])
    x = torch.randn(8, 8)
    x[1] = x[0]  # a full tie at node 0
    x[4, :3] = x[2, :3]  # partial tie at node 1
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    g = torch.randn(7, 8)
    ya = scatter(a, index, 0, dim_size=7, reduce="max")
    yb = proc.aggregate(b, index, dim_size=7)
    (ya * g).sum().backward()
    (yb * g).sum().backward()
    assert torch.equal(ya, yb) and torch.equal(yb[2], torch.zeros(8)) and torch.equal(yb[6], torch.zeros(8))
    assert torch.allclose(a.grad, b.grad)
    assert torch.allclose(b.grad[0], 0.5 * g[0]) and torch.allclose(b.grad[1], 0.5 * g[0])


@pytest.mark.parametrize("gated", [True, False])
def test_gated_mpnn_matches_its_formula(gated, split):
    """The fused step (input halves precomputed, node maps in one product) computes the
    docstring's formula written out map by map on ``z = [x | h]``: same output and gradients
    for every parameter and input, with and without precomputed static terms."""
    torch.manual_seed(0)
    b = _batch(split("bfs"), 3)
    hidden, width = 8, 6
    proc = get_processor("mpnn", hidden, node_dim=width, gated=gated)
    for p in proc.parameters():  # non-zero everywhere, so every term matters
        torch.nn.init.normal_(p, std=0.5)
    n, e, g = b.num_nodes, b.edge_index.shape[1], b.num_graphs
    inputs = [torch.randn(n, hidden), torch.randn(n, width), torch.randn(e, hidden), torch.randn(g, hidden)]

    def reference(h, x, ea, ga):
        z = torch.cat([x, h], dim=-1)
        src, dst = b.edge_index
        t = torch.relu(proc.lin_src(z)[src] + proc.lin_dst(z)[dst] + proc.lin_edge(ea)
                       + proc.lin_graph(ga)[b.batch[dst]])
        msg = proc.msg_mlp(t)
        m = scatter(msg, dst, 0, dim_size=n, reduce="max")
        cand = proc.norm(torch.relu(proc.out_self(z) + proc.out_msg(m)))
        if not gated:
            return cand
        gate = torch.sigmoid(proc.gate_out(torch.relu(proc.gate_self(z) + proc.gate_msg(m))))
        return gate * cand + (1 - gate) * h

    def grads(fn):
        leaves = [t.clone().requires_grad_() for t in inputs]
        proc.zero_grad()
        out = fn(*leaves)
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        return out.detach(), [t.grad for t in leaves] + [p.grad.clone() for p in proc.parameters()]

    want, want_g = grads(reference)
    plain, plain_g = grads(lambda h, x, ea, ga: proc(h, x, b.edge_index, ea, ga, b.batch))
    static, static_g = grads(lambda h, x, ea, ga: proc(h, x, b.edge_index, ea, ga, b.batch,
                                                       static=proc.project_static(x, ea, ga, b.batch)))
    assert torch.allclose(plain, want, atol=1e-5) and torch.equal(plain, static)
    for got, ref_g, st in zip(plain_g, want_g, static_g):
        assert torch.allclose(got, ref_g, atol=1e-4, rtol=1e-4)
        assert torch.equal(got, st)


def test_triplet_latents_routing(split):
    """dm-clrs's Triplet-GMPNN (default ``latents="decoders"``): the node update ignores the
    triplet weights, which reach the pointer decoders instead; ``"messages"`` is the reverse."""
    torch.manual_seed(0)
    b = _batch(split("bfs"), 3)
    hidden = 8
    n, e, g = b.num_nodes, b.edge_index.shape[1], b.num_graphs
    args = (torch.randn(n, hidden), torch.randn(n, hidden), b.edge_index, torch.randn(e, hidden),
            torch.randn(g, hidden), b.batch)
    dec = get_processor("triplet_gmpnn", hidden)
    plain = get_processor("mpnn", hidden)
    plain.load_state_dict({k: v for k, v in dec.state_dict().items() if not k.startswith("t_")})
    assert dec.decoder_edge_latents and torch.allclose(dec(*args), plain(*args), atol=1e-6)
    assert dec.edge_latents(*args).shape == (e, hidden)
    msg = get_processor("triplet_gmpnn", hidden, latents="messages")
    msg.load_state_dict(dec.state_dict())
    assert not msg.decoder_edge_latents and not torch.allclose(msg(*args), plain(*args), atol=1e-4)
    with pytest.raises(ValueError, match="decoders, messages"):
        get_processor("triplet_gmpnn", hidden, latents="nodes")


@pytest.mark.parametrize("name", ["nar", "nar-hints", "nar-lt", "dear"])
def test_triplet_decoder_latents_per_graph(name, split):
    """Every model decodes the Triplet-GMPNN's edge latents; with graphs of different trace
    lengths in one batch each graph's outputs equal those it gets alone (the latents come from
    the state *its own* last step read), and they do depend on the triplet weights."""
    torch.manual_seed(0)
    ds = split("bfs", num_samples=6, sizes=(5, 8), include_hints=name == "nar-hints")
    lengths = [int(ds[i].length) for i in range(len(ds))]
    assert len(set(lengths)) > 1, lengths
    model = build_model(name, ds.spec, hidden=8, processor="triplet_gmpnn").eval()
    assert model.edge_latents
    b = _batch(ds)
    with torch.no_grad():
        together = model(b)[0]["output_pi"]
        alone = torch.cat([model(ct.collate([ds[i]]))[0]["output_pi"] for i in range(len(ds))])
        assert torch.allclose(together, alone, atol=1e-5)
        if name == "nar":  # by hand: the latents of the state the last of T steps read
            one = ct.collate([ds[0]])
            layout = BatchLayout(one)
            enc = model.encode(one, layout)
            h = model.initial_state(layout)
            for _ in range(int(one.length) - 2):
                h = model.step(h, enc, layout)
            h_last = model.step(h, enc, layout)
            assert torch.allclose(model.decode(h_last, enc, layout, h)["output_pi"], model(one)[0]["output_pi"])
            assert not torch.allclose(model.decode(h_last, enc, layout)["output_pi"], model(one)[0]["output_pi"])
        for m in model.output_decoder.decoders.values():
            torch.nn.init.normal_(m.latent.weight)
        assert not torch.allclose(model(b)[0]["output_pi"], together, atol=1e-4)


def test_dmclrs_init(split):
    """``init="dmclrs"``: Haiku's truncated normal (std 1/sqrt(fan_in), cut at 2 std), zero
    biases, scalar hint encoders at 1/sqrt(H), gate biases kept at -3; unknown names raise."""
    torch.manual_seed(0)
    ds = split("bellman_ford", include_hints=True)
    hidden = 64
    model = build_model("nar-hints", ds.spec, hidden=hidden, processor="triplet_gmpnn", init="dmclrs")
    assert torch.equal(model.processor.gate_out.bias, torch.full((hidden,), -3.0))
    w = model.processor.msg_mlp[0].weight  # fan_in = hidden
    std = 1 / hidden ** 0.5
    assert w.abs().max() <= 2 * std + 1e-6 and 0.8 * std < w.std() < 0.95 * std  # truncated: ~0.88 std
    assert float(model.processor.lin_src.bias.abs().max()) == 0.0
    scalar = model.hint_encoder.encoders["hint_d"].lin.weight  # fan_in 1: scaled by 1/sqrt(H)
    assert scalar.abs().max() <= 2 * std + 1e-6
    torch_default = build_model("nar-hints", ds.spec, hidden=hidden, processor="triplet_gmpnn")
    assert float(torch_default.processor.lin_src.bias.abs().max()) > 0.0
    assert torch_default.hint_encoder.encoders["hint_d"].lin.weight.abs().max() > 2 * std
    with pytest.raises(ValueError, match="torch, dmclrs"):
        build_model("nar", ds.spec, hidden=8, init="haiku")


@pytest.mark.parametrize("dense", [None, True, False])
def test_triplet_latents_match_brute_force(dense):
    torch.manual_seed(0)
    sizes = [3, 4]
    batch = torch.repeat_interleave(torch.arange(2), torch.tensor(sizes))
    edges = []
    for g, (start, n) in enumerate(((0, 3), (3, 4))):
        for i in range(n):
            for j in range(n):
                if i == j or torch.rand(()) < 0.6:
                    edges.append((start + i, start + j))
    edge_index = torch.tensor(edges).T
    f = 5
    a = torch.randn(7, f)
    u, v = torch.randn(len(edges), f), torch.randn(len(edges), f)
    got = triplet_edge_latents(a, u, v, edge_index, batch, 2, dense=dense)
    lookup = {e: k for k, e in enumerate(edges)}
    for k_e, (i, j) in enumerate(edges):
        nodes = [k for k in range(7) if batch[k] == batch[i]]
        best = torch.stack([
            a[k] + (u[lookup[(k, i)]] if (k, i) in lookup else 0) + (v[lookup[(k, j)]] if (k, j) in lookup else 0)
            for k in nodes
        ]).amax(0)
        assert torch.allclose(got[k_e], best, atol=1e-6)


@pytest.mark.parametrize("keep", [1.0, 0.3])
def test_triplet_latents_dense_and_per_edge_orders_agree_exactly(keep):
    """The two evaluation orders are the same sums and maxima: equal values bit for bit, and
    gradients equal up to the order their contributions are summed in, on complete and sparse
    graphs of unequal sizes (padding in the dense order)."""
    torch.manual_seed(1)
    sizes = [5, 8, 6]
    batch = torch.repeat_interleave(torch.arange(3), torch.tensor(sizes))
    starts = [0, 5, 13]
    edges = [(st + i, st + j) for st, n in zip(starts, sizes) for i in range(n) for j in range(n)
             if i == j or torch.rand(()) < keep]
    edge_index = torch.tensor(edges).T
    n_nodes, f = sum(sizes), 4
    inputs = [torch.randn(n_nodes, f), torch.randn(len(edges), f), torch.randn(len(edges), f)]
    weights = torch.randn(len(edges), f)
    results = {}
    for dense in (True, False):
        leaves = [x.clone().requires_grad_(True) for x in inputs]
        out = triplet_edge_latents(*leaves, edge_index, batch, 3, dense=dense)
        (out * weights).sum().backward()
        results[dense] = (out.detach(), [x.grad for x in leaves])
    assert torch.equal(results[True][0], results[False][0])
    for g_dense, g_edge in zip(results[True][1], results[False][1]):
        assert g_edge.abs().max() > 0
        assert torch.allclose(g_dense, g_edge, rtol=1e-6, atol=1e-6)


# --------------------------------------------------------------------------- construction


def test_build_model_errors(split):
    spec = split("bfs").spec
    with pytest.raises(ValueError, match="nar, nar-hints, nar-lt, dear"):
        build_model("transformer", spec)
    bad = GraphSpec("odd", spec.fields + (Field("p", "output", "graph", "pointer", "int64", "int64", ()),))
    with pytest.raises(ValueError, match=r"output_p.*\(graph, pointer\)"):
        build_model("nar", bad)
    no_hints = GraphSpec(spec.task, tuple(f for f in spec.fields if not f.is_hint))
    with pytest.raises(ValueError, match="include_hints=True"):
        build_model("nar-hints", no_hints)
    with pytest.raises(TypeError):
        build_model("dear", spec, not_an_option=1)
    assert set(MODELS) == {"nar", "nar-hints", "nar-lt", "dear"}


# --------------------------------------------------------------------------- every output type


def _oracle(field: Field, batch, layout: BatchLayout) -> torch.Tensor:
    """A perfect prediction in the decoder's raw-output format (log-probs for pointers)."""
    y = batch[field.key]
    if field.is_pointer:
        onehot = dense_from_data(field, y, layout, torch.float32)
        return (onehot - 1.0) * 1e4
    if field.type_ == "scalar":
        return y.float()
    if field.type_ == "mask":
        return (2.0 * y.float() - 1.0) * 20.0
    return y.float() * 20.0  # mask_one, categorical: logits


@pytest.mark.parametrize("task", list(OUTPUT_TASKS))
def test_decoders_losses_and_scoring_per_output_type(task, split):
    """For every output type: raw outputs have the documented shapes, the loss is finite and
    back-propagates, ``clrs_tasks.evaluate`` accepts the predictions, and perfect predictions in
    the same format score 1 with (near) zero loss -- so the loss and scoring read the same rows."""
    torch.manual_seed(0)
    ds = split(task)
    b = _batch(ds)
    model = build_model("nar-hints", ds.spec, hidden=16)  # exercises hint encoders/decoders too
    out, stats = model(b)
    lay = BatchLayout(b)
    rows = {"node": lay.num_nodes, "edge": lay.num_pairs, "graph": lay.num_graphs}
    for f in ds.spec.stage("output"):
        pred = out[f.key]
        if f.location == "node" and f.is_pointer:
            assert pred.shape == (lay.num_edges,)
        elif f.location == "edge" and f.type_ == "pointer":
            assert pred.shape == (int(lay.triple_ptr[-1]),)
        else:
            assert pred.shape == (rows[f.location],) + f.trailing
    for f in ds.spec.stage("hint"):
        assert out[f.key].shape[1] == int(stats["nfe"])
    loss = model.loss(b, out, stats)
    assert torch.isfinite(loss)
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    scores = ct.evaluate(b, predictions_for_scoring(b, out))
    assert 0.0 <= scores["score"] <= 1.0

    oracle = {f.key: _oracle(f, b, lay) for f in ds.spec.stage("output")}
    assert ct.evaluate(b, predictions_for_scoring(oracle))["score"] == pytest.approx(1.0)
    terms = build_model("nar", ds.spec, hidden=8).loss_terms(b, oracle)
    assert all(float(v) < 1e-3 for v in terms.values()), terms


def test_pointer_decoders_normalise_over_out_edges(split):
    torch.manual_seed(0)
    # node pointer on the adjacency edge set (bfs): a distribution over each node's out-edges
    ds = split("bfs")
    b = _batch(ds)
    model = build_model("dear", ds.spec, hidden=16).eval()
    with torch.no_grad():
        out, _ = model(b)
    p = out["output_pi"].exp()
    assert p.shape == (b.edge_index.shape[1],)
    assert torch.allclose(scatter(p, b.edge_index[0], dim_size=b.num_nodes, reduce="sum"), torch.ones(b.num_nodes),
                          atol=1e-5)
    # permutation pointer: Sinkhorn gives a (nearly) doubly stochastic matrix per graph
    ds = split("insertion_sort")
    b = _batch(ds)
    model = build_model("nar", ds.spec, hidden=16).eval()
    with torch.no_grad():
        out, _ = model(b)
    p = out["output_pred"].exp()
    for idx in b.edge_index:
        assert torch.allclose(scatter(p, idx, dim_size=b.num_nodes, reduce="sum"), torch.ones(b.num_nodes), atol=1e-3)
    # edge pointer: per pair, a distribution over the graph's nodes
    ds = split("floyd_warshall")
    b = _batch(ds)
    model = build_model("nar", ds.spec, hidden=16).eval()
    with torch.no_grad():
        out, _ = model(b)
    lay = BatchLayout(b)
    per_pair = scatter(out["output_Pi"].exp(), lay.triple_pair, dim_size=lay.num_pairs, reduce="sum")
    assert torch.allclose(per_pair, torch.ones(lay.num_pairs), atol=1e-5)


def test_pointer_encoding_is_batch_correct(split):
    """Stored pointers are batch node indices: the dense form is one-hot on each node's out-edge
    to its target, in every graph of a batch (complete graphs: the target edge always exists)."""
    ds = split("minimum")
    b = _batch(ds)
    lay = BatchLayout(b)
    f = ds.spec.by_key["input_pred"]
    dense = dense_from_data(f, b.input_pred, lay, torch.float32)
    assert torch.equal(scatter(dense, b.edge_index[0], dim_size=b.num_nodes, reduce="sum"), torch.ones(b.num_nodes))
    hit = dense.bool()
    assert torch.equal(b.edge_index[1][hit], b.input_pred[b.edge_index[0][hit]])


def test_permutation_pointer_needs_complete_edges(split):
    ds = split("insertion_sort")
    b = _batch(ds, 2)
    keep = torch.ones(b.edge_index.shape[1], dtype=torch.bool)
    keep[1] = False
    b.edge_index, b.edge_pair = b.edge_index[:, keep], b.edge_pair[keep]
    with pytest.raises(ValueError, match="edge_policy='complete'"):
        build_model("nar", ds.spec, hidden=8)(b)


def test_missing_pointer_targets(split):
    """Topological sort's ``topo`` often points to a non-neighbour: the adjacency edge set cannot
    express it; ``error`` says so, ``skip`` counts it, the complete policy has none missing."""
    ds = split("topological_sort", num_samples=8, sizes=(6,), include_hints=False)
    b = _batch(ds)
    strict = build_model("nar", ds.spec, hidden=8, missing_pointer_targets="error")
    with pytest.raises(ValueError, match="edge_policy='complete'"):
        strict.loss(b, strict(b)[0])
    lenient = build_model("nar", ds.spec, hidden=8)
    out, stats = lenient(b)
    assert torch.isfinite(lenient.loss(b, out, stats)) and stats["missing_pointer_targets"] > 0
    full = split("topological_sort", num_samples=8, sizes=(6,), include_hints=False, edge_policy="complete")
    bc = _batch(full)
    out, stats = lenient(bc)
    lenient.loss(bc, out, stats)
    assert stats["missing_pointer_targets"] == 0


# --------------------------------------------------------------------------- models


def test_dear_never_reads_hints_or_lengths(split):
    torch.manual_seed(0)
    ds = split("bfs")
    b = _batch(ds)
    model = build_model("dear", ds.spec, hidden=16)
    stripped = b.clone()
    for k in [k for k in stripped.keys() if k.startswith("hint_")] + ["length"]:
        del stripped[k]
    scrambled = b.clone()
    gen = torch.Generator().manual_seed(1)
    for k in [k for k in scrambled.keys() if k.startswith("hint_")]:
        scrambled[k] = scrambled[k][torch.randperm(scrambled[k].shape[0], generator=gen)]
    scrambled.length = torch.randint(1, 50, scrambled.length.shape, generator=gen)
    for mode in ("eval", "train"):
        getattr(model, mode)()
        results = []
        for batch in (b, stripped, scrambled):
            torch.manual_seed(3)  # training noise and Gumbel draws alike
            out, stats = model(batch)
            results.append((out, stats["iterations"]))
        for out, it in results[1:]:
            assert torch.equal(it, results[0][1])
            for k in results[0][0]:
                assert torch.equal(out[k], results[0][0][k]), k
    with pytest.raises(KeyError, match="input_"):
        GraphInputs(b, ds.spec.stage("input"))["hint_pi_h"]


def test_dear_options_and_stats(split):
    torch.manual_seed(0)
    ds = split("bfs", include_hints=False)
    b = _batch(ds)
    model = build_model("dear", ds.spec, hidden=16)
    assert model.equilibrium.max_iter == 40 and model.equilibrium.eval_max_iter == 160
    assert model.equilibrium.solver_options == {"m": 6, "lam": 1e-4}
    assert model.equilibrium.tol == 0.1 and model.equilibrium.first_hit and model.equilibrium.backward == "phantom"
    out, stats = model(b)
    assert {"iterations", "nfe", "residual", "converged"} <= set(stats)
    assert stats["iterations"].shape == (b.num_graphs,)
    terms = model.loss_terms(b, out)
    assert "jacobian" in terms and float(terms["jacobian"].detach()) > 0
    copy.deepcopy(model)  # no autograd graph left in module state after a training forward
    for backward in ("ift", "unroll"):
        m = build_model("dear", ds.spec, hidden=16, backward=backward, jac_reg=0.0, max_iter=10)
        out, stats = m(b)
        terms = m.loss_terms(b, out)
        assert "jacobian" not in terms
        sum(terms.values()).backward()
        if backward == "ift":  # the adjoint solve reports into the returned statistics
            assert stats["equilibrium"].backward is not None
        grads = [p.grad for p in m.processor.parameters() if p.grad is not None]
        assert grads and all(torch.isfinite(g).all() for g in grads)


def test_nar_hints_evaluation_reads_only_first_hint(split):
    """In evaluation NARHints feeds back its own predictions: hints after step 0 are never read."""
    torch.manual_seed(0)
    ds = split("bfs")
    b = _batch(ds)
    model = build_model("nar-hints", ds.spec, hidden=16).eval()
    changed = b.clone()
    for k in [k for k in changed.keys() if k.startswith("hint_")]:
        changed[k] = changed[k].clone()
        changed[k][:, 1:] = changed[k][:, 1:].flip(0)
    with torch.no_grad():
        a, _ = model(b)
        c, _ = model(changed)
    for k in a:
        if k.startswith("output_"):
            assert torch.equal(a[k], c[k])


def test_nar_lt_evaluation_never_reads_length(split):
    torch.manual_seed(0)
    ds = split("bfs", include_hints=False)
    b = _batch(ds)
    model = build_model("nar-lt", ds.spec, hidden=16, max_steps_test=6)
    out, stats = model(b)
    assert out["aux_termination_logits"].shape == (b.num_graphs, int(stats["nfe"]))
    assert "termination" in model.loss_terms(b, out)
    model.eval()
    del b.length
    with torch.no_grad():
        out, stats = model(b)
    assert ((stats["steps"] >= 1) & (stats["steps"] <= 6)).all()


@pytest.mark.parametrize("processor", ["mpnn", "triplet_gmpnn"])
def test_nar_lt_evaluation_drops_stopped_graphs_without_changing_results(processor, split, monkeypatch):
    """In evaluation, graphs whose head said stop leave the batch (``model.compact``): same
    outputs, step counts and stop flags as masking them, on graphs that stop at different steps
    (a head that says stop after ``size + 1`` steps, whatever rows it is given)."""
    torch.manual_seed(0)
    ds = split("dag_shortest_paths", num_samples=8, sizes=(4, 6, 8))
    model = build_model("nar-lt", ds.spec, hidden=16, processor=processor, max_steps_test=12).eval()
    b = _batch(ds)
    calls = [0]

    def stop_after_size(h, x, batch, num_graphs):
        calls[0] += 1
        size = torch.bincount(batch, minlength=num_graphs).to(h.dtype)
        return calls[0] - size - 0.5  # > 0 (stop) from step size + 1 on

    monkeypatch.setattr(model, "_stop_logits", stop_after_size)
    rows: list[int] = []
    model.processor.register_forward_hook(lambda mod, args, out: rows.append(out.shape[0]))
    results = {}
    for compact in (True, False):
        model.compact = compact
        rows.clear()
        calls[0] = 0
        with torch.no_grad():
            out, stats = model(b)
        assert (min(rows) < b.num_nodes) == compact, rows
        results[compact] = (out, stats)
    (out_c, st_c), (out_p, st_p) = results[True], results[False]
    sizes = torch.bincount(b.batch)
    assert torch.equal(st_p["steps"], sizes + 1) and st_p["terminated"].all()
    assert torch.equal(st_c["steps"], st_p["steps"]) and torch.equal(st_c["terminated"], st_p["terminated"])
    assert st_c["nfe"] == st_p["nfe"] == int(sizes.max()) + 1
    for k in out_p:
        assert torch.allclose(out_c[k], out_p[k], atol=1e-5), k


def test_nar_steps_follow_lengths(split):
    ds = split("bfs", include_hints=False)
    b = _batch(ds)
    _, stats = build_model("nar", ds.spec, hidden=8)(b)
    assert torch.equal(stats["steps"], (b.length - 1).clamp_min(1))
    _, stats = build_model("nar", ds.spec, hidden=8, fixed_steps=3)(b)
    assert (stats["steps"] == 3).all()


@pytest.mark.parametrize("name", ["nar", "nar-hints", "nar-lt", "dear"])
def test_loss_decreases(name, split):
    torch.manual_seed(0)
    ds = split("bfs", num_samples=16, include_hints=name == "nar-hints")
    b = _batch(ds)
    model = build_model(name, ds.spec, hidden=16)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(25):
        out, stats = model(b)
        loss = model.loss(b, out, stats)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.6 * losses[0], losses


# --------------------------------------------------------------------------- short training


def _train_minimum(name: str, steps: int, split) -> tuple[float, float, float]:
    """Train on ``minimum`` (n = 5..8, 256 graphs) and score 64 held-out graphs at n = 8."""
    torch.manual_seed(0)
    train = split("minimum", "train", num_samples=256, sizes=(5, 6, 7, 8), include_hints=False)
    val = split("minimum", "val", num_samples=64, sizes=(8,), include_hints=False)
    vb = _batch(val)
    model = build_model(name, train.spec, hidden=32)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)

    def score() -> float:
        model.eval()
        with torch.no_grad():
            out, _ = model(vb)
        model.train()
        return ct.evaluate(vb, predictions_for_scoring(vb, out))["score"]

    before = score()
    gen = torch.Generator().manual_seed(0)
    t0 = time.perf_counter()
    for _ in range(steps):
        idx = torch.randperm(len(train), generator=gen)[:32]
        b = ct.collate([train[int(i)] for i in idx])
        out, stats = model(b)
        loss = model.loss(b, out, stats)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    return before, score(), time.perf_counter() - t0


@pytest.mark.slow
@pytest.mark.parametrize("name,steps", [("nar", 60), ("dear", 80)])
def test_short_training_learns_minimum(name, steps, split):
    """Seconds of training find the minimum of 8 keys out of distribution of nothing but size:
    measured 0.89-0.98 (NAR, 60 steps, ~4 s) and 0.91-0.92 (DEAR, 80 steps, ~8 s) over seeds
    0-3 on one core; an untrained model scores 0.00-0.14."""
    before, after, _ = _train_minimum(name, steps, split)
    assert after >= 0.8, (before, after)
    assert after > before + 0.5


@pytest.mark.parametrize("name,processor,options", [
    ("nar", "mpnn", {}), ("nar-lt", "triplet_gmpnn", {}),
    ("dear", "mpnn", {"backward": "phantom"}), ("dear", "triplet_gmpnn", {"backward": "ift"}),
])
def test_static_terms_once_per_forward(name, processor, options, split, monkeypatch):
    """Models whose encoding is fixed over steps compute the processor's state-independent
    terms once per forward (``static_terms``) instead of once per step: same outputs and same
    gradients as the per-step path, and ``lin_edge`` really runs once."""
    torch.manual_seed(0)
    ds = split("bfs", num_samples=4, sizes=(5, 7))
    model = build_model(name, ds.spec, hidden=8, processor=processor, **options).train()
    b = _batch(ds)
    calls = []
    handle = model.processor.lin_edge.register_forward_hook(lambda *a: calls.append(1))

    def run():
        torch.manual_seed(1)
        out, _ = model(b)
        loss = model.loss(b, out)
        model.zero_grad()
        loss.backward()
        return out["output_pi"].detach(), {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}

    out_once, grads_once = run()
    once = len(calls)
    calls.clear()
    monkeypatch.setattr(model, "static_terms", lambda enc, layout: None)
    out_each, grads_each = run()
    handle.remove()
    assert once == 1 and len(calls) > 2, (once, len(calls))
    assert torch.allclose(out_once, out_each, atol=1e-5)
    assert grads_once.keys() == grads_each.keys() and "processor.lin_edge.weight" in grads_once
    for k in grads_once:
        assert torch.allclose(grads_once[k], grads_each[k], atol=1e-5, rtol=1e-4), k


@pytest.mark.parametrize("name,processor,options", [
    ("nar", "mpnn", {}), ("nar", "triplet_gmpnn", {}),
    ("dear", "mpnn", {"noise": 0.0, "jac_reg": 0.0}), ("dear", "triplet_gmpnn", {"noise": 0.0, "backward": "ift"}),
])
def test_compaction_same_outputs_and_gradients(name, processor, options, split):
    """Dropping finished graphs from the batch (``model.compact``, on by default) gives the
    same outputs, step counts and gradients as stepping the whole batch, on graphs whose trace
    lengths (NAR) and solver iterations (DEAR) differ."""
    torch.manual_seed(0)
    ds = split("dag_shortest_paths", num_samples=8, sizes=(4, 6, 8))
    model = build_model(name, ds.spec, hidden=16, processor=processor, **options)
    if name == "dear":
        model.equilibrium.tol = 1e-3  # graphs converge after clearly different iteration counts
        model.equilibrium.backward_tol = 1e-4  # and so do their adjoints (IFT)
    b = _batch(ds)

    rows: list[int] = []
    model.processor.register_forward_hook(lambda mod, args, out: rows.append(out.shape[0]))

    def run(compact: bool, train: bool):
        model.compact = compact
        model.train(train)
        torch.manual_seed(1)
        rows.clear()
        out, stats = model(b)
        assert (min(rows) < b.num_nodes) == compact, rows  # finished graphs really dropped
        grads = {}
        if train:
            model.zero_grad()
            rows.clear()
            model.loss(b, out).backward()
            if options.get("backward") == "ift":  # the adjoint solve drops finished graphs too
                # (uncompacted, the adjoint reuses f(z*)'s graph: no processor call at all)
                assert (bool(rows) and min(rows) < b.num_nodes) == compact, rows
            grads = {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}
        return out["output_pi"].detach(), stats["iterations"].clone(), grads

    for train in (False, True):
        out_c, it_c, g_c = run(True, train)
        out_p, it_p, g_p = run(False, train)
        assert len(set(it_p.tolist())) > 2, it_p
        assert torch.equal(it_c, it_p)
        assert torch.allclose(out_c, out_p, atol=1e-5)
        assert g_c.keys() == g_p.keys()
        for k in g_c:
            assert torch.allclose(g_c[k], g_p[k], atol=1e-5, rtol=1e-4), k
