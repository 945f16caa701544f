"""Node classification: datasets for the implicit (IGNN) and explicit models.

Usage::

    from dear.nodecls import load_dataset
    data = load_dataset("amgcn:citeseer")  # 60 labels per class, as in IGNN-Solver
    data.x, data.edge_index, data.y, data.train_mask, data.val_mask, data.test_mask
    data.fingerprint                       # for results files

See ``docs/nodecls-datasets.md`` for every dataset's files, splits and sources.
"""

from torch_geometric.data import Data

from dear.nodecls.datasets import (
    ENV_CACHE,
    ENV_DATA,
    DatasetNotFoundError,
    available_datasets,
    load_dataset,
    register_dataset,
)

__all__ = [
    "ENV_CACHE",
    "ENV_DATA",
    "DatasetNotFoundError",
    "available_datasets",
    "dataset_fingerprint",
    "load_dataset",
    "register_dataset",
]


def dataset_fingerprint(data: Data) -> str:
    """The sha256 fingerprint recorded on data returned by :func:`load_dataset`.

    It covers the dataset name, the format version, every parameter that changes the data
    (split, seed, sizes) and the sha256 of each source file, and is meant for results files.
    """
    return data.fingerprint
