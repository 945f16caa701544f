"""Full-batch node-classification training: one dataset, one model, several seeds.

Protocol (the same for IGNN and every baseline, so their numbers are comparable):

* Adam with L2 weight decay on all parameters, one full-graph step per epoch; for IGNN the
  well-posedness projection follows every optimiser step.
* After every epoch the model is evaluated (eval mode, no dropout) on the validation nodes.
  The checkpoint with the best validation accuracy (ties: lower validation loss) is kept;
  training stops after ``patience`` epochs without improvement or at ``epochs``. The test
  nodes are scored **once**, with the restored best-by-validation weights: never selected on.
* Inference is timed on the restored model with the graph already on the device: ``warmup``
  untimed forwards, then the median of ``repeats`` timed ones (``torch.cuda.synchronize``
  around each on CUDA). Every model caches its normalised adjacency (``cached=True``), so this
  times the forward pass, not preprocessing. Implicit models also report the solver's
  iterations and function evaluations for that forward.
* Each seed's record is written to ``DIR/seeds/seed_<k>.json`` (its best weights to
  ``seed_<k>.pt``, e.g. to train a learned solver on them) as soon as it finishes; a rerun
  with the same configuration skips finished seeds, and ``DIR/results.json`` (schema in
  ``docs/nodecls.md``) is rewritten atomically after every seed.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import Data

from dear.io import atomic_torch_save, atomic_write_text, git_commit, hardware, versions

__all__ = [
    "RESULTS_SCHEMA",
    "NodeClsConfig",
    "NodeClsConfigError",
    "model_features",
    "prepare_features",
    "run",
    "time_inference",
    "train_one_seed",
]

RESULTS_SCHEMA = "dear.nodecls.results/1"

#: Options that only mean something for an implicit model.
IMPLICIT_ONLY = ("solver", "tol", "max_iter", "kappa")
#: Large-graph (partitioned) training options, ``dear.nodecls.large``; all ``None``: full batch.
LARGE_GRAPH_OPTIONS = ("sampler", "num_parts", "parts_per_step", "eval_mode")


class NodeClsConfigError(ValueError):
    """A bad node-classification configuration (the CLI prints it as one line)."""


@dataclass
class NodeClsConfig:
    """Everything that defines a node-classification run; written verbatim to results.json.

    Model fields left ``None`` take the model's own default (see ``docs/nodecls.md``);
    ``solver``, ``tol``, ``max_iter`` and ``kappa`` apply to ``ignn`` only.

    Attributes:
        dataset: a name from :func:`dear.nodecls.available_datasets`.
        model: a name from :func:`dear.nodecls.baselines.available_models`.
        split: dataset split (``None``: the dataset's standard one, 60 labels/class for AM-GCN).
        data_seed: seed of the dataset's validation draw (fixed across model seeds, so every
            seed sees the same split and only the model's randomness varies).
        data_root, cache_dir: dataset directories (``None``: the defaults of ``load_dataset``).
        dataset_options: extra ``load_dataset`` options (e.g. ``num_nodes`` for ``sbm``).
        seeds: number of model seeds; seed ``k`` is ``first_seed + k``.
        epochs: maximum epochs. patience: early-stopping patience in epochs.
        lr, weight_decay: Adam's.
        normalize_features: ``"auto"`` row-normalises (L1) non-negative features such as
            bag-of-words and leaves signed ones; ``"yes"`` / ``"no"`` force it.
        sparse_features: ``"auto"`` stores features as a CSR matrix when under 5% of them
            are non-zero and the model's first layer is linear (``sparse_features = True`` on
            the model class; same values, ~15x cheaper first layer on the AM-GCN data);
            ``"yes"`` / ``"no"`` force it (``"yes"`` still keeps dense input for models
            that cannot take CSR).
        hidden, dropout, num_layers, solver, tol, max_iter, kappa: common model options.
        model_options: any other model option (e.g. ``{"heads": 4}`` for GAT).
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N``.
        timing_warmup, timing_repeats: inference timing protocol.
        solver_training: options of the learned solver's training and alternating schedule
            (``--solver learned`` / ``learned_nn``; fields of
            :class:`dear.learned.training.SolverTrainConfig`).
        sampler, num_parts, parts_per_step, eval_mode: large graphs (``dear.nodecls.large``):
            ``sampler`` ``"random"`` or ``"cluster"`` trains on induced subgraphs of
            ``num_parts`` node partitions (default 8), ``parts_per_step`` of them per optimiser
            step (default: the number of processes), evaluated on the ``"full"`` graph (default)
            or by ``"parts"``. ``None`` (default): full-batch training.
    """

    dataset: str
    model: str = "ignn"
    split: int | float | str | None = None
    data_seed: int = 0
    data_root: str | None = None
    cache_dir: str | None = None
    dataset_options: dict[str, Any] = field(default_factory=dict)
    seeds: int = 5
    first_seed: int = 0
    epochs: int = 500
    patience: int = 100
    lr: float = 0.01
    weight_decay: float = 5e-4
    normalize_features: str = "auto"
    sparse_features: str = "auto"
    hidden: int | None = None
    dropout: float | None = None
    num_layers: int | None = None
    solver: str | None = None
    tol: float | None = None
    max_iter: int | None = None
    kappa: float | None = None
    model_options: dict[str, Any] = field(default_factory=dict)
    solver_training: dict[str, Any] = field(default_factory=dict)
    device: str = "auto"
    timing_warmup: int = 3
    timing_repeats: int = 10
    sampler: str | None = None
    num_parts: int | None = None
    parts_per_step: int | None = None
    eval_mode: str | None = None

    def validate(self) -> "NodeClsConfig":
        from dear.nodecls.baselines import available_models, model_options  # noqa: PLC0415

        if self.model not in available_models():
            raise NodeClsConfigError(f"unknown model {self.model!r}; valid models: {', '.join(available_models())}")
        for name in ("seeds", "epochs", "patience", "timing_repeats"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise NodeClsConfigError(f"{name} must be a positive integer, got {v!r}")
        if self.timing_warmup < 0:
            raise NodeClsConfigError(f"timing_warmup must be >= 0, got {self.timing_warmup!r}")
        if not self.lr > 0:
            raise NodeClsConfigError(f"lr must be > 0, got {self.lr!r}")
        if not self.weight_decay >= 0:
            raise NodeClsConfigError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if self.normalize_features not in ("auto", "yes", "no"):
            raise NodeClsConfigError(f"normalize_features must be auto, yes or no, got {self.normalize_features!r}")
        if self.sparse_features not in ("auto", "yes", "no"):
            raise NodeClsConfigError(f"sparse_features must be auto, yes or no, got {self.sparse_features!r}")
        self._validate_sampling()
        valid = model_options(self.model)
        if "solver" not in valid:
            given = [n for n in IMPLICIT_ONLY if getattr(self, n) is not None]
            if given:
                raise NodeClsConfigError(
                    f"{self.model} is an explicit model; "
                    f"{', '.join('--' + g.replace('_', '-') for g in given)}: options of ignn only"
                )
        if self.solver is not None:
            from dear.solvers import available  # noqa: PLC0415

            if self.solver not in available():
                raise NodeClsConfigError(f"unknown solver {self.solver!r}; available solvers: {', '.join(available())}")
        from dear.solvers.learned import is_learned  # noqa: PLC0415

        if self.solver_training:
            if not is_learned(self.resolved_model_options().get("solver")):
                raise NodeClsConfigError("solver_training options need a learned solver (--solver learned or learned_nn)")
            from dear.learned.training import SolverTrainConfig  # noqa: PLC0415

            try:
                SolverTrainConfig.from_dict(self.solver_training)
            except ValueError as e:
                raise NodeClsConfigError(str(e)) from None
        bad = sorted(k for k in self.model_kwargs() if k not in valid)
        if bad:
            raise NodeClsConfigError(
                f"model {self.model!r} has no option(s) {', '.join(bad)}; valid options: {', '.join(valid)}"
            )
        return self

    def _validate_sampling(self) -> None:
        """The large-graph fields: a known sampler, positive sizes, and none without a sampler."""
        from dear.nodecls.large import EVAL_MODES, SAMPLERS  # noqa: PLC0415

        if self.sampler is None:
            given = [n for n in LARGE_GRAPH_OPTIONS[1:] if getattr(self, n) is not None]
            if given:
                raise NodeClsConfigError(f"{', '.join('--' + g.replace('_', '-') for g in given)} need --sampler "
                                         f"({' or '.join(SAMPLERS)}); without it training is full-batch")
            return
        if self.sampler not in SAMPLERS:
            raise NodeClsConfigError(f"unknown sampler {self.sampler!r}; valid: {', '.join(SAMPLERS)}")
        if self.eval_mode is not None and self.eval_mode not in EVAL_MODES:
            raise NodeClsConfigError(f"unknown eval_mode {self.eval_mode!r}; valid: {', '.join(EVAL_MODES)}")
        for name in ("num_parts", "parts_per_step"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise NodeClsConfigError(f"{name} must be a positive integer, got {v!r}")
        if self.solver_training:
            raise NodeClsConfigError("--sampler and learned-solver training (solver_training) cannot be combined")

    def model_kwargs(self) -> dict[str, Any]:
        """Options passed to the model: common fields that are set, then ``model_options``."""
        common = {n: getattr(self, n) for n in ("hidden", "dropout", "num_layers", *IMPLICIT_ONLY)}
        out = {k: v for k, v in common.items() if v is not None}
        out.update(self.model_options)
        return out

    def resolved_model_options(self) -> dict[str, Any]:
        """Every option of the model with the value this run uses (defaults included)."""
        from dear.nodecls.baselines import model_options  # noqa: PLC0415

        opts = model_options(self.model)
        opts.update(self.model_kwargs())
        return opts

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def key(self) -> str:
        """Hash of everything that changes a seed's result (not ``seeds``: adding seeds to a
        finished run reuses the seeds already there)."""
        d = self.to_dict()
        d.pop("seeds")
        if not d.get("solver_training"):  # keep the keys of runs made before the field existed
            d.pop("solver_training", None)
        for name in LARGE_GRAPH_OPTIONS:  # the same for these: unset means full batch, as before
            if d.get(name) is None:
                d.pop(name, None)
        return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


# ------------------------------------------------------------------------------- data


def prepare_features(data: Data, mode: str = "auto") -> Tensor:
    """Node features for the model.

    Row L1 normalisation (the usual preprocessing of bag-of-words features such as Citeseer's,
    done by GCN's and AM-GCN's code) under ``"auto"`` only when every feature is non-negative:
    PyG's ``NormalizeFeatures`` first shifts by the global minimum, which would distort signed
    (e.g. Gaussian) features. Featureless datasets (``x is None``) get a sparse identity, i.e.
    one learnt embedding per node through the first linear map, as IGNN does on Amazon.
    """
    x = data.x
    if x is None:
        n = data.num_nodes
        idx = torch.arange(n)
        return torch.sparse_coo_tensor(torch.stack([idx, idx]), torch.ones(n), (n, n),
                                       check_invariants=False).coalesce()
    x = x.float()
    if mode == "yes" or (mode == "auto" and bool((x >= 0).all())):
        s = x.abs().sum(dim=1, keepdim=True)
        x = x / torch.where(s > 0, s, torch.ones_like(s))
    return x


def _read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``, or ``None`` when it is missing or unreadable."""
    try:
        out = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return out if isinstance(out, dict) else None


