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

from dear.io import atomic_torch_save, atomic_write_text, git_commit, hardware, resolve_device, versions

__all__ = [
    "RESULTS_SCHEMA",
    "NodeClsConfig",
    "NodeClsConfigError",
    "prepare_features",
    "run",
    "time_inference",
    "train_one_seed",
]

RESULTS_SCHEMA = "dear.nodecls.results/1"

#: Options that only mean something for an implicit model.
IMPLICIT_ONLY = ("solver", "tol", "max_iter", "kappa")


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
        hidden, dropout, num_layers, solver, tol, max_iter, kappa: common model options.
        model_options: any other model option (e.g. ``{"heads": 4}`` for GAT).
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N``.
        timing_warmup, timing_repeats: inference timing protocol.
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
    hidden: int | None = None
    dropout: float | None = None
    num_layers: int | None = None
    solver: str | None = None
    tol: float | None = None
    max_iter: int | None = None
    kappa: float | None = None
    model_options: dict[str, Any] = field(default_factory=dict)
    device: str = "auto"
    timing_warmup: int = 3
    timing_repeats: int = 10

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
        bad = sorted(k for k in self.model_kwargs() if k not in valid)
        if bad:
            raise NodeClsConfigError(
                f"model {self.model!r} has no option(s) {', '.join(bad)}; valid options: {', '.join(valid)}"
            )
        return self

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


def train_one_seed(cfg: NodeClsConfig, data: Data, x: Tensor, seed: int, device: torch.device,
                   progress: bool = True) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """Train and evaluate one seed; returns the per-seed record (see ``docs/nodecls.md``) and
    the best-by-validation ``state_dict``.

    ``data`` and ``x`` must already be on ``device``.
    """
    from tqdm.auto import tqdm  # noqa: PLC0415

    from dear.nodecls.baselines import build_nodecls_model  # noqa: PLC0415

    torch.manual_seed(seed)
    np.random.seed(seed)
    multilabel = bool(getattr(data, "multilabel", False))
    num_classes = int(data.y.shape[1]) if multilabel else int(data.num_classes)
    model = build_nodecls_model(cfg.model, x.shape[1], num_classes, **cfg.model_kwargs()).to(device)
    implicit = bool(getattr(model, "implicit", False))
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    ei, y = data.edge_index, data.y
    train_m, val_m, test_m = data.train_mask, data.val_mask, data.test_mask

    best = (-float("inf"), float("inf"))  # (val metric, -val loss) compared lexicographically
    best_state: dict[str, Tensor] | None = None
    best_epoch, epochs_run = 0, 0
    fwd_iters: list[int] = []
    bwd_iters: list[int] = []
    unconverged = 0
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
            for s in model.solver_stats():
                fwd_iters.append(int(s["forward_iterations_max"]))
                if "backward_iterations_max" in s:
                    bwd_iters.append(int(s["backward_iterations_max"]))
                unconverged += int(s["forward_converged_frac"] < 1.0)
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
                        **({"it": fwd_iters[-1]} if fwd_iters else {}))
        if epoch - best_epoch >= cfg.patience:
            break
    bar.close()
    train_seconds = time.perf_counter() - t_start
    assert best_state is not None
    model.load_state_dict(best_state)

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
    times = time_inference(model, x, ei, warmup=cfg.timing_warmup, repeats=cfg.timing_repeats)
    record["inference_seconds"] = statistics.median(times)
    record["inference_seconds_all"] = times
    if implicit:
        record["solver"] = _solver_summary(model.solver_stats())
        record["train_solver"] = {
            "forward_iterations_mean": float(np.mean(fwd_iters)) if fwd_iters else None,
            "forward_iterations_max": max(fwd_iters) if fwd_iters else None,
            "backward_iterations_mean": float(np.mean(bwd_iters)) if bwd_iters else None,
            "backward_iterations_max": max(bwd_iters) if bwd_iters else None,
            "unconverged_forward_solves": unconverged,
        }
        record["lambda_pf"] = getattr(model, "lambda_pf", None)
    else:
        record["solver"] = None
    return record, best_state


# ----------------------------------------------------------------------------- the run


def _stats(values: list[float]) -> dict[str, Any]:
    return {"mean": float(np.mean(values)), "std": float(np.std(values)), "per_seed": list(values)}


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

    Raises:
        NodeClsConfigError: bad configuration, or ``out_dir`` holds seeds of another one.
        dear.nodecls.DatasetNotFoundError: the dataset's files are missing.
    """
    from tqdm.auto import tqdm  # noqa: PLC0415

    from dear.nodecls import load_dataset  # noqa: PLC0415

    cfg.validate()
    out_dir = Path(out_dir)
    device = resolve_device(cfg.device)
    data = load_dataset(cfg.dataset, root=cfg.data_root, split=cfg.split, cache_dir=cfg.cache_dir,
                        seed=cfg.data_seed, **cfg.dataset_options)
    if not bool(data.val_mask.any()):
        raise NodeClsConfigError(f"{cfg.dataset}: the split has no validation nodes; early stopping needs them")
    if data.x is None and cfg.model != "ignn":
        raise NodeClsConfigError(f"{cfg.dataset} has no node features; only ignn supports it "
                                 "(it learns one embedding per node)")
    x = prepare_features(data, cfg.normalize_features).to(device)
    data = data.to(device)

    key = cfg.key()
    seed_dir = out_dir / "seeds"
    records: list[dict[str, Any]] = []
    seeds = [cfg.first_seed + k for k in range(cfg.seeds)]
    for seed in tqdm(seeds, desc=f"{cfg.dataset} {cfg.model}", disable=not progress or len(seeds) == 1,
                     dynamic_ncols=True):
        path = seed_dir / f"seed_{seed}.json"
        if path.exists():
            try:
                saved = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError):
                saved = None  # unreadable: recompute (writes are atomic, so this is rare)
            if saved is not None:
                if saved.get("config_key") != key:
                    raise NodeClsConfigError(
                        f"{out_dir} holds results of a different configuration (seed {seed}); "
                        "use another --out or delete that directory"
                    )
                records.append(saved["record"])
                continue
        record, state = train_one_seed(cfg, data, x, seed, device, progress=progress)
        # Weights first: a seed counts as done only once its JSON exists.
        atomic_torch_save(seed_dir / f"seed_{seed}.pt", {k: v.cpu() for k, v in state.items()})
        atomic_write_text(path, json.dumps({"config_key": key, "record": record}, indent=2) + "\n")
        records.append(record)
        results = _aggregate(cfg, data, records, device, complete=len(records) == len(seeds))
        atomic_write_text(out_dir / "results.json", json.dumps(results, indent=2) + "\n")
    results = _aggregate(cfg, data, records, device, complete=True)
    atomic_write_text(out_dir / "results.json", json.dumps(results, indent=2) + "\n")
    return results
