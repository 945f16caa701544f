"""Node classification on graphs too large for full-batch training: partitioned mini-batches.

Full-batch training (``dear.nodecls.train``) keeps the whole graph, every activation and, for
IGNN, the whole equilibrium state on one device. When that does not fit, this module trains on
**induced subgraphs of node partitions**, Cluster-GCN style (Chiang et al., KDD 2019):

* ``sampler="random"``: a fresh random partition of the nodes into ``num_parts`` parts every
  epoch (as PyG's ``RandomNodeLoader``, with sizes equal to within one node, drawn from the
  seed and epoch so every rank draws the same). Needs nothing beyond PyTorch Geometric; it drops the edges between parts (about ``1 - 1/num_parts`` of them per step,
  fewer when ``parts_per_step`` parts are merged into one subgraph).
* ``sampler="cluster"``: a METIS partition computed once (PyG's ``ClusterData``, which needs
  ``pyg-lib`` or ``torch-sparse`` built with METIS); parts are reshuffled into new groups every
  epoch. Far fewer cut edges than random parts, so subgraphs keep most of each node's
  neighbourhood.

Each optimiser step trains on the subgraph induced by ``parts_per_step`` parts; the loss is the
mean over that subgraph's training nodes. Under ``torchrun`` the parts of a step are shared
between the ranks (``parts_per_step`` must be a multiple of the number of processes, and is by
default equal to it), every rank builds the subgraph of its own parts, and DDP averages the
gradients, each rank weighted by its share of the step's training nodes.

**IGNN on a subgraph is an approximation**: the equilibrium solved is that of the subgraph's
own ``A_hat`` (renormalised with subgraph degrees), i.e. information reaches a node only
through paths inside its part. The explicit baselines lose the same cut edges, for their
finite number of hops. Models are built with ``cached=False`` for training, since every step
sees a new graph.

**Evaluation.** ``eval_mode="full"`` (default) scores validation and test nodes with one
forward on the whole graph (one device, no gradients: far less memory than training), so
numbers are comparable with full-batch runs. ``eval_mode="parts"`` scores them part by part on
a fixed partition (for graphs where even inference does not fit), an approximation in the same
way as training; under ``torchrun`` the parts are shared between ranks and the counts summed.

Not here: neighbour sampling (PyG's ``NeighborLoader``), which needs ``pyg-lib`` or
``torch-sparse`` and samples fixed-depth trees, which does not match an implicit model's
unbounded receptive field.
"""

from __future__ import annotations

import copy
import math
import statistics
import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.data import Data

__all__ = [
    "EVAL_MODES",
    "SAMPLERS",
    "Partitioner",
    "SubgraphBatch",
    "induced_subgraphs",
    "metis_parts",
    "parts_from_partition",
    "random_parts",
    "train_one_seed_sampled",
]

SAMPLERS = ("random", "cluster")
EVAL_MODES = ("full", "parts")
DEFAULT_NUM_PARTS = 8


# --------------------------------------------------------------------------- partitions


def random_parts(num_nodes: int, num_parts: int, seed: int) -> list[Tensor]:
    """A random partition of ``range(num_nodes)`` into ``num_parts`` parts whose sizes differ
    by at most one, drawn from a private generator seeded by ``seed`` (the same on every rank
    and every machine)."""
    if num_parts < 1:
        raise ValueError(f"num_parts must be >= 1, got {num_parts}")
    g = torch.Generator().manual_seed(int(seed))
    perm = torch.randperm(num_nodes, generator=g)
    return [p for p in torch.tensor_split(perm, num_parts)]


def parts_from_partition(partptr: Tensor, node_perm: Tensor) -> list[Tensor]:
    """Node ids of each part from PyG's ``ClusterData.partition``: part ``i`` is
    ``node_perm[partptr[i]:partptr[i + 1]]`` (empty METIS parts are dropped)."""
    ptr = partptr.tolist()
    parts = [node_perm[a:b] for a, b in zip(ptr[:-1], ptr[1:])]
    return [p for p in parts if p.numel() > 0]


