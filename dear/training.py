"""Training a reasoner on a CLRS task: deterministic, resumable, best-by-validation checkpoints.

A run directory holds ``config.json`` (the resolved :class:`~dear.config.TrainConfig`),
``checkpoint_last.pt`` (model, optimiser, step, RNG state, history: everything needed to
resume), ``checkpoint_best.pt`` (the model with the lowest validation loss, as DEAR selects) and
``history.json``. All are written atomically.

The batch of step ``s`` is a pure function of (seed, s): epoch ``e = s // batches_per_epoch``
shuffles with a generator seeded by (seed, e). With the torch RNG state saved in checkpoints, a
run interrupted and resumed ends with exactly the same weights as an uninterrupted one.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from tqdm.auto import tqdm

import clrs_tasks as ct
from dear.config import TrainConfig
from dear.io import atomic_torch_save, atomic_write_text, git_commit, hardware, resolve_device, versions

HINT_MODELS = ("nar-hints",)


class RunError(ValueError):
    """A run directory that cannot be used as asked (missing files, mismatched config)."""


def load_data(cfg: TrainConfig, split: str, **overrides: Any) -> ct.ClrsDataset:
    """A split of the run's task and protocol, with hints only if the model reads them."""
    counts = {"train": cfg.num_train, "val": cfg.num_val, "test": cfg.num_test}
    if counts.get(split) is not None and "num_samples" not in overrides:
        overrides["num_samples"] = counts[split]
    return ct.load_split(cfg.algorithm, split, cfg.protocol, edge_policy=cfg.edge_policy,
                         include_hints=cfg.model in HINT_MODELS, progress=False, **overrides)


def build(cfg: TrainConfig, spec: ct.GraphSpec) -> torch.nn.Module:
    """The model a config asks for (see :func:`dear.reasoners.build_model`)."""
    from dear.reasoners import build_model  # noqa: PLC0415

    options: dict[str, Any] = {}
    if cfg.model == "dear":
        options = {"solver": cfg.solver, "tol": cfg.tol, "max_iter": cfg.max_iter, "max_iter_test": cfg.max_iter_test,
                   "backward": cfg.backward, "phantom_steps": cfg.phantom_steps, "phantom_tau": cfg.phantom_tau,
                   "jac_reg": cfg.jac_reg, "noise": cfg.noise}
    return build_model(cfg.model, spec, hidden=cfg.hidden, processor=cfg.processor, **options, **cfg.extra)


def batch_indices(n: int, batch_size: int, seed: int, step: int) -> torch.Tensor:
    """Indices of the graphs of optimiser step ``step`` (a pure function of seed and step)."""
    per_epoch = max(1, n // batch_size)
    epoch, j = divmod(step, per_epoch)
    g = torch.Generator().manual_seed(int(seed) * 1_000_003 + epoch)
    perm = torch.randperm(n, generator=g)
    if n < batch_size:
        return perm
    return perm[j * batch_size: (j + 1) * batch_size]


def model_loss(model: torch.nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, Any]]:
    out, stats = model(batch)
    return model.loss(batch, out, stats), stats


@torch.no_grad()
def validate(model: torch.nn.Module, loader: list, device: torch.device) -> dict[str, float]:
    """Mean loss and CLRS score over pre-collated validation batches."""
    from dear.reasoners import predictions_for_scoring  # noqa: PLC0415

    model.eval()
    ev = ct.Evaluator()
    total, graphs = 0.0, 0
    for batch in loader:
        batch = batch.to(device)
        out, stats = model(batch)
        loss = model.loss(batch, out, stats)
        total += float(loss) * batch.num_graphs
        graphs += batch.num_graphs
        ev.add(batch.cpu(), {k: v.cpu() for k, v in predictions_for_scoring(batch, out).items()})
    model.train()
    res = ev.result()
    return {"loss": total / max(graphs, 1), "score": res["score"]}


@dataclass
class TrainResult:
    run_dir: Path
    steps: int
    best_step: int
    best_val: dict[str, float]
    seconds: float
    resumed_from: int


