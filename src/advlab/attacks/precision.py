"""Search in bfloat16, judge in float32.

Where bfloat16 is fast (CUDA GPUs; CPUs with AMX, such as Xeon Sapphire Rapids), a CIFAR
ResNet-20 forward+backward pass under ``torch.autocast`` takes ~0.45 of float32's, a
forward ~0.3. An attack's gradient only steers its search, and bfloat16 rounding moves a
step, not the attack. A *verdict* must not move: an image stopped early because a rounding
error put it across the boundary would be reported broken when it is not (or the reverse).

So :class:`BFloat16Search` returns bfloat16 logits only on rows whose top two logits are
further apart than a band (a share of the row's logit range), and the float32 logits of
the model itself on the rows within it: a row's predicted class can only differ from
float32's where the rounding error of its top class against another exceeds that gap.
The band is set per model and widened as the attack goes (:class:`Band`): twice the
largest such error measured on the model's first batch, and at least twice every error
measured since on the rows recomputed, the ones near a boundary. Widening matters: on
FAB's iterates (far out in the box) the error is up to ~7x the first batch's. The gradient
is bfloat16's on every row, and every result is judged on the model in float32.

Turn it on around any attack, or with ``advlab evaluate --precision``::

    with search_precision("bfloat16"):
        result = APGD(eps=8 / 255)(model, images, labels)
"""

from __future__ import annotations

import contextvars
import logging
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import torch
from torch import nn

from advlab.attacks.fold import per_weights
from advlab.errors import check

log = logging.getLogger(__name__)

Precision = Literal["float32", "bfloat16", "auto"]
PRECISIONS: tuple[str, ...] = ("float32", "bfloat16", "auto")
#: The band is at least this many times every bfloat16 error measured (see :class:`Band`) ...
MARGIN = 2.0
#: ... and never narrower than this share of the logit range.
MIN_GAP = 0.02
#: A model whose first batch errs by more than this share is searched in float32.
CHECK = 0.05
#: "auto" searches a model in bfloat16 only where its forward+backward pass takes at most
#: this share of float32's (small models can be slower: the casts cost more than they save).
WORTH = 0.8

_precision: contextvars.ContextVar[str] = contextvars.ContextVar("precision", default="float32")
_checked: weakref.WeakKeyDictionary[nn.Module, tuple[Any, float | None]] = (
    weakref.WeakKeyDictionary()
)
_timed: weakref.WeakKeyDictionary[nn.Module, tuple[Any, bool]] = weakref.WeakKeyDictionary()


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


def resolve(
    precision: str, device: torch.device, net: nn.Module | None = None,
    images: torch.Tensor | None = None,
) -> str:  # fmt: skip
    """``float32`` or ``bfloat16``: what ``precision`` means on ``device``.

    With ``net`` and ``images``, "auto" also times a forward+backward pass of ``net`` on
    ``images`` both ways (once per model and weights) and keeps bfloat16 only where it
    takes at most :data:`WORTH` of float32's time.
    """
    if precision != "auto":
        return precision
    if not fast_bfloat16(device):
        return "float32"
    if net is None or images is None:
        return "bfloat16"
    pays = per_weights(_timed, net, lambda: bfloat16_pays(net, images))
    return "bfloat16" if pays else "float32"