def model_features(data: Data, cfg: "NodeClsConfig") -> Tensor:
    """The feature matrix a model of ``cfg`` sees: :func:`prepare_features`, then CSR storage
    (``cfg.sparse_features``) when the model's first layer is linear and training is full-graph.

    Every consumer of a trained model (training, ``dear pareto``, leaderboard verification,
    benchmarks) goes through here, so a model is evaluated and timed on the same storage it
    was trained on: a dense copy of Flickr's bag-of-words costs ~30x more in the first linear
    map than its CSR form and would dominate any inference timing.
    """
    from dear.nodecls.baselines import nodecls_model_class  # noqa: PLC0415
    from dear.nodecls.features import to_sparse_features  # noqa: PLC0415

    x = prepare_features(data, cfg.normalize_features)
    # (sampled training slices rows of x per subgraph: it keeps the dense matrix)
    if cfg.sampler is None and getattr(nodecls_model_class(cfg.model), "sparse_features", False):
        x = to_sparse_features(x, cfg.sparse_features)
    return x


def _metric(logits: Tensor, y: Tensor, multilabel: bool) -> float:
    """Accuracy (percent), or micro-F1 (percent) for multi-label targets."""
    if y.numel() == 0:
        return float("nan")
    if multilabel:
        pred = logits > 0
        tp = (pred & (y > 0.5)).sum().item()
        fp = (pred & (y <= 0.5)).sum().item()
        fn = (~pred & (y > 0.5)).sum().item()
        return 100.0 * 2 * tp / max(2 * tp + fp + fn, 1)
    return 100.0 * (logits.argmax(dim=-1) == y).float().mean().item()


