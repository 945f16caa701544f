"""Explicit node-classification baselines built from PyG's own layers, and the model registry.

Every model maps ``(x, edge_index)`` to ``[N, num_classes]`` logits. The layers are PyG's
(``GCNConv``, ``GATConv``, ``SGConv``, ``APPNP``, ``JumpingKnowledge``, ``GCN2Conv``, ``MLP``);
only their composition lives here, following each method's paper (and PyG's examples) rather
than the IGNN-Solver paper's settings, which look under-tuned (its plain GCN scores 64.8 on the
Citeseer 60-label split where a standard 2-layer GCN reaches about 70.7).

Defaults (all keyword options, overridable through :func:`build_nodecls_model`):

======  ==========================================================================
gcn     hidden 64, num_layers 2, dropout 0.5 (input and hidden, as Kipf & Welling)
gat     hidden 64 = heads 8 x 8, dropout 0.6 on features and attention (GAT paper)
sgc     K 2 propagation steps then one linear layer, dropout 0.0 (SGC paper)
appnp   2-layer MLP, hidden 64, dropout 0.5, then K 10 steps, alpha 0.1 (APPNP paper)
jknet   3 GCNConv layers, hidden 64, dropout 0.5, JumpingKnowledge "cat" + linear
gcnii   16 GCN2Conv layers, hidden 64, alpha 0.1, theta 0.5, dropout 0.6 (PyG example)
mlp     2 layers, hidden 64, dropout 0.5, no graph (the "does the graph help?" floor)
ignn    see :class:`dear.nodecls.ignn.IGNN` (hidden 128, 1 implicit layer, kappa 0.9)
======  ==========================================================================

Models with ``sparse_adjacency = True`` (GCN, SGC, APPNP, JKNet, GCNII) are given the graph by
the trainer as a sparse CSR adjacency (:func:`graph_operand`), which PyG's layers multiply
with one SpMM; with ``edge_index`` they gather and scatter one message per edge, which on
BlogCatalog/Flickr is 4x slower for GCN and, for SGC, needs an ``E x F`` message tensor
(23 GB on Flickr). Both forms give the same outputs (tested); ``forward`` accepts either.

``cached=True`` (GCN-family layers) stores the normalised adjacency after the first call, which
is right for transductive full-batch training on one graph; pass ``cached=False`` to apply a
model to several graphs.
"""

from __future__ import annotations

import inspect
import warnings
from typing import Any, Callable

import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import (
    APPNP as APPNPProp,
    MLP as PygMLP,
    GATConv,
    GCN2Conv,
    GCNConv,
    JumpingKnowledge,
    SGConv,
)
from torch_geometric.utils import remove_self_loops, to_torch_csr_tensor

from dear.nodecls.features import feature_dropout
from dear.nodecls.ignn import IGNN

__all__ = [
    "APPNP",
    "GAT",
    "GCN",
    "GCNII",
    "JKNet",
    "MLP",
    "SGC",
    "available_models",
    "build_nodecls_model",
    "model_options",
    "nodecls_model_class",
    "graph_operand",
    "register_nodecls_model",
]


def _check_dropout(p: float) -> float:
    if not 0.0 <= float(p) < 1.0:
        raise ValueError(f"dropout must lie in [0, 1), got {p!r}")
    return float(p)


