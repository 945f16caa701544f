"""Scale-out on PyTorch's own distributed runtime: ``torchrun`` environment, process group, DDP.

Everything here is a no-op in a plain single process, so the trainers call these helpers
unconditionally and ``dear train`` / ``dear nodecls train`` run unchanged both as
``dear train ...`` and as ``torchrun --nproc-per-node N -m dear.cli train ...``.

``torchrun`` (single or multi-node rendezvous) exports ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR`` and ``MASTER_PORT``; :func:`init_distributed` reads them (``env://``) and
starts the process group once per process: NCCL when the rank runs on a CUDA device, gloo on
CPU (``DEAR_DIST_BACKEND`` overrides). The default collective timeout is long
(``DEAR_DIST_TIMEOUT_MIN``, 120 minutes) because ranks legitimately wait for rank 0 while it
validates or writes a checkpoint, and for each other while seeds of different lengths finish.

Conventions used by the trainers (see ``docs/scale-out.md``):

* **Rank 0 writes, everyone computes.** Only :func:`is_main` writes checkpoints, logs and
  results; whatever the other ranks must know from those files (a resumed state, a config
  error) is sent to them with :func:`broadcast_object`, so a multi-node run needs no shared
  file system for correctness (only rank 0's disk holds the run).
* **Every rank decides alike.** Branches that lead to a collective (a validation step, a
  checkpoint, the end of training) depend only on quantities all ranks share (the step
  number, broadcast values), never on per-rank data such as an equilibrium solver's
  iteration count, so ranks cannot deadlock or desynchronise.
"""

from __future__ import annotations

import atexit
import datetime
import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Sequence, TypeVar

import torch
import torch.distributed as dist
from torch import nn

from dear.io import resolve_device

__all__ = [
    "DistInfo",
    "all_reduce_sum",
    "barrier",
    "broadcast_object",
    "broadcast_parameters",
    "env_local_rank",
    "env_rank",
    "env_world_size",
    "gather_objects",
    "get_rank",
    "get_world_size",
    "init_distributed",
    "is_distributed",
    "is_main",
    "launched_by_torchrun",
    "local_first",
    "rank_device",
    "shard",
    "unwrap",
    "wrap_ddp",
]

T = TypeVar("T")

ENV_BACKEND = "DEAR_DIST_BACKEND"
ENV_TIMEOUT = "DEAR_DIST_TIMEOUT_MIN"
DEFAULT_TIMEOUT_MIN = 120.0


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: ``rank`` of ``world_size`` (``local_rank`` on its machine),
    the ``device`` it computes on and the process group's ``backend`` (``None``: one process)."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    backend: str | None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


# ---------------------------------------------------------------------------- environment


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} is not an integer") from None


def env_world_size() -> int:
    """``WORLD_SIZE`` as ``torchrun`` sets it (1 outside ``torchrun``)."""
    return _env_int("WORLD_SIZE", 1)


def env_rank() -> int:
    """``RANK`` as ``torchrun`` sets it (0 outside ``torchrun``)."""
    return _env_int("RANK", 0)


def env_local_rank() -> int:
    """``LOCAL_RANK``: this process's index on its machine (picks its GPU)."""
    return _env_int("LOCAL_RANK", 0)


def launched_by_torchrun() -> bool:
    """Whether this process is one of several started by ``torchrun`` (``WORLD_SIZE > 1``)."""
    return env_world_size() > 1 and "RANK" in os.environ


def is_distributed() -> bool:
    """Whether a process group with more than one process is running."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def get_rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def get_world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    """Rank 0, the only process that writes files (true in a single process)."""
    return get_rank() == 0


# --------------------------------------------------------------------------------- devices


def rank_device(name: str = "auto", local_rank: int | None = None) -> torch.device:
    """The device this rank computes on.

    ``auto`` and ``cuda`` mean *this rank's* GPU (``cuda:LOCAL_RANK``, modulo the visible
    devices) when CUDA is present, so one ``--device`` setting serves every rank; ``auto``
    falls back to the CPU. An explicit ``cuda:N`` is honoured in a single process but refused
    under ``torchrun`` with several ranks, where it would put them all on one GPU.
    """
    local_rank = env_local_rank() if local_rank is None else local_rank
    world = env_world_size()
    if name in ("auto", "cuda"):
        dev = resolve_device(name)
        if dev.type == "cuda":
            index = local_rank % torch.cuda.device_count()
            torch.cuda.set_device(index)
            return torch.device("cuda", index)
        return dev
    dev = resolve_device(name)
    if dev.type == "cuda" and dev.index is not None and world > 1:
        raise ValueError(f"--device {name} under torchrun would put every rank on one GPU; "
                         "use --device cuda (or auto): each rank then takes cuda:LOCAL_RANK")
    return dev


# ---------------------------------------------------------------------------- process group


def _timeout() -> datetime.timedelta:
    raw = os.environ.get(ENV_TIMEOUT)
    minutes = DEFAULT_TIMEOUT_MIN if not raw else float(raw)
    return datetime.timedelta(minutes=minutes)


def init_distributed(device: str = "auto", backend: str | None = None) -> DistInfo:
    """Start the process group if ``torchrun`` asked for several processes; idempotent.

    Outside ``torchrun`` (or with ``--nproc-per-node 1``) nothing is started and the result
    describes one process on ``resolve_device(device)``. Called by every trainer, so scripts
    that start their own group (``torch.multiprocessing`` in the tests) are respected: an
    existing group is used as is.
    """
    if dist.is_available() and dist.is_initialized():
        dev = rank_device(device, env_local_rank())
        return DistInfo(dist.get_rank(), dist.get_world_size(), env_local_rank(), dev, dist.get_backend())
    world = env_world_size()
    if world <= 1:
        return DistInfo(0, 1, 0, resolve_device(device), None)
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    dev = rank_device(device)
    backend = backend or os.environ.get(ENV_BACKEND) or ("nccl" if dev.type == "cuda" else "gloo")
    dist.init_process_group(backend=backend, init_method="env://", timeout=_timeout(),
                            **({"device_id": dev} if backend == "nccl" else {}))
    atexit.register(_shutdown)
    return DistInfo(dist.get_rank(), dist.get_world_size(), env_local_rank(), dev, backend)


def _shutdown() -> None:
    """Destroy the group at exit (torch warns about groups left alive)."""
    if dist.is_available() and dist.is_initialized():
        try:
            dist.destroy_process_group()
        except Exception:  # noqa: BLE001  a peer already gone: nothing left to clean
            pass


# ------------------------------------------------------------------------------ collectives


def barrier() -> None:
    """Wait for every rank (no-op in one process)."""
    if is_distributed():
        dist.barrier()


def _object_device() -> torch.device | None:
    """Device that NCCL's object collectives stage through (the current GPU)."""
    if is_distributed() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return None


