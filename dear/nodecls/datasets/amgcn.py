"""AM-GCN text format (Wang et al., KDD 2020): Citeseer, ACM, BlogCatalog, Flickr.

Each dataset is one zip, ``<root>/amgcn/<Name>.zip``, holding ``<name>/``:

* ``<name>.feature``: dense text matrix, one row of space-separated values per node;
* ``<name>.edge`` (``acm_PAP.edge`` for ACM): one ``src dst`` pair per line;
* ``<name>.label``: one class id per line;
* ``train{20,40,60}.txt`` / ``test{20,40,60}.txt``: node ids, 20/40/60 labels per class for
  training and the same 1000 test nodes in every file.

The zip is read in place (never unpacked; the features are 100-200 MB of text), the features
are stored sparse in the cache and densified on load. Self loops are dropped and the graph is
made undirected (the Citeseer file has self loops and duplicate pairs). The validation split,
which the format does not ship, is ``val_size`` nodes drawn uniformly with ``seed`` from the
nodes in neither the training nor the test file.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import torch
from torch_geometric.data import Data
from torch_geometric.utils import remove_self_loops, to_undirected

from dear.nodecls.datasets.base import (
    Parsed,
    as_long,
    cached,
    pack_coo,
    require_files,
    unpack_features,
)
from dear.nodecls.datasets.registry import LoadContext, register_dataset
from dear.nodecls.datasets.splits import assemble, draw, file_split, generator
from dear.nodecls.datasets.textio import read_column, read_sparse_table, read_table

#: registered suffix -> zip stem (the zips keep the original capitalisation).
DATASETS = {"citeseer": "citeseer", "acm": "acm", "blogcatalog": "BlogCatalog", "flickr": "flickr"}
LABEL_RATES = (20, 40, 60)
OBTAIN = (
    "the AM-GCN repository https://github.com/zhumeiqiBUPT/AM-GCN (its README links the data "
    "zips; place <Name>.zip unopened in <root>/amgcn/)"
)


def _member(archive: zipfile.ZipFile, stem: str, suffix: str) -> zipfile.ZipInfo:
    """The one ``<stem>/*<suffix>`` member (``acm/acm_PAP.edge`` for ACM's edges)."""
    hits = [i for i in archive.infolist()
            if i.filename.startswith(f"{stem}/") and i.filename.count("/") == 1
            and i.filename.endswith(suffix)]
    if len(hits) != 1:
        raise ValueError(f"{archive.filename}: expected one {stem}/*{suffix} member, "
                         f"found {len(hits)}")
    return hits[0]


def parse_zip(path: Path, stem: str) -> Parsed:
    """Parse one AM-GCN zip into cacheable tensors (features as COO, splits as id lists).

    Raises:
        ValueError: on a damaged zip, a missing member or inconsistent contents.
    """
    try:
        return _parse_zip(path, stem)
    except (zipfile.BadZipFile, KeyError) as err:
        raise ValueError(f"{path}: {err}") from None


def _parse_zip(path: Path, stem: str) -> Parsed:
    with zipfile.ZipFile(path) as archive:
        feature = _member(archive, stem, ".feature")
        with archive.open(feature) as f:
            shape, row, col, val = read_sparse_table(f, total=feature.file_size, desc=stem)
        with archive.open(_member(archive, stem, ".label")) as f:
            y = read_column(f)
        with archive.open(_member(archive, stem, ".edge")) as f:
            edges = read_table(f, "int64", ncols=2)
        tensors = {
            **pack_coo(shape, as_long(row * shape[1] + col), torch.from_numpy(val)),
            "y": as_long(y),
        }
        for rate in LABEL_RATES:
            for part in ("train", "test"):
                with archive.open(f"{stem}/{part}{rate}.txt") as f:
                    tensors[f"{part}{rate}"] = as_long(read_column(f))
    num_nodes = shape[0]
    if y.shape[0] != num_nodes:
        raise ValueError(f"{path}: {y.shape[0]} labels for {num_nodes} feature rows")
    if edges.size and (edges.min() < 0 or edges.max() >= num_nodes):
        raise ValueError(f"{path}: edge endpoints outside [0, {num_nodes})")
    edge_index, _ = remove_self_loops(as_long(edges.T))
    tensors["edge_index"] = to_undirected(edge_index, num_nodes=num_nodes)
    return Parsed(tensors)


def _load(ctx: LoadContext, *, val_size: int = 500) -> Data:
    """Load one AM-GCN dataset; ``val_size`` nodes outside train and test form validation."""
    stem = DATASETS[ctx.name.split(":", 1)[1]]
    folder = ctx.root / "amgcn"
    zip_name = f"{stem}.zip"
    path = require_files(ctx.name, folder, [zip_name], OBTAIN)[zip_name]
    parsed = cached(f"amgcn-{stem}", ctx.cache_dir, {zip_name: path}, {},
                    lambda: parse_zip(path, stem))
    t = parsed.tensors
    x = unpack_features(t)
    num_nodes = x.size(0)
    rate = int(ctx.split)
    train, test = file_split(t[f"train{rate}"], t[f"test{rate}"], num_nodes,
                             f"{zip_name}:train{rate}.txt", f"{zip_name}:test{rate}.txt")
    val = draw(~(train | test), val_size, generator(ctx.seed))
    return assemble(
        ctx.name, {"split": rate, "seed": ctx.seed, "val_size": val_size}, parsed.sources,
        x=x, edge_index=t["edge_index"], y=t["y"],
        train_mask=train, val_mask=val, test_mask=test,
    )


for _suffix, _stem in DATASETS.items():
    register_dataset(
        f"amgcn:{_suffix}",
        description=f"{_stem} in AM-GCN text format, 20/40/60 training labels per class",
        default_split=60,
        splits=LABEL_RATES,
    )(_load)
