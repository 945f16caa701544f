"""clrs_tasks.evaluate against dm-clrs's own clrs.evaluate on the same traces."""

import numpy as np
import pytest
import torch

import clrs_tasks as ct
from clrs_tasks._clrs import clrs
from clrs_tasks.scoring import PredictionError
from clrs_helpers import small_split

# Between them these cover every output (location, type) in CLRS-30: node pointer, node mask,
# node mask_one, permutation pointer + mask, edge pointer, edge mask, edge categorical, graph mask.
TASKS = ["bfs", "activity_selector", "minimum", "insertion_sort", "floyd_warshall", "mst_kruskal",
         "lcs_length", "segments_intersect", "topological_sort", "optimal_bst"]


def _random_case(name, seed=0):
    """Random logits per output: (our graph-layout predictions, dm-clrs hard predictions)."""
    (fb,), graphs = small_split(name, "official", sizes=(7,), num_samples=6, split="val")
    batch = ct.collate(graphs)
    rng = np.random.RandomState(seed)
    b = len(fb.features.lengths)
    ours, ref = {}, {}
    for dp in fb.outputs:
        shape = np.asarray(dp.data).shape
        if dp.type_ == "permutation_pointer":
            shape = shape[:-1]  # one-hot [B, n, n] targets; pointer logits are [B, n, n] too
        n = shape[1] if len(shape) > 1 else None
        if dp.type_ in ("pointer", "permutation_pointer"):
            logits = rng.randn(*shape, n)  # node: [B, n, n]; edge: [B, n, n, n]
            hard = logits.argmax(-1).astype(float)
            ref_data = np.eye(n)[logits.argmax(-1)] if dp.type_ == "permutation_pointer" else hard
            ours[dp.name] = torch.tensor(logits.reshape(-1))
        elif dp.type_ == "mask":
            logits = rng.randn(*shape)
            ref_data = (logits > 0) * 1.0
            ours[dp.name] = torch.tensor(logits.reshape(-1) if dp.location != "graph" else logits)
        elif dp.type_ in ("mask_one", "categorical"):
            logits = rng.randn(*shape)
            ref_data = np.eye(shape[-1])[logits.argmax(-1)]
            tail = shape[-1:] if dp.type_ == "categorical" else ()
            ours[dp.name] = torch.tensor(logits.reshape((-1,) + tail))
        else:
            raise AssertionError(dp.type_)
        ref[dp.name] = clrs().DataPoint(dp.name, dp.location, dp.type_, ref_data)
    assert b == batch.num_graphs
    return fb, batch, ours, ref


@pytest.mark.parametrize("name", TASKS)
def test_matches_clrs_evaluate_on_random_predictions(name):
    fb, batch, ours, ref = _random_case(name)
    expected = clrs().evaluate(fb.outputs, ref)
    got = ct.evaluate(batch, ours)
    assert set(got) == set(expected)
    for k in expected:
        assert got[k] == pytest.approx(float(expected[k]), abs=1e-12), k
    assert 0.0 <= got["score"] <= 1.0


@pytest.mark.parametrize("name", TASKS)
def test_perfect_prediction_scores_one(name):
    (fb,), graphs = small_split(name, "official", sizes=(7,), num_samples=5, split="val")
    batch = ct.collate(graphs)
    preds = {}
    for f in batch.clrs_spec[0].stage("output"):
        t = batch[f.key]
        if f.is_pointer:
            preds[f.name] = t.long()  # exact indices, global in the batch
        elif f.type_ == "mask":
            preds[f.name] = (t.double() * 2 - 1) * 10  # logits
        else:
            preds[f.name] = t.double() * 10
    assert ct.evaluate(batch, preds)["score"] == pytest.approx(1.0)


def test_edge_logit_pointers_take_argmax_over_out_edges():
    (fb,), graphs = small_split("bfs", "official", sizes=(7,), num_samples=6, split="val")
    batch = ct.collate(graphs)
    rng = np.random.RandomState(1)
    scores = torch.tensor(rng.randn(batch.edge_index.shape[1]))
    # reference: dense [B, n, n] logits, -inf off the message-passing edges
    dense = np.full((batch.num_graphs, 7, 7), -np.inf)
    src, dst = batch.edge_index.numpy()
    g = batch.batch.numpy()[src]
    off = batch.ptr.numpy()[g]
    dense[g, src - off, dst - off] = scores.numpy()
    ref = {"pi": clrs().DataPoint("pi", "node", "pointer", dense.argmax(-1).astype(float))}
    assert ct.evaluate(batch, {"pi": scores})["pi"] == pytest.approx(float(clrs().evaluate(fb.outputs, ref)["pi"]))


def test_pooling_over_batches_equals_one_batch():
    fb, batch, ours, ref = _random_case("insertion_sort", seed=3)
    whole = ct.evaluate(batch, ours)
    graphs = batch.to_data_list()
    ev = ct.Evaluator()
    n = 7
    for lo, hi in [(0, 2), (2, 6)]:
        sub = ct.collate(graphs[lo:hi])
        ev.add(sub, {"pred": ours["pred"][lo * n * n: hi * n * n], "pred_mask": ours["pred_mask"][lo * n: hi * n]})
    assert ev.result() == pytest.approx(whole)


def test_mixed_sizes_pool_elementwise():
    # pointer accuracy over graphs of two sizes is the fraction of all nodes right
    feedbacks, graphs = small_split("bfs", "dear", sizes=(4, 9), num_samples=10)
    batch = ct.collate(graphs)
    rng = np.random.RandomState(2)
    truth = batch.output_pi
    pred = torch.where(torch.tensor(rng.rand(truth.shape[0]) < 0.6), truth, torch.zeros_like(truth))
    # make wrong entries surely wrong: point outside the graph's own index range is impossible, so use
    # the graph's first node unless that is the truth
    expected = float((pred == truth).double().mean())
    assert ct.evaluate(batch, {"pi": pred})["pi"] == pytest.approx(expected)


def test_bad_predictions_are_named():
    fb, batch, ours, _ = _random_case("bfs")
    with pytest.raises(PredictionError, match="missing predictions for pi"):
        ct.evaluate(batch, {})
    with pytest.raises(PredictionError, match="unknown outputs"):
        ct.evaluate(batch, {**ours, "nope": ours["pi"]})
    with pytest.raises(PredictionError, match="'pi'"):
        ct.evaluate(batch, {"pi": torch.zeros(3)})
