"""A GATv2 processor step: :class:`torch_geometric.nn.GATv2Conv` behind the processor signature."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.nn import GATv2Conv

from .mpnn import input_widths

__all__ = ["GATv2Processor"]


class GATv2Processor(nn.Module):
    r"""Attention processor: PyG's GATv2 (Brody et al., 2022) on :math:`z = [x \,\|\, h]`.

    .. math::
        \tilde h_j &= \mathrm{LayerNorm}\Big(\mathrm{ReLU}\big(
            \mathrm{GATv2}(z, e)_j + W_s z_j + W_g g\big)\Big),\\
        \gamma_j &= \sigma\big(G\,[z_j \,\|\, \tilde h_j]\big), \qquad
        h'_j = \gamma_j \odot \tilde h_j + (1 - \gamma_j) \odot h_j,

    where GATv2 uses ``heads`` attention heads of width ``hidden // heads`` (concatenated),
    edge features in the attention scores (``edge_dim``) and the batch's own edges (no extra
    self loops: CLRS graphs carry them already). The skip term and the graph feature make the
    step comparable to :class:`~dear.processors.GatedMPNN` (same inputs, same gate with bias
    ``-3``), so processors can be swapped without touching the reasoner.

    Args:
        hidden (int): width ``H`` of the state and the output.
        node_dim (int, optional): width of the encoded inputs; ``None``: ``hidden``.
        edge_dim (int, optional): width of ``edge_attr``; ``None``: ``hidden``.
        graph_dim (int, optional): width of ``graph_attr``; ``None``: ``hidden``.
        heads (int, optional): attention heads; must divide ``hidden``. (default: ``4``)
        layer_norm (bool, optional): LayerNorm on the candidate state. (default: ``True``)
        gated (bool, optional): gate between candidate and old state. (default: ``True``)
        gate_bias (float, optional): initial gate bias. (default: ``-3.0``)

    Shapes:
        - **input:** ``h`` :math:`(N, H)`, ``x_enc`` :math:`(N, F_x)`, ``edge_index``
          :math:`(2, E)`, ``edge_attr`` :math:`(E, F_e)`, ``graph_attr`` :math:`(B, F_g)`,
          ``batch`` :math:`(N)`.
        - **output:** :math:`(N, H)`.
    """

    def __init__(
        self,
        hidden: int,
        node_dim: int | None = None,
        edge_dim: int | None = None,
        graph_dim: int | None = None,
        heads: int = 4,
        layer_norm: bool = True,
        gated: bool = True,
        gate_bias: float = -3.0,
    ) -> None:
        super().__init__()
        if heads < 1 or hidden % heads:
            raise ValueError(f"heads must be a positive divisor of hidden={hidden}, got {heads}")
        _, edge_dim, graph_dim, z_dim = input_widths(hidden, node_dim, edge_dim, graph_dim)
        self.hidden = hidden
        self.heads = heads
        self.gated = gated
        self.conv = GATv2Conv(z_dim, hidden // heads, heads=heads, concat=True, edge_dim=edge_dim,
                              add_self_loops=False)
        self.skip = nn.Linear(z_dim, hidden)
        self.lin_graph = nn.Linear(graph_dim, hidden, bias=False)
        self.norm = nn.LayerNorm(hidden) if layer_norm else nn.Identity()
        if gated:
            self.gate = nn.Linear(z_dim + hidden, hidden)
        self.gate_bias = gate_bias
        self.reset_gate_bias()

    def reset_gate_bias(self) -> None:
        """Set the gate's bias to its constant start (kept by every init scheme)."""
        if self.gated:
            nn.init.constant_(self.gate.bias, self.gate_bias)

    def forward(
        self,
        h: Tensor,
        x_enc: Tensor,
        edge_index: Tensor,
        edge_attr: Tensor,
        graph_attr: Tensor,
        batch: Tensor,
    ) -> Tensor:
        z = torch.cat([x_enc, h], dim=-1)
        att = self.conv(z, edge_index, edge_attr)
        cand = self.norm(torch.relu(att + self.skip(z) + self.lin_graph(graph_attr).index_select(0, batch)))
        if not self.gated:
            return cand
        gate = torch.sigmoid(self.gate(torch.cat([z, cand], dim=-1)))
        return gate * cand + (1.0 - gate) * h

    def __repr__(self) -> str:
        return f"{type(self).__name__}(hidden={self.hidden}, heads={self.heads})"
