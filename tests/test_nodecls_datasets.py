"""Tests of dear.nodecls datasets: every loader on a miniature of its real format written
here, the AM-GCN loader on the real Citeseer zip, the cache, and the synthetic generators."""

from __future__ import annotations

import gzip
import io
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from torch_geometric.utils import contains_self_loops, is_undirected

from dear.nodecls import (
    DatasetNotFoundError,
    available_datasets,
    dataset_fingerprint,
    load_dataset,
)
from dear.nodecls.datasets import amgcn, base, textio
from dear.nodecls.datasets.base import default_data_dir

SHARED = default_data_dir()
CITESEER_ZIP = SHARED / "amgcn" / "citeseer.zip"


def assert_valid_split(data) -> None:
    """Masks are boolean, node-sized and pairwise disjoint; train and test are non-empty."""
    n = data.num_nodes
    masks = [data.train_mask, data.val_mask, data.test_mask]
    for mask in masks:
        assert mask.dtype == torch.bool and mask.shape == (n,)
    assert int(sum(m.long() for m in masks).max()) <= 1
    assert data.train_mask.any() and data.test_mask.any()


# ----------------------------------------------------------------- miniature generators


def write_amgcn_zip(folder: Path, stem: str = "citeseer", edge_file: str | None = None,
                    classes: int = 3, per_class: int = 100, feats: int = 12, seed: int = 0):
    """An AM-GCN zip with every member the real ones have; returns the true arrays."""
    rng = np.random.default_rng(seed)
    n = classes * per_class
    y = rng.permutation(np.repeat(np.arange(classes), per_class))
    x = (rng.random((n, feats)) < 0.1).astype(np.float32)
    x[0, 0], x[1, 1], x[2, 2] = 0.5, -2.25, 3e-2
    edges = rng.integers(0, n, size=(400, 2))
    edges = np.vstack([edges, [[5, 5], edges[0]]])  # a self loop and a duplicate
    order = rng.permutation(n)
    by_class = [order[y[order] == c] for c in range(classes)]
    test = np.concatenate([idx[60:75] for idx in by_class])
    files = {
        f"{stem}.feature": "\n".join(" ".join(f"{v:f}" for v in row) for row in x) + "\n",
        f"{stem}.label": "\n".join(map(str, y)) + "\n",
        edge_file or f"{stem}.edge": "\n".join(f"{u}\t{v}" for u, v in edges) + "\n",
    }
    for k in (20, 40, 60):
        files[f"train{k}.txt"] = "\n".join(map(str, np.concatenate([i[:k] for i in by_class])))
        files[f"test{k}.txt"] = "\n".join(map(str, test))  # no trailing newline, as ACM's
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(folder / f"{stem}.zip", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(f"{stem}/", "")
        for name, text in files.items():
            z.writestr(f"{stem}/{name}", text)
        z.writestr(f"{stem}/knn/c2.txt", "0 1\n")
    return x, y, edges, by_class, test


def write_corafull(root: Path, n: int = 90, classes: int = 4, feats: int = 10) -> np.ndarray:
    rng = np.random.default_rng(1)
    y = np.arange(n) % classes
    attr = sp.csr_matrix((rng.random((n, feats)) < 0.2) * 2.0)
    adj = sp.csr_matrix((np.ones(200), rng.integers(0, n, (2, 200))), shape=(n, n))
    folder = root / "corafull" / "cora" / "raw"
    folder.mkdir(parents=True)
    np.savez(folder / "cora.npz", attr_data=attr.data, attr_indices=attr.indices,
             attr_indptr=attr.indptr, attr_shape=attr.shape, adj_data=adj.data,
             adj_indices=adj.indices, adj_indptr=adj.indptr, adj_shape=adj.shape, labels=y)
    return y


def write_reddit(root: Path, n: int = 60) -> np.ndarray:
    rng = np.random.default_rng(2)
    node_types = rng.integers(1, 4, n)
    folder = root / "reddit" / "raw"
    folder.mkdir(parents=True)
    np.savez(folder / "reddit_data.npz", feature=rng.random((n, 7)).astype(np.float32),
             label=rng.integers(0, 5, n), node_types=node_types)
    u, v = rng.integers(0, n, (2, 150))
    adj = sp.coo_matrix((np.ones(300), (np.r_[u, v], np.r_[v, u])), shape=(n, n))
    sp.save_npz(folder / "reddit_graph.npz", adj)
    return node_types


def write_amazon(root: Path, n: int = 200, classes: int = 6):
    rng = np.random.default_rng(3)
    labels = (rng.random((n, classes)) < 0.3).astype(int)
    labels[:10] = 0  # unlabelled nodes never enter the validation split
    neighbours = [rng.choice(n, rng.integers(0, 4), replace=False) for _ in range(n)]
    folder = root / "amazon-all"
    folder.mkdir(parents=True)
    (folder / "meta.txt").write_text(f"{n} {classes}\n")
    (folder / "adj_list.txt").write_text(
        "".join(" ".join(map(str, [i, *nb])) + "\n" for i, nb in enumerate(neighbours)))
    np.savetxt(folder / "label.txt", labels, fmt="%d")
    order = rng.permutation(np.arange(10, n))
    np.savetxt(folder / "train_idx-0.06.txt", order[:12], fmt="%d")
    np.savetxt(folder / "test_idx.txt", order[12:60], fmt="%d")
    return labels, neighbours, order


def write_ogb(root: Path, folder: str = "ogbn_arxiv", scheme: str = "time", n: int = 50):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((n, 8)).astype(np.float32)
    y = rng.integers(0, 5, n)
    edges = rng.integers(0, n, (120, 2))
    order = rng.permutation(n)
    tables = {
        "raw/node-feat.csv.gz": "\n".join(",".join(repr(float(v)) for v in r) for r in x),
        "raw/node-label.csv.gz": "\n".join(map(str, y)),
        "raw/edge.csv.gz": "\n".join(f"{a},{b}" for a, b in edges),
        "raw/num-node-list.csv.gz": str(n),
        f"split/{scheme}/train.csv.gz": "\n".join(map(str, order[:20])),
        f"split/{scheme}/valid.csv.gz": "\n".join(map(str, order[20:30])),
        f"split/{scheme}/test.csv.gz": "\n".join(map(str, order[30:])),
    }
    for rel, text in tables.items():
        path = root / folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        with gzip.open(path, "wt") as f:
            f.write(text + "\n")
    return x, y, edges, order


# ------------------------------------------------------------------------ registry, paths


def test_registry_lists_every_source_and_rejects_unknown_names():
    names = available_datasets()
    for expected in ["amgcn:citeseer", "amgcn:acm", "amgcn:blogcatalog", "amgcn:flickr",
                     "planetoid:citeseer", "corafull", "reddit", "amazon-all", "ogbn-arxiv",
                     "ogbn-products", "chains", "sbm"]:
        assert expected in names
    with pytest.raises(ValueError, match="valid names: .*amgcn:citeseer"):
        load_dataset("citeseer")
    with pytest.raises(ValueError, match="unknown split 50; valid: 20, 40, 60"):
        load_dataset("amgcn:citeseer", split=50)
    with pytest.raises(ValueError, match="unknown option.*valid: val_size"):
        load_dataset("amgcn:citeseer", val_sise=10)


def test_user_registered_dataset_loads_through_the_entry_point(monkeypatch):
    from dear.nodecls.datasets import registry

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))

    @registry.register_dataset("tiny", description="two nodes", default_split="all")
    def load_tiny(ctx, *, label: int = 1):
        from dear.nodecls.datasets.splits import assemble
        mask = torch.tensor([True, False])
        return assemble(ctx.name, {"label": label}, {}, edge_index=torch.tensor([[0], [1]]),
                        y=torch.tensor([0, label]), train_mask=mask, val_mask=~mask,
                        test_mask=torch.zeros(2, dtype=torch.bool))

    assert "tiny" in available_datasets()
    assert load_dataset("TINY", label=2).y.tolist() == [0, 2]
    with pytest.raises(ValueError, match="already registered"):
        registry.register_dataset("tiny", description="", default_split="all")(load_tiny)


