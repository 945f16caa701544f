"""Training a reasoner on a CLRS task: deterministic, resumable, best-by-validation checkpoints.

A run directory holds ``config.json`` (the resolved :class:`~dear.config.TrainConfig`),
``checkpoint_last.pt`` (model, optimiser, step, RNG state, history: everything needed to
resume), ``checkpoint_best.pt`` (the model with the lowest validation loss, as DEAR selects) and
``history.json``. All are written atomically.

The batch of step ``s`` is a pure function of (seed, s): epoch ``e = s // batches_per_epoch``
shuffles with a generator seeded by (seed, e). With the torch RNG state saved in checkpoints, a
run interrupted and resumed ends with exactly the same weights as an uninterrupted one.

Interrupts: SIGINT (Ctrl-C) and SIGTERM (``kill``, ``timeout``, a scheduler's pre-emption) do
not stop a step half-way, where its random draws and parameter update are partly done; the
handlers :func:`train` installs (main thread only; elsewhere signals cannot be caught and
training runs as before) note the request, the current step and its validation finish, a
checkpoint is written and :class:`TrainingInterrupted` says what was saved. A second Ctrl-C
stops at once; the checkpoint then holds the state as of the start of the step (or, inside the
parameter update itself, nothing new). A validation that was due but did not finish is rerun on
resume, so a run is never marked finished without its final validation and best checkpoint.

Under ``torchrun`` with several processes (``dear.distributed``) the same function trains with
DistributedDataParallel: every rank computes the same global batch of a step and takes its
strided share ``idx[rank::world_size]``, so the effective batch is ``batch_size`` whatever the
number of processes, and a checkpoint can be resumed with a different number of processes.
Only rank 0 validates and writes files; the other ranks get what they need from it by
broadcast. See ``docs/scale-out.md``.
"""

from __future__ import annotations

import dataclasses
import math
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from contextlib import contextmanager, nullcontext
from typing import Any, Callable, Iterator

import torch

import clrs_tasks as ct
from clrs_tasks.progress import progress_bar
from dear.config import (
    DEAR_MODEL_OPTIONS,
    DEAR_ONLY_FIELDS,
    ConfigError,
    TrainConfig,
    learning_rate,
    resolved_steps,
)
from dear.distributed import (
    DistInfo,
    all_reduce_sum,
    barrier,
    broadcast_object,
    gather_objects,
    init_distributed,
    launched_by_torchrun,
    local_first,
    rank_device,
    wrap_ddp,
)
from dear.io import (
    atomic_torch_save,
    atomic_write_text,
    code_provenance,
    dumps_strict,
    hardware,
    numerics,
    numerics_differences,
    resolve_device,
    versions,
)

HINT_MODELS = ("nar-hints",)


class RunError(ValueError):
    """A run directory that cannot be used as asked (missing files, mismatched config)."""


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped by SIGINT or SIGTERM. A ``KeyboardInterrupt``, so that callers that
    stop on Ctrl-C (``dear compare``, scripts) stop on it too; ``str()`` says what was saved.

    Attributes: ``signum`` (``None`` for a KeyboardInterrupt not raised by a signal),
    ``saved_step`` (the step ``checkpoint_last.pt`` holds, ``None`` without one) and
    ``finished`` (the run completed before it stopped).
    """

    def __init__(self, message: str, signum: int | None = None, saved_step: int | None = None,
                 finished: bool = False):  # defaults: exceptions are unpickled as cls(*args)
        super().__init__(message)
        self.message, self.signum, self.saved_step, self.finished = message, signum, saved_step, finished

    def __str__(self) -> str:
        return self.message


def _read_last_checkpoint(path: Path) -> dict[str, Any] | str:
    """The resume state in ``path``, or the one-line error to raise on every rank when it
    cannot be read (a truncated copy, a full disk, a stray file): a string, so that under DDP
    rank 0 can broadcast it instead of leaving the other ranks waiting."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 - torch raises many types for a bad file
        return (f"{path} is unreadable ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else 'no detail'}); "
                "delete it to train the run from the start")
    if not isinstance(state, dict):
        return f"{path} is not a dear training checkpoint; delete it to train the run from the start"
    return state


