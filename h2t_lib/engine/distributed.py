"""Several processes training one model: torchrun's environment, DistributedDataParallel, rank 0.

``torchrun --standalone --nproc_per_node N -m h2t_lib train ...`` starts N copies of the command with
``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` / ``LOCAL_WORLD_SIZE`` (and the rendezvous address) in their
environment; on several machines torchrun's ``--nnodes`` / ``--rdzv-*`` options do the rest (README,
"Real data and a GPU"). :func:`session` turns that environment into a process group (NCCL on CUDA,
gloo on CPU), one GPU per process (``cuda:LOCAL_RANK``); without it (a plain ``python -m h2t_lib train``)
everything here is a no-op and training runs exactly as in one process.

Besides the main group a small gloo group carries control messages held on the CPU (the time budget's
"stop now", the per-epoch sample counts), so deciding them never waits on the GPU.
"""
from __future__ import annotations

import contextlib
import datetime
import os
from dataclasses import dataclass
from typing import Optional

import torch
import torch.distributed as dist

#: how long a rank waits for the others at a collective (rank 0 alone validates and writes checkpoints)
TIMEOUT = datetime.timedelta(minutes=int(os.environ.get("H2T_DIST_TIMEOUT_MIN", "60")))


@dataclass
class Dist:
    """Where this process stands: rank, world size, its device; ``enabled`` when world_size > 1."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    device: Optional[torch.device] = None
    control: object = None  # the gloo group for CPU-side control messages (None in one process)

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def main(self) -> bool:
        """Rank 0: the one that logs, validates and writes files."""
        return self.rank == 0


def from_env() -> Dist:
    """The torchrun environment (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE); one process without it."""
    env = os.environ
    world = int(env.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    return Dist(rank=int(env["RANK"]), world_size=world, local_rank=int(env.get("LOCAL_RANK", "0")),
                local_world_size=int(env.get("LOCAL_WORLD_SIZE", str(world))))


def process_device(device, d: Dist) -> torch.device:
    """This process's device: with several processes "auto"/"cuda" mean ``cuda:LOCAL_RANK``, one GPU each.

    Raises UserError for CUDA asked for where there is none, or fewer GPUs than processes on a machine.
    """
    from h2t_lib.utils import resolve_device

    if not isinstance(device, str) or not d.enabled:
        return resolve_device(device)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        resolve_device("cuda")  # a clear error without CUDA
        if torch.cuda.device_count() < d.local_world_size:
            from h2t_lib.errors import UserError

            raise UserError(f"{d.local_world_size} processes on this machine but {torch.cuda.device_count()} GPU(s): "
                            f"use --nproc_per_node {torch.cuda.device_count()} (one process per GPU)")
        device = f"cuda:{d.local_rank}"
    return resolve_device(device)


@contextlib.contextmanager
def session(device="auto"):
    """Yield a :class:`Dist` for this process (its ``device`` set), with the process group up when under
    torchrun (NCCL on CUDA, gloo on CPU); the group is taken down at the end if this call made it."""
    d = from_env()
    d.device = process_device(device, d)
    made = False
    if d.enabled and not dist.is_initialized():
        if d.device.type == "cuda":
            torch.cuda.set_device(d.device)
        dist.init_process_group("nccl" if d.device.type == "cuda" else "gloo", timeout=TIMEOUT)
        made = True
    if d.enabled:
        d.control = dist.new_group(backend="gloo", timeout=TIMEOUT) if dist.get_backend() != "gloo" else None
    try:
        yield d
    finally:
        if made:
            dist.destroy_process_group()


def wrap(module: torch.nn.Module, d: Dist, find_unused: bool = False) -> torch.nn.Module:
    """``module`` under DistributedDataParallel (gradients averaged over the ranks in backward); as is in one process.

    ``find_unused``: some steps leave trainable parameters without a gradient (the loss's flows during its
    L1 warm-up); DDP then looks for them after every forward (a graph walk per step), instead of waiting
    for their gradients and failing at the next step ("Expected to have finished reduction ...").
    """
    if not d.enabled:
        return module
    from torch.nn.parallel import DistributedDataParallel

    ids = [d.device.index] if d.device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids, output_device=ids[0] if ids else None,
                                   find_unused_parameters=find_unused)


def sum_(tensor: torch.Tensor, d: Dist, cpu: bool = False) -> torch.Tensor:
    """``tensor`` summed over the ranks, in place (a CPU tensor with ``cpu=True`` goes by the gloo group)."""
    if d.enabled:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM, group=d.control if cpu else None)
    return tensor


def mean(value: torch.Tensor, d: Dist) -> torch.Tensor:
    """The mean of a (device) tensor over the ranks (a new tensor)."""
    return sum_(value.detach().clone(), d) / d.world_size if d.enabled else value


def any_rank(flag: bool, d: Dist) -> bool:
    """True on every rank when ``flag`` is true on one of them (so all ranks stop at the same step)."""
    return max_([float(bool(flag))], d)[0] > 0


def max_(values: list, d: Dist) -> list:
    """The largest of each of ``values`` (floats) over the ranks, by the gloo group (no GPU wait)."""
    if not d.enabled:
        return [float(v) for v in values]
    t = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(t, op=dist.ReduceOp.MAX, group=d.control)
    return t.tolist()


def barrier(d: Dist) -> None:
    """Wait for every rank (e.g. until rank 0 has written a checkpoint)."""
    if d.enabled:
        dist.barrier(group=d.control)