def test_default_data_dir_is_shared_data_beside_the_checkout():
    repo = Path(__file__).resolve().parents[1]
    assert SHARED == repo.parent / "shared" / "data"
    assert CITESEER_ZIP.is_file()


@pytest.mark.parametrize("name, expected", [
    ("amgcn:flickr", "flickr.zip"),
    ("planetoid:cora", "ind.cora.x"),
    ("corafull", "cora.npz"),
    ("reddit", "reddit_graph.npz"),
    ("amazon-all", "adj_list.txt"),
    ("ogbn-arxiv", "split/time/valid.csv.gz"),
    ("ogbn-products", "raw/node-feat.csv.gz"),
])
def test_missing_files_raise_one_line_error_naming_files_and_source(tmp_path, name, expected):
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset(name, root=tmp_path / "data", cache_dir=tmp_path / "cache")
    message = str(info.value)
    assert isinstance(info.value, FileNotFoundError)
    assert "\n" not in message and expected in message
    assert str(tmp_path / "data") in message and "http" in message and "DEAR_DATA" in message


def test_environment_variables_choose_data_and_cache(tmp_path, monkeypatch):
    write_amgcn_zip(tmp_path / "data" / "amgcn")
    monkeypatch.setenv("DEAR_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("DEAR_CACHE", str(tmp_path / "cache"))
    data = load_dataset("amgcn:citeseer", val_size=10)
    assert data.num_nodes == 300
    assert list((tmp_path / "cache" / "nodecls").glob("amgcn-citeseer-*.pt"))


# --------------------------------------------------------------------------------- AM-GCN


@pytest.mark.parametrize("stem, name, edge_file", [
    ("citeseer", "amgcn:citeseer", None),
    ("acm", "amgcn:acm", "acm_PAP.edge"),
])
def test_amgcn_miniature(tmp_path, stem, name, edge_file):
    x, y, edges, by_class, test = write_amgcn_zip(tmp_path / "amgcn", stem, edge_file)
    for k in (20, 40, 60):
        data = load_dataset(name, root=tmp_path, cache_dir=tmp_path / "c", split=k, val_size=50)
        assert_valid_split(data)
        assert torch.equal(data.x, torch.from_numpy(x))
        assert torch.equal(data.y, torch.from_numpy(y))
        assert data.num_classes == 3 and not data.multilabel
        assert torch.bincount(data.y[data.train_mask]).tolist() == [k] * 3
        assert set(data.test_mask.nonzero().view(-1).tolist()) == set(test.tolist())
        assert int(data.val_mask.sum()) == 50
    assert is_undirected(data.edge_index) and not contains_self_loops(data.edge_index)
    pairs = {(int(u), int(v)) for u, v in edges if u != v}
    assert set(map(tuple, data.edge_index.t().tolist())) == pairs | {(v, u) for u, v in pairs}


def test_amgcn_validation_draw_is_seeded_and_warns_when_short(tmp_path):
    write_amgcn_zip(tmp_path / "amgcn")
    load = lambda **kw: load_dataset("amgcn:citeseer", root=tmp_path,  # noqa: E731
                                     cache_dir=tmp_path / "c", **kw)
    a, b, c = load(val_size=40), load(val_size=40), load(val_size=40, seed=1)
    assert torch.equal(a.val_mask, b.val_mask) and not torch.equal(a.val_mask, c.val_mask)
    assert a.fingerprint == b.fingerprint != c.fingerprint
    assert dataset_fingerprint(a) == a.provenance["fingerprint"] == a.fingerprint
    with pytest.warns(RuntimeWarning, match="only 75 nodes available"):
        short = load(val_size=500)
    assert int(short.val_mask.sum()) == 75  # every node outside train60 and test60


def test_amgcn_fingerprint_ignores_paths_but_not_content(tmp_path):
    write_amgcn_zip(tmp_path / "one" / "amgcn")
    write_amgcn_zip(tmp_path / "two" / "amgcn")
    write_amgcn_zip(tmp_path / "three" / "amgcn", seed=5)
    prints = [load_dataset("amgcn:citeseer", root=tmp_path / d, cache_dir=tmp_path / d,
                           val_size=10).fingerprint for d in ("one", "two", "three")]
    assert prints[0] == prints[1] != prints[2]


# ---------------------------------------------------------------------------------- cache


def test_cache_hit_does_not_parse_again(tmp_path, monkeypatch):
    write_amgcn_zip(tmp_path / "amgcn")
    calls = []
    real = amgcn.parse_zip
    monkeypatch.setattr(amgcn, "parse_zip", lambda *a: calls.append(a) or real(*a))
    first = load_dataset("amgcn:citeseer", root=tmp_path, cache_dir=tmp_path / "c", val_size=9)
    second = load_dataset("amgcn:citeseer", root=tmp_path, cache_dir=tmp_path / "c", split=20,
                          val_size=8)
    assert len(calls) == 1  # another split or validation size reuses the parsed cache
    assert torch.equal(first.x, second.x) and torch.equal(first.edge_index, second.edge_index)


@pytest.mark.parametrize("damage", ["flip", "truncate", "garbage"])
def test_corrupt_cache_is_detected_and_rebuilt(tmp_path, damage):
    write_amgcn_zip(tmp_path / "amgcn")
    load = lambda: load_dataset("amgcn:citeseer", root=tmp_path,  # noqa: E731
                                cache_dir=tmp_path / "c", val_size=9)
    reference = load()
    (path,) = (tmp_path / "c" / "nodecls").glob("amgcn-citeseer-*.pt")
    blob = bytearray(path.read_bytes())
    if damage == "flip":  # one bit inside the largest tensor: torch.load alone misses it
        with zipfile.ZipFile(path) as z:
            record = max(z.infolist(), key=lambda info: info.file_size)
        local_header = 30 + int.from_bytes(blob[record.header_offset + 26:][:2], "little") + \
            int.from_bytes(blob[record.header_offset + 28:][:2], "little")
        blob[record.header_offset + local_header + record.file_size // 2] ^= 0x10
    elif damage == "truncate":
        blob = blob[: len(blob) // 2]
    else:
        blob = bytearray(b"not a cache file")
    path.write_bytes(bytes(blob))
    builds = base.BUILD_COUNTS["amgcn-citeseer"]
    with pytest.warns(RuntimeWarning, match="invalid .*rebuilding"):
        rebuilt = load()
    assert base.BUILD_COUNTS["amgcn-citeseer"] == builds + 1
    assert torch.equal(rebuilt.x, reference.x) and rebuilt.fingerprint == reference.fingerprint
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load()  # the rebuilt file is valid again
    assert not list(path.parent.glob("*.tmp"))


def test_changed_source_file_rebuilds_the_cache(tmp_path):
    write_amgcn_zip(tmp_path / "amgcn")
    before = load_dataset("amgcn:citeseer", root=tmp_path, cache_dir=tmp_path / "c", val_size=9)
    write_amgcn_zip(tmp_path / "amgcn", seed=7)
    after = load_dataset("amgcn:citeseer", root=tmp_path, cache_dir=tmp_path / "c", val_size=9)
    assert not torch.equal(before.y, after.y) and before.fingerprint != after.fingerprint


# --------------------------------------------------------------------- real AM-GCN Citeseer


@pytest.fixture(scope="module")
def citeseer_cache(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    start = time.perf_counter()
    data = load_dataset("amgcn:citeseer", cache_dir=cache)
    return cache, data, time.perf_counter() - start


@pytest.mark.slow
def test_real_citeseer_zip(citeseer_cache):
    _, data, _ = citeseer_cache
    assert data.x.shape == (3327, 3703) and data.num_classes == 6
    assert_valid_split(data)
    assert int(data.train_mask.sum()) == 360
    assert torch.bincount(data.y[data.train_mask]).tolist() == [60] * 6
    with zipfile.ZipFile(CITESEER_ZIP) as z:
        test_ids = z.read("citeseer/test60.txt").split()
    assert int(data.test_mask.sum()) == len(test_ids) == 1000
    assert int(data.val_mask.sum()) == 500
    assert is_undirected(data.edge_index) and not contains_self_loops(data.edge_index)
    assert data.provenance["sources"]["citeseer.zip"].startswith("6c9b798b2e65")


@pytest.mark.slow
def test_real_citeseer_cached_load_is_faster_and_does_not_parse(citeseer_cache, monkeypatch):
    cache, first, first_seconds = citeseer_cache
    monkeypatch.setattr(amgcn, "parse_zip", lambda *a: pytest.fail("parsed despite the cache"))
    start = time.perf_counter()
    again = load_dataset("amgcn:citeseer", cache_dir=cache)
    assert time.perf_counter() - start < first_seconds / 3
    assert torch.equal(again.x, first.x) and again.fingerprint == first.fingerprint


# ------------------------------------------------------------------------------ Planetoid


def test_planetoid_citeseer_through_pyg_without_writing_to_shared(tmp_path):
    public = load_dataset("planetoid:citeseer", cache_dir=tmp_path)
    assert public.x.shape == (3327, 3703) and public.num_classes == 6
    assert_valid_split(public)
    assert [int(m.sum()) for m in (public.train_mask, public.val_mask, public.test_mask)] == \
        [120, 500, 1000]
    assert not (SHARED / "planetoid" / "citeseer" / "processed").exists()
    assert not list((tmp_path / "nodecls").glob("pyg-*"))  # PyG's temporary root is gone
    sixty = load_dataset("planetoid:citeseer", cache_dir=tmp_path, split=60, seed=3)
    assert_valid_split(sixty)
    assert torch.bincount(sixty.y[sixty.train_mask]).tolist() == [60] * 6
    assert torch.equal(sixty.test_mask, public.test_mask) and int(sixty.val_mask.sum()) == 500
    full = load_dataset("planetoid:citeseer", cache_dir=tmp_path, split="full")
    assert int(full.train_mask.sum()) == 3327 - 1500


# ----------------------------------------------------------------------- PyG npz formats


def test_corafull_miniature(tmp_path):
    y = write_corafull(tmp_path)
    data = load_dataset("corafull", root=tmp_path, cache_dir=tmp_path / "c", split=5,
                        val_per_class=7)
    assert_valid_split(data)
    assert data.x.shape == (90, 10) and set(data.x.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(data.y, torch.from_numpy(y)) and data.num_classes == 4
    assert torch.bincount(data.y[data.train_mask]).tolist() == [5] * 4
    assert torch.bincount(data.y[data.val_mask]).tolist() == [7] * 4
    assert int(data.test_mask.sum()) == 90 - 48 and is_undirected(data.edge_index)


def test_reddit_miniature(tmp_path):
    node_types = torch.from_numpy(write_reddit(tmp_path))
    data = load_dataset("reddit", root=tmp_path, cache_dir=tmp_path / "c")
    assert_valid_split(data)
    assert data.x.shape == (60, 7) and data.edge_index.size(1) > 0
    assert torch.equal(data.train_mask, node_types == 1)
    assert torch.equal(data.val_mask, node_types == 2)
    assert torch.equal(data.test_mask, node_types == 3)


# ------------------------------------------------------------------------------ Amazon-all


def test_amazon_all_miniature(tmp_path):
    labels, neighbours, order = write_amazon(tmp_path)
    data = load_dataset("amazon-all", root=tmp_path, cache_dir=tmp_path / "c",
                        val_fraction=0.1)
    assert_valid_split(data)
    assert data.x is None and data.num_nodes == 200 and data.multilabel
    assert torch.equal(data.y, torch.from_numpy(labels).float()) and data.num_classes == 6
    assert set(data.train_mask.nonzero().view(-1).tolist()) == set(order[:12].tolist())
    assert set(data.test_mask.nonzero().view(-1).tolist()) == set(order[12:60].tolist())
    assert int(data.val_mask.sum()) == 20 and not data.val_mask[:10].any()
    expected = {(i, int(j)) for i, nb in enumerate(neighbours) for j in nb if i != j}
    expected |= {(j, i) for i, j in expected}
    assert set(map(tuple, data.edge_index.t().tolist())) == expected


def test_amazon_adjacency_list_must_be_in_node_order(tmp_path):
    write_amazon(tmp_path)
    path = tmp_path / "amazon-all" / "adj_list.txt"
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[1], lines[0], *lines[2:]]) + "\n")
    with pytest.raises(ValueError, match="line 1 does not start with node id 0"):
        load_dataset("amazon-all", root=tmp_path, cache_dir=tmp_path / "c")


# ------------------------------------------------------------------------------------ OGB


@pytest.mark.parametrize("name, folder, scheme", [
    ("ogbn-arxiv", "ogbn_arxiv", "time"),
    ("ogbn-products", "ogbn_products", "sales_ranking"),
])
def test_ogb_miniature(tmp_path, name, folder, scheme):
    x, y, edges, order = write_ogb(tmp_path, folder, scheme)
    data = load_dataset(name, root=tmp_path, cache_dir=tmp_path / "c")
    assert_valid_split(data)
    assert torch.equal(data.x, torch.from_numpy(x)) and torch.equal(data.y, torch.from_numpy(y))
    assert set(data.train_mask.nonzero().view(-1).tolist()) == set(order[:20].tolist())
    assert set(data.val_mask.nonzero().view(-1).tolist()) == set(order[20:30].tolist())
    assert is_undirected(data.edge_index)
    directed = load_dataset(name, root=tmp_path, cache_dir=tmp_path / "c", undirected=False)
    pairs = {(int(a), int(b)) for a, b in edges if a != b}
    assert set(map(tuple, directed.edge_index.t().tolist())) == pairs
    assert directed.fingerprint != data.fingerprint


# ------------------------------------------------------------------------------ synthetic


def test_chains_carry_the_class_only_at_the_first_node():
    data = load_dataset("chains", num_classes=3, chains_per_class=4, chain_length=6)
    n = 3 * 4 * 6
    assert data.x.shape == (n, 100) and data.num_classes == 3
    assert_valid_split(data)
    assert [int(m.sum()) for m in (data.train_mask, data.val_mask, data.test_mask)] == \
        [int(n * 0.05), int(n * 0.1), n - int(n * 0.05) - int(n * 0.1)]
    starts = torch.arange(0, n, 6)
    assert torch.equal(data.x[starts, :3], torch.nn.functional.one_hot(data.y[starts], 3).float())
    others = torch.ones(n, dtype=torch.bool)
    others[starts] = False
    assert not data.x[others].any()
    src, dst = data.edge_index
    assert torch.equal(dst, src + 1) and data.edge_index.size(1) == 12 * 5
    assert torch.equal(data.y[src], data.y[dst]) and not torch.isin(dst, starts).any()


def test_sbm_is_reproducible_homophilous_and_sparse():
    a = load_dataset("sbm", num_nodes=3000, num_classes=4, avg_degree=8, homophily=0.9, seed=5)
    b = load_dataset("sbm", num_nodes=3000, num_classes=4, avg_degree=8, homophily=0.9, seed=5)
    c = load_dataset("sbm", num_nodes=3000, num_classes=4, avg_degree=8, homophily=0.9, seed=6)
    assert torch.equal(a.edge_index, b.edge_index) and torch.equal(a.x, b.x)
    assert a.fingerprint == b.fingerprint != c.fingerprint
    assert not torch.equal(a.edge_index, c.edge_index)
    assert_valid_split(a)
    assert torch.bincount(a.y).tolist() == [750] * 4
    assert torch.bincount(a.y[a.train_mask]).tolist() == [20] * 4
    assert is_undirected(a.edge_index) and not contains_self_loops(a.edge_index)
    src, dst = a.edge_index
    assert 7.5 < src.numel() / 3000 < 8.5
    assert 0.87 < float((a.y[src] == a.y[dst]).float().mean()) < 0.93


def test_sbm_sizes_share_one_feature_model():
    # A model trained on a small SBM graph must see the same class means on a large one.
    def class_means(n: int) -> torch.Tensor:
        d = load_dataset("sbm", num_nodes=n, num_classes=3, num_features=4, feature_signal=1.0, seed=2)
        return torch.stack([d.x[d.y == k].mean(0) for k in range(3)])

    small, large = class_means(3000), class_means(30000)
    assert torch.allclose(small, large, atol=0.15)
    other = load_dataset("sbm", num_nodes=3000, num_classes=3, num_features=4, feature_signal=1.0, seed=3)
    assert not torch.allclose(small, torch.stack([other.x[other.y == k].mean(0) for k in range(3)]), atol=0.15)


@pytest.mark.slow
def test_sbm_generates_a_million_nodes():
    start = time.perf_counter()
    data = load_dataset("sbm", num_nodes=1_000_000, avg_degree=10, num_features=8)
    assert time.perf_counter() - start < 120
    assert data.num_nodes == 1_000_000
    assert 9.8 < data.edge_index.size(1) / 1_000_000 < 10.2


# ------------------------------------------------------------------------- text parsing


def test_sparse_table_parser_matches_dense_parsing():
    rng = np.random.default_rng(0)
    x = np.where(rng.random((40, 30)) < 0.05, rng.standard_normal((40, 30)), 0.0)
    x[0, 0], x[1, 1] = 1e-3, -0.0
    text = "\n\n".join(" ".join(f"{v:.6g}" for v in row) for row in x).encode()
    shape, r, c, v = textio.read_sparse_table(io.BytesIO(text))
    dense = np.zeros(shape, np.float32)
    dense[r, c] = v
    expected = np.fromstring(text.decode(), dtype=np.float32, sep=" ").reshape(40, 30)
    assert shape == (40, 30) and np.array_equal(dense, expected) and dense[0, 0] == 1e-3
    full = rng.standard_normal((20, 5))  # mostly non-zero: the numpy fallback path
    text = "\n".join(" ".join(repr(float(v)) for v in row) for row in full).encode()
    shape, r, c, v = textio.read_sparse_table(io.BytesIO(text))
    assert shape == (20, 5) and np.allclose(v, full[r, c]) and r.size == 100


def test_parsers_agree_across_chunk_boundaries(monkeypatch):
    rng = np.random.default_rng(1)
    x = np.where(rng.random((30, 40)) < 0.05, rng.integers(1, 9, (30, 40)), 0).astype(np.float32)
    x[20:] = rng.integers(1, 9, (10, 40))  # a dense tail: the sparse parser's fallback path
    text = "\n".join(" ".join(f"{v:g}" for v in row) for row in x).encode()
    monkeypatch.setattr(textio, "CHUNK_BYTES", 50)  # reads end inside lines
    shape, r, c, v = textio.read_sparse_table(io.BytesIO(text))
    dense = np.zeros(shape, np.float32)
    dense[r, c] = v
    assert np.array_equal(dense, x)
    assert np.array_equal(textio.read_table(io.BytesIO(text), np.float32), x)
    assert np.array_equal(textio.read_table(io.BytesIO(text), np.float32, nrows=30), x)


@pytest.mark.parametrize("text, message", [
    (b"1 0 0\n0 1\n", "not rectangular"),
    (b"1 0 abc\n", "non-numeric"),
])
def test_malformed_tables_are_errors(text, message):
    with pytest.raises(ValueError, match=message):
        textio.read_sparse_table(io.BytesIO(text))
    with pytest.raises(ValueError):
        textio.read_table(io.BytesIO(text))


def test_read_table_checks_the_expected_row_count():
    assert textio.read_table(io.BytesIO(b"1,2\n3,4\n"), np.int64, nrows=2).tolist() == \
        [[1, 2], [3, 4]]
    with pytest.raises(ValueError, match="expected 3"):
        textio.read_table(io.BytesIO(b"1,2\n3,4\n"), np.int64, nrows=3)