def broadcast_object(obj: T, src: int = 0) -> T:
    """``obj`` as rank ``src`` has it, on every rank (pickled; tensors come back on the CPU
    if they were sent from the CPU)."""
    if not is_distributed():
        return obj
    box = [obj if get_rank() == src else None]
    dist.broadcast_object_list(box, src=src, device=_object_device())
    return box[0]


def gather_objects(obj: T, dst: int = 0) -> list[T] | None:
    """Every rank's ``obj``, in rank order, on rank ``dst`` (``None`` elsewhere)."""
    if not is_distributed():
        return [obj]
    out: list[Any] | None = [None] * get_world_size() if get_rank() == dst else None
    dist.gather_object(obj, out, dst=dst)  # NCCL stages through the current GPU (rank_device set it)
    return out


def all_reduce_sum(values: Sequence[float] | torch.Tensor, device: torch.device | None = None) -> torch.Tensor:
    """Element-wise sum over ranks of a small float64 vector (loss sums, counts, flags)."""
    t = torch.as_tensor(values, dtype=torch.float64)
    if not is_distributed():
        return t
    dev = device if device is not None else (_object_device() or torch.device("cpu"))
    t = t.to(dev)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.cpu()


@torch.no_grad()
def broadcast_parameters(module: nn.Module, src: int = 0) -> None:
    """Copy rank ``src``'s parameters and buffers to every rank.

    DDP keeps replicas equal by averaging gradients, which suffices when every rank applies
    the same update. Updates made outside autograd can differ between ranks (IGNN's
    well-posedness projection uses a bound computed on each rank's own subgraph), so the
    partitioned node-classification trainer re-synchronises IGNN with this after each step.
    """
    if not is_distributed():
        return
    for t in list(module.parameters()) + list(module.buffers()):
        dist.broadcast(t.data, src=src)


@contextmanager
def local_first() -> Iterator[None]:
    """Let local rank 0 of each machine go first (e.g. build a dataset cache), then the rest
    (who then read that cache instead of building it again, concurrently)."""
    if not is_distributed():
        yield
        return
    first = env_local_rank() == 0
    if not first:
        dist.barrier()
    try:
        yield
    finally:
        if first:
            dist.barrier()


# ------------------------------------------------------------------------------- DDP and data


def wrap_ddp(model: nn.Module, device: torch.device, *, find_unused_parameters: bool = True) -> nn.Module:
    """``DistributedDataParallel(model)`` when several processes run, else ``model`` itself.

    ``find_unused_parameters`` defaults to True: a reasoner built from a task spec may hold
    parameters that a given batch does not reach (an encoder of a probe whose rows are all
    absent, a pointer target that is not an edge), and DDP without it then fails at the next
    step. Equilibrium models solve for a different number of iterations on each rank; that is
    harmless because the forward solve runs without autograd and DDP's gradient all-reduce
    happens once, in ``backward``, after every rank's solve has finished.
    """
    if not is_distributed():
        return model
    from torch.nn.parallel import DistributedDataParallel  # noqa: PLC0415

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=find_unused_parameters)


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DDP wrapper (itself if not wrapped)."""
    return getattr(model, "module", model)


def shard(items: Sequence[T] | torch.Tensor, rank: int | None = None,
          world_size: int | None = None) -> Any:
    """This rank's strided share ``items[rank::world_size]`` of a sequence every rank holds.

    Strided (not contiguous) so shards differ in size by at most one and a shuffled global
    batch gives every rank a fair sample of it.
    """
    rank = get_rank() if rank is None else rank
    world_size = get_world_size() if world_size is None else world_size
    return items[rank::world_size]
