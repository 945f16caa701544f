"""Output heads against dm-clrs as the oracle: decoders, losses and hard predictions.

For every output (location, type) of CLRS-30 the same numbers go through our code and through
dm-clrs 2.0.3's own functions, read from the installed ``clrs`` package:

* decoders: our :class:`FieldDecoder` and dm-clrs's ``_decode_{node,edge,graph}_fts`` given our
  weights as its linear layers (the pointer head's one documented difference is pinned);
* losses: :meth:`Reasoner.loss_terms` (outputs, and hints through ``nar-hints``) and
  ``clrs._src.losses.output_loss`` / ``hint_loss`` on the same predictions and dm-clrs's own
  targets (:func:`clrs_tasks.to_clrs`), including masked entries and padded hint steps;
* hard predictions: :func:`predictions_for_scoring` + :func:`clrs_tasks.evaluate` against
  ``clrs._src.decoders.postprocess(hard=True)`` with ``BaselineModel.predict``'s settings and
  ``clrs.evaluate``.

Batches of graphs of one size are compared whole; batches of mixed sizes (which dm-clrs cannot
hold) graph by graph. Graphs use the ``complete`` edge policy (dm-clrs's dense layout) unless a
test is about ``adjacency``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from clrs._src import decoders as dm_decoders
from clrs._src import evaluation as dm_evaluation
from clrs._src import losses as dm_losses

import clrs_tasks as ct
from clrs_tasks import get_task, sampling
from clrs_tasks.convert import GraphStore, encode, spec_of, to_clrs
from clrs_tasks.protocols import split_config
from clrs_tasks.scoring import _hard_prediction, _Layout
from dear.reasoners import BatchLayout, Encoding, FieldDecoder, build_model, predictions_for_scoring
from dear.reasoners.decoders import log_sinkhorn
from dear.reasoners.layout import grouped_log_softmax
from dear.reasoners.losses import field_loss, reduce_loss, row_graph

# every output (location, type) of CLRS-30; the hint cases add scalar, edge scalar/mask,
# edge-pointer and graph-categorical hints
OUTPUT_TASKS = ["bfs", "activity_selector", "minimum", "insertion_sort", "floyd_warshall", "mst_kruskal",
                "lcs_length", "segments_intersect"]
HINT_TASKS = ["floyd_warshall", "mst_kruskal"]
POINTERS = ("pointer", "permutation_pointer")



@functools.lru_cache(maxsize=None)
def _graphs(task: str, sizes: tuple[int, ...] = (6,), num: int = 3, policy: str = "complete") -> tuple:
    t = get_task(task)
    cfg = split_config(t, "train", "official", sizes=sizes, num_samples=num)
    _, feedbacks = sampling.sample_split(t, cfg, progress=False)
    store = GraphStore.from_encoded(encode(task, feedbacks), edge_policy=policy, undirected=t.undirected)
    return tuple(store[i] for i in range(len(store)))


def _batch(task: str, **kw):
    return ct.collate(list(_graphs(task, **kw)))


# --------------------------------------------------------------- dm-clrs dense <-> our layout


def _dm_shape(f, n: int) -> tuple[int, ...]:
    """dm-clrs's per-graph shape of a decoder output (logits) for probe ``f``."""
    loc = {"node": (n,), "edge": (n, n), "graph": ()}[f.location]
    if f.type_ in POINTERS and f.location == "node":
        return loc + (n,)
    if f.type_ == "pointer":  # edge pointer: per pair, over nodes
        return loc + (n,)
    return loc + tuple(f.trailing)


def _log_softmax(x: np.ndarray) -> np.ndarray:
    return np.asarray(jax.nn.log_softmax(jnp.asarray(x), axis=-1))


def _to_ours(f, per_graph: list[np.ndarray], batch) -> torch.Tensor:
    """dm-clrs decoder outputs, one array per graph, in our raw-output layout: node pointers
    log-softmaxed over the row (our decoder normalises over out-edges) and gathered onto
    ``edge_index``; permutation pointers (already log-Sinkhorn) gathered as they are; edge
    pointers log-softmaxed over ``k`` and flattened; the rest flattened per location."""
    if f.location == "node" and f.type_ in POINTERS:
        rows = [a if f.type_ == "permutation_pointer" else _log_softmax(a) for a in per_graph]
        dense = np.concatenate([r.reshape(-1) for r in rows])  # pair rows, graph after graph
        return torch.from_numpy(dense[batch.edge_pair.numpy()])
    if f.location == "edge" and f.type_ == "pointer":
        return torch.from_numpy(np.concatenate([_log_softmax(a).reshape(-1) for a in per_graph]))
    tail = tuple(f.trailing)
    return torch.from_numpy(np.concatenate([a.reshape((-1,) + tail) for a in per_graph]))