def load_data(cfg: TrainConfig, split: str, **overrides: Any) -> ct.ClrsDataset:
    """A split of the run's task and protocol, with hints only if the model reads them."""
    counts = {"train": cfg.num_train, "val": cfg.num_val, "test": cfg.num_test}
    if counts.get(split) is not None and "num_samples" not in overrides:
        overrides["num_samples"] = counts[split]
    return ct.load_split(cfg.algorithm, split, cfg.protocol, edge_policy=cfg.edge_policy,
                         include_hints=cfg.model in HINT_MODELS, progress=False, **overrides)


def model_options(cfg: TrainConfig) -> dict[str, Any]:
    """The keyword options :func:`build` passes to the model: DEAR's settings for ``dear``,
    plus ``cfg.extra``. Raises :class:`~dear.config.ConfigError` for solver options given to
    another model (they would fail deep inside its constructor with a TypeError)."""
    options: dict[str, Any] = {}
    if cfg.model == "dear":
        options = {name: getattr(cfg, name) for name in DEAR_MODEL_OPTIONS}
        if cfg.align_weight > 0:
            options["align_weight"] = cfg.align_weight
    elif "solver_options" in cfg.extra:
        raise ConfigError(f"solver options (--solver-opt) apply only to --model dear, not --model {cfg.model}")
    return {**options, **cfg.extra}


def build(cfg: TrainConfig, spec: ct.GraphSpec) -> torch.nn.Module:
    """The model a config asks for (see :func:`dear.reasoners.build_model`)."""
    from dear.reasoners import build_model  # noqa: PLC0415

    return build_model(cfg.model, spec, hidden=cfg.hidden, processor=cfg.processor, init=cfg.init,
                       **model_options(cfg))