def metis_parts(data: Data, num_parts: int) -> list[Tensor]:
    """A METIS partition through PyG's ``ClusterData``.

    Raises:
        ValueError: no METIS backend (``pyg-lib`` or ``torch-sparse``) is installed; the
            message names ``--sampler random``, which needs none.
    """
    import torch_geometric.typing as pyg_typing  # noqa: PLC0415

    if not (pyg_typing.WITH_METIS or pyg_typing.WITH_TORCH_SPARSE):
        raise ValueError("sampler 'cluster' needs METIS from pyg-lib or torch-sparse, which are not installed; "
                         "install one of them (https://pytorch-geometric.readthedocs.io, 'Additional "
                         "Libraries') or use --sampler random, which needs neither")
    from torch_geometric.loader import ClusterData  # noqa: PLC0415

    cluster = ClusterData(Data(edge_index=data.edge_index, num_nodes=data.num_nodes), num_parts, log=False)
    return parts_from_partition(cluster.partition.partptr, cluster.partition.node_perm)


class Partitioner:
    """The parts of each epoch: fresh random ones (``random``) or a fixed METIS partition
    reshuffled into new groups (``cluster``); a pure function of (seed, epoch), so every rank
    computes the same parts without communicating."""

    def __init__(self, data: Data, sampler: str, num_parts: int, seed: int) -> None:
        if sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {sampler!r}; valid: {', '.join(SAMPLERS)}")
        if not 1 <= num_parts <= data.num_nodes:
            raise ValueError(f"num_parts must lie in [1, {data.num_nodes}] (the number of nodes), got {num_parts}")
        self.sampler = sampler
        self.num_nodes = int(data.num_nodes)
        self.num_parts = num_parts
        self.seed = int(seed)
        self._fixed = metis_parts(data, num_parts) if sampler == "cluster" else None

    def epoch(self, epoch: int) -> list[Tensor]:
        """The parts of ``epoch``, in the order the steps take them."""
        key = self.seed * 1_000_003 + int(epoch)
        if self._fixed is None:
            return random_parts(self.num_nodes, self.num_parts, key)
        order = torch.randperm(len(self._fixed), generator=torch.Generator().manual_seed(key))
        return [self._fixed[int(i)] for i in order]

    def fixed(self) -> list[Tensor]:
        """One partition that does not change (evaluation by parts)."""
        if self._fixed is not None:
            return list(self._fixed)
        return random_parts(self.num_nodes, self.num_parts, self.seed * 1_000_003 - 1)


# --------------------------------------------------------------------------- subgraphs


@dataclass
class SubgraphBatch:
    """One induced subgraph: ``nodes`` (global ids, ``[n]``) and its relabelled ``edge_index``."""

    nodes: Tensor
    edge_index: Tensor

    def to(self, device: torch.device) -> "SubgraphBatch":
        return SubgraphBatch(self.nodes.to(device), self.edge_index.to(device))


def induced_subgraphs(edge_index: Tensor, num_nodes: int, groups: Sequence[Sequence[Tensor]]) -> list[SubgraphBatch]:
    """The subgraph induced by the union of each group's parts, for all groups in one pass.

    One ``O(E)`` sweep labels every edge with its group (both ends in the same group) and
    buckets the kept edges, instead of one ``O(E)`` mask per group as
    ``torch_geometric.utils.subgraph`` would need; nodes keep their order in the group's parts.
    Groups must be disjoint.
    """
    group_of = torch.full((num_nodes,), -1, dtype=torch.long)
    local = torch.empty(num_nodes, dtype=torch.long)
    node_lists = []
    for gi, parts in enumerate(groups):
        nodes = torch.cat(list(parts)) if len(parts) else torch.empty(0, dtype=torch.long)
        if bool((group_of[nodes] != -1).any()):
            raise ValueError("groups of parts must be disjoint")
        group_of[nodes] = gi
        local[nodes] = torch.arange(nodes.numel())
        node_lists.append(nodes)
    src, dst = edge_index
    g_src = group_of[src]
    keep = (g_src >= 0) & (g_src == group_of[dst])
    kept_group = g_src[keep]
    order = torch.argsort(kept_group, stable=True)
    kept = edge_index[:, keep][:, order]
    counts = torch.bincount(kept_group, minlength=len(groups)).tolist()
    out = []
    for nodes, e in zip(node_lists, torch.split(kept, counts, dim=1)):
        out.append(SubgraphBatch(nodes, local[e]))
    return out


