"""OGB node-property datasets (ogbn-arxiv, ogbn-products) from OGB's raw folder layout.

Unzipping OGB's archive (http://snap.stanford.edu/ogb/data/nodeproppred/arxiv.zip,
``products.zip``) in ``<root>/`` gives the folder ``ogb``'s ``NodePropPredDataset`` itself
reads, e.g. for arxiv::

    <root>/ogbn_arxiv/raw/edge.csv.gz           src,dst per line (one direction)
    <root>/ogbn_arxiv/raw/node-feat.csv.gz      one comma-separated feature row per node
    <root>/ogbn_arxiv/raw/node-label.csv.gz     one class id per line
    <root>/ogbn_arxiv/raw/num-node-list.csv.gz  the node count
    <root>/ogbn_arxiv/split/time/{train,valid,test}.csv.gz   node ids

(``split/sales_ranking/`` for products). The files are read with numpy's tokenizer in chunks,
so the ``ogb`` package is not needed. The graph is made undirected by default: OGB adds the
inverse edges of products itself (``add_inverse_edge``), and arxiv's citation edges are
commonly symmetrised for GNNs; ``undirected=False`` keeps arxiv's stored direction.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch
from torch_geometric.data import Data
from torch_geometric.utils import remove_self_loops, to_undirected

from dear.nodecls.datasets.base import Parsed, as_long, cached, require_files
from dear.nodecls.datasets.registry import LoadContext, register_dataset
from dear.nodecls.datasets.splits import assemble, mask_from_index
from dear.nodecls.datasets.textio import read_column, read_table

#: registered name -> (folder under <root>, split scheme, archive URL)
DATASETS = {
    "ogbn-arxiv": ("ogbn_arxiv", "time",
                   "http://snap.stanford.edu/ogb/data/nodeproppred/arxiv.zip"),
    "ogbn-products": ("ogbn_products", "sales_ranking",
                      "http://snap.stanford.edu/ogb/data/nodeproppred/products.zip"),
}
RAW = ("edge", "node-feat", "node-label", "num-node-list")
SPLITS = ("train", "valid", "test")


def _read_gz(path: Path, dtype: np.dtype | type, **kwargs: object) -> np.ndarray:
    """A gzipped CSV table, with a progress bar sized by the compressed file."""
    with gzip.open(path, "rb") as f:
        return read_table(f, dtype, desc=path.name, **kwargs)


def parse(files: dict[str, Path], scheme: str, undirected: bool) -> Parsed:
    """Parse OGB's raw CSVs into cacheable tensors."""
    with gzip.open(files["raw/num-node-list.csv.gz"], "rb") as f:
        num_nodes = int(read_column(f).sum())
    x = _read_gz(files["raw/node-feat.csv.gz"], np.float32, nrows=num_nodes)
    y = _read_gz(files["raw/node-label.csv.gz"], np.float64, ncols=1, nrows=num_nodes)
    if not np.isfinite(y).all():
        raise ValueError(f"{files['raw/node-label.csv.gz']}: missing labels")
    edges = _read_gz(files["raw/edge.csv.gz"], np.int64, ncols=2)
    if edges.size and (edges.min() < 0 or edges.max() >= num_nodes):
        raise ValueError(f"{files['raw/edge.csv.gz']}: node ids outside [0, {num_nodes})")
    edge_index, _ = remove_self_loops(as_long(edges.T))
    if undirected:
        edge_index = to_undirected(edge_index, num_nodes=num_nodes)
    tensors = {"x": torch.from_numpy(x), "y": as_long(y.reshape(-1)), "edge_index": edge_index}
    for part in SPLITS:
        with gzip.open(files[f"split/{scheme}/{part}.csv.gz"], "rb") as f:
            tensors[part] = as_long(read_column(f))
    return Parsed(tensors)


def _load(ctx: LoadContext, *, undirected: bool = True) -> Data:
    """Load an OGB node-property dataset with its official split."""
    folder, scheme, url = DATASETS[ctx.name]
    names = [f"raw/{n}.csv.gz" for n in RAW] + [f"split/{scheme}/{p}.csv.gz" for p in SPLITS]
    files = require_files(ctx.name, ctx.root / folder, names,
                          f"{url} (unzip in <root>/, giving <root>/{folder}/)")
    parsed = cached(ctx.name, ctx.cache_dir, files, {"undirected": bool(undirected)},
                    lambda: parse(files, scheme, bool(undirected)))
    t = parsed.tensors
    n = t["y"].numel()
    masks = {p: mask_from_index(t[p], n, f"split/{scheme}/{p}.csv.gz") for p in SPLITS}
    return assemble(ctx.name, {"split": ctx.split, "undirected": bool(undirected)},
                    parsed.sources, x=t["x"], edge_index=t["edge_index"], y=t["y"],
                    train_mask=masks["train"], val_mask=masks["valid"], test_mask=masks["test"])


for _name in DATASETS:
    register_dataset(_name, description=f"{_name} (OGB raw CSVs), official split",
                     default_split="official")(_load)
