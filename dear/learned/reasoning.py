"""Learned-solver hooks for DEAR's trainer (:func:`dear.training.train`).

``dear train --model dear --solver learned`` builds DEAR with a learned solver (initializer on
the encoded node inputs, tiny GNN on the CLRS graph); :func:`dear_schedule` gives the trainer
the alternating schedule: after ``warmup_epochs`` optimiser steps the solver is fitted on
fresh training batches (``first_steps`` solver steps, one batch each, drawn with their own
seeded stream so a run is reproducible), then fine-tuned every ``every`` steps; when training
ends, the best checkpoint's solver is fine-tuned on that checkpoint's model and saved back.

Under DDP every process runs the same fits on the same batches (solver parameters stay out of
the DDP wrapper: they do not require grad outside fits), so the solvers stay identical.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

import clrs_tasks as ct
from dear.io import atomic_torch_save
from dear.solvers.learned import learned_solvers

from .problems import dear_problems
from .schedule import AlternatingSchedule, model_parameters
from .training import SolverTrainConfig

__all__ = ["DearSchedule", "dear_schedule"]

_SOLVER_STREAM = 7_777_777  # offsets the seed of the solver's batch stream from the model's


class DearSchedule:
    """The DEAR trainer's view of the alternating schedule (see the module docstring)."""

    def __init__(self, cfg: Any, model: nn.Module, train_ds: Any, device: torch.device) -> None:
        self.cfg, self.model, self.train_ds, self.device = cfg, model, train_ds, device
        self.options = dict(cfg.solver_training or {})
        # DEAR stops at a relative residual of 0.1 and its LayerNorm map is not a contraction:
        # Z* to 1e-3 is ample and a 1e-6 solve may never finish.
        self.options.setdefault("fp_tol", 1e-3)
        self.options.setdefault("fp_max_iter", 100)
        tcfg = SolverTrainConfig.from_dict(self.options)
        self._draws = 0
        for p in self.solver_parameters():
            p.requires_grad_(False)  # outside fits: not the model optimiser's, not DDP's
        self.schedule = AlternatingSchedule(model, self._problems, self.options, total=cfg.steps, per_fit=False)
        self.tcfg = tcfg

    def solver_parameters(self) -> list[nn.Parameter]:
        return [p for s in learned_solvers(self.model) for p in s.parameters()]

    def model_parameters(self) -> list[nn.Parameter]:
        return model_parameters(self.model)

    def _problems(self):
        from dear.training import batch_indices  # noqa: PLC0415

        idx = batch_indices(len(self.train_ds), self.cfg.batch_size, self.cfg.seed + _SOLVER_STREAM, self._draws)
        self._draws += 1
        batch = ct.collate([self.train_ds[int(i)] for i in idx]).to(self.device)
        return dear_problems(self.model, batch, self.tcfg)

    def _with_grad(self, fn, *args):
        params = self.solver_parameters()
        for p in params:
            p.requires_grad_(True)
        try:
            return fn(*args)
        finally:
            for p in params:
                p.requires_grad_(False)

    def after_step(self, step: int) -> None:
        self._with_grad(self.schedule.after_step, step)

    def finish(self, run_dir: Path, write: bool = True) -> dict[str, Any]:
        """Fine-tune the solver of ``checkpoint_best.pt`` on that checkpoint's model and save
        it back (the trainer's live model is restored afterwards)."""
        path = Path(run_dir) / "checkpoint_best.pt"
        if not path.exists():
            return {}
        ckpt = torch.load(path, map_location=self.device, weights_only=False)
        live = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self.model.load_state_dict(ckpt["model"])
        rec = self._with_grad(self.schedule.finish)
        ckpt["model"] = self.model.state_dict()
        ckpt["learned_solver"] = self.report()
        if write:
            atomic_torch_save(path, ckpt)
        self.model.load_state_dict(live)
        return rec

    def report(self) -> dict[str, Any]:
        return self.schedule.trainer.summary()


def dear_schedule(cfg: Any, model: nn.Module, train_ds: Any, device: torch.device) -> DearSchedule | None:
    """The schedule for a DEAR model with a learned solver, ``None`` otherwise."""
    if not learned_solvers(model):
        return None
    return DearSchedule(cfg, model, train_ds, device)
