"""Multi-process training with ``torch.distributed``: one process per device, each with its own
Taichi runtime.

Under ``torchrun --nproc_per_node=N script.py`` every process calls :func:`init` first::

    from taichirast import distributed
    ctx = distributed.init()                 # rank, world size, the torch device to use
    model = torch.nn.parallel.DistributedDataParallel(model.to(ctx.device))
    shard = distributed.shard(batch_indices, ctx)   # this process's part of each global batch
    ...
    distributed.finish(ctx)

Taichi needs nothing special: its runtime is per process (started on the first kernel launch,
``TAICHIRAST_ARCH`` as usual), and taichirast's gradients are ordinary torch gradients, so
``DistributedDataParallel`` averages them like any other. On GPUs, :func:`init` first makes this
process's GPU its only visible CUDA device (:func:`taichirast.runtime.bind_local_gpu`), so that
torch and Taichi use the same one, and uses NCCL; on the CPU it uses gloo.
"""
from __future__ import annotations

import os
from typing import NamedTuple


class Context(NamedTuple):
    """This process's place in the job: ``rank`` of ``world_size`` processes, the torch ``device``
    to put the model and data on, and whether a process group was started (``distributed``)."""

    rank: int
    world_size: int
    device: str
    distributed: bool


def init(backend: str | None = None, device: str | None = None) -> Context:
    """Join the job ``torchrun`` started (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR``
    in the environment); a single process (no ``WORLD_SIZE`` or 1) gets rank 0 of 1 and no group.

    ``device``: ``"cpu"`` for a script whose tensors live on the CPU (no GPU is bound; gloo), else
    the GPU when Taichi is asked for CUDA (``TAICHIRAST_ARCH``; under ``auto``, when one is visible).
    ``backend`` defaults to ``"nccl"`` on CUDA and ``"gloo"`` otherwise.
    """
    from .runtime import bind_local_gpu

    if device not in (None, "cpu", "cuda"):
        raise ValueError(f"distributed.init: device must be 'cpu', 'cuda' or None, got {device!r}")
    if device != "cpu":
        device = bind_local_gpu()  # before anything touches CUDA
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world <= 1:
        return Context(0, 1, device, False)
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend=backend or ("nccl" if device == "cuda" else "gloo"))
    return Context(dist.get_rank(), dist.get_world_size(), device, True)


def shard(items, ctx: Context):
    """This process's part of a global batch: items ``rank, rank + world_size, ...``. Every process
    gets the same count when ``len(items)`` is a multiple of ``world_size`` (then the average of
    the processes' mean losses is the mean loss over the global batch, which is what
    ``DistributedDataParallel``'s gradient averaging gives); otherwise ValueError."""
    items = list(items)
    if len(items) % ctx.world_size:
        raise ValueError(f"shard: a global batch of {len(items)} does not split evenly over "
                         f"{ctx.world_size} processes; use a multiple of {ctx.world_size}")
    return items[ctx.rank::ctx.world_size]


def is_main(ctx: Context) -> bool:
    """Whether this process writes outputs (rank 0)."""
    return ctx.rank == 0


def finish(ctx: Context) -> None:
    """Leave the process group (if one was started), all processes together: a process that tore
    down its group while a peer was still writing its outputs was seen to abort (gloo's threads,
    "terminate called without an active exception"), so a barrier comes first."""
    if ctx.distributed:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()
