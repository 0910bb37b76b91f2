"""Runs under ``torchrun``: the process group, each rank's device, and rank 0's say.

``torchrun --nproc_per_node 4 -m advlab.cli.main evaluate ...`` starts four processes
with ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE`` set; :func:`distributed` joins them into
one process group (NCCL on GPUs, gloo on CPUs) for the duration of a run, and the
evaluation deals its batches out to the ranks (:mod:`advlab.evaluation.ranks`). Rank 0
alone checks and writes the results folder and the store, and prints; an error it meets
before the work starts stops every rank (:func:`on_main`), not only its own.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Callable, Iterator
from typing import TypeVar

import torch
import torch.distributed as dist

from advlab.errors import AdvlabError
from advlab.evaluation.ranks import Ranks

_T = TypeVar("_T")


def world_size() -> int:
    """How many processes torchrun started (``WORLD_SIZE``; 1 without torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


@contextlib.contextmanager
def distributed(timeout_s: float = 1800) -> Iterator[Ranks]:
    """Join torchrun's process group for the block (a no-op in one process, or when a
    group is already up) and yield this process's :class:`Ranks`. On a GPU machine each
    rank takes GPU ``LOCAL_RANK``."""
    if world_size() <= 1 or not dist.is_available() or dist.is_initialized():
        yield Ranks.current()
        return
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl" if cuda else "gloo",
                            timeout=datetime.timedelta(seconds=timeout_s))  # fmt: skip
    try:
        yield Ranks.current()
    finally:
        dist.destroy_process_group()


def rank_device(device: torch.device) -> torch.device:
    """``device`` for this rank: a bare ``cuda`` becomes this rank's GPU."""
    if device.type == "cuda" and device.index is None and Ranks.current().world > 1:
        return torch.device("cuda", torch.cuda.current_device())
    return device


def is_main() -> bool:
    """True in one process and on rank 0 (torchrun's ``RANK``, before the group is up
    too): the process that prints and writes files."""
    if dist.is_available() and dist.is_initialized():
        return Ranks.current().main
    return int(os.environ.get("RANK", "0") or 0) == 0


def on_main(work: Callable[[], _T]) -> _T | None:
    """``work()`` on rank 0 only; if it fails there, every rank raises (the others with
    its message), so that no rank waits for a rank 0 that has stopped. None elsewhere."""
    ranks = Ranks.current()
    result = None
    if ranks.main:
        try:
            result = work()
        except Exception as failure:
            ranks.broadcast(str(failure) or type(failure).__name__)
            raise
    error = ranks.broadcast(None)
    if error is not None:
        raise AdvlabError(f"rank 0 stopped: {error}")
    return result
