"""Datasets in the formats PyG's own readers take: CoraFull (graph2gauss ``.npz``) and Reddit.

* ``corafull``: ``<root>/corafull/cora/raw/cora.npz`` (the folder
  ``torch_geometric.datasets.CoraFull(root=<root>/corafull)`` reads), from
  https://github.com/abojchevski/graph2gauss/raw/master/data/cora.npz. No official split:
  ``k`` labels per class (default 20) and ``val_per_class`` (default 30) validation nodes per
  class are drawn with the seed, every other node is a test node (the protocol of Shchur et
  al., "Pitfalls of GNN evaluation", 2018).
* ``reddit``: ``<root>/reddit/raw/reddit_data.npz`` and ``reddit_graph.npz`` (the folder
  ``torch_geometric.datasets.Reddit(root=<root>/reddit)`` reads), from
  https://data.dgl.ai/dataset/reddit.zip (unzip into ``<root>/reddit/raw/``). The official
  split of GraphSAGE (Hamilton et al., 2017) ships in the data (``node_types`` 1/2/3).

Both are parsed by the PyG class inside a temporary root in our cache (see
:func:`~dear.nodecls.datasets.base.pyg_root`), then cached in our own format.
"""

from __future__ import annotations

import torch
from torch_geometric.data import Data
from torch_geometric.datasets import CoraFull, Reddit

from dear.nodecls.datasets.base import (
    Parsed,
    cached,
    pack_features,
    pyg_root,
    require_files,
    unpack_features,
)
from dear.nodecls.datasets.registry import LoadContext, register_dataset
from dear.nodecls.datasets.splits import assemble, generator, per_class

CORAFULL_OBTAIN = "https://github.com/abojchevski/graph2gauss/raw/master/data/cora.npz"
REDDIT_OBTAIN = "https://data.dgl.ai/dataset/reddit.zip (unzip into <root>/reddit/raw/)"


@register_dataset(
    "corafull",
    description="CoraFull (70 classes) from graph2gauss cora.npz via PyG CoraFull",
    default_split=20,
    per_class=True,
)
def load_corafull(ctx: LoadContext, *, val_per_class: int = 30) -> Data:
    """CoraFull with ``split`` training and ``val_per_class`` validation labels per class."""
    files = require_files(ctx.name, ctx.root / "corafull" / "cora" / "raw", ["cora.npz"],
                          CORAFULL_OBTAIN)

    def parse() -> Parsed:
        with pyg_root(ctx.cache_dir, {"cora/raw/cora.npz": files["cora.npz"]}) as root:
            data = CoraFull(str(root))[0]
        return Parsed({**pack_features(data.x), "y": data.y, "edge_index": data.edge_index})

    parsed = cached("corafull", ctx.cache_dir, files, {}, parse)
    t = parsed.tensors
    y = t["y"]
    gen = generator(ctx.seed)
    train = per_class(y, torch.ones(y.numel(), dtype=torch.bool), int(ctx.split), gen)
    val = per_class(y, ~train, val_per_class, gen)
    return assemble(
        ctx.name, {"split": ctx.split, "seed": ctx.seed, "val_per_class": val_per_class},
        parsed.sources, x=unpack_features(t), edge_index=t["edge_index"], y=y,
        train_mask=train, val_mask=val, test_mask=~(train | val),
    )


@register_dataset(
    "reddit",
    description="Reddit posts (GraphSAGE) via PyG Reddit, official split",
    default_split="official",
)
def load_reddit(ctx: LoadContext) -> Data:
    """Reddit with the official train/validation/test split shipped in ``reddit_data.npz``."""
    names = ["reddit_data.npz", "reddit_graph.npz"]
    files = require_files(ctx.name, ctx.root / "reddit" / "raw", names, REDDIT_OBTAIN)

    def parse() -> Parsed:
        with pyg_root(ctx.cache_dir, {f"raw/{n}": files[n] for n in names}) as root:
            data = Reddit(str(root))[0]
        return Parsed({**pack_features(data.x), "y": data.y, "edge_index": data.edge_index,
                       "train": data.train_mask, "val": data.val_mask, "test": data.test_mask})

    parsed = cached("reddit", ctx.cache_dir, files, {}, parse)
    t = parsed.tensors
    return assemble(ctx.name, {"split": ctx.split}, parsed.sources, x=unpack_features(t),
                    edge_index=t["edge_index"], y=t["y"],
                    train_mask=t["train"], val_mask=t["val"], test_mask=t["test"])
