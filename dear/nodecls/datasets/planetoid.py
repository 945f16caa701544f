"""Planetoid citation graphs (Cora, CiteSeer, PubMed) through PyG's own ``Planetoid`` reader.

Files: ``<root>/planetoid/<name>/raw/ind.<name>.{x,tx,allx,y,ty,ally,graph,test.index}`` (the
folder PyG's ``Planetoid(root=<root>/planetoid, name=<name>)`` reads), from
https://github.com/kimiyoung/planetoid/tree/master/data. PyG parses them inside a temporary
root in our cache (links to the raw files, PyG's ``processed/`` beside them), never in the
data directory and never downloading.

Splits: ``"public"`` (default; 20 labels per class, 500 validation and 1000 test nodes, as
published), ``"full"`` (PyG's: every node outside validation and test trains), or an int ``k``:
``k`` labels per class drawn with ``seed`` from the nodes outside the public test set,
``val_size`` validation nodes drawn from the rest, and the public test set.
"""

from __future__ import annotations

from pathlib import Path

from torch_geometric.data import Data
from torch_geometric.datasets import Planetoid

from dear.nodecls.datasets.base import (
    Parsed,
    cached,
    pack_features,
    pyg_root,
    require_files,
    unpack_features,
)
from dear.nodecls.datasets.registry import LoadContext, register_dataset
from dear.nodecls.datasets.splits import assemble, draw, generator, per_class

NAMES = ("cora", "citeseer", "pubmed")
RAW = ("x", "tx", "allx", "y", "ty", "ally", "graph", "test.index")
OBTAIN = "https://github.com/kimiyoung/planetoid/tree/master/data"


def parse(ctx: LoadContext, name: str, files: dict[str, Path]) -> Parsed:
    """Run PyG's Planetoid reader on the linked raw files and keep its tensors."""
    with pyg_root(ctx.cache_dir, {f"{name}/raw/{rel}": p for rel, p in files.items()}) as root:
        data = Planetoid(str(root), name, split="public")[0]
    return Parsed({**pack_features(data.x), "y": data.y, "edge_index": data.edge_index,
                   "train": data.train_mask, "val": data.val_mask, "test": data.test_mask})


def _load(ctx: LoadContext, *, val_size: int = 500) -> Data:
    """Load a Planetoid graph; ``val_size`` only applies to labels-per-class (int) splits."""
    name = ctx.name.split(":", 1)[1]
    folder = ctx.root / "planetoid" / name / "raw"
    files = require_files(ctx.name, folder, [f"ind.{name}.{part}" for part in RAW], OBTAIN)
    parsed = cached(f"planetoid-{name}", ctx.cache_dir, files, {},
                    lambda: parse(ctx, name, files))
    t = parsed.tensors
    train, val, test = t["train"], t["val"], t["test"]
    params: dict = {"split": ctx.split}
    if ctx.split == "full":
        train = ~(val | test)
    elif isinstance(ctx.split, int):
        gen = generator(ctx.seed)
        train = per_class(t["y"], ~test, ctx.split, gen)
        val = draw(~(train | test), val_size, gen)
        params.update(seed=ctx.seed, val_size=val_size)
    return assemble(ctx.name, params, parsed.sources, x=unpack_features(t),
                    edge_index=t["edge_index"], y=t["y"],
                    train_mask=train, val_mask=val, test_mask=test)


for _name in NAMES:
    register_dataset(
        f"planetoid:{_name}",
        description=f"Planetoid {_name} via torch_geometric.datasets.Planetoid",
        default_split="public",
        splits=("full",),
        per_class=True,
    )(_load)