def _loss(logits: Tensor, y: Tensor, multilabel: bool) -> Tensor:
    return F.binary_cross_entropy_with_logits(logits, y.float()) if multilabel else F.cross_entropy(logits, y)


# ------------------------------------------------------------------------------ timing


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def time_inference(model: nn.Module, x: Tensor, edge_index: Tensor, *, warmup: int = 3,
                   repeats: int = 10) -> list[float]:
    """Seconds per full-graph forward in eval mode: ``warmup`` untimed calls, then ``repeats``
    timed ones, each bracketed by a device synchronisation (inputs already on the device)."""
    model.eval()
    device = x.device
    for _ in range(warmup):
        model(x, edge_index)
    times = []
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        model(x, edge_index)
        _sync(device)
        times.append(time.perf_counter() - t0)
    return times


# ----------------------------------------------------------------------------- training


def _solver_summary(stats: list[dict[str, float]]) -> dict[str, Any]:
    """Per-layer forward statistics of an implicit model's last forward."""
    return {
        "iterations": sum(int(s["forward_iterations_max"]) for s in stats),
        "nfe": sum(int(s["forward_nfe"]) for s in stats),
        "per_layer": [
            {"iterations": int(s["forward_iterations_max"]), "nfe": int(s["forward_nfe"]),
             "residual": s["forward_residual_max"], "converged": s["forward_converged_frac"] == 1.0}
            for s in stats
        ],
        "converged": all(s["forward_converged_frac"] == 1.0 for s in stats),
    }