def batch_indices(n: int, batch_size: int, seed: int, step: int) -> torch.Tensor:
    """Indices of the graphs of optimiser step ``step`` (a pure function of seed and step)."""
    per_epoch = max(1, n // batch_size)
    epoch, j = divmod(step, per_epoch)
    g = torch.Generator().manual_seed(int(seed) * 1_000_003 + epoch)
    perm = torch.randperm(n, generator=g)
    if n < batch_size:
        return perm
    return perm[j * batch_size: (j + 1) * batch_size]


def model_loss(model: torch.nn.Module, batch: Any,
               loss_owner: torch.nn.Module | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
    """Forward through ``model`` (possibly a DDP wrapper), loss from ``loss_owner`` (the bare
    reasoner, which defines ``loss``; default ``model``)."""
    out, stats = model(batch)
    return (loss_owner if loss_owner is not None else model).loss(batch, out, stats), stats


def rank_seed(seed: int, rank: int, step: int) -> int:
    """Seed of rank ``rank > 0``'s random stream (DEAR's training noise, Sinkhorn's Gumbel
    noise) from ``step`` on, when no saved state exists for it. Rank 0 keeps the single-process
    stream (seeded by ``seed`` before the model is built); other ranks must not draw the same
    noise for their different graphs, and must get it back on resume."""
    return (int(seed) * 1_000_003 + 7_919 * int(rank) + int(step)) % (2**63 - 1)


def _restore_rng(state: dict[str, Any], rank: int, world: int, device: torch.device, seed: int, step: int) -> None:
    """Set this rank's RNG state from a checkpoint. Rank 0's is always saved; another rank's
    only when the checkpoint was written by all ranks of a run of the same size (not after a
    forced interrupt, nor when resuming with another number of processes): otherwise it is
    reseeded from (seed, rank, step)."""
    rngs = state.get("rng_ranks") if rank > 0 else [state["rng"]]
    cuda_rngs = state.get("cuda_rng_ranks") if rank > 0 else [state.get("cuda_rng")]
    if rngs is None or len(rngs) <= rank or (rank > 0 and len(rngs) != world):
        torch.manual_seed(rank_seed(seed, rank, step))
        return
    torch.set_rng_state(rngs[rank])
    cuda_rng = cuda_rngs[rank] if cuda_rngs is not None else None
    if device.type == "cuda" and cuda_rng is not None:
        torch.cuda.set_rng_state(cuda_rng, device)


def config_mismatch(cfg: TrainConfig, run_dir: Path) -> list[str]:
    """The config fields in which ``run_dir``'s saved run differs from ``cfg`` (empty when it
    holds no run yet or the same one). Configs saved before a field existed read as its default.
    For models other than ``dear``, DEAR's own settings (:data:`dear.config.DEAR_ONLY_FIELDS`)
    are not compared: they do not change that model."""
    cfg_path = Path(run_dir) / "config.json"
    if not cfg_path.exists():
        return []
    saved = TrainConfig.load(cfg_path).to_dict()
    ignore = DEAR_ONLY_FIELDS if cfg.model != "dear" and saved.get("model") == cfg.model else frozenset()
    return sorted(k for k, v in cfg.to_dict().items() if k not in ignore and saved.get(k) != v)


def _check_run_dir(cfg: TrainConfig, run_dir: Path) -> None:
    """Refuse a run directory holding another config. Writes nothing: config.json is written
    only once the data and the model have been built, so that a config that fails there
    leaves no directory that would refuse the corrected command."""
    diff = config_mismatch(cfg, run_dir)
    if diff:
        raise RunError(f"{run_dir} holds a run with a different config ({', '.join(diff)}); "
                       "use another --out directory or the same settings to resume")


def _validation_due(cfg: TrainConfig, step: int) -> bool:
    """Whether the run validates (and checkpoints) after step ``step``."""
    return step > 0 and (step % cfg.eval_every == 0 or step == cfg.steps)


class _StopRequest:
    """What the signal handlers of :func:`_deferred_signals` noted: the first signal asks to
    stop at the next step boundary; a second SIGINT stops at once (KeyboardInterrupt)."""

    def __init__(self) -> None:
        self.signum: int | None = None


@contextmanager
def _deferred_signals(stop: _StopRequest, announce: bool) -> Iterator[bool]:
    """Install SIGINT and SIGTERM handlers that record a stop request in ``stop`` instead of
    raising mid-step; restore the previous handlers on exit. Yields whether they were
    installed: signal handlers can only be set from the main thread (``train`` called from a
    worker thread runs without them, as before), and a signal already ignored (``SIG_IGN``, or
    a handler not set from Python) is left alone."""
    if threading.current_thread() is not threading.main_thread():
        yield False
        return
    previous: dict[int, Any] = {}

    def handler(signum: int, frame: Any) -> None:
        if stop.signum is None:
            stop.signum = signum
            if announce:  # os.write: a handler may run in the middle of another write to stderr
                again = " (Ctrl-C again stops at once)" if signum == signal.SIGINT else ""
                os.write(2, f"\n{signal.Signals(signum).name}: stopping after this step and saving a "
                            f"checkpoint{again}\n".encode())
        elif signum == signal.SIGINT and stop.signum == signal.SIGINT:
            raise KeyboardInterrupt
        # a SIGTERM after a SIGINT (torchrun forwards one on Ctrl-C) or a repeated SIGTERM:
        # already stopping at the next boundary

    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            old = signal.getsignal(sig)
            if old is None or old == signal.SIG_IGN:
                continue
            try:
                signal.signal(sig, handler)
            except ValueError:  # not the main interpreter: run without, as in a worker thread
                break
            previous[sig] = old
        yield bool(previous)
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def alignment_teacher_dir(cfg: TrainConfig) -> Path | None:
    """The run directory of ``cfg.align_teacher``, checked to be a finished no-hint NAR run of
    the same algorithm and width (from its config alone, before anything is written), or None
    without the alignment regulariser."""
    if not (cfg.model == "dear" and cfg.align_weight > 0 and cfg.align_teacher):
        return None
    path = Path(cfg.align_teacher)
    run_dir = path.parent if path.suffix == ".pt" else path
    if not (run_dir / "config.json").exists():
        raise RunError(f"alignment teacher {path} is not a run directory; train one with "
                       f"`dear train --algorithm {cfg.algorithm} --model nar --out DIR` first")
    tcfg = TrainConfig.load(run_dir / "config.json")
    if tcfg.model != "nar" or tcfg.algorithm != cfg.algorithm or tcfg.hidden != cfg.hidden:
        raise RunError(f"alignment teacher {run_dir} is a {tcfg.model} run of {tcfg.algorithm} with hidden "
                       f"{tcfg.hidden}; it must be a no-hint nar run of {cfg.algorithm} with hidden {cfg.hidden}")
    if not (run_dir / "checkpoint_best.pt").exists():
        raise RunError(f"alignment teacher {run_dir} has no checkpoint_best.pt yet; finish its training first")
    return run_dir


def attach_alignment_teacher(cfg: TrainConfig, model: torch.nn.Module, device: torch.device) -> dict | None:
    """Load the frozen no-hint NAR of ``cfg.align_teacher`` into a DEAR model (alignment
    regulariser). Returns what identifies it (path, step, sha256 of its checkpoint) for the
    run's summary, or None without one."""
    run_dir = alignment_teacher_dir(cfg)
    if run_dir is None:
        return None
    from dear.evaluate import load_run  # noqa: PLC0415
    from dear.io import sha256_file  # noqa: PLC0415

    _, teacher, ckpt = load_run(run_dir, device)
    model.set_alignment_teacher(teacher)
    return {"run_dir": str(run_dir), "step": int(ckpt.get("step", -1)),
            "sha256": sha256_file(run_dir / "checkpoint_best.pt")}


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


@dataclass
class _CallTrack:
    """What one :func:`train` call has done so far, for its error and interrupt handling."""

    wrote_config: bool = False
    saved_step: int | None = None  # the step checkpoint_last.pt holds, once known
    stage: str = "setting up the run (loading data, building the model)"

    def saved(self, run_dir: Path) -> str:
        """Where a resume starts, for an interrupt message."""
        if self.saved_step is not None:
            return f"{run_dir / 'checkpoint_last.pt'} holds step {self.saved_step}; run the same command to resume"
        if (run_dir / "checkpoint_last.pt").exists():
            return f"{run_dir / 'checkpoint_last.pt'} is unchanged; run the same command to resume"
        return "no checkpoint was saved yet; run the same command to start over"


def _signal_name(signum: int | None) -> str:
    return signal.Signals(signum).name if signum is not None else "KeyboardInterrupt"


def train(cfg: TrainConfig, run_dir: Path, progress: bool = True,
          stop_after: int | None = None, on_step: Callable[[int], None] | None = None,
          distributed: bool | None = None) -> TrainResult:
    """Train (or resume) the run in ``run_dir``. ``stop_after`` ends early after that many
    optimiser steps of this call (used by tests to simulate an interruption).

    ``distributed``: ``None`` (default) trains with DDP over all processes when ``torchrun``
    started several, else in this process; ``False`` trains the run in this process alone even
    under ``torchrun`` (``dear compare`` gives each rank runs of its own). Under DDP every rank
    must call this with the same arguments; all return the same :class:`TrainResult`.

    SIGINT and SIGTERM stop training at the next step boundary with a checkpoint (module
    docstring) and raise :class:`TrainingInterrupted`, whose message says what was saved.
    A config that fails while the data or the model is built leaves no ``config.json`` behind.
    """
    cfg.validate()
    model_options(cfg)  # solver options for a model that takes none: refused before any work
    run_dir = Path(run_dir)
    if distributed is False:
        dev = rank_device(cfg.device) if launched_by_torchrun() else resolve_device(cfg.device)
        info = DistInfo(0, 1, 0, dev, None)
    else:
        info = init_distributed(cfg.device)

    # Rank 0 checks the run directory; every rank stops if it is refused.
    error = None
    if info.is_main:
        try:
            alignment_teacher_dir(cfg)
            _check_run_dir(cfg, run_dir)
        except RunError as e:
            if not info.distributed:
                raise
            error = str(e)
    if info.distributed:
        error = broadcast_object(error)
    if error is not None:
        raise RunError(error)

    track = _CallTrack()
    try:
        return _train(cfg, run_dir, info, track, progress, stop_after, on_step)
    except TrainingInterrupted:
        raise
    except KeyboardInterrupt:  # outside the training loop: while setting up or finishing
        raise TrainingInterrupted(f"interrupted while {track.stage}; {track.saved(run_dir)}", None,
                                  track.saved_step) from None
    except Exception:
        # a config.json this call wrote, for a run that never got a checkpoint, would only
        # make the corrected command fail with "a different config"
        if info.is_main and track.wrote_config and not (run_dir / "checkpoint_last.pt").exists():
            (run_dir / "config.json").unlink(missing_ok=True)
        raise


def _train(cfg: TrainConfig, run_dir: Path, info: DistInfo, track: _CallTrack, progress: bool,
           stop_after: int | None, on_step: Callable[[int], None] | None) -> TrainResult:
    """The body of :func:`train` once the run directory is accepted."""
    ddp, rank, world, main = info.distributed, info.rank, info.world_size, info.is_main
    device = info.device
    requested = cfg

    with local_first() if ddp else nullcontext():  # one rank per machine builds missing splits
        train_ds = load_data(cfg, "train")
        val_ds = load_data(cfg, "val")
    # The run's own step count (the config keeps the cap and the budget it comes from).
    cfg = dataclasses.replace(cfg, steps=resolved_steps(cfg, train_ds.lengths.tolist()))
    if ddp and min(len(train_ds), cfg.batch_size) < world:
        raise RunError(f"batch size {min(len(train_ds), cfg.batch_size)} is smaller than the {world} processes: "
                       "every process needs at least one graph per step; raise --batch-size")
    val_loader = [ct.collate([val_ds[i] for i in range(s, min(s + cfg.batch_size, len(val_ds)))])
                  for s in range(0, len(val_ds), cfg.batch_size)] if main else []
    torch.manual_seed(cfg.seed)
    model = build(cfg, train_ds.spec).to(device)
    from dear.learned.reasoning import dear_schedule  # noqa: PLC0415

    teacher_info = attach_alignment_teacher(cfg, model, device)  # every rank's loss needs it
    schedule = dear_schedule(cfg, model, train_ds, device)  # None unless --solver learned*
    opt = torch.optim.Adam(schedule.model_parameters() if schedule is not None else model.parameters(), lr=cfg.lr)
    # Data, model and solver built: the config works, so now it may claim the directory.
    if main and not (run_dir / "config.json").exists():
        requested.save(run_dir / "config.json")
        track.wrote_config = True
    step, history, best = 0, [], {"loss": math.inf, "score": float("nan"), "step": -1}
    last_loss: float | None = None  # training loss of the last step taken (step `step`)
    last = run_dir / "checkpoint_last.pt"
    state = _read_last_checkpoint(last) if main and last.exists() else None
    if ddp:  # rank 0's disk holds the run; the others get the state from it (or its error)
        state = broadcast_object(state)
    if isinstance(state, str):
        raise RunError(state)
    if state is not None:
        try:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            step, history, best = state["step"], state["history"], state["best"]
        except (KeyError, RuntimeError, ValueError, TypeError) as e:
            raise RunError(f"{last} does not fit this run ({type(e).__name__}: {str(e).splitlines()[0]}); "
                           "it was written by other code or settings: delete it to train the run "
                           "from the start, or use another --out") from e
        last_loss = state.get("train_loss")
        segments = list(state.get("numerics_segments") or [])
        track.saved_step = step
        _restore_rng(state, rank, world, device, cfg.seed, step)
    elif rank > 0:
        torch.manual_seed(rank_seed(cfg.seed, rank, 0))
    net = wrap_ddp(model, device) if ddp else model
    resumed_from = step
    here = {**numerics(device), "world_size": world}  # processes too: they split each batch's sums
    if state is None:
        segments = [here]
    elif not segments:  # a checkpoint from before 2026-12-02: its segment's numerics are unknown (null)
        segments = [None, here]
    elif segments[-1] != here:
        changed = ", ".join(numerics_differences(segments[-1], here, tuple(here), unstated_differ=True))
        if main:
            print(f"note: resuming {run_dir} at step {step} with other numerics than it ran with so far ({changed}): "
                  "the run is valid, but no single retraining will reproduce its weights bit for bit",
                  file=sys.stderr)
        segments.append(here)
    t0 = time.perf_counter()

    def rng_now() -> tuple[torch.Tensor, torch.Tensor | None]:
        return torch.get_rng_state(), torch.cuda.get_rng_state(device) if device.type == "cuda" else None

    def checkpoint(gather: bool = True, rngs: tuple[torch.Tensor, torch.Tensor | None] | None = None) -> None:
        """Rank 0 saves everything needed to resume at ``step`` (with the RNG state ``rngs``,
        default the current one); under DDP every rank's RNG state too (a collective: all
        ranks call this at the same step)."""
        rng, cuda_rng = rngs if rngs is not None else rng_now()
        per_rank = gather_objects((rng, cuda_rng)) if ddp and gather else None
        track.saved_step = step
        if not main:
            return
        payload = {
            "model": model.state_dict(), "optimizer": opt.state_dict(), "step": step, "history": history,
            "best": best, "rng": rng, "cuda_rng": cuda_rng, "train_loss": last_loss,
            "numerics_segments": segments,
        }
        if ddp:
            payload["world_size"] = world
            if per_rank is not None:
                payload["rng_ranks"] = [r[0] for r in per_rank]
                payload["cuda_rng_ranks"] = [r[1] for r in per_rank]
        atomic_torch_save(last, payload)
        atomic_write_text(run_dir / "history.json", dumps_strict({"history": history, "best": best}))

    # Where an immediate KeyboardInterrupt (a second Ctrl-C, or one raised by code) finds the
    # state, and so what a checkpoint written then must hold: "boundary"/"stepped"/"validated":
    # the current state; "step" (before the parameter update) and "validating": the RNG state
    # `mark` from the start of that phase, the model being unchanged since; "unsafe" (parameters
    # or records half-updated): nothing, the previous checkpoint stays.
    phase, mark = "boundary", None
    stop = _StopRequest()

    def validate_step() -> None:
        """Validate the model of step ``step`` on rank 0, record it and keep the best model.
        History and best are replaced only once complete, so an interrupt during validation
        checkpoints the state before it, and the resumed run validates again."""
        nonlocal history, best, phase, mark
        phase, mark = "validating", rng_now()
        if main:  # the bare model: no DDP collectives while the others wait
            val = validate(model, val_loader, device)
            entry = {"step": step, "train_loss": last_loss, "val_loss": val["loss"], "val_score": val["score"],
                     "seconds": time.perf_counter() - t0}
            new_best = best
            if val["loss"] < best["loss"]:
                new_best = {"loss": val["loss"], "score": val["score"], "step": step}
                atomic_torch_save(run_dir / "checkpoint_best.pt",
                                  {"model": model.state_dict(), "step": step, "val": val})
            phase = "unsafe"
            history, best = [*history, entry], new_best
        phase, mark = "validated", None

    bar = progress_bar(total=cfg.steps, initial=step, desc=f"{cfg.algorithm} {cfg.model} seed {cfg.seed}",
               disable=not progress or not main, unit="step")
    done_here = 0
    model.train()
    track.stage = "training"
    try:
        with _deferred_signals(stop, announce=main):
            # A validation that was due but did not finish (interrupted, or a checkpoint
            # written before this was checked) runs first: its best checkpoint may be missing.
            if _validation_due(cfg, step) and not (history and history[-1]["step"] == step):
                validate_step()
                checkpoint()
                phase = "boundary"
            stopping = not ddp and stop.signum is not None
            while step < cfg.steps and not stopping:
                phase, mark = "step", rng_now()
                idx = batch_indices(len(train_ds), cfg.batch_size, cfg.seed, step)
                mine = idx[rank::world] if ddp else idx
                batch = ct.collate([train_ds[int(i)] for i in mine]).to(device)
                loss, stats = model_loss(net, batch, model)
                finite = bool(torch.isfinite(loss))
                if ddp:
                    # Global loss (graph-weighted mean of the shards), a non-finite flag and a
                    # stop-request flag, so that every rank raises or stops at the same step
                    # instead of leaving the others in a collective.
                    share = len(mine) / len(idx)
                    total = all_reduce_sum([float(loss.detach()) * share if finite else 0.0, 0.0 if finite else 1.0,
                                            0.0 if stop.signum is None else 1.0])
                    if total[1] > 0:
                        raise RunError(f"non-finite training loss at step {step} (on {int(total[1])} of {world} "
                                       "processes); lower --lr or check the data")
                    loss_value = float(total[0])
                    stop_all = bool(total[2] > 0)
                    # DDP averages gradients over ranks; weighting each shard by its share of the
                    # batch makes that the gradient of the whole batch's graph-weighted mean loss.
                    loss = loss * (world * share)
                else:
                    if not finite:
                        raise RunError(f"non-finite training loss at step {step}; lower --lr or check the data")
                    loss_value = loss.item()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                for group in opt.param_groups:
                    group["lr"] = learning_rate(cfg, step)
                phase = "unsafe"
                opt.step()
                step, last_loss = step + 1, loss_value
                phase, mark = "stepped", None
                done_here += 1
                # refresh=False: the update redraws (a forced redraw per step floods a log)
                bar.set_postfix(loss=f"{loss_value:.4f}", refresh=False)
                bar.update(1)
                if on_step is not None:
                    on_step(step)
                if schedule is not None:  # alternating schedule: fit the learned solver on the frozen model
                    phase = "unsafe"
                    schedule.after_step(step)
                    phase = "stepped"
                if _validation_due(cfg, step):
                    validate_step()
                    checkpoint()
                phase = "boundary"
                stopping = stop_all if ddp else stop.signum is not None
                if stopping or (stop_after is not None and done_here >= stop_after):
                    if track.saved_step != step:
                        checkpoint()
                    break
    except KeyboardInterrupt:
        bar.close()
        signum = stop.signum  # None: raised by code, or by a signal this thread could not catch
        if phase == "unsafe":
            what = "at once, in the middle of an update that cannot be saved; "
        else:
            checkpoint(gather=False, rngs=mark)  # the other ranks may be gone; they reseed on resume
            what = "at once; "
            if phase == "validating":
                what = f"at once, during step {step}'s validation (rerun on resume); "
        raise TrainingInterrupted(f"{_signal_name(signum)}: stopped {what}{track.saved(run_dir)}", signum,
                                  track.saved_step) from None
    bar.close()
    if ddp:
        best = broadcast_object(best)
        stopped = bool(all_reduce_sum([0.0 if stop.signum is None else 1.0])[0] > 0)
    else:
        stopped = stop.signum is not None
    signame = _signal_name(stop.signum if stop.signum is not None else signal.SIGINT)
    if stopped and step < cfg.steps:
        raise TrainingInterrupted(f"{signame}: stopped after step {step} of {cfg.steps}; {track.saved(run_dir)}",
                                  stop.signum, track.saved_step)
    track.stage = "finishing the run (the learned solver's fine-tuning, train_summary.json)"
    if step >= cfg.steps and best["step"] < 0:
        last_val = history[-1]["val_loss"] if history else None
        raise RunError(f"no validation of {run_dir} had a finite loss (the last: {last_val}), so it has no best "
                       "checkpoint: training diverged; lower --lr and train into another --out directory")
    learned_report = None
    if schedule is not None and step >= cfg.steps and main:
        schedule.finish(run_dir)  # the best checkpoint's solver, fine-tuned on that checkpoint's model
        learned_report = schedule.report()
    if step >= cfg.steps and main:
        meta = {"steps": step, "step_budget": cfg.step_budget, "best": best,
                "seconds_this_call": time.perf_counter() - t0, "resumed_from": resumed_from,
                "world_size": world, "versions": versions(), **code_provenance(), "hardware": hardware(device),
                "numerics_segments": segments, "train_fingerprint": train_ds.fingerprint, "val_fingerprint": val_ds.fingerprint}
        if learned_report is not None:
            meta["learned_solver"] = learned_report
        if teacher_info is not None:
            meta["align_teacher"] = teacher_info
        atomic_write_text(run_dir / "train_summary.json", dumps_strict(meta))
    if ddp:
        barrier()  # every rank returns once the run is on disk
    if stopped:  # the signal came during the last step: the run is complete, then stop
        raise TrainingInterrupted(f"{signame}: stopped after the last step; {run_dir} is complete (step {step} of "
                                  f"{cfg.steps})", stop.signum, track.saved_step, finished=True)
    return TrainResult(run_dir, step, best["step"], {"loss": best["loss"], "score": best["score"]},
                       time.perf_counter() - t0, resumed_from)


def is_complete(run_dir: Path) -> bool:
    """Whether a run directory holds a finished run (its summary is written last)."""
    return (Path(run_dir) / "train_summary.json").exists() and (Path(run_dir) / "checkpoint_best.pt").exists()
