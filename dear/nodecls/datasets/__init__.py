"""Node-classification datasets: one module per source format, one registry.

Importing this package registers every loader; :func:`load_dataset` is the entry point.
"""

# Importing the format modules registers their datasets.
from dear.nodecls.datasets import (  # noqa: F401
    amazon,
    amgcn,
    ogb,
    planetoid,
    pyg_formats,
    synthetic,
)
from dear.nodecls.datasets.base import (
    ENV_CACHE,
    ENV_DATA,
    DatasetNotFoundError,
    default_data_dir,
    resolve_cache_dir,
    resolve_data_dir,
)
from dear.nodecls.datasets.registry import (
    DatasetSpec,
    LoadContext,
    available_datasets,
    get_spec,
    load_dataset,
    register_dataset,
)

__all__ = [
    "ENV_CACHE",
    "ENV_DATA",
    "DatasetNotFoundError",
    "DatasetSpec",
    "LoadContext",
    "available_datasets",
    "default_data_dir",
    "get_spec",
    "load_dataset",
    "register_dataset",
    "resolve_cache_dir",
    "resolve_data_dir",
]