class TrainSolverLog:
    """Training-time solver statistics of an implicit model, gathered after every optimiser
    step (forward and adjoint iterations, unconverged forward solves) and summarised for the
    per-seed record. Shared by the full-batch and the partitioned trainer."""

    def __init__(self) -> None:
        self.forward: list[int] = []
        self.backward: list[int] = []
        self.unconverged = 0

    def record(self, model: nn.Module) -> None:
        for st in model.solver_stats():
            self.forward.append(int(st["forward_iterations_max"]))
            if "backward_iterations_max" in st:
                self.backward.append(int(st["backward_iterations_max"]))
            self.unconverged += int(st["forward_converged_frac"] < 1.0)

    def summary(self) -> dict[str, Any]:
        fwd, bwd = self.forward, self.backward
        return {
            "forward_iterations_mean": float(np.mean(fwd)) if fwd else None,
            "forward_iterations_max": max(fwd) if fwd else None,
            "backward_iterations_mean": float(np.mean(bwd)) if bwd else None,
            "backward_iterations_max": max(bwd) if bwd else None,
            "unconverged_forward_solves": self.unconverged,
        }


def train_one_seed(cfg: NodeClsConfig, data: Data, x: Tensor, seed: int, device: torch.device,
                   progress: bool = True) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """Train and evaluate one seed; returns the per-seed record (see ``docs/nodecls.md``) and
    the best-by-validation ``state_dict``.

    ``data`` and ``x`` must already be on ``device``.
    """
    from tqdm.auto import tqdm  # noqa: PLC0415

    from dear.nodecls.baselines import build_nodecls_model, graph_operand  # noqa: PLC0415

    torch.manual_seed(seed)
    np.random.seed(seed)
    multilabel = bool(getattr(data, "multilabel", False))
    num_classes = int(data.y.shape[1]) if multilabel else int(data.num_classes)
    model = build_nodecls_model(cfg.model, x.shape[1], num_classes, **cfg.model_kwargs()).to(device)
    implicit = bool(getattr(model, "implicit", False))
    from dear.learned.nodecls import learned_schedule  # noqa: PLC0415

    schedule = learned_schedule(cfg, model, x, data.edge_index)  # None unless --solver learned*
    params = schedule.model_parameters() if schedule is not None else model.parameters()
    opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    y = data.y
    ei = graph_operand(model, data.edge_index, int(data.num_nodes))  # sparse A^T for SpMM models
    train_m, val_m, test_m = data.train_mask, data.val_mask, data.test_mask

    best = (-float("inf"), float("inf"))  # (val metric, -val loss) compared lexicographically
    best_state: dict[str, Tensor] | None = None
    best_epoch, epochs_run = 0, 0
    solver_log = TrainSolverLog()
    t_start = time.perf_counter()
    bar = tqdm(range(1, cfg.epochs + 1), desc=f"{cfg.model} seed {seed}", leave=False, disable=not progress,
               dynamic_ncols=True)
    for epoch in bar:
        model.train()
        opt.zero_grad(set_to_none=True)
        out = model(x, ei)
        loss = _loss(out[train_m], y[train_m], multilabel)
        loss.backward()
        opt.step()
        if hasattr(model, "project_"):
            model.project_()
        if implicit:
            solver_log.record(model)
        if schedule is not None:
            schedule.after_step(epoch)
        model.eval()
        with torch.no_grad():
            out = model(x, ei)
            val_metric = _metric(out[val_m], y[val_m], multilabel)
            val_loss = float(_loss(out[val_m], y[val_m], multilabel))
        epochs_run = epoch
        if (val_metric, -val_loss) > best:
            best = (val_metric, -val_loss)
            best_epoch = epoch
            best_state = copy.deepcopy(model.state_dict())
        bar.set_postfix(loss=f"{loss.item():.3f}", val=f"{val_metric:.1f}", best=f"{best[0]:.1f}@{best_epoch}",
                        **({"it": solver_log.forward[-1]} if solver_log.forward else {}))
        if epoch - best_epoch >= cfg.patience:
            break
    bar.close()
    train_seconds = time.perf_counter() - t_start
    assert best_state is not None
    model.load_state_dict(best_state)
    if schedule is not None:  # final solver fine-tune on the restored model, saved with it
        schedule.finish(train_seconds)
        best_state = copy.deepcopy(model.state_dict())

    model.eval()
    with torch.no_grad():
        out = model(x, ei)
    record: dict[str, Any] = {
        "seed": seed,
        "test_accuracy": _metric(out[test_m], y[test_m], multilabel),
        "val_accuracy": _metric(out[val_m], y[val_m], multilabel),
        "train_accuracy": _metric(out[train_m], y[train_m], multilabel),
        "val_loss": float(_loss(out[val_m], y[val_m], multilabel)),
        "best_epoch": best_epoch,
        "epochs_run": epochs_run,
        "train_seconds": train_seconds,
        "num_parameters": sum(p.numel() for p in model.parameters()),
    }
    if schedule is not None:
        schedule.reset_counters()
    times = time_inference(model, x, ei, warmup=cfg.timing_warmup, repeats=cfg.timing_repeats)
    record["inference_seconds"] = statistics.median(times)
    record["inference_seconds_all"] = times
    if implicit:
        record["solver"] = _solver_summary(model.solver_stats())
        record["train_solver"] = solver_log.summary()
        record["lambda_pf"] = getattr(model, "lambda_pf", None)
        if schedule is not None:
            record["learned_solver"] = schedule.record(train_seconds)
    else:
        record["solver"] = None
    return record, best_state


