"""clrs_tasks: CLRS-30 algorithmic traces (dm-clrs) as PyTorch Geometric graphs.

Public API::

    list_tasks()                          registered algorithm names
    register_task(name, spec=..., algorithm=..., sampler=...)   add your own algorithm
    load_split(task, split, protocol="official", root=None, edge_policy=None, **overrides)
    DataLoader(dataset, batch_size=32)    batches graphs, zero-padding hints like dm-clrs
    to_clrs(graph_or_batch)               back to dm-clrs's Feedback arrays, bit for bit
    from_clrs(feedback, task)             dm-clrs Feedback -> list of graphs
    evaluate(batch, predictions) / Evaluator   dm-clrs's own scoring on model predictions

Knows nothing about models.
"""

from clrs_tasks.convert import ClrsData, ConversionError, Field, GraphSpec, from_clrs, to_clrs
from clrs_tasks.dataset import ClrsDataset, default_cache_dir, fingerprint, load_split
from clrs_tasks.loader import DataLoader, collate
from clrs_tasks.protocols import PROTOCOLS, SPLITS, SplitConfig, split_config
from clrs_tasks.scoring import Evaluator, PredictionError, evaluate
from clrs_tasks.registry import (
    DEAR_TASKS,
    Task,
    UnknownTaskError,
    get_task,
    list_tasks,
    register_task,
    unregister_task,
)

__version__ = "0.1.0"

__all__ = [
    "ClrsData",
    "ClrsDataset",
    "ConversionError",
    "DEAR_TASKS",
    "DataLoader",
    "Evaluator",
    "PredictionError",
    "evaluate",
    "Field",
    "GraphSpec",
    "PROTOCOLS",
    "SPLITS",
    "SplitConfig",
    "Task",
    "UnknownTaskError",
    "collate",
    "default_cache_dir",
    "fingerprint",
    "from_clrs",
    "get_task",
    "list_tasks",
    "load_split",
    "register_task",
    "split_config",
    "to_clrs",
    "unregister_task",
]
