"""Processor steps on PyG batches: ``h' = P(h; x, edges, graph)``.

Every processor has the same call::

    h_new = processor(h, x_enc, edge_index, edge_attr, graph_attr, batch)

with ``h`` ``[N, H]`` node states, ``x_enc`` ``[N, H]`` encoded inputs (concatenated to ``h``
inside, CLRS's ``z = [x, h]``), ``edge_index`` ``[2, E]``, ``edge_attr`` ``[E, H]``,
``graph_attr`` ``[B, H]`` and PyG's ``batch`` ``[N]``. Graphs never interact, so the same step
serves unrolled reasoners (NAR) and equilibrium ones (DEAR), whose solvers stop per graph.

================  =============================================  ===========================
name              class                                          file
================  =============================================  ===========================
``mpnn``          :class:`GatedMPNN` (DEAR's processor)          ``mpnn.py``
``triplet_gmpnn`` :class:`TripletGMPNN` (Ibarz et al. 2022)      ``triplet.py``
``gatv2``         :class:`GATv2Processor` (PyG ``GATv2Conv``)    ``gatv2.py``
================  =============================================  ===========================
"""

from __future__ import annotations

from typing import Any

from torch import nn

from .gatv2 import GATv2Processor
from .mpnn import GatedMPNN
from .triplet import TripletGMPNN, triplet_edge_latents

__all__ = ["GATv2Processor", "GatedMPNN", "PROCESSORS", "TripletGMPNN", "available", "get_processor",
           "triplet_edge_latents"]

PROCESSORS: dict[str, type[nn.Module]] = {
    "mpnn": GatedMPNN,
    "triplet_gmpnn": TripletGMPNN,
    "gatv2": GATv2Processor,
}


def available() -> list[str]:
    """Names accepted by :func:`get_processor`."""
    return list(PROCESSORS)


def get_processor(name: str, hidden: int, **kwargs: Any) -> nn.Module:
    """Instantiate the processor registered as ``name`` with width ``hidden``.

    ``kwargs`` are the class's own options (see each class); an unknown name raises
    ``ValueError`` listing the valid ones, an unknown option raises ``TypeError`` from the class.
    """
    try:
        cls = PROCESSORS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown processor {name!r}; valid: {', '.join(PROCESSORS)}") from None
    return cls(hidden, **kwargs)
