"""Search in bfloat16, judge in float32.

Where bfloat16 is fast (CUDA GPUs; CPUs with AMX, such as Xeon Sapphire Rapids), a CIFAR
ResNet-20 forward+backward pass under ``torch.autocast`` takes ~0.45 of float32's, a
forward ~0.3. An attack's gradient only steers its search, and bfloat16 rounding moves a
step, not the attack. A *verdict* must not move: an image stopped early because a rounding
error put it across the boundary would be reported broken when it is not (or the reverse).
So :class:`BFloat16Search` returns bfloat16 logits only where a row's top two logits are
further apart than :data:`GAP` of its logit range (~6x the largest bfloat16 error measured
on advlab's zoo models: 1.7% of the range), and the float32 logits of the model itself on
the other rows: every prediction it gives, and so every early stop and success, is the
float32 one. The gradient is bfloat16's on every row.

Turn it on around any attack, or with ``advlab evaluate --precision``::

    with search_precision("bfloat16"):
        result = APGD(eps=8 / 255)(model, images, labels)
"""

from __future__ import annotations

import contextvars
import logging
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import torch
from torch import nn

from advlab.attacks.fold import fingerprint
from advlab.errors import check

log = logging.getLogger(__name__)

Precision = Literal["float32", "bfloat16", "auto"]
PRECISIONS: tuple[str, ...] = ("float32", "bfloat16", "auto")
#: A row is recomputed in float32 when its top-two gap is at most this share of its range.
GAP = 0.1
#: The first batch's largest bfloat16 error, as a share of the logit range, must stay
#: below this (a quarter of the gap) or the model is searched in float32.
CHECK = GAP / 4

_precision: contextvars.ContextVar[str] = contextvars.ContextVar("precision", default="float32")
_checked: weakref.WeakKeyDictionary[nn.Module, tuple[Any, bool]] = weakref.WeakKeyDictionary()


@contextmanager
def search_precision(precision: str) -> Iterator[None]:
    """Attacks called inside search in ``precision`` ("auto": bfloat16 where it is fast)."""
    check_precision(precision)
    token = _precision.set(precision)
    try:
        yield
    finally:
        _precision.reset(token)


def check_precision(precision: str) -> None:
    check(precision in PRECISIONS,
          f"unknown precision '{precision}': use {', '.join(PRECISIONS)}")  # fmt: skip


def current_precision() -> str:
    return _precision.get()


def resolve(precision: str, device: torch.device) -> str:
    """``float32`` or ``bfloat16``: what ``precision`` means on ``device``."""
    if precision != "auto":
        return precision
    return "bfloat16" if fast_bfloat16(device) else "float32"


def fast_bfloat16(device: torch.device) -> bool:
    """Whether ``device`` runs bfloat16 convolutions and matmuls faster than float32."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    if device.type == "cpu":
        amx = getattr(torch.cpu, "_is_amx_tile_supported", None)
        return bool(amx is not None and amx())
    return False


class BFloat16Search(nn.Module):
    """``net`` under bfloat16 autocast; rows near a decision boundary from ``exact``.

    ``exact`` is the float32 model whose predictions are the verdicts (the user's model);
    ``net`` the one searched on (its folded copy, or itself).
    """

    def __init__(self, net: nn.Module, exact: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.exact = [exact]  # a list: not a sub-module (its parameters are not ours)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, dtype=torch.bfloat16):
            logits = self.net(x)
        logits = logits.to(x.dtype)
        close = near_boundary(logits.detach()).nonzero().squeeze(1)
        if close.numel() == 0:
            return logits
        with torch.no_grad():
            fix = torch.zeros_like(logits)
            fix[close] = self.exact[0](x[close].detach()) - logits.detach()[close]
        # The float32 values on those rows; the gradient stays bfloat16's.
        return logits + fix


def near_boundary(logits: torch.Tensor, gap: float = GAP) -> torch.Tensor:
    """Per row: the top two logits are within ``gap`` of the row's range (max - min)."""
    top = logits.topk(2, dim=1).values
    spread = top[:, 0] - logits.amin(dim=1)
    return top[:, 0] - top[:, 1] <= gap * spread


def bfloat16_search(net: nn.Module, exact: nn.Module, images: torch.Tensor) -> nn.Module:
    """``net`` wrapped in :class:`BFloat16Search`, or ``net`` itself where that is unsafe.

    Unsafe: outputs other than (N, classes) float32 logits (a detector's pair, say), or a
    first-batch bfloat16 error above :data:`CHECK` of the logit range. The check runs
    once per model and weights.
    """
    key = fingerprint(exact)
    cached = _checked.get(exact)
    if cached is None or cached[0] != key:
        _checked[exact] = cached = (key, _agrees(net, exact, images[:64]))
    return BFloat16Search(net, exact) if cached[1] else net


def _agrees(net: nn.Module, exact: nn.Module, images: torch.Tensor) -> bool:
    if images.dtype != torch.float32 or images.shape[0] == 0:
        return False
    with torch.no_grad():
        expected = exact(images)
        if not isinstance(expected, torch.Tensor) or expected.dim() != 2 or expected.shape[1] < 2:
            return False
        with torch.autocast(images.device.type, dtype=torch.bfloat16):
            got = net(images)
    spread = (expected.amax(dim=1) - expected.amin(dim=1)).clamp_min(1e-12)
    error = float(((got.float() - expected).abs().amax(dim=1) / spread).max())
    if error > CHECK:
        log.info("bfloat16 error %.3g of the logit range: searching in float32", error)
        return False
    return True