def _random_logits(f, n: int, rng: np.random.Generator, lead: tuple[int, ...] = (), scale: float = 1.0) -> np.ndarray:
    """Random decoder outputs in dm-clrs's layout; permutation pointers through dm-clrs's own
    evaluation-mode decoder Sinkhorn (10 steps, temperature 0.1, no noise)."""
    x = (scale * rng.standard_normal(lead + _dm_shape(f, n))).astype(np.float32)
    if f.type_ == "permutation_pointer":
        x = np.asarray(dm_decoders.log_sinkhorn(jnp.asarray(x), 10, 0.1, True, None))
    return x


# --------------------------------------------------------------------------- losses


@pytest.mark.parametrize("task", OUTPUT_TASKS)
def test_output_losses_equal_dmclrs(task):
    """The training loss of every output probe (what ``Reasoner.loss_terms`` returns) is
    dm-clrs's ``output_loss`` on the same logits and dm-clrs's own targets: scalar MSE, mask BCE
    over non-MASKED entries, mask_one / categorical cross-entropy over positives, pointer and
    edge-pointer cross-entropy over each row's candidates, permutation pointers on the
    log-Sinkhorn matrix."""
    rng = np.random.default_rng(0)
    b = _batch(task)
    fb = to_clrs(b)
    n, bsz = int(b.num_nodes // b.num_graphs), b.num_graphs
    spec = spec_of(b)
    logits = {f.key: _random_logits(f, n, rng, (bsz,), scale=3.0) for f in spec.stage("output")}
    outputs = {f.key: _to_ours(f, list(logits[f.key]), b) for f in spec.stage("output")}
    ours = build_model("nar", spec, hidden=4).loss_terms(b, outputs)
    for truth in fb.outputs:
        theirs = float(dm_losses.output_loss(truth, jnp.asarray(logits[f"output_{truth.name}"]), n))
        assert float(ours[f"output_{truth.name}"]) == pytest.approx(theirs, rel=2e-6, abs=1e-7), truth.name


@pytest.mark.parametrize("task", HINT_TASKS)
def test_hint_losses_equal_dmclrs(task):
    """Hint losses (``nar-hints``: the prediction of step ``s`` against the hint of ``s + 1``,
    only while ``s + 1 < length``) are dm-clrs's ``hint_loss`` on the same predictions, over a
    batch whose traces have different lengths (padded steps must not count)."""
    rng = np.random.default_rng(1)
    b = _batch(task, num=4)
    fb = to_clrs(b)
    lengths = fb.features.lengths
    if task in ("bellman_ford", "mst_kruskal"):
        assert len(set(lengths.tolist())) > 1  # padded hint steps are exercised
    n, bsz = int(b.num_nodes // b.num_graphs), b.num_graphs
    spec = spec_of(b)
    steps = int(lengths.max()) - 1
    outputs = {}
    for f in spec.stage("output"):
        outputs[f.key] = _to_ours(f, list(_random_logits(f, n, rng, (bsz,))), b)
    hint_logits = {}
    for f in spec.stage("hint"):
        x = _random_logits(f, n, rng, (steps, bsz), scale=3.0)  # [T - 1, B, ...]
        hint_logits[f.name] = x
        per_step = [_to_ours(f, list(x[s]), b) for s in range(steps)]
        outputs[f.key] = torch.stack(per_step, dim=1)
    ours = build_model("nar-hints", spec, hidden=4).loss_terms(b, outputs)
    for truth in fb.features.hints:
        theirs = float(dm_losses.hint_loss(truth, list(jnp.asarray(hint_logits[truth.name])), lengths, n))
        assert float(ours[f"hint_{truth.name}"]) == pytest.approx(theirs, rel=2e-6, abs=1e-7), truth.name


@pytest.mark.parametrize("task", ["bfs", "activity_selector", "insertion_sort", "floyd_warshall", "lcs_length"])
def test_mixed_sizes_equal_dmclrs_per_graph(task):
    """Graphs of sizes 5 and 7 in one batch (which dm-clrs cannot hold): each graph's loss
    rows give dm-clrs's loss of that graph alone, the batch loss pools them as documented
    (``sum num / sum den``), and each graph's hard prediction is dm-clrs's for that graph."""
    rng = np.random.default_rng(2)
    graphs = sum((_graphs(task, sizes=(n,), num=1) for n in (5, 7)), ())
    b = ct.collate(list(graphs))
    lay = BatchLayout(b)
    spec = spec_of(b)
    sizes = lay.sizes.tolist()
    assert sizes == [5, 7]
    logits = {f.name: [_random_logits(f, n, rng, scale=3.0) for n in sizes] for f in spec.stage("output")}
    ours = {f.key: _to_ours(f, logits[f.name], b) for f in spec.stage("output")}
    hard = predictions_for_scoring(b, ours)
    slay = _Layout(b)
    for g, (graph, n) in enumerate(zip(graphs, sizes)):
        fb = to_clrs(graph)
        post = _dm_postprocess(spec, {k: v[g][None] for k, v in logits.items()})
        for f in spec.stage("output"):
            mine = _hard_prediction(f, hard[f.name], b, slay, "logits")[g]
            want = np.asarray(post[f.name].data)
            if f.type_ == "mask":
                mine, want = mine > 0.5, want > 0.5
            assert np.array_equal(mine, want), (f.name, g)
        for truth in fb.outputs:
            f = next(f for f in spec.stage("output") if f.name == truth.name)
            num, den, _ = field_loss(f, ours[f.key], b[f.key], lay)
            rows = row_graph(f, lay) == g
            theirs = float(dm_losses.output_loss(truth, jnp.asarray(logits[f.name][g][None]), n))
            assert float(num[rows].sum() / den[rows].sum()) == pytest.approx(theirs, rel=2e-6, abs=1e-7), (f.name, g)
    for f in spec.stage("output"):
        num, den, _ = field_loss(f, ours[f.key], b[f.key], lay)
        per_g = [(num[row_graph(f, lay) == g].sum(), den[row_graph(f, lay) == g].sum()) for g in range(len(sizes))]
        pooled = sum(float(a) for a, _ in per_g) / sum(float(d) for _, d in per_g)
        assert float(reduce_loss(num, den)) == pytest.approx(pooled, rel=1e-6)


def test_pointer_loss_under_adjacency_is_dmclrs_with_non_edges_masked():
    """Documented difference: under the ``adjacency`` policy a node pointer is a distribution over
    the node's out-edges. That is dm-clrs's row softmax with every non-edge masked out (a very
    negative logit), so on targets that are edges (all of BFS's parents) the loss is dm-clrs's."""
    rng = np.random.default_rng(3)
    b = _batch("bfs", policy="adjacency")
    lay = BatchLayout(b)
    f = next(f for f in spec_of(b).stage("output") if f.name == "pi")
    n, bsz = int(lay.sizes[0]), lay.num_graphs
    assert lay.num_edges < lay.num_pairs  # not complete
    x = rng.standard_normal((bsz, n, n)).astype(np.float32)
    is_edge = np.zeros(bsz * n * n, bool)
    is_edge[b.edge_pair.numpy()] = True
    masked = np.where(is_edge.reshape(bsz, n, n), x, np.float32(-1e9))
    ours = _to_ours(f, list(masked), b)  # log-softmax over the full row, read on the edges
    scores = torch.from_numpy(x.reshape(-1)[b.edge_pair.numpy()])
    assert torch.allclose(grouped_log_softmax(scores, b.edge_index[0], lay.num_nodes), ours, atol=1e-6)
    num, den, missing = field_loss(f, ours, b[f.key], lay)
    assert missing == 0  # BFS's parents are edges
    truth = to_clrs(b).outputs[0]
    theirs = float(dm_losses.output_loss(truth, jnp.asarray(masked), n))
    assert float(reduce_loss(num, den)) == pytest.approx(theirs, rel=2e-6)


# --------------------------------------------------------------------------- decoders


def _linear(m: torch.nn.Linear):
    w = jnp.asarray(m.weight.detach().numpy().T)
    b = None if m.bias is None else jnp.asarray(m.bias.detach().numpy())
    return (lambda x: x @ w) if b is None else (lambda x: x @ w + b)


@pytest.mark.parametrize("task", OUTPUT_TASKS)
def test_decoder_heads_equal_dmclrs(task):
    """Each output head computes dm-clrs's decoder (``_decode_node_fts`` / ``_decode_edge_fts``
    / ``_decode_graph_fts``, evaluation mode) when dm-clrs is given our weights, node
    representations and edge / graph features. The one documented difference: dm-clrs scores
    "``i`` points to ``j``" with the features of edge ``(j, i)``, ours with those of ``(i, j)``
    (the edge a pointer is encoded on), so dm-clrs gets the transposed edge features there."""
    torch.manual_seed(0)
    hidden = 8
    b = _batch(task)
    lay = BatchLayout(b)
    n, bsz = int(lay.sizes[0]), lay.num_graphs
    z = torch.randn(lay.num_nodes, 2 * hidden)
    pair = torch.randn(lay.num_pairs, hidden)
    enc = Encoding(torch.randn(lay.num_nodes, hidden), pair[b.edge_pair], torch.randn(bsz, hidden), pair)
    h_t = jnp.asarray(z.numpy().reshape(bsz, n, 2 * hidden))
    e_fts = jnp.asarray(pair.numpy().reshape(bsz, n, n, hidden))
    g_fts = jnp.asarray(enc.graph.numpy())
    for f in spec_of(b).stage("output"):
        dec = FieldDecoder(f, hidden).eval()
        with torch.no_grad():
            ours = dec(z, enc, lay)
        t = f.type_
        if f.location == "node" and t in POINTERS:
            layers = tuple(map(_linear, (dec.src, dec.dst, dec.edge, dec.out)))
            theirs = dm_decoders._decode_node_fts(layers, t, h_t, jnp.swapaxes(e_fts, 1, 2), None, False, True)
            untransposed = dm_decoders._decode_node_fts(layers, t, h_t, e_fts, None, False, True)
            assert not np.allclose(np.asarray(theirs), np.asarray(untransposed), atol=1e-3)  # the difference is real
        elif f.location == "node":
            theirs = dm_decoders._decode_node_fts((_linear(dec.out),), t, h_t, e_fts, None, False, True)
        elif f.location == "edge":
            layers = (dec.src, dec.dst, dec.edge) + ((dec.node, dec.out) if t == "pointer" else ())
            theirs = dm_decoders._decode_edge_fts(tuple(map(_linear, layers)), t, h_t, e_fts, None, False)
        else:
            theirs = dm_decoders._decode_graph_fts((_linear(dec.pool), _linear(dec.graph)), t, h_t, g_fts)
        expect = _to_ours(f, list(np.asarray(theirs)), b)
        assert ours.shape == expect.shape, f.name
        assert torch.allclose(ours, expect, rtol=1e-4, atol=1e-4), (f.name, float((ours - expect).abs().max()))


def test_permutation_decoder_gumbel_noise_equals_dmclrs(monkeypatch):
    """In training, the permutation head adds Gumbel noise before its Sinkhorn exactly as
    dm-clrs's ``log_sinkhorn`` does (same uniform draws -> same log doubly-stochastic matrix)."""
    b = _batch("insertion_sort")
    lay = BatchLayout(b)
    n, bsz = int(lay.sizes[0]), lay.num_graphs
    rng = np.random.default_rng(4)
    scores = rng.standard_normal((bsz, n, n)).astype(np.float32)
    u = rng.uniform(size=(bsz, n, n)).astype(np.float32)
    monkeypatch.setattr(jax.random, "uniform", lambda key, shape: jnp.asarray(u))
    theirs = np.asarray(dm_decoders.log_sinkhorn(jnp.asarray(scores), 10, 0.1, True, jax.random.PRNGKey(0)))
    rows = b.edge_pair.numpy()
    monkeypatch.setattr(torch, "rand_like", lambda x: torch.from_numpy(u.reshape(-1)[rows]))
    src, dst = b.edge_index
    ours = log_sinkhorn(torch.from_numpy(scores.reshape(-1)[rows]), src, dst, lay.num_nodes, gumbel=True)
    expect = torch.from_numpy(theirs.reshape(-1)[rows])
    assert torch.allclose(ours, expect, rtol=1e-4, atol=1e-3), float((ours - expect).abs().max())


# --------------------------------------------------------------------------- hard predictions


def _dm_postprocess(spec, logits: dict[str, np.ndarray]):
    """dm-clrs's hard predictions with ``BaselineModel.predict``'s settings."""
    dm_spec = {f.name: ("output", f.location, f.type_) for f in spec.stage("output")}
    return dm_decoders.postprocess(dm_spec, {k: jnp.asarray(v) for k, v in logits.items()},
                                   sinkhorn_temperature=0.1, sinkhorn_steps=50, hard=True)


@pytest.mark.parametrize("task", OUTPUT_TASKS)
def test_hard_predictions_and_scores_equal_dmclrs(task):
    """What scoring takes from our outputs (``predictions_for_scoring(batch, out)`` through
    ``clrs_tasks``) is dm-clrs's ``postprocess(hard=True)`` of the same logits, graph by graph,
    and the scores are ``clrs.evaluate``'s: pointer / mask_one / categorical argmax, mask logit
    > 0, and for permutation pointers the 50 extra Sinkhorn steps ``BaselineModel.predict``
    applies before its row argmax (the row argmax of the decoder's own 10-step output differs on
    a few percent of rows; small ``scale`` makes that frequent)."""
    rng = np.random.default_rng(5)
    b = _batch(task)
    lay = BatchLayout(b)
    n, bsz = int(lay.sizes[0]), lay.num_graphs
    spec = spec_of(b)
    for scale in (0.3, 3.0):
        logits = {f.name: _random_logits(f, n, rng, (bsz,), scale=scale) for f in spec.stage("output")}
        _check_hard_predictions(b, spec, logits)


def _check_hard_predictions(b, spec, logits):
    ours = predictions_for_scoring(b, {f.key: _to_ours(f, list(logits[f.name]), b) for f in spec.stage("output")})
    theirs = _dm_postprocess(spec, logits)
    slay = _Layout(b)
    for f in spec.stage("output"):
        hard = np.concatenate(_hard_prediction(f, ours[f.name], b, slay, "logits"))
        want = np.asarray(theirs[f.name].data)
        if f.type_ == "mask":  # scoring keeps probabilities; dm-clrs's F1 reads > 0.5 and < 0.5
            assert np.array_equal(hard > 0.5, want > 0.5) and np.array_equal(hard < 0.5, want < 0.5), f.name
        else:
            assert np.array_equal(hard, want), (f.name, float(np.mean(hard != want)))
    got = ct.evaluate(b, ours)
    expect = dm_evaluation.evaluate(to_clrs(b).outputs, theirs)
    assert got == pytest.approx({k: float(v) for k, v in expect.items()}, rel=1e-6)  # dm-clrs: float32


def test_permutation_scoring_needed_the_extra_sinkhorn():
    """The raw decoder output (``predictions_for_scoring(outputs)``, no batch) is not dm-clrs's
    hard permutation: on these random logits its row argmax differs from dm-clrs's on some
    rows, while the batch form agrees everywhere (the defect the 50-step postprocess fixes)."""
    rng = np.random.default_rng(6)
    b = _batch("insertion_sort", num=8)
    lay = BatchLayout(b)
    n, bsz = int(lay.sizes[0]), lay.num_graphs
    f = next(f for f in spec_of(b).stage("output") if f.name == "pred")
    logits = _random_logits(f, n, rng, (bsz,), scale=0.3)
    raw = {f.key: _to_ours(f, list(logits), b)}
    want = np.asarray(_dm_postprocess(spec_of(b), {"pred": logits, "pred_mask": np.zeros((bsz, n), np.float32)})
                      ["pred"].data)
    slay = _Layout(b)
    old = np.concatenate(_hard_prediction(f, predictions_for_scoring(raw)["pred"], b, slay, "logits"))
    new = np.concatenate(_hard_prediction(f, predictions_for_scoring(b, raw)["pred"], b, slay, "logits"))
    assert np.array_equal(new, want)
    assert not np.array_equal(old, want)


@pytest.mark.parametrize("task", ["activity_selector", "mst_kruskal", "segments_intersect"])
def test_mask_threshold_is_dmclrs_logit_zero(task):
    """dm-clrs thresholds mask logits at ``> 0``: a logit of exactly 0 is a negative, a tiny
    positive one (whose float64 sigmoid rounds to 0.5) a positive. Scored through
    ``predictions_for_scoring(batch, out)`` both count as dm-clrs counts them."""
    b = _batch(task)
    lay = BatchLayout(b)
    spec = spec_of(b)
    f = next(f for f in spec.stage("output") if f.type_ == "mask")
    rows = {"node": lay.num_nodes, "edge": lay.num_pairs, "graph": lay.num_graphs}[f.location]
    truth = b[f.key].float()
    for values in ([0.0], [1e-30], [0.0, 1e-30, -1e-30, 2.0, -2.0]):
        logits = torch.tensor(values, dtype=torch.float32)[torch.arange(rows) % len(values)]
        if len(values) == 1:  # make some predictions right so the F1 is not trivially 0 or 1
            logits = torch.where(torch.arange(rows) % 3 == 0, (2 * truth - 1) * 5, logits)
        n = int(lay.sizes[0])
        dm_logits = logits.numpy().reshape((lay.num_graphs,) + {"node": (n,), "edge": (n, n), "graph": ()}[f.location])
        expect = dm_evaluation.evaluate(to_clrs(b).outputs, _dm_postprocess(spec, {f.name: dm_logits}))
        got = ct.evaluate(b, predictions_for_scoring(b, {f.key: logits}))
        assert got[f.name] == pytest.approx(float(expect[f.name]), rel=1e-6), values