def _rows(x: Tensor, nodes: Tensor) -> Tensor:
    """Rows ``nodes`` of dense or sparse (featureless graphs: a sparse identity) features."""
    return x.index_select(0, nodes)


# ------------------------------------------------------------------------------ metrics


def _sums(logits: Tensor, y: Tensor, multilabel: bool) -> list[float]:
    """Additive statistics of a set of nodes: ``[loss_sum, loss_count, a, b, c]`` with
    ``(correct, total, 0)`` for accuracy or ``(tp, fp, fn)`` for micro-F1; summing them over
    parts (and ranks) then dividing gives exactly the full-set metric and mean loss."""
    if y.shape[0] == 0:
        return [0.0, 0.0, 0.0, 0.0, 0.0]
    if multilabel:
        loss = F.binary_cross_entropy_with_logits(logits, y.float(), reduction="sum")
        pred, pos = logits > 0, y > 0.5
        return [float(loss), float(y.numel()), float((pred & pos).sum()), float((pred & ~pos).sum()),
                float((~pred & pos).sum())]
    loss = F.cross_entropy(logits, y, reduction="sum")
    return [float(loss), float(y.shape[0]), float((logits.argmax(-1) == y).sum()), float(y.shape[0]), 0.0]


def _metric_from(s: Sequence[float], multilabel: bool) -> tuple[float, float]:
    """(metric in percent, mean loss) from summed :func:`_sums`; NaN metric for no nodes."""
    loss = s[0] / s[1] if s[1] > 0 else float("nan")
    if multilabel:
        tp, fp, fn = s[2], s[3], s[4]
        return (100.0 * 2 * tp / max(2 * tp + fp + fn, 1) if s[1] > 0 else float("nan")), loss
    return (100.0 * s[2] / s[3] if s[3] > 0 else float("nan")), loss


# ------------------------------------------------------------------------------ training


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _training_options(cfg: Any) -> dict[str, Any]:
    """Model options for training on changing subgraphs: ``cached=False`` where the model has
    it (a cached normalisation would be the first subgraph's forever)."""
    from dear.nodecls.baselines import model_options  # noqa: PLC0415

    opts = cfg.model_kwargs()
    if "cached" in model_options(cfg.model):
        if opts.get("cached") is True:
            raise ValueError("--model-opt cached=true cannot be used with a sampler: every step sees a new "
                             "subgraph; drop the option")
        opts["cached"] = False
    return opts


