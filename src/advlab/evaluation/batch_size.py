"""``--batch-size auto``: a batch whose attack passes fit in the device's free memory.

The memory of one image is measured on the model itself: on a GPU the peak of a
forward+backward pass of a probe batch, on the CPU the bytes of every layer's output in
a forward pass, twice (the backward pass holds their gradients too). A batch may take
:data:`MEMORY_SHARE` of the free memory: attacks also keep several image-sized tensors
per image (best points, momentum, step sizes), and allocators fragment.
"""

from __future__ import annotations

import logging
import os

import torch
from torch import nn

from advlab.models.context import frozen_eval

log = logging.getLogger(__name__)

MEMORY_SHARE = 0.5
#: Larger batches than these gain little on the device, and the store writes results
#: per batch: a smaller batch loses less to an interrupt.
CAP = {"cuda": 2048, "cpu": 256}
PROBE = 8


def auto_batch_size(
    model: nn.Module, input_shape: tuple[int, ...], device: torch.device, n: int | None = None
) -> int:
    """The batch size for attacks of ``model`` on ``device`` (at most ``n``)."""
    per_image = bytes_per_image(model, input_shape, device)
    free = free_bytes(device)
    cap = CAP.get(device.type, CAP["cpu"])
    size = max(1, min(int(MEMORY_SHARE * free // max(per_image, 1)), cap, n or cap))
    log.info("batch size %d: %.1f MiB per image, %.0f MiB free on %s", size,
             per_image / 2**20, free / 2**20, device)  # fmt: skip
    return size


def bytes_per_image(model: nn.Module, input_shape: tuple[int, ...], device: torch.device) -> int:
    """Memory one image takes in a forward+backward pass of ``model`` (input gradient)."""
    x = torch.rand(PROBE, *input_shape, device=device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        _forward_backward(model, x)
        torch.cuda.synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - base) // PROBE
    outputs: list[int] = []

    def count(_: nn.Module, __: object, output: object) -> None:
        if isinstance(output, torch.Tensor):
            outputs.append(output.numel() * output.element_size())

    leaves = [m for m in model.modules() if not list(m.children())]
    hooks = [m.register_forward_hook(count) for m in leaves]
    try:
        _forward_backward(model, x)
    finally:
        for hook in hooks:
            hook.remove()
    return 2 * (sum(outputs) + x.numel() * x.element_size()) // PROBE


def free_bytes(device: torch.device) -> int:
    """Free memory on ``device``: the GPU's, or the machine's available RAM."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 4 * 2**30  # not knowable here: assume a small machine


def _forward_backward(model: nn.Module, x: torch.Tensor) -> None:
    """The input gradient an attack takes (the parameters' ``.grad`` stay as they were)."""
    x.requires_grad_(True)
    with frozen_eval(model):
        torch.autograd.grad(model(x).float().sum(), x)