# ----------------------------------------------------------------------------- the run


def _stats(values: list[float]) -> dict[str, Any]:
    """Mean and *sample* standard deviation (n - 1) over seeds, as the leaderboards and
    ``dear compare`` report them (0 for a single seed)."""
    std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return {"mean": float(np.mean(values)), "std": std, "per_seed": list(values)}


def _aggregate(cfg: NodeClsConfig, data: Data, records: list[dict[str, Any]], device: torch.device,
               complete: bool) -> dict[str, Any]:
    implicit_records = [r for r in records if r.get("solver")]
    iterations = None
    if implicit_records:
        its = [r["solver"]["iterations"] for r in implicit_records]
        iterations = {
            "mean": float(np.mean(its)), "max": int(max(its)), "per_seed": its,
            "nfe_per_seed": [r["solver"]["nfe"] for r in implicit_records],
            "all_converged": all(r["solver"]["converged"] for r in implicit_records),
        }
    prov = getattr(data, "provenance", {}) or {}
    split = (prov.get("params") or {}).get("split", cfg.split)
    is_implicit = "solver" in cfg.resolved_model_options()
    return {
        "schema": RESULTS_SCHEMA,
        "complete": complete,
        "dataset": cfg.dataset,
        "split": split,
        "model": cfg.model,
        "solver": cfg.resolved_model_options()["solver"] if is_implicit else None,
        "metric": "micro_f1" if getattr(data, "multilabel", False) else "accuracy",
        "seeds": [r["seed"] for r in records],
        "test_accuracy": _stats([r["test_accuracy"] for r in records]),
        "val_accuracy": _stats([r["val_accuracy"] for r in records]),
        "inference_seconds": {
            "median": float(np.median([r["inference_seconds"] for r in records])),
            "per_seed": [r["inference_seconds"] for r in records],
        },
        "iterations": iterations,
        "train_seconds": _stats([r["train_seconds"] for r in records]),
        "per_seed": records,
        "fingerprint": getattr(data, "fingerprint", None),
        "provenance": prov,
        "versions": versions(),
        "git_commit": git_commit(),
        "hardware": hardware(device),
        "config": {**cfg.to_dict(), "resolved_model_options": cfg.resolved_model_options()},
    }


