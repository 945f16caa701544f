"""Amazon-all in the format of the IGNN release (Gu et al., 2020).

IGNN's ``nodeclassification/README.md`` links a Dropbox folder
(https://www.dropbox.com/sh/3gwr2wgh455q9pi/AAB0i6EQimVGslrqtsTIWsL0a?dl=0) whose
``amazon-all/`` folder goes to ``<root>/amazon-all/``. IGNN's ``load_txt_data`` reads:

* ``meta.txt``: first line ``num_nodes num_classes``;
* ``adj_list.txt``: line ``i`` is ``i n1 n2 ...``, node ``i`` followed by its neighbours
  (IGNN builds an undirected ``networkx`` graph from it);
* ``label.txt``: ``num_nodes`` rows of ``num_classes`` 0/1 values (multi-label; IGNN trains
  with ``BCEWithLogitsLoss`` and reports micro/macro F1);
* ``train_idx-<portion>.txt`` for portions 0.05-0.09 of the nodes, and ``test_idx.txt``.

The graph has no node features: IGNN feeds the identity matrix, so ``x`` is ``None`` here and
a model should learn one embedding per node (equivalent to a linear map of the identity).

IGNN validates on the test set; here ``val_fraction`` of all nodes are drawn with the seed
from the labelled nodes outside the train and test files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch_geometric.data import Data
from torch_geometric.utils import remove_self_loops, to_undirected

from dear.nodecls.datasets.base import Parsed, as_long, cached, require_files, sha256_file
from dear.nodecls.datasets.registry import LoadContext, register_dataset
from dear.nodecls.datasets.splits import assemble, draw, file_split, generator
from dear.nodecls.datasets.textio import read_column, read_table

PORTIONS = (0.05, 0.06, 0.07, 0.08, 0.09)
OBTAIN = (
    "IGNN's Dropbox folder https://www.dropbox.com/sh/3gwr2wgh455q9pi/"
    "AAB0i6EQimVGslrqtsTIWsL0a?dl=0 (put its amazon-all/ folder in <root>/)"
)


def read_adjacency_list(path: Path) -> np.ndarray:
    """``[2, E]`` edges from an adjacency list whose line ``i`` starts with node id ``i``.

    Raises:
        ValueError: if a line's first id is not its line number (IGNN indexes nodes by line).
    """
    src: list[np.ndarray] = []
    dst: list[np.ndarray] = []
    with open(path, "rb") as f:
        for i, line in enumerate(f):
            ids = np.array(line.split(), dtype=np.int64)
            if ids.size == 0 or ids[0] != i:
                raise ValueError(f"{path}: line {i + 1} does not start with node id {i}")
            src.append(np.full(ids.size - 1, i, dtype=np.int64))
            dst.append(ids[1:])
    if not src:
        return np.empty((2, 0), dtype=np.int64)
    return np.stack([np.concatenate(src), np.concatenate(dst)])


def parse(files: dict[str, Path]) -> Parsed:
    """Parse IGNN's Amazon-all graph, labels and test ids into cacheable tensors (the small
    training-portion files are read at load time, so every portion shares one cache)."""
    with open(files["meta.txt"], "rb") as f:
        num_nodes, num_classes = (int(v) for v in f.readline().split()[:2])
    edges = read_adjacency_list(files["adj_list.txt"])
    if edges.size and (edges.min() < 0 or edges.max() >= num_nodes):
        raise ValueError(f"{files['adj_list.txt']}: neighbour ids outside [0, {num_nodes})")
    edge_index, _ = remove_self_loops(as_long(edges))
    with open(files["label.txt"], "rb") as f:
        labels = read_table(f, np.float32)
    if labels.shape != (num_nodes, num_classes):
        raise ValueError(f"{files['label.txt']}: shape {labels.shape}, meta.txt says "
                         f"({num_nodes}, {num_classes})")
    return Parsed({
        "edge_index": to_undirected(edge_index, num_nodes=num_nodes),
        "y": torch.from_numpy(labels != 0),
        "test": _read_ids(files["test_idx.txt"]),
    })


def _read_ids(path: Path) -> torch.Tensor:
    """Node ids, one per line."""
    with open(path, "rb") as f:
        return as_long(read_column(f))


@register_dataset(
    "amazon-all",
    description="Amazon co-purchasing, 58 product types, multi-label (IGNN's files)",
    default_split=0.06,
    splits=PORTIONS,
)
def load_amazon_all(ctx: LoadContext, *, val_fraction: float = 0.05) -> Data:
    """Amazon-all with training portion ``split`` (fraction of nodes, IGNN's files)."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"amazon-all: val_fraction must lie in [0, 1), got {val_fraction!r}")
    portion_file = f"train_idx-{ctx.split}.txt"
    graph_files = ["meta.txt", "adj_list.txt", "label.txt", "test_idx.txt"]
    files = require_files(ctx.name, ctx.root / "amazon-all", [*graph_files, portion_file],
                          OBTAIN)
    graph = {name: files[name] for name in graph_files}
    parsed = cached("amazon-all", ctx.cache_dir, graph, {}, lambda: parse(graph))
    t = parsed.tensors
    y = t["y"].float()
    num_nodes = y.size(0)
    train, test = file_split(_read_ids(files[portion_file]), t["test"], num_nodes,
                             portion_file, "test_idx.txt")
    sources = {**parsed.sources, portion_file: sha256_file(files[portion_file])}
    labelled = y.sum(dim=1) > 0
    val = draw(labelled & ~(train | test), round(val_fraction * num_nodes), generator(ctx.seed))
    return assemble(
        ctx.name, {"split": ctx.split, "seed": ctx.seed, "val_fraction": val_fraction},
        sources, x=None, edge_index=t["edge_index"], y=y, num_nodes=num_nodes,
        train_mask=train, val_mask=val, test_mask=test,
    )
