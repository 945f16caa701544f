"""Synthetic node-classification graphs: IGNN's long-range "chains" and a scalable SBM.

Both are generated from ``seed`` with a private generator (same seed, same graph, on any
machine) and are cheap enough not to be cached. Their fingerprints cover every parameter.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.data import Data
from torch_geometric.utils import remove_self_loops, to_undirected

from dear.nodecls.datasets.registry import LoadContext, register_dataset
from dear.nodecls.datasets.splits import assemble, draw, generator, per_class


@register_dataset(
    "chains",
    description="IGNN's synthetic chains: class signal only at each chain's first node",
    default_split="random",
)
def load_chains(
    ctx: LoadContext,
    *,
    num_classes: int = 2,
    chains_per_class: int = 20,
    chain_length: int = 10,
    num_features: int = 100,
    noise: float = 0.0,
    train_fraction: float = 0.05,
    val_fraction: float = 0.10,
    undirected: bool = False,
) -> Data:
    """The chains task of IGNN (Gu et al., NeurIPS 2020, Sec. 5.1).

    ``num_classes * chains_per_class`` chains of ``chain_length`` nodes; every node of a chain
    carries the chain's class as label, but only the chain's first node carries it in its
    features (a one-hot in the first ``num_classes`` of ``num_features`` dimensions); all
    features get uniform noise in ``[-noise, noise]``. Edges point along the chain, first node
    to last (``i -> i+1``), so a model must carry information ``chain_length - 1`` hops.
    The split is a random permutation: ``train_fraction`` / ``val_fraction`` of the nodes
    (rounded down) train / validate, the rest test.

    The defaults are IGNN's (``train_IGNN_chains.py``: 2 classes, ``chains-10``; its
    generator, reproduced in the EIGNN/IDM releases: 20 chains per class, 100 features, no
    noise, 5%/10%/85% split). IGNN's adjacency is this directed one; ``undirected=True`` adds
    the reverse edges.
    """
    c, k, length = num_classes, chains_per_class, chain_length
    if min(c, k, length, num_features) < 1 or num_features < c:
        raise ValueError("chains: need positive sizes and num_features >= num_classes")
    if not 0.0 <= noise < float("inf"):
        raise ValueError(f"chains: noise must be a finite number >= 0, got {noise!r}")
    if not (0.0 < train_fraction < 1.0 and 0.0 < val_fraction < 1.0 and train_fraction + val_fraction < 1.0):
        raise ValueError(f"chains: need 0 < train_fraction, 0 < val_fraction and train_fraction + val_fraction < 1 "
                         f"(the rest tests), got {train_fraction!r} and {val_fraction!r}")
    gen = generator(ctx.seed)
    n = c * k * length
    x = torch.zeros(n, num_features)
    if noise:
        x += (torch.rand(n, num_features, generator=gen) * 2 - 1) * noise
    y = torch.arange(c).repeat_interleave(k * length)
    starts = torch.arange(0, n, length)
    x[starts, y[starts]] += 1.0
    src = (starts.view(-1, 1) + torch.arange(length - 1)).reshape(-1)
    edge_index = torch.stack([src, src + 1])
    if undirected:
        edge_index = to_undirected(edge_index, num_nodes=n)
    order = torch.randperm(n, generator=gen)
    n_train, n_val = int(n * train_fraction), int(n * val_fraction)
    masks = [torch.zeros(n, dtype=torch.bool) for _ in range(3)]
    for mask, part in zip(masks, order.split([n_train, n_val, n - n_train - n_val])):
        mask[part] = True
    params = {"split": ctx.split, "seed": ctx.seed, "num_classes": c, "chains_per_class": k,
              "chain_length": length, "num_features": num_features, "noise": noise,
              "train_fraction": train_fraction, "val_fraction": val_fraction,
              "undirected": undirected}
    return assemble(ctx.name, params, {}, x=x, edge_index=edge_index, y=y,
                    train_mask=masks[0], val_mask=masks[1], test_mask=masks[2])


def sbm_edges(block_sizes: Tensor, avg_degree: float, homophily: float,
              gen: torch.Generator) -> Tensor:
    """SBM edges over nodes numbered block by block, without any n x n object.

    The numbers of within-block and between-block edges are Poisson with means
    ``homophily * m`` and ``(1 - homophily) * m``, ``m = n * avg_degree / 2``; each edge's
    endpoints are then uniform over the node pairs of its kind (within a block chosen in
    proportion to its pair count; between blocks, a uniform node and a uniform node outside
    its block). This is the Poisson (multigraph) SBM of Karrer & Newman (2011); dropping
    self loops and duplicates makes it the Bernoulli SBM up to O(avg_degree^2 / n) edges.
    Memory and time are O(n + m).

    Returns:
        ``[2, E]`` one direction of each sampled edge, self loops removed, not yet coalesced
        (the caller relabels nodes first, then coalesces once).
    """
    sizes = block_sizes.long()
    n = int(sizes.sum())
    offsets = torch.cumsum(sizes, 0) - sizes
    block_of = torch.repeat_interleave(torch.arange(sizes.numel()), sizes)
    m = n * avg_degree / 2
    m_in, m_out = (int(torch.poisson(torch.tensor([rate], dtype=torch.float64),
                                     generator=gen).item())
                   for rate in (homophily * m, (1 - homophily) * m))

    def uniform_below(bound: Tensor) -> Tensor:  # uniform integers in [0, bound)
        return (torch.rand(bound.shape, generator=gen, dtype=torch.float64) * bound).long()

    pairs = (sizes * (sizes - 1)).double()
    block = torch.multinomial(pairs, m_in, replacement=True, generator=gen) if m_in else \
        sizes.new_empty(0)
    inside = torch.stack([offsets[block] + uniform_below(sizes[block]) for _ in range(2)])

    u = uniform_below(torch.full((m_out,), n))
    b = block_of[u]
    v = uniform_below(n - sizes[b])
    v = v + sizes[b] * (v >= offsets[b])  # skip u's own block
    edge_index, _ = remove_self_loops(torch.cat([inside, torch.stack([u, v])], dim=1))
    return edge_index


#: Offset of the seed of the graph/feature-noise stream from that of the class means.
_GRAPH_STREAM = 7919


@register_dataset(
    "sbm",
    description="stochastic block model with a size knob (num_nodes), for scaling studies",
    default_split=20,
    per_class=True,
)
def load_sbm(
    ctx: LoadContext,
    *,
    num_nodes: int = 10_000,
    num_classes: int = 5,
    avg_degree: float = 10.0,
    homophily: float = 0.8,
    num_features: int = 32,
    feature_signal: float = 0.25,
    val_size: int = 500,
) -> Data:
    """A planted-partition SBM whose node classes are its blocks.

    ``num_nodes`` nodes in ``num_classes`` equal blocks (sizes differ by at most one), mean
    degree ``avg_degree`` with a ``homophily`` share of edges inside blocks; in Bernoulli-SBM
    terms ``p_in ~ homophily * avg_degree * C / n`` and
    ``p_out ~ (1 - homophily) * avg_degree * C / ((C - 1) n)``. Node ids are a random
    permutation of the blocks. Features are ``feature_signal * mu[y] + N(0, I)`` with class
    means ``mu ~ N(0, I)`` in ``num_features`` dimensions: weak on purpose, so the graph
    matters. Split: ``split`` training nodes per class and ``val_size`` validation nodes drawn
    with the seed; every other node tests.

    Generation is vectorised and sparse (see :func:`sbm_edges`): one million nodes of mean
    degree 10 take seconds and about a gigabyte.
    """
    if num_nodes < num_classes or num_classes < 2:
        raise ValueError("sbm: need num_classes >= 2 and num_nodes >= num_classes")
    if not 0.0 <= homophily <= 1.0 or not 0.0 <= avg_degree < float("inf"):
        raise ValueError("sbm: need 0 <= homophily <= 1 and a finite avg_degree >= 0")
    if num_features < 1:
        raise ValueError(f"sbm: num_features must be >= 1, got {num_features!r}")
    if not abs(feature_signal) < float("inf"):
        raise ValueError(f"sbm: feature_signal must be a finite number, got {feature_signal!r}")
    if val_size < 0:
        raise ValueError(f"sbm: val_size must be >= 0, got {val_size!r}")
    # Class means come from their own generator, drawn before anything that depends on the
    # size: graphs of different ``num_nodes`` with one seed then share one feature model, so a
    # model trained on a small graph is meaningful on a large one (scaling studies).
    means = torch.randn(num_classes, num_features, generator=generator(ctx.seed))
    gen = generator(ctx.seed + _GRAPH_STREAM)
    sizes = torch.full((num_classes,), num_nodes // num_classes)
    sizes[: num_nodes % num_classes] += 1
    edges_by_block = sbm_edges(sizes, avg_degree, homophily, gen)
    node_of = torch.randperm(num_nodes, generator=gen)  # position in block order -> node id
    y = torch.empty(num_nodes, dtype=torch.long)
    y[node_of] = torch.repeat_interleave(torch.arange(num_classes), sizes)
    edge_index = to_undirected(node_of[edges_by_block], num_nodes=num_nodes)
    x = feature_signal * means[y] + torch.randn(num_nodes, num_features, generator=gen)
    train = per_class(y, torch.ones(num_nodes, dtype=torch.bool), int(ctx.split), gen)
    val = draw(~train, val_size, gen)
    params = {"split": ctx.split, "seed": ctx.seed, "num_nodes": num_nodes,
              "num_classes": num_classes, "avg_degree": avg_degree, "homophily": homophily,
              "num_features": num_features, "feature_signal": feature_signal,
              "val_size": val_size, "generator": 2}
    return assemble(ctx.name, params, {}, x=x, edge_index=edge_index, y=y,
                    train_mask=train, val_mask=val, test_mask=~(train | val))
