"""Index bookkeeping for a batch of CLRS graphs: nodes, message-passing edges, all pairs, triples.

``clrs_tasks`` stores three kinds of rows (see ``docs/clrs-tasks.md``):

* node rows ``[N]`` (``N = sum n``), graph ``g`` at ``ptr[g]:ptr[g+1]``;
* pair rows ``[P]`` (``P = sum n^2``), pair ``(i, j)`` of graph ``g`` at
  ``pair_ptr[g] + i * n + j`` -- every edge-located probe lives on all pairs;
* message-passing edges ``[E]`` (``edge_index``), with ``edge_pair`` naming each edge's pair row.

Edge-pointer probes (Floyd-Warshall's ``Pi``) are scored on *triples* ``[sum n^3]``: per pair
``(i, j)`` a logit for every node ``k`` of the graph, row ``(pair_row) * n + k`` within the
graph. :class:`BatchLayout` derives all of these once per forward pass (vectorised, on the
batch's device) so encoders, decoders and losses never loop over graphs.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import torch
from torch import Tensor
from torch_geometric.utils import scatter

__all__ = ["BatchLayout", "GraphSubset", "grouped_log_softmax", "grouped_softmax"]


def grouped_log_softmax(x: Tensor, index: Tensor, num_groups: int) -> Tensor:
    """``log_softmax`` of ``x`` within the groups given by ``index`` (along dim 0).

    PyG ships :func:`torch_geometric.utils.softmax` but no log-space version; the log of its
    output loses precision for very negative logits (Sinkhorn at temperature 0.1 produces
    them), so the log-sum-exp is formed here from PyG's ``scatter`` with the usual max shift.
    Empty groups are harmless (they are never gathered back).
    """
    shift = scatter(x.detach(), index, dim=0, dim_size=num_groups, reduce="max")
    shifted = x - shift.index_select(0, index)
    lse = scatter(shifted.exp(), index, dim=0, dim_size=num_groups, reduce="sum").clamp_min(1e-30).log()
    return shifted - lse.index_select(0, index)


def grouped_softmax(x: Tensor, index: Tensor, num_groups: int) -> Tensor:
    """``softmax`` within groups (the exponential of :func:`grouped_log_softmax`)."""
    return grouped_log_softmax(x, index, num_groups).exp()


@dataclass(frozen=True)
class GraphSubset:
    """Some graphs of a batch as a batch of their own (:meth:`BatchLayout.subset`).

    Attributes:
        graphs: ``[B']`` original ids of the kept graphs (ascending).
        nodes: ``[N']`` original node rows of those graphs, in order.
        edges: ``[E']`` original edge columns of those graphs, in order.
        edge_index: ``[2, E']`` the kept edges in the subset's node numbering.
        batch: ``[N']`` graph of each kept node in the subset's numbering.
    """

    graphs: Tensor
    nodes: Tensor
    edges: Tensor
    edge_index: Tensor
    batch: Tensor


class BatchLayout:
    """Row indices of one PyG batch (or single graph) of CLRS graphs, per location.

    Only the graph structure is read: ``num_nodes``, ``edge_index``, ``edge_pair`` and ``batch``
    / ``ptr`` (absent on a single graph). Heavier index sets (all pairs, all triples) are built
    lazily the first time a field that needs them is encoded, decoded or scored.

    Attributes:
        num_nodes, num_graphs, num_edges: ``N``, ``B``, ``E``.
        batch: ``[N]`` graph of each node. ptr: ``[B + 1]`` first node of each graph.
        sizes: ``[B]`` nodes per graph. edge_index: ``[2, E]`` (source, target) node indices.
        edge_pair: ``[E]`` pair row of each edge. edge_graph: ``[E]`` graph of each edge.
    """

    def __init__(self, data: Any) -> None:
        edge_index = data.edge_index
        device = edge_index.device
        n_nodes = int(data.num_nodes)
        batch = getattr(data, "batch", None)
        ptr = getattr(data, "ptr", None)
        if batch is None or ptr is None:
            batch = torch.zeros(n_nodes, dtype=torch.long, device=device)
            ptr = torch.tensor([0, n_nodes], dtype=torch.long, device=device)
        edge_pair = getattr(data, "edge_pair", None)
        if edge_pair is None:
            raise ValueError("the batch has no `edge_pair`; build graphs with clrs_tasks (load_split / from_clrs)")
        self.device = device
        self.num_nodes = n_nodes
        self.batch = batch
        self.ptr = ptr
        self.num_graphs = int(ptr.numel() - 1)
        self.sizes = ptr[1:] - ptr[:-1]
        self.edge_index = edge_index
        self.edge_pair = edge_pair
        self.num_edges = int(edge_index.shape[1])
        self.edge_graph = batch.index_select(0, edge_index[0])
        self.pair_ptr = torch.cat([self.sizes.new_zeros(1), (self.sizes * self.sizes).cumsum(0)])
        self.num_pairs = int(self.pair_ptr[-1])

    def subset(self, graphs: Tensor) -> GraphSubset:
        """The graphs ``graphs`` (ascending original ids) as a batch of their own: used to
        keep stepping only the graphs that are not done yet (unrolled models past a graph's
        last step, solvers past its convergence)."""
        keep = torch.zeros(self.num_graphs, dtype=torch.bool, device=self.device)
        keep[graphs] = True
        node_keep = keep.index_select(0, self.batch)
        nodes = node_keep.nonzero().squeeze(1)
        edges = keep.index_select(0, self.edge_graph).nonzero().squeeze(1)
        node_new = torch.cumsum(node_keep, 0) - 1
        graph_new = torch.cumsum(keep, 0) - 1
        return GraphSubset(
            graphs=graphs, nodes=nodes, edges=edges,
            edge_index=node_new[self.edge_index.index_select(1, edges)],
            batch=graph_new.index_select(0, self.batch.index_select(0, nodes)),
        )

    # ------------------------------------------------------------------ pairs
    @cached_property
    def pair_graph(self) -> Tensor:
        """``[P]`` graph of each pair row."""
        return torch.repeat_interleave(torch.arange(self.num_graphs, device=self.device),
                                       self.sizes * self.sizes, output_size=self.num_pairs)

    @cached_property
    def pair_src(self) -> Tensor:
        """``[P]`` global index of node ``i`` of pair row ``(i, j)``."""
        g = self.pair_graph
        local = torch.arange(self.num_pairs, device=self.device) - self.pair_ptr.index_select(0, g)
        return self.ptr.index_select(0, g) + torch.div(local, self.sizes.index_select(0, g), rounding_mode="floor")

    @cached_property
    def pair_dst(self) -> Tensor:
        """``[P]`` global index of node ``j`` of pair row ``(i, j)``."""
        g = self.pair_graph
        local = torch.arange(self.num_pairs, device=self.device) - self.pair_ptr.index_select(0, g)
        return self.ptr.index_select(0, g) + torch.remainder(local, self.sizes.index_select(0, g))

    @cached_property
    def pair_to_edge(self) -> Tensor:
        """``[P]`` message-passing edge of each pair row, ``-1`` where the pair is not an edge."""
        out = torch.full((self.num_pairs,), -1, dtype=torch.long, device=self.device)
        out[self.edge_pair] = torch.arange(self.num_edges, device=self.device)
        return out

    @property
    def edges_complete(self) -> bool:
        """Whether every ordered pair (self loops included) is a message-passing edge."""
        return self.num_edges == self.num_pairs

    def pair_row(self, src: Tensor, dst: Tensor) -> Tensor:
        """Pair rows of (global) node pairs ``(src, dst)`` of the same graph."""
        g = self.batch.index_select(0, src)
        start = self.ptr.index_select(0, g)
        return self.pair_ptr.index_select(0, g) + (src - start) * self.sizes.index_select(0, g) + (dst - start)

    # ------------------------------------------------------------------ triples
    @cached_property
    def triple_ptr(self) -> Tensor:
        return torch.cat([self.sizes.new_zeros(1), (self.sizes**3).cumsum(0)])

    @cached_property
    def num_triples(self) -> int:
        return int(self.triple_ptr[-1])

    @cached_property
    def triple_graph(self) -> Tensor:
        """``[sum n^3]`` graph of each triple."""
        return torch.repeat_interleave(torch.arange(self.num_graphs, device=self.device), self.sizes**3,
                                       output_size=self.num_triples)

    @cached_property
    def _triple_local(self) -> Tensor:
        g = self.triple_graph
        return torch.arange(self.num_triples, device=self.device) - self.triple_ptr.index_select(0, g)

    @cached_property
    def triple_pair(self) -> Tensor:
        """``[sum n^3]`` pair row ``(i, j)`` of each triple ``(i, j, k)``."""
        g = self.triple_graph
        return self.pair_ptr.index_select(0, g) + torch.div(self._triple_local, self.sizes.index_select(0, g),
                                                            rounding_mode="floor")

    @cached_property
    def triple_node(self) -> Tensor:
        """``[sum n^3]`` global index of node ``k`` of each triple ``(i, j, k)``."""
        g = self.triple_graph
        return self.ptr.index_select(0, g) + torch.remainder(self._triple_local, self.sizes.index_select(0, g))