def run(cfg: NodeClsConfig, out_dir: Path, *, progress: bool = True) -> dict[str, Any]:
    """Train ``cfg.seeds`` seeds (skipping those already in ``out_dir``) and write
    ``out_dir/results.json``; returns its content.

    Under ``torchrun`` with several processes (``docs/scale-out.md``): full-batch seeds are
    spread over the ranks (each trains whole seeds on its own device, in rounds of one seed per
    rank); with ``cfg.sampler`` the ranks train each seed together with DDP on partitioned
    subgraphs (:mod:`dear.nodecls.large`). Either way only rank 0 reads and writes ``out_dir``
    and every rank returns the same results.

    Raises:
        NodeClsConfigError: bad configuration, or ``out_dir`` holds seeds of another one.
        dear.nodecls.DatasetNotFoundError: the dataset's files are missing.
    """
    from contextlib import nullcontext  # noqa: PLC0415

    from tqdm.auto import tqdm  # noqa: PLC0415

    from dear.distributed import broadcast_object, gather_objects, init_distributed, local_first  # noqa: PLC0415
    from dear.nodecls import load_dataset  # noqa: PLC0415

    cfg.validate()
    out_dir = Path(out_dir)
    info = init_distributed(cfg.device)
    device, rank, world, main = info.device, info.rank, info.world_size, info.is_main
    sampled = cfg.sampler is not None
    with local_first() if info.distributed else nullcontext():  # one rank per machine fills a cache
        data = load_dataset(cfg.dataset, root=cfg.data_root, split=cfg.split, cache_dir=cfg.cache_dir,
                            seed=cfg.data_seed, **cfg.dataset_options)
    if not bool(data.val_mask.any()):
        raise NodeClsConfigError(f"{cfg.dataset}: the split has no validation nodes; early stopping needs them")
    if data.x is None and cfg.model != "ignn":
        raise NodeClsConfigError(f"{cfg.dataset} has no node features; only ignn supports it "
                                 "(it learns one embedding per node)")
    x = model_features(data, cfg)
    if not sampled:  # partitioned training keeps the graph on the CPU and moves subgraphs
        x = x.to(device)
        data = data.to(device)

    key = cfg.key()
    seed_dir = out_dir / "seeds"
    seeds = [cfg.first_seed + k for k in range(cfg.seeds)]
    # Rank 0 reads which seeds are done; every rank learns the answer (or the error).
    done: dict[int, dict[str, Any]] = {}
    error = None
    if main:
        for seed in seeds:
            path = seed_dir / f"seed_{seed}.json"
            if not path.exists():
                continue
            try:
                saved = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError):
                continue  # unreadable: recompute (writes are atomic, so this is rare)
            if saved.get("config_key") != key:
                error = (f"{out_dir} holds results of a different configuration (seed {seed}); "
                         "use another --out or delete that directory")
                break
            done[seed] = saved["record"]
    if info.distributed:
        done, error = broadcast_object((done, error))
    if error is not None:
        raise NodeClsConfigError(error)

    def save(finished: list[tuple[int, dict[str, Any], dict[str, Tensor]]]) -> None:
        """Rank 0: write finished seeds (weights first: a seed counts as done once its JSON
        exists), then the results so far."""
        for seed, record, state in finished:
            atomic_torch_save(seed_dir / f"seed_{seed}.pt", {k: v.cpu() for k, v in state.items()})
            atomic_write_text(seed_dir / f"seed_{seed}.json",
                              json.dumps({"config_key": key, "record": record}, indent=2) + "\n")
            done[seed] = record
        records = [done[s] for s in seeds if s in done]
        results = _aggregate(cfg, data, records, device, complete=len(records) == len(seeds))
        atomic_write_text(out_dir / "results.json", json.dumps(results, indent=2) + "\n")

    todo = [s for s in seeds if s not in done]
    if sampled or not info.distributed:
        if sampled:
            from dear.nodecls.large import train_one_seed_sampled as trainer  # noqa: PLC0415
        else:
            trainer = train_one_seed
        for seed in tqdm(todo, desc=f"{cfg.dataset} {cfg.model}", disable=not progress or not main or len(seeds) == 1,
                         dynamic_ncols=True):
            record, state = trainer(cfg, data, x, seed, device, progress=progress)
            if main:
                save([(seed, record, state)])
    else:  # full batch on several processes: one seed per rank per round, rank 0 writes
        for i in range(0, len(todo), world):
            round_seeds = todo[i:i + world]
            mine = None
            if rank < len(round_seeds):
                record, state = train_one_seed(cfg, data, x, round_seeds[rank], device, progress=progress and main)
                mine = (round_seeds[rank], record, {k: v.cpu() for k, v in state.items()})
            got = gather_objects(mine)
            if main:
                save([g for g in got if g is not None])
    results = None
    if main:
        # Nothing trained and the file already complete: keep it (and its provenance) as it is.
        results = None if todo else _read_json(out_dir / "results.json")
        if results is None or not results.get("complete") or results.get("seeds") != seeds:
            results = _aggregate(cfg, data, [done[s] for s in seeds], device, complete=True)
            atomic_write_text(out_dir / "results.json", json.dumps(results, indent=2) + "\n")
    if info.distributed:
        results = broadcast_object(results)
    return results
