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
  ``docs/nodecls.md``) is rewritten atomically after every seed. A seed whose record is there
  but whose weights are not (runs committed under ``leaderboards/runs/`` keep results, not
  weights) is trained again, so the rerun rebuilds what ``dear pareto`` needs.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import Data

from dear.io import atomic_torch_save, atomic_write_text, code_provenance, dumps_strict, hardware, json_safe, versions

__all__ = [
    "RESULTS_SCHEMA",
    "NodeClsConfig",
    "NodeClsConfigError",
    "model_features",
    "prepare_features",
    "run",
    "seed_files",
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
        """Check every field (types and ranges, model, dataset and solver options) before any
        data is loaded, and record the dataset under its registered (lower-case) name.

        Raises:
            NodeClsConfigError: naming the field or option and what it must be.
        """
        from dear.config import ConfigError, check_option_types  # noqa: PLC0415
        from dear.nodecls.baselines import available_models, model_options, nodecls_model_class  # noqa: PLC0415
        from dear.nodecls.datasets.registry import check_dataset_options, resolve_split  # noqa: PLC0415

        if self.model not in available_models():
            raise NodeClsConfigError(f"unknown model {self.model!r}; valid models: {', '.join(available_models())}")
        for name in ("seeds", "epochs", "patience", "timing_repeats"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise NodeClsConfigError(f"{name} must be a positive integer, got {v!r}")
        for name in ("timing_warmup", "first_seed", "data_seed"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise NodeClsConfigError(f"{name} must be an integer >= 0, got {v!r}")
        if not _number(self.lr) or not 0 < self.lr < math.inf:  # inf: NaN weights after one step
            raise NodeClsConfigError(f"lr must be a finite number > 0, got {self.lr!r}")
        if not _number(self.weight_decay) or not 0 <= self.weight_decay < math.inf:
            raise NodeClsConfigError(f"weight_decay must be a finite number >= 0, got {self.weight_decay!r}")
        for name in ("dataset_options", "model_options", "solver_training"):
            if not isinstance(getattr(self, name), dict):
                raise NodeClsConfigError(f"{name} must be a JSON object of options, got {getattr(self, name)!r}")
        try:
            self.dataset = check_dataset_options(self.dataset, self.dataset_options).name
            resolve_split(self.dataset, self.split)
        except ValueError as e:
            raise NodeClsConfigError(str(e)) from None
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
                check_option_types(SolverTrainConfig, self.solver_training, "solver training")
                SolverTrainConfig.from_dict(self.solver_training)
            except ValueError as e:
                raise NodeClsConfigError(str(e)) from None
        bad = sorted(k for k in self.model_kwargs() if k not in valid)
        if bad:
            raise NodeClsConfigError(
                f"model {self.model!r} has no option(s) {', '.join(bad)}; valid options: {', '.join(valid)}"
            )
        try:
            check_option_types(nodecls_model_class(self.model), self.model_kwargs(), self.model)
            self._validate_model_numbers()
        except ConfigError as e:
            raise NodeClsConfigError(str(e)) from None
        return self

    def _validate_model_numbers(self) -> None:
        """Ranges of the model options every model shares (sizes, tolerances), checked here so
        a bad value fails before the dataset is loaded; types are already checked."""
        opts = self.resolved_model_options()
        for name in ("hidden", "num_layers", "max_iter", "backward_max_iter", "heads", "out_heads", "K"):
            v = opts.get(name)
            if _number(v) and v < 1:
                raise NodeClsConfigError(f"{self.model} option {name} must be >= 1, got {v!r}")
        for name in ("tol", "backward_tol"):
            v = opts.get(name)
            if _number(v) and not 0 < v < math.inf:
                raise NodeClsConfigError(f"{self.model} option {name} must be a finite number > 0, got {v!r}")
        for name in ("dropout", "input_dropout", "attn_dropout"):
            v = opts.get(name)
            if _number(v) and not 0 <= v < 1:
                raise NodeClsConfigError(f"{self.model} option {name} must lie in [0, 1), got {v!r}")
        if _number(opts.get("kappa")) and not 0 <= opts["kappa"] < 1:
            raise NodeClsConfigError(f"kappa must lie in [0, 1) (0 disables the projection), got {opts['kappa']!r}")
        solver, solver_options = opts.get("solver"), opts.get("solver_options")
        if isinstance(solver, str) and solver_options:
            from dear.config import check_option_types, solver_option_target  # noqa: PLC0415

            check_option_types(solver_option_target(solver), solver_options, f"solver {solver}")

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

    def seed_key(self, seed: int) -> str:
        """Hash of everything that defines seed ``seed``'s record, stored as ``config_key``
        in ``seeds/seed_<k>.json``: a rerun reuses a finished seed only when this matches.

        In: the seed, the registered dataset name, the resolved split, the data seed, dataset
        and model options that differ from their defaults (so spelling out a default changes
        nothing), and the training, timing and large-graph settings. Not in: how many seeds
        or which seed comes first (``--seeds 2 --first-seed 1`` reuses seeds 1 and 2 of a
        0-2 run), where data and cache live, and the device (results differ across devices
        only by rounding, as across GPU models, which no key could capture).
        """
        from dear.nodecls.baselines import model_options  # noqa: PLC0415
        from dear.nodecls.datasets.registry import get_spec, resolve_split  # noqa: PLC0415

        spec = get_spec(self.dataset)
        d = {k: v for k, v in self.to_dict().items()
             if k not in ("seeds", "first_seed", "data_root", "cache_dir", "device", "dataset", "split",
                          "dataset_options", "model_options", "solver_training",
                          "hidden", "dropout", "num_layers", *IMPLICIT_ONLY)}
        d.update(key_version=2, seed=int(seed), dataset=spec.name, split=resolve_split(spec.name, self.split),
                 dataset_options=_non_default(self.dataset_options, spec.options()),
                 model_options=_non_default(self.resolved_model_options(), model_options(self.model)))
        if self.solver_training:
            d["solver_training"] = self.solver_training
        for name in LARGE_GRAPH_OPTIONS:  # unset means full batch
            if d.get(name) is None:
                d.pop(name, None)
        return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def legacy_key(self, *, before_sparse_features: bool = False) -> str:
        """The ``config_key`` of seeds written before :meth:`seed_key` (one key for all seeds,
        over every field but ``seeds``, as typed): still accepted on resume, so older run
        directories need no retraining when rerun with exactly their command.
        ``before_sparse_features``: the key of runs made before that field existed (it is
        left out when ``"auto"``, the only behaviour those runs had)."""
        d = self.to_dict()
        d.pop("seeds")
        if not d.get("solver_training"):  # keep the keys of runs made before the field existed
            d.pop("solver_training", None)
        for name in LARGE_GRAPH_OPTIONS:  # the same for these: unset means full batch, as before
            if d.get(name) is None:
                d.pop(name, None)
        if before_sparse_features and d.get("sparse_features") == "auto":
            d.pop("sparse_features")
        return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def matches_seed_key(self, seed: int, config_key: Any) -> bool:
        """Whether a ``config_key`` read from ``seeds/seed_<seed>.json`` belongs to this
        configuration and seed (:meth:`seed_key`, or :meth:`legacy_key` for older runs)."""
        return config_key in (self.seed_key(seed), self.legacy_key(),
                              self.legacy_key(before_sparse_features=True))

    @classmethod
    def from_results(cls, results: Any, source: str | Path = "results.json") -> "NodeClsConfig":
        """The configuration recorded in a ``dear nodecls train`` results file (its ``config``
        without ``resolved_model_options``), validated.

        Raises:
            NodeClsConfigError: ``results`` is not a node-classification results file (e.g.
                a CLRS run's), or its configuration is not one this version accepts.
        """
        if not isinstance(results, dict) or results.get("schema") != RESULTS_SCHEMA:
            raise NodeClsConfigError(f"{source} is not a `dear nodecls train` results file "
                                     f"(schema {RESULTS_SCHEMA!r})")
        conf = results.get("config")
        if not isinstance(conf, dict):
            raise NodeClsConfigError(f"{source} has no config object")
        conf = {k: v for k, v in conf.items() if k != "resolved_model_options"}
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(conf) - names)
        if unknown or "dataset" not in conf:
            raise NodeClsConfigError(f"{source}: config has unknown field(s) {', '.join(unknown)}" if unknown
                                     else f"{source}: config has no dataset")
        try:
            return cls(**conf).validate()
        except NodeClsConfigError as e:
            raise NodeClsConfigError(f"{source}: {e}") from None


def seed_files(run_dir: str | Path, seed: int) -> tuple[Path, Path]:
    """Where a run keeps seed ``seed``: its record (``seeds/seed_<k>.json``, the seed counts as
    done once it exists) and its weights (``seeds/seed_<k>.pt``, written first). Runs committed
    under ``leaderboards/runs/`` keep the records but not the weights (``*.pt`` is ignored)."""
    seeds = Path(run_dir) / "seeds"
    return seeds / f"seed_{seed}.json", seeds / f"seed_{seed}.pt"


def _number(v: Any) -> bool:
    """An int or float (not a bool)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _non_default(options: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """``options`` without those equal to their default (ints given for float defaults read
    as floats), for keys that do not change when a default is spelt out."""
    out = {}
    for k, v in options.items():
        if k not in defaults:
            out[k] = v
            continue
        d = defaults[k]
        if _number(v) and isinstance(d, float):
            v = float(v)
        if v != d or type(v) is not type(d):
            out[k] = v
    return out


def _dumps(obj: Any) -> str:
    return dumps_strict(obj, indent=2) + "\n"


def check_split_sizes(data: Data, name: str) -> None:
    """Every model needs training, validation (early stopping) and test nodes: an empty part
    would train on nothing or report NaN.

    Raises:
        NodeClsConfigError: naming the empty part and the sizes of all three.
    """
    sizes = {part: int(getattr(data, f"{part}_mask").sum()) for part in ("train", "val", "test")}
    empty = [part for part, n in sizes.items() if n == 0]
    if empty:
        words = {"train": "training", "val": "validation", "test": "test"}
        raise NodeClsConfigError(
            f"{name}: the split has no {' and no '.join(words[p] for p in empty)} nodes (train {sizes['train']}, "
            f"validation {sizes['val']}, test {sizes['test']} of {int(data.num_nodes)}); change the split or the "
            "dataset's size options (e.g. val_size, num_nodes, train_fraction)")


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
    from clrs_tasks.progress import progress_bar  # noqa: PLC0415

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
    bar = progress_bar(range(1, cfg.epochs + 1), desc=f"{cfg.model} seed {seed}", leave=False, disable=not progress,
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
                        refresh=False,  # shown at the next redraw; a forced one per epoch floods a log
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
        **code_provenance(),
        "hardware": hardware(device),
        "config": {**cfg.to_dict(), "resolved_model_options": cfg.resolved_model_options()},
    }


def _check_out_dir(cfg: NodeClsConfig, out_dir: Path) -> str | None:
    """Why ``out_dir`` cannot take this run's results (``None``: it can). Refused: a path that
    is not a directory, and a ``results.json`` that is not a node-classification results file
    of this configuration (another command's results, e.g. a CLRS run's, would be overwritten;
    another configuration's would be mixed with this one's seeds)."""
    if out_dir.exists() and not out_dir.is_dir():
        return f"--out {out_dir} exists and is not a directory"
    path = out_dir / "results.json"
    if not path.exists():
        return None
    existing = _read_json(path)
    if existing is None or existing.get("schema") != RESULTS_SCHEMA:
        return (f"{path} is not a `dear nodecls train` results file (schema {RESULTS_SCHEMA!r}); "
                "it would be overwritten: use another --out")
    try:
        other = NodeClsConfig.from_results(existing, path)
    except (NodeClsConfigError, ValueError):
        return f"{path} holds results of a configuration this version cannot read; use another --out"
    probe = cfg.first_seed  # any seed: both keys cover the same fields
    if other.seed_key(probe) != cfg.seed_key(probe):
        return (f"{out_dir} holds results of a different configuration ({path}); "
                "use another --out or delete that directory")
    return None


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

    from clrs_tasks.progress import progress_bar  # noqa: PLC0415

    from dear.distributed import broadcast_object, gather_objects, init_distributed, local_first  # noqa: PLC0415
    from dear.nodecls import load_dataset  # noqa: PLC0415

    from dear.nodecls.datasets.textio import progress_bars  # noqa: PLC0415

    cfg.validate()
    out_dir = Path(out_dir)
    info = init_distributed(cfg.device)
    device, rank, world, main = info.device, info.rank, info.world_size, info.is_main
    sampled = cfg.sampler is not None
    seeds = [cfg.first_seed + k for k in range(cfg.seeds)]
    # Rank 0 checks the output directory and reads which seeds are done, before any data is
    # loaded or seed trained; every rank learns the answer (or the error).
    done: dict[int, dict[str, Any]] = {}
    error = None
    unweighted: list[int] = []
    if main:
        error = _check_out_dir(cfg, out_dir)
        for seed in seeds if error is None else []:
            path, weights = seed_files(out_dir, seed)
            if not path.exists():
                continue
            if not weights.exists():
                unweighted.append(seed)
                continue
            saved = _read_json(path)
            if saved is None or not isinstance(saved.get("record"), dict):
                continue  # unreadable: recompute (writes are atomic, so this is rare)
            if not cfg.matches_seed_key(seed, saved.get("config_key")):
                error = (f"{out_dir} holds results of a different configuration (seed {seed}); "
                         "use another --out or delete that directory")
                break
            done[seed] = saved["record"]
        if unweighted and error is None:
            print(f"note: seed(s) {', '.join(map(str, unweighted))} in {out_dir} have their record but not their "
                  "weights (seeds/seed_<k>.pt); training them again", file=sys.stderr)
    if info.distributed:
        done, error = broadcast_object((done, error))
    if error is not None:
        raise NodeClsConfigError(error)

    with local_first() if info.distributed else nullcontext(), progress_bars(progress and main):
        # (one rank per machine fills a cache)
        data = load_dataset(cfg.dataset, root=cfg.data_root, split=cfg.split, cache_dir=cfg.cache_dir,
                            seed=cfg.data_seed, **cfg.dataset_options)
    check_split_sizes(data, cfg.dataset)
    if data.x is None and cfg.model != "ignn":
        raise NodeClsConfigError(f"{cfg.dataset} has no node features; only ignn supports it "
                                 "(it learns one embedding per node)")
    x = model_features(data, cfg)
    if not sampled:  # partitioned training keeps the graph on the CPU and moves subgraphs
        x = x.to(device)
        data = data.to(device)

    def save(finished: list[tuple[int, dict[str, Any], dict[str, Tensor]]]) -> None:
        """Rank 0: write finished seeds (weights first: a seed counts as done once its JSON
        exists), then the results so far."""
        for seed, record, state in finished:
            record_path, weights = seed_files(out_dir, seed)
            atomic_torch_save(weights, {k: v.cpu() for k, v in state.items()})
            atomic_write_text(record_path, _dumps({"config_key": cfg.seed_key(seed), "record": record}))
            done[seed] = record
        records = [done[s] for s in seeds if s in done]
        results = _aggregate(cfg, data, records, device, complete=len(records) == len(seeds))
        atomic_write_text(out_dir / "results.json", _dumps(results))

    todo = [s for s in seeds if s not in done]
    if sampled or not info.distributed:
        if sampled:
            from dear.nodecls.large import train_one_seed_sampled as trainer  # noqa: PLC0415
        else:
            trainer = train_one_seed
        for seed in progress_bar(todo, desc=f"{cfg.dataset} {cfg.model}",
                                 disable=not progress or not main or len(seeds) == 1, dynamic_ncols=True):
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
            results = json_safe(_aggregate(cfg, data, [done[s] for s in seeds], device, complete=True))
            atomic_write_text(out_dir / "results.json", _dumps(results))
    if info.distributed:
        results = broadcast_object(results)
    return results