def _check_positive(name: str, v: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValueError(f"{name} must be a positive integer, got {v!r}")
    return v


class GCN(nn.Module):
    """``num_layers`` PyG ``GCNConv`` layers, ReLU between, dropout before each layer.

    Args:
        in_dim, num_classes (int): input and output widths.
        hidden (int, optional): hidden width. (default: ``64``)
        num_layers (int, optional): convolutions (>= 1). (default: ``2``)
        dropout (float, optional): dropout on the input of every layer. (default: ``0.5``)
        cached (bool, optional): cache the normalised adjacency. (default: ``True``)
    """

    #: Its first layer is a linear map, which takes CSR features (see dear.nodecls.features).
    sparse_features = True

    #: GCNConv takes the graph as a sparse adjacency: one SpMM per layer instead of gather-scatter.
    sparse_adjacency = True

    implicit = False

    def __init__(self, in_dim: int, num_classes: int, *, hidden: int = 64, num_layers: int = 2,
                 dropout: float = 0.5, cached: bool = True) -> None:
        super().__init__()
        _check_positive("num_layers", num_layers)
        _check_positive("hidden", hidden)
        self.dropout = _check_dropout(dropout)
        dims = [in_dim] + [hidden] * (num_layers - 1) + [num_classes]
        self.convs = nn.ModuleList(GCNConv(dims[i], dims[i + 1], cached=cached) for i in range(num_layers))

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        for i, conv in enumerate(self.convs):
            x = conv(feature_dropout(x, self.dropout, self.training), edge_index)
            if i < len(self.convs) - 1:
                x = F.relu(x)
        return x


class GAT(nn.Module):
    """Two PyG ``GATConv`` layers (Velickovic et al. 2018): multi-head ELU, then one head.

    Args:
        in_dim, num_classes (int): input and output widths.
        hidden (int, optional): total hidden width, split over ``heads``. (default: ``64``)
        heads (int, optional): attention heads of the first layer. (default: ``8``)
        out_heads (int, optional): heads of the output layer (averaged). (default: ``1``)
        dropout (float, optional): feature dropout before each layer. (default: ``0.6``)
        attn_dropout (float, optional): dropout on attention coefficients. (default: ``0.6``)
    """

    #: Its first layer is a linear map, which takes CSR features (see dear.nodecls.features).
    sparse_features = True

    #: attention is per edge: keep edge_index.
    sparse_adjacency = False

    implicit = False

    def __init__(self, in_dim: int, num_classes: int, *, hidden: int = 64, heads: int = 8,
                 out_heads: int = 1, dropout: float = 0.6, attn_dropout: float = 0.6) -> None:
        super().__init__()
        _check_positive("heads", heads)
        _check_positive("hidden", hidden)
        _check_positive("out_heads", out_heads)
        if hidden % heads:
            raise ValueError(f"gat: hidden ({hidden}) must be divisible by heads ({heads})")
        self.dropout = _check_dropout(dropout)
        self.conv1 = GATConv(in_dim, hidden // heads, heads=heads, dropout=_check_dropout(attn_dropout))
        self.conv2 = GATConv(hidden, num_classes, heads=out_heads, concat=False, dropout=attn_dropout)

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        x = F.elu(self.conv1(feature_dropout(x, self.dropout, self.training), edge_index))
        return self.conv2(feature_dropout(x, self.dropout, self.training), edge_index)


class SGC(nn.Module):
    """PyG ``SGConv`` (Wu et al. 2019): ``K`` parameter-free propagations, one linear map.

    Args:
        in_dim, num_classes (int): input and output widths.
        K (int, optional): propagation steps. (default: ``2``)
        dropout (float, optional): input dropout. (default: ``0.0``)
        cached (bool, optional): cache the propagated features. (default: ``True``)
    """

    #: SGConv propagates the raw features before its linear map: keep them dense.
    sparse_features = False

    #: SGConv propagates raw features: SpMM needs N x F memory where gather-scatter needs E x F.
    sparse_adjacency = True

    implicit = False

    def __init__(self, in_dim: int, num_classes: int, *, K: int = 2, dropout: float = 0.0,
                 cached: bool = True) -> None:
        super().__init__()
        self.dropout = _check_dropout(dropout)
        self.conv = SGConv(in_dim, num_classes, K=_check_positive("K", K), cached=cached)

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        return self.conv(feature_dropout(x, self.dropout, self.training), edge_index)


class APPNP(nn.Module):
    """Predict then propagate (Klicpera et al. 2019): PyG ``MLP`` then PyG ``APPNP``.

    Args:
        in_dim, num_classes (int): input and output widths.
        hidden (int, optional): MLP hidden width. (default: ``64``)
        K (int, optional): power-iteration steps of personalised PageRank. (default: ``10``)
        alpha (float, optional): teleport probability. (default: ``0.1``)
        dropout (float, optional): dropout on the input and hidden layer. (default: ``0.5``)
        cached (bool, optional): cache the normalised adjacency. (default: ``True``)
    """

    #: Its first layer is a linear map, which takes CSR features (see dear.nodecls.features).
    sparse_features = True

    #: its propagation takes a sparse adjacency (SpMM).
    sparse_adjacency = True

    implicit = False

    def __init__(self, in_dim: int, num_classes: int, *, hidden: int = 64, K: int = 10,
                 alpha: float = 0.1, dropout: float = 0.5, cached: bool = True) -> None:
        super().__init__()
        if not 0.0 < float(alpha) <= 1.0:
            raise ValueError(f"appnp: alpha must lie in (0, 1], got {alpha!r}")
        _check_positive("hidden", hidden)
        self.dropout = _check_dropout(dropout)
        self.mlp = PygMLP([in_dim, hidden, num_classes], dropout=dropout, norm=None)
        self.prop = APPNPProp(K=_check_positive("K", K), alpha=alpha, cached=cached)

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        x = self.mlp(feature_dropout(x, self.dropout, self.training))
        return self.prop(x, edge_index)


class JKNet(nn.Module):
    """Jumping-knowledge network (Xu et al. 2018): PyG ``GCNConv`` layers whose outputs are
    combined by PyG ``JumpingKnowledge``, then a linear classifier.

    Args:
        in_dim, num_classes (int): input and output widths.
        hidden (int, optional): width of every layer. (default: ``64``)
        num_layers (int, optional): GCN layers. (default: ``3``)
        mode (str, optional): ``"cat"``, ``"max"`` or ``"lstm"``. (default: ``"cat"``)
        dropout (float, optional): dropout before each layer and the classifier.
            (default: ``0.5``)
        cached (bool, optional): cache the normalised adjacency. (default: ``True``)
    """

    #: Its first layer is a linear map, which takes CSR features (see dear.nodecls.features).
    sparse_features = True

    #: GCNConv layers take a sparse adjacency (SpMM).
    sparse_adjacency = True

    implicit = False

    def __init__(self, in_dim: int, num_classes: int, *, hidden: int = 64, num_layers: int = 3,
                 mode: str = "cat", dropout: float = 0.5, cached: bool = True) -> None:
        super().__init__()
        _check_positive("num_layers", num_layers)
        _check_positive("hidden", hidden)
        if mode not in ("cat", "max", "lstm"):
            raise ValueError(f"jknet: mode must be one of cat, max, lstm, got {mode!r}")
        self.dropout = _check_dropout(dropout)
        dims = [in_dim] + [hidden] * num_layers
        self.convs = nn.ModuleList(GCNConv(dims[i], hidden, cached=cached) for i in range(num_layers))
        self.jk = JumpingKnowledge(mode, channels=hidden, num_layers=num_layers)
        self.lin = nn.Linear(hidden * num_layers if mode == "cat" else hidden, num_classes)

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        xs = []
        for conv in self.convs:
            x = F.relu(conv(feature_dropout(x, self.dropout, self.training), edge_index))
            xs.append(x)
        return self.lin(F.dropout(self.jk(xs), self.dropout, self.training))


class GCNII(nn.Module):
    """GCNII (Chen et al. 2020) from PyG ``GCN2Conv`` layers: initial residual and identity
    mapping, between an input and an output linear layer (as PyG's ``gcn2_cora`` example).

    Args:
        in_dim, num_classes (int): input and output widths.
        hidden (int, optional): width. (default: ``64``)
        num_layers (int, optional): ``GCN2Conv`` layers. (default: ``16``)
        alpha (float, optional): initial-residual weight. (default: ``0.1``)
        theta (float, optional): identity-mapping strength (beta_l = log(theta / l + 1)).
            (default: ``0.5``)
        dropout (float, optional): dropout before every layer. (default: ``0.6``)
        shared_weights (bool, optional): one weight for both terms, as the paper.
            (default: ``True``)
        cached (bool, optional): cache the normalised adjacency. (default: ``True``)
    """

    #: Its first layer is a linear map, which takes CSR features (see dear.nodecls.features).
    sparse_features = True

    #: GCN2Conv takes a sparse adjacency (SpMM).
    sparse_adjacency = True

    implicit = False

    def __init__(self, in_dim: int, num_classes: int, *, hidden: int = 64, num_layers: int = 16,
                 alpha: float = 0.1, theta: float = 0.5, dropout: float = 0.6,
                 shared_weights: bool = True, cached: bool = True) -> None:
        super().__init__()
        _check_positive("num_layers", num_layers)
        _check_positive("hidden", hidden)
        self.dropout = _check_dropout(dropout)
        self.lin_in = nn.Linear(in_dim, hidden)
        self.convs = nn.ModuleList(
            GCN2Conv(hidden, alpha, theta, layer=i + 1, shared_weights=shared_weights, cached=cached)
            for i in range(num_layers)
        )
        self.lin_out = nn.Linear(hidden, num_classes)

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        x = x0 = F.relu(self.lin_in(feature_dropout(x, self.dropout, self.training)))
        for conv in self.convs:
            x = F.relu(conv(feature_dropout(x, self.dropout, self.training), x0, edge_index))
        return self.lin_out(feature_dropout(x, self.dropout, self.training))


class MLP(nn.Module):
    """PyG ``MLP`` on node features alone (ignores the graph).

    Args:
        in_dim, num_classes (int): input and output widths.
        hidden (int, optional): hidden width. (default: ``64``)
        num_layers (int, optional): linear layers (>= 1). (default: ``2``)
        dropout (float, optional): dropout on the input and after hidden layers.
            (default: ``0.5``)
    """

    #: Its first layer is a linear map, which takes CSR features (see dear.nodecls.features).
    sparse_features = True

    #: it ignores the graph.
    sparse_adjacency = False

    implicit = False

    def __init__(self, in_dim: int, num_classes: int, *, hidden: int = 64, num_layers: int = 2,
                 dropout: float = 0.5) -> None:
        super().__init__()
        _check_positive("num_layers", num_layers)
        _check_positive("hidden", hidden)
        self.dropout = _check_dropout(dropout)
        self.mlp = PygMLP(in_channels=in_dim, hidden_channels=hidden, out_channels=num_classes,
                          num_layers=num_layers, dropout=dropout, norm=None)

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        return self.mlp(feature_dropout(x, self.dropout, self.training))


def graph_operand(model: nn.Module, edge_index: Tensor, num_nodes: int) -> Tensor:
    """What the trainer passes to ``model(x, graph)``: the transposed adjacency ``A^T`` as a
    torch CSR matrix (row = target node) for models with ``sparse_adjacency = True``, else
    ``edge_index`` unchanged. PyG's message passing takes either form. Unweighted graphs only
    (edge weights are not carried), as every dataset of :mod:`dear.nodecls`."""
    if not getattr(model, "sparse_adjacency", False):
        return edge_index
    # Every such layer adds unit self loops itself; on edge_index PyG adds only the missing
    # ones, on a sparse matrix all of them, so drop the graph's own (unit) loops first.
    edge_index, _ = remove_self_loops(edge_index)
    with warnings.catch_warnings():  # "CSR support is in beta": PyG only multiplies with it
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        warnings.filterwarnings("ignore", message="Sparse invariant checks are implicitly disabled")
        return to_torch_csr_tensor(edge_index.flip(0), size=(num_nodes, num_nodes))


# ---------------------------------------------------------------------------- registry

_REGISTRY: dict[str, Callable[..., nn.Module]] = {
    "ignn": IGNN,
    "gcn": GCN,
    "gat": GAT,
    "sgc": SGC,
    "appnp": APPNP,
    "jknet": JKNet,
    "gcnii": GCNII,
    "mlp": MLP,
}


def register_nodecls_model(name: str, factory: Callable[..., nn.Module], *, overwrite: bool = False) -> None:
    """Add a model: ``factory(in_dim, num_classes, **options)`` returning an ``nn.Module``
    whose ``forward(x, edge_index)`` gives logits. Set ``implicit = True`` on it if it has
    ``solver_stats()`` (the trainer then reports solver iterations)."""
    if name in _REGISTRY and not overwrite:
        raise ValueError(f"a node-classification model named {name!r} exists; pass overwrite=True")
    _REGISTRY[name] = factory


def available_models() -> list[str]:
    """Registered model names (``ignn`` first, then the explicit baselines)."""
    return list(_REGISTRY)


def _factory(name: str) -> Callable[..., nn.Module]:
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown model {name!r}; valid models: {', '.join(_REGISTRY)}") from None


def nodecls_model_class(name: str) -> Callable[..., nn.Module]:
    """The registered factory (usually the class) of model ``name``; its class attributes
    ``implicit`` and ``sparse_features`` tell the trainer what the model supports."""
    return _factory(name)


def model_options(name: str) -> dict[str, Any]:
    """The keyword options of model ``name`` with their defaults (for docs and results files)."""
    params = inspect.signature(_factory(name)).parameters
    return {k: p.default for k, p in params.items()
            if p.kind is inspect.Parameter.KEYWORD_ONLY}


def build_nodecls_model(name: str, in_dim: int, num_classes: int, **opts: Any) -> nn.Module:
    """Build a registered model; unknown names or options raise ``ValueError`` listing the
    valid ones (so a typo in a sweep fails at once, not after training with a default)."""
    factory = _factory(name)
    valid = model_options(name)
    unknown = sorted(set(opts) - set(valid))
    if unknown:
        raise ValueError(f"model {name!r} has no option(s) {', '.join(unknown)}; "
                         f"valid options: {', '.join(valid) or '(none)'}")
    return factory(in_dim, num_classes, **opts)
