"""Lossless conversion: dm-clrs trace -> PyG graph(s) -> dm-clrs arrays, for every task."""

import numpy as np
import pytest
import torch

import clrs_tasks as ct
from clrs_tasks.convert import ConversionError
from clrs_helpers import assert_feedback_equal, small_split

ALL_TASKS = ct.list_tasks()


def test_registry_has_clrs30_and_extras():
    assert len(ct.list_tasks(clrs30_only=True)) == 30
    for extra in ("find_maximum_subarray", "bipartite_matching", "binary_search_dear"):
        assert extra in ALL_TASKS and not ct.get_task(extra).clrs30


@pytest.mark.parametrize("name", ALL_TASKS)
def test_round_trip_official(name):
    feedbacks, graphs = small_split(name, "official", sizes=(6,), num_samples=4)
    (fb,) = feedbacks
    # the whole batch at once: hints zero-padded to the longest trace, pointers un-offset
    assert_feedback_equal(ct.to_clrs(ct.collate(graphs)), fb, name)
    # one graph at a time
    for i, g in enumerate(graphs):
        single = ct.to_clrs(g)
        assert single.features.lengths[0] == fb.features.lengths[i]
        t = int(fb.features.lengths[i])
        for ours, theirs in zip(single.features.hints, fb.features.hints):
            assert np.array_equal(np.asarray(ours.data)[:, 0], np.asarray(theirs.data)[:t, i])


@pytest.mark.parametrize("name", ["bfs", "floyd_warshall", "insertion_sort", "lcs_length", "dfs",
                                  "matrix_chain_order", "strongly_connected_components", "optimal_bst"])
def test_round_trip_mixed_sizes_in_one_batch(name):
    feedbacks, graphs = small_split(name, "dear", sizes=(4, 7), num_samples=8)
    assert len(feedbacks) == 2
    # shuffle graphs of both sizes into one PyG batch, then split it back per graph
    order = np.random.RandomState(0).permutation(len(graphs))
    batch = ct.collate([graphs[i] for i in order])
    per_graph = ct.to_clrs(batch, per_graph=True)
    sizes = [len(fb.features.lengths) for fb in feedbacks]
    flat = [(fb, j) for fb, b in zip(feedbacks, sizes) for j in range(b)]
    for pos, i in enumerate(order):
        fb, j = flat[i]
        ref = ct.to_clrs(graphs[i])
        assert_feedback_equal(per_graph[pos], ref, f"{name} graph {i}")
        np.testing.assert_array_equal(np.asarray(ref.outputs[0].data)[0], np.asarray(fb.outputs[0].data)[j])
    with pytest.raises(ConversionError, match="per_graph=True"):
        ct.to_clrs(batch)


def test_pointers_are_offset_by_batching():
    _, graphs = small_split("bfs", sizes=(5,), num_samples=3)
    batch = ct.collate(graphs)
    for g in range(3):
        local = graphs[g].output_pi
        assert torch.equal(batch.output_pi[batch.ptr[g]: batch.ptr[g + 1]], local + batch.ptr[g])
        # hint pointers too, including zero padding past the trace's end
        h = batch.hint_pi_h[batch.ptr[g]: batch.ptr[g + 1]]
        assert torch.all(h[:, : graphs[g].length.item()] - batch.ptr[g] == graphs[g].hint_pi_h)
    # edge_pair indexes the flattened all-pairs rows of each graph
    a = batch.input_A[batch.edge_pair]
    ref = torch.cat([g.input_A[g.edge_pair] for g in graphs])
    assert torch.equal(a, ref)


def test_edge_policies():
    _, graphs = small_split("bfs", sizes=(6,), num_samples=2)
    g = graphs[0]
    adj = g.input_adj.view(6, 6) != 0
    expected = adj.clone()
    expected.fill_diagonal_(True)
    assert torch.equal(g.edge_index, expected.nonzero().T)
    assert torch.equal(g.edge_pair, g.edge_index[0] * 6 + g.edge_index[1])
    # complete policy through the dataset API
    ds = ct.load_split("bfs", "train", num_samples=2, sizes=6, edge_policy="complete", progress=False)
    assert ds[0].edge_index.shape[1] == 36
    # arrays have no adjacency: the complete graph (with self loops), as in DEAR
    _, arr = small_split("insertion_sort", sizes=(5,), num_samples=1)
    assert arr[0].edge_index.shape[1] == 25
    # DEAR's undirected tasks
    _, dfs = small_split("dfs", sizes=(6,), num_samples=1)
    m = torch.zeros(6, 6, dtype=torch.bool)
    m[dfs[0].edge_index[0], dfs[0].edge_index[1]] = True
    assert torch.equal(m, m.T)


def test_edge_data_is_kept_on_all_pairs():
    # Floyd-Warshall's Pi is defined on all n*n pairs whatever edges message passing uses
    feedbacks, graphs = small_split("floyd_warshall", sizes=(6,), num_samples=4, protocol="dear")
    sparse = [g for g in graphs if g.edge_index.shape[1] < 36]
    assert sparse, "expected at least one graph whose message-passing edges are not all pairs"
    g = sparse[0]
    assert g.output_Pi.shape == (36,)
    assert g.hint_D.shape == (36, int(g.length))
    i = graphs.index(g)
    np.testing.assert_array_equal(g.output_Pi.view(6, 6).numpy(), np.asarray(feedbacks[0].outputs[0].data)[i])


def test_compact_storage_is_exact():
    _, graphs = small_split("floyd_warshall", sizes=(5,), num_samples=1)
    g = graphs[0]
    assert g.hint_msk.dtype == torch.int8  # mask stored compactly...
    spec = g.clrs_spec.by_key["hint_msk"]
    assert spec.dtype == "float64"  # ...and given back in dm-clrs's dtype by to_clrs