def train_one_seed_sampled(cfg: Any, data: Data, x: Tensor, seed: int, device: torch.device,
                           progress: bool = True) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """Train and evaluate one seed on partitioned subgraphs (see the module doc); the same
    record as :func:`dear.nodecls.train.train_one_seed` plus ``sampling``.

    ``data`` and ``x`` stay where they are (the CPU, for a graph that does not fit the device);
    each step's subgraph is moved to ``device``. Under ``torchrun`` (a process group with
    several ranks) every rank must call this with the same arguments: the ranks train one
    model together with DDP; all return the same record.
    """
    from clrs_tasks.progress import progress_bar  # noqa: PLC0415

    from dear.distributed import (  # noqa: PLC0415
        all_reduce_sum,
        broadcast_object,
        broadcast_parameters,
        get_rank,
        get_world_size,
        wrap_ddp,
    )
    from dear.nodecls.baselines import build_nodecls_model  # noqa: PLC0415
    from dear.nodecls.train import TrainSolverLog, _solver_summary, time_inference  # noqa: PLC0415

    rank, world = get_rank(), get_world_size()
    main = rank == 0
    sampler = cfg.sampler or "random"
    num_parts = cfg.num_parts or DEFAULT_NUM_PARTS
    per_step = cfg.parts_per_step or world
    eval_mode = cfg.eval_mode or "full"
    if per_step % world:
        raise ValueError(f"parts_per_step {per_step} is not a multiple of the {world} processes; "
                         "every process needs the same number of parts per step")
    if per_step > num_parts:
        raise ValueError(f"parts_per_step {per_step} exceeds num_parts {num_parts}")

    torch.manual_seed(seed)
    np.random.seed(seed)
    multilabel = bool(getattr(data, "multilabel", False))
    num_classes = int(data.y.shape[1]) if multilabel else int(data.num_classes)
    model = build_nodecls_model(cfg.model, x.shape[1], num_classes, **_training_options(cfg)).to(device)
    implicit = bool(getattr(model, "implicit", False))
    if rank > 0:  # decorrelate dropout between ranks; rank 0 keeps the single-process stream
        torch.manual_seed(seed * 1_000_003 + 7_919 * rank)
    net = wrap_ddp(model, device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    # A second copy with the model's own caching, for full-graph evaluation.
    eval_model = None
    x_dev = ei_dev = y_dev = None
    masks_dev: dict[str, Tensor] = {}
    if eval_mode == "full" and main:
        eval_model = build_nodecls_model(cfg.model, x.shape[1], num_classes, **cfg.model_kwargs()).to(device)
        x_dev, ei_dev, y_dev = x.to(device), data.edge_index.to(device), data.y.to(device)
        masks_dev = {m: getattr(data, m).to(device) for m in ("train_mask", "val_mask", "test_mask")}

    partitioner = Partitioner(data, sampler, num_parts, seed)
    train_mask = data.train_mask.cpu()
    y_cpu = data.y.cpu()
    eval_parts = partitioner.fixed() if eval_mode == "parts" else []
    eval_batches = induced_subgraphs(data.edge_index.cpu(), partitioner.num_nodes,
                                     [[p] for p in eval_parts[rank::world]]) if eval_parts else []

    def evaluate(mask_names: Sequence[str]) -> dict[str, tuple[float, float]]:
        """Metric and mean loss for each mask, on the current weights, on every rank."""
        bare = model
        if eval_mode == "full":
            stats = None
            if main:
                eval_model.load_state_dict(bare.state_dict())
                eval_model.eval()
                with torch.no_grad():
                    out = eval_model(x_dev, ei_dev)
                stats = {m: _sums(out[masks_dev[m]], y_dev[masks_dev[m]], multilabel) for m in mask_names}
            stats = broadcast_object(stats)
            return {m: _metric_from(stats[m], multilabel) for m in mask_names}
        bare.eval()
        local = np.zeros((len(mask_names), 5))
        with torch.no_grad():
            for b in eval_batches:
                out = bare(_rows(x, b.nodes).to(device), b.edge_index.to(device))
                for i, m in enumerate(mask_names):
                    sel = getattr(data, m).cpu()[b.nodes]
                    local[i] += _sums(out[sel.to(device)], y_cpu[b.nodes][sel].to(device), multilabel)
        bare.train()
        total = all_reduce_sum(torch.from_numpy(local).flatten()).view(len(mask_names), 5).tolist()
        return {m: _metric_from(total[i], multilabel) for i, m in enumerate(mask_names)}

    best = (-float("inf"), float("inf"))
    best_state: dict[str, Tensor] | None = None
    best_epoch, epochs_run, steps_run = 0, 0, 0
    solver_log = TrainSolverLog()
    sub_nodes: list[int] = []
    t_start = time.perf_counter()
    bar = progress_bar(range(1, cfg.epochs + 1), desc=f"{cfg.model} seed {seed} [{sampler} x{num_parts}]",
                       leave=False, disable=not progress or not main, dynamic_ncols=True)
    loss_value = float("nan")
    for epoch in bar:
        parts = partitioner.epoch(epoch)
        pad = (-len(parts)) % per_step  # wrap around so every step has per_step parts
        parts = parts + parts[:pad]
        steps = len(parts) // per_step
        groups = [parts[s * per_step:(s + 1) * per_step] for s in range(steps)]
        # Training nodes per part: every rank knows every rank's share without communicating.
        n_train = [[int(train_mask[p].sum()) for p in g] for g in groups]
        mine = induced_subgraphs(data.edge_index.cpu(), partitioner.num_nodes, [g[rank::world] for g in groups])
        model.train()
        for s, b in enumerate(mine):
            total_train = sum(n_train[s])
            if total_train == 0:  # no labelled node in this step on any rank: skip it everywhere
                continue
            my_train = sum(n_train[s][rank::world])
            b = b.to(device)
            sel = train_mask[b.nodes.cpu()].to(device)
            opt.zero_grad(set_to_none=True)
            out = net(_rows(x, b.nodes.cpu()).to(device), b.edge_index)
            if my_train > 0:
                y_sub = y_cpu[b.nodes.cpu()].to(device)
                loss = F.binary_cross_entropy_with_logits(out[sel], y_sub[sel].float()) if multilabel \
                    else F.cross_entropy(out[sel], y_sub[sel])
                loss_value = float(loss.detach())
                # DDP averages over ranks; this weight makes it the mean over the step's nodes.
                loss = loss * (world * my_train / total_train)
            else:
                loss = out.sum() * 0.0  # still join the gradient all-reduce
            loss.backward()
            opt.step()
            if hasattr(model, "project_"):
                model.project_()
                # The projection radius kappa / lambda_pf comes from each rank's own subgraph
                # (lambda_pf = 1 up to float32 round-off, ~1e-7), and IGNN's forward projects
                # again; rank 0's weights are made everyone's so the replicas never drift.
                broadcast_parameters(model)
            if implicit:
                solver_log.record(model)
            sub_nodes.append(int(b.nodes.numel()))
            steps_run += 1
        res = evaluate(["val_mask"])
        val_metric, val_loss = res["val_mask"]
        epochs_run = epoch
        if (val_metric, -val_loss) > best:
            best = (val_metric, -val_loss)
            best_epoch = epoch
            best_state = copy.deepcopy(model.state_dict())
        bar.set_postfix(loss=f"{loss_value:.3f}", val=f"{val_metric:.1f}", best=f"{best[0]:.1f}@{best_epoch}",
                        refresh=False)  # shown at the next redraw; a forced one per epoch floods a log
        if epoch - best_epoch >= cfg.patience:
            break
    bar.close()
    train_seconds = time.perf_counter() - t_start
    assert best_state is not None
    model.load_state_dict(best_state)

    res = evaluate(["test_mask", "val_mask", "train_mask"])
    record: dict[str, Any] = {
        "seed": seed,
        "test_accuracy": res["test_mask"][0],
        "val_accuracy": res["val_mask"][0],
        "train_accuracy": res["train_mask"][0],
        "val_loss": res["val_mask"][1],
        "best_epoch": best_epoch,
        "epochs_run": epochs_run,
        "train_seconds": train_seconds,
        "num_parameters": sum(p.numel() for p in model.parameters()),
    }
    timing: list[float] = []
    solver = None
    if main:
        if eval_mode == "full":
            eval_model.load_state_dict(model.state_dict())
            timing = time_inference(eval_model, x_dev, ei_dev, warmup=cfg.timing_warmup, repeats=cfg.timing_repeats)
            stats_model = eval_model
        else:  # one pass over every part, on this process alone
            model.eval()
            batches = induced_subgraphs(data.edge_index.cpu(), partitioner.num_nodes, [[p] for p in eval_parts])
            with torch.no_grad():
                for rep in range(cfg.timing_warmup + cfg.timing_repeats):
                    _sync(device)
                    t0 = time.perf_counter()
                    for b in batches:
                        model(_rows(x, b.nodes).to(device), b.edge_index.to(device))
                    _sync(device)
                    if rep >= cfg.timing_warmup:
                        timing.append(time.perf_counter() - t0)
            stats_model = model
        if implicit:
            solver = _solver_summary(stats_model.solver_stats())
    timing, solver = broadcast_object((timing, solver))
    record["inference_seconds"] = statistics.median(timing)
    record["inference_seconds_all"] = timing
    record["solver"] = solver
    if implicit:
        record["train_solver"] = solver_log.summary()
        record["lambda_pf"] = getattr(eval_model if eval_model is not None else model, "lambda_pf", None)
    record["sampling"] = {
        "sampler": sampler, "num_parts": num_parts, "parts_per_step": per_step, "eval_mode": eval_mode,
        "world_size": world, "steps": steps_run,
        "subgraph_nodes_mean": float(np.mean(sub_nodes)) if sub_nodes else 0.0,
        "steps_per_epoch": math.ceil(num_parts / per_step),
    }
    record = broadcast_object(record)
    return record, best_state
