"""Training on many processes: ``torchrun`` and DistributedDataParallel.

Under ``torchrun --nproc_per_node N -m advlab.cli.main train ...`` every rank runs the same
trainer on the same seeded batches; each takes its share of every batch (``--batch-size``
is the global batch, so the learning rate means the same as in one process), crafts the
adversarial examples of its share against the raw model, and DistributedDataParallel
averages the gradients. Rank 0 alone writes checkpoints and reports. In one process (no
process group) everything here is the identity.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel


def rank_and_world() -> tuple[int, int]:
    """This process's rank and the number of processes (0 and 1 without a process group)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main() -> bool:
    return rank_and_world()[0] == 0


def rank_device(device: torch.device) -> torch.device:
    """``device`` for this rank: a bare ``cuda`` becomes the GPU torchrun gave the rank."""
    if device.type == "cuda" and device.index is None and rank_and_world()[1] > 1:
        return torch.device("cuda", torch.cuda.current_device())
    return device


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` for the training forward: DistributedDataParallel over it in a group."""
    if rank_and_world()[1] == 1:
        return model
    device_ids = [device.index] if device.type == "cuda" and device.index is not None else None
    return DistributedDataParallel(model, device_ids=device_ids)


def unwrap(model: nn.Module) -> nn.Module:
    """The model without DDP: what attacks run on (DDP expects one backward per forward of
    its own, over its parameters, and an attack's input gradients are not that)."""
    inner = getattr(model, "_orig_mod", model)  # under torch.compile
    return inner.module if isinstance(inner, DistributedDataParallel) else model


def share(index: torch.Tensor) -> torch.Tensor:
    """This rank's part of a batch's image indices (all of them in one process)."""
    rank, world = rank_and_world()
    return index if world == 1 else index.tensor_split(world)[rank]


def total(*values: float) -> list[float]:
    """Each value summed over the ranks (per-rank counts into per-epoch figures)."""
    if rank_and_world()[1] == 1:
        return list(values)
    # NCCL reduces only GPU tensors, gloo CPU ones.
    nccl = dist.get_backend() == "nccl"
    device = torch.device("cuda", torch.cuda.current_device()) if nccl else None
    summed = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(summed)
    return summed.tolist()


def barrier() -> None:
    if rank_and_world()[1] > 1:
        dist.barrier()