def fast_bfloat16(device: torch.device) -> bool:
    """Whether ``device`` runs bfloat16 convolutions and matmuls faster than float32."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    if device.type == "cpu":
        amx = getattr(torch.cpu, "_is_amx_tile_supported", None)
        return bool(amx is not None and amx())
    return False


def bfloat16_pays(net: nn.Module, images: torch.Tensor) -> bool:
    """Whether ``net``'s forward+backward pass on ``images`` (up to 64, as attacks feed
    them) is at least 1 / :data:`WORTH` times as fast under bfloat16 autocast."""
    sample = images[:64].detach()
    if sample.dim() == 4:
        sample = sample.contiguous(memory_format=torch.channels_last)
    try:
        float32, bfloat16 = (_seconds(net, sample, low) for low in (False, True))
    except Exception as error:  # noqa: BLE001 - what bfloat16 cannot run, float32 searches
        log.info("bfloat16 pass failed (%s): searching in float32", type(error).__name__)
        return False
    log.info("forward+backward: %.3g ms float32, %.3g ms bfloat16", 1e3 * float32, 1e3 * bfloat16)
    return bfloat16 <= WORTH * float32


def _seconds(net: nn.Module, sample: torch.Tensor, bfloat16: bool) -> float:
    """The best of three timed passes, after one that warms the kernels up."""
    best = float("inf")
    for attempt in range(4):
        x = sample.clone().requires_grad_(True)
        if sample.device.type == "cuda":
            torch.cuda.synchronize(sample.device)
        start = time.perf_counter()
        with torch.enable_grad(), torch.autocast(sample.device.type, dtype=torch.bfloat16,
                                                 enabled=bfloat16):  # fmt: skip
            out = net(x)
            torch.autograd.grad(out.float().sum(), x)
        if sample.device.type == "cuda":
            torch.cuda.synchronize(sample.device)
        if attempt:
            best = min(best, time.perf_counter() - start)
    return best


class Band:
    """How close to a decision boundary (top-two gap over logit range) a row is recomputed.

    ``MARGIN`` times the largest error seen: the first batch's, then each recomputed
    row's. The error of a row is what decides its prediction: how far the rounding moved
    its top class against any other class, as a share of the float32 logit range.
    """

    def __init__(self, first_error: float) -> None:
        self.gap = max(MARGIN * first_error, MIN_GAP)

    def widen(self, error: float) -> None:
        if MARGIN * error > self.gap:
            log.debug("bfloat16 band widened from %.3g to %.3g", self.gap, MARGIN * error)
            self.gap = MARGIN * error


def top_class_error(approx: torch.Tensor, exact: torch.Tensor) -> torch.Tensor:
    """Per row: how far rounding moved ``approx``'s top class against any other, over the
    row's ``exact`` logit range. No prediction flips in a row whose gap exceeds it."""
    delta = approx - exact
    top = approx.argmax(dim=1, keepdim=True)
    moved = (delta.gather(1, top) - delta).abs().amax(dim=1)
    return moved / (exact.amax(dim=1) - exact.amin(dim=1)).clamp_min(1e-12)


class BFloat16Search(nn.Module):
    """``net`` under bfloat16 autocast; rows near a decision boundary from ``exact``.

    ``exact`` is the float32 model whose predictions are the verdicts (the user's model);
    ``net`` the one searched on (its folded copy, or itself). ``band`` is this search's
    own: an attack widens it for the rest of its run only.
    """

    def __init__(self, net: nn.Module, exact: nn.Module, band: Band) -> None:
        super().__init__()
        self.net = net
        self.exact = [exact]  # a list: not a sub-module (its parameters are not ours)
        self.band = band
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, dtype=torch.bfloat16):
            logits = self.net(x)
        logits = logits.to(x.dtype)
        approx = logits.detach()
        close = near_boundary(approx, self.band.gap).nonzero().squeeze(1)
        if close.numel() == 0:
            return logits
        with torch.no_grad():
            exact = self.exact[0](x[close].detach())
            self.band.widen(float(top_class_error(approx[close], exact).max()))
            fix = torch.zeros_like(logits)
            fix[close] = exact - approx[close]
        # The float32 values on those rows; the gradient stays bfloat16's.
        return logits + fix


def near_boundary(logits: torch.Tensor, gap: float) -> torch.Tensor:
    """Per row: the top two logits are within ``gap`` of the row's range (max - min)."""
    top = logits.topk(2, dim=1).values
    spread = top[:, 0] - logits.amin(dim=1)
    return top[:, 0] - top[:, 1] <= gap * spread


def bfloat16_search(net: nn.Module, exact: nn.Module, images: torch.Tensor) -> nn.Module:
    """``net`` wrapped in :class:`BFloat16Search`, or ``net`` itself where that is unsafe.

    Unsafe: outputs other than (N, classes) float32 logits (a detector's pair, say), or a
    first-batch error (:func:`top_class_error`) above :data:`CHECK`. The first batch is
    measured once per model and weights; each call gets a fresh :class:`Band` from it.
    """
    error = per_weights(_checked, exact, lambda: _first_error(net, exact, images[:64]))
    return BFloat16Search(net, exact, Band(error)) if error is not None else net


def _first_error(net: nn.Module, exact: nn.Module, images: torch.Tensor) -> float | None:
    """The largest :func:`top_class_error` on ``images``; None where bfloat16 is unsafe."""
    if images.dtype != torch.float32 or images.shape[0] == 0:
        return None
    with torch.no_grad():
        expected = exact(images)
        if not isinstance(expected, torch.Tensor) or expected.dim() != 2 or expected.shape[1] < 2:
            return None
        with torch.autocast(images.device.type, dtype=torch.bfloat16):
            got = net(images)
    error = float(top_class_error(got.float(), expected).max())
    if error > CHECK:
        log.info("bfloat16 error %.3g of the logit range: searching in float32", error)
        return None
    return error
