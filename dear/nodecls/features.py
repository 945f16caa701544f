"""Node-feature helpers shared by every node-classification model: sparse storage and dropout.

Why: the AM-GCN and Planetoid features are bag-of-words with 0.2-4.5% non-zeros (Flickr:
7575 x 12047 at 0.2%). Kept dense, the first linear map of every model costs more than the
rest of the model together (a dense Flickr ``X W`` with its backward is ~2.6 s on one CPU
core, the same product from CSR ~0.17 s). ``F.linear`` and PyG's ``GCNConv``/``GATConv``/``MLP``
accept a CSR matrix directly and give the same values and gradients, so models only need a
dropout that works on it.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["MAX_SPARSE_DENSITY", "density", "feature_dropout", "is_sparse_matrix", "to_sparse_features"]

#: Stored fraction below which ``to_sparse_features(..., "auto")`` switches to CSR.
MAX_SPARSE_DENSITY = 0.05


def is_sparse_matrix(x: Tensor) -> bool:
    return x.layout in (torch.sparse_coo, torch.sparse_csr)


def density(x: Tensor) -> float:
    """Fraction of stored (sparse) or non-zero (dense) entries."""
    n = x.shape[0] * x.shape[1]
    if n == 0:
        return 0.0
    stored = x._nnz() if is_sparse_matrix(x) else int(torch.count_nonzero(x))
    return stored / n


def to_sparse_features(x: Tensor, mode: str = "auto") -> Tensor:
    """``x`` as CSR under ``"yes"``, or under ``"auto"`` when its density is below
    :data:`MAX_SPARSE_DENSITY`; ``"no"`` (or an already sparse ``x``) returns it unchanged."""
    if mode not in ("auto", "yes", "no"):
        raise ValueError(f"sparse features mode must be auto, yes or no, got {mode!r}")
    if mode == "no" or is_sparse_matrix(x) or x.dim() != 2:
        return x
    if mode == "yes" or density(x) < MAX_SPARSE_DENSITY:
        with warnings.catch_warnings():  # "CSR support is in beta": we use only linear maps of it
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            return x.to_sparse_csr()
    return x


def feature_dropout(x: Tensor, p: float, training: bool) -> Tensor:
    """``F.dropout`` that also takes a COO or CSR matrix: stored entries are dropped and the
    survivors scaled by ``1/(1-p)``, which is dense dropout restricted to the non-zeros (a zero
    stays zero either way), so the result has the dense version's distribution."""
    if not training or p == 0.0:
        return x
    if x.layout == torch.sparse_csr:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            return torch.sparse_csr_tensor(x.crow_indices(), x.col_indices(), F.dropout(x.values(), p, True),
                                           x.shape, check_invariants=False)
    if x.layout == torch.sparse_coo:
        x = x.coalesce()
        return torch.sparse_coo_tensor(x.indices(), F.dropout(x.values(), p, True), x.shape,
                                       check_invariants=False)
    return F.dropout(x, p, True)
