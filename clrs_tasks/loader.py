"""Batching CLRS graphs: hints of different trace lengths are zero-padded, as dm-clrs does.

PyG's ``Batch.from_data_list`` concatenates along the node axis and needs every other axis to
match; hints carry a time axis whose length is each trace's own. :func:`collate` pads hints to
the longest trace of the batch (with zeros, exactly like dm-clrs's ``_batch_hints``) and then
lets PyG batch them, which also offsets pointers by each graph's first node index.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch_geometric.data import Batch, Data


def _pad_time(value: torch.Tensor, steps: int) -> torch.Tensor:
    missing = steps - value.shape[1]
    if missing <= 0:
        return value
    pad = value.new_zeros((value.shape[0], missing) + tuple(value.shape[2:]))
    return torch.cat([value, pad], dim=1)


def collate(graphs: Sequence[Data]) -> Batch:
    """A PyG ``Batch`` of CLRS graphs, hints zero-padded to the batch's longest trace."""
    graphs = list(graphs)
    if not graphs:
        raise ValueError("cannot collate an empty list of graphs")
    hint_keys = [k for k in graphs[0].keys() if k.startswith("hint_")]
    if hint_keys:
        steps = max(int(g[hint_keys[0]].shape[1]) for g in graphs)
        padded = []
        for g in graphs:
            if int(g[hint_keys[0]].shape[1]) != steps:
                g = g.__copy__()  # shallow: do not touch the dataset's graph
                for k in hint_keys:
                    g[k] = _pad_time(g[k], steps)
            padded.append(g)
        graphs = padded
    return Batch.from_data_list(graphs)


class DataLoader(torch.utils.data.DataLoader):
    """A ``torch`` DataLoader over CLRS graphs that collates with :func:`collate`.

    Use it instead of ``torch_geometric.loader.DataLoader`` whenever graphs carry hints (PyG's
    would fail on hints of different lengths). All ``torch.utils.data.DataLoader`` arguments
    are accepted, except ``collate_fn``.
    """

    def __init__(self, dataset: Any, batch_size: int = 32, shuffle: bool = False, **kwargs: Any):
        if "collate_fn" in kwargs:
            raise TypeError("clrs_tasks.DataLoader sets collate_fn itself")
        super().__init__(dataset, batch_size=batch_size, shuffle=shuffle, collate_fn=collate, **kwargs)