def train(cfg: TrainConfig, run_dir: Path, progress: bool = True,
          stop_after: int | None = None, on_step: Callable[[int], None] | None = None) -> TrainResult:
    """Train (or resume) the run in ``run_dir``. ``stop_after`` ends early after that many
    optimiser steps of this call (used by tests to simulate an interruption)."""
    cfg.validate()
    run_dir = Path(run_dir)
    cfg_path = run_dir / "config.json"
    if cfg_path.exists():
        saved = TrainConfig.load(cfg_path)
        if saved.to_dict() != cfg.to_dict():
            diff = sorted(k for k, v in cfg.to_dict().items() if saved.to_dict().get(k) != v)
            raise RunError(f"{run_dir} holds a run with a different config ({', '.join(diff)}); "
                           "use another --out directory or the same settings to resume")
    else:
        cfg.save(cfg_path)
    device = resolve_device(cfg.device)
    train_ds = load_data(cfg, "train")
    val_ds = load_data(cfg, "val")
    val_loader = [ct.collate([val_ds[i] for i in range(s, min(s + cfg.batch_size, len(val_ds)))])
                  for s in range(0, len(val_ds), cfg.batch_size)]
    torch.manual_seed(cfg.seed)
    model = build(cfg, train_ds.spec).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    step, history, best = 0, [], {"loss": math.inf, "score": float("nan"), "step": -1}
    last = run_dir / "checkpoint_last.pt"
    if last.exists():
        state = torch.load(last, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        step, history, best = state["step"], state["history"], state["best"]
        torch.set_rng_state(state["rng"])
        if device.type == "cuda" and state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(state["cuda_rng"], device)
    resumed_from = step
    t0 = time.perf_counter()

    def checkpoint() -> None:
        atomic_torch_save(last, {
            "model": model.state_dict(), "optimizer": opt.state_dict(), "step": step, "history": history,
            "best": best, "rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        })
        atomic_write_text(run_dir / "history.json", json.dumps({"history": history, "best": best}, indent=1))

    bar = tqdm(total=cfg.steps, initial=step, desc=f"{cfg.algorithm} {cfg.model} seed {cfg.seed}",
               disable=not progress, unit="step")
    done_here = 0
    model.train()
    try:
        while step < cfg.steps:
            idx = batch_indices(len(train_ds), cfg.batch_size, cfg.seed, step)
            batch = ct.collate([train_ds[int(i)] for i in idx]).to(device)
            loss, stats = model_loss(model, batch)
            if not torch.isfinite(loss):
                raise RunError(f"non-finite training loss at step {step}; lower --lr or check the data")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            step += 1
            done_here += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.4f}")
            if on_step is not None:
                on_step(step)
            if step % cfg.eval_every == 0 or step == cfg.steps:
                val = validate(model, val_loader, device)
                history.append({"step": step, "train_loss": loss.item(), "val_loss": val["loss"], "val_score": val["score"],
                                "seconds": time.perf_counter() - t0})
                if val["loss"] < best["loss"]:
                    best = {"loss": val["loss"], "score": val["score"], "step": step}
                    atomic_torch_save(run_dir / "checkpoint_best.pt", {"model": model.state_dict(), "step": step, "val": val})
                checkpoint()
            if stop_after is not None and done_here >= stop_after:
                checkpoint()
                break
    except KeyboardInterrupt:
        checkpoint()
        bar.close()
        raise
    bar.close()
    if step >= cfg.steps:
        meta = {"steps": step, "best": best, "seconds_this_call": time.perf_counter() - t0, "resumed_from": resumed_from,
                "versions": versions(), "git_commit": git_commit(), "hardware": hardware(device),
                "train_fingerprint": train_ds.fingerprint, "val_fingerprint": val_ds.fingerprint}
        atomic_write_text(run_dir / "train_summary.json", json.dumps(meta, indent=1))
    return TrainResult(run_dir, step, best["step"], {"loss": best["loss"], "score": best["score"]},
                       time.perf_counter() - t0, resumed_from)


def is_complete(run_dir: Path) -> bool:
    """Whether a run directory holds a finished run (its summary is written last)."""
    return (Path(run_dir) / "train_summary.json").exists() and (Path(run_dir) / "checkpoint_best.pt").exists()
