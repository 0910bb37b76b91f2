"""The model an attack searches on, and the model that judges it.

An attack's steps may run on a faster stand-in for the user's model: its batch norms
folded (:mod:`advlab.attacks.fold`), compiled with ``torch.compile`` (opt-in:
:func:`compiled_search`), in bfloat16 with float32 predictions
(:mod:`advlab.attacks.precision`). Success is always judged on the model itself.
"""

from __future__ import annotations

import contextvars
import logging
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from advlab.attacks.fold import folded, per_weights
from advlab.attacks.gradient import layout
from advlab.attacks.precision import bfloat16_search, current_precision, resolve

log = logging.getLogger(__name__)

_compile: contextvars.ContextVar[bool] = contextvars.ContextVar("compile", default=False)
#: (gradients, bfloat16) -> the compiled copy that worked in that mode, or the module itself.
Modes = dict[tuple[bool, bool], nn.Module]
_compiled: weakref.WeakKeyDictionary[nn.Module, tuple[Any, Modes]] = weakref.WeakKeyDictionary()


@contextmanager
def compiled_search(enabled: bool = True) -> Iterator[None]:
    """Attacks called inside search on ``torch.compile`` of their stand-in model.

    The first batch pays the compilation (tens of seconds on a CPU, per input shape
    family and mode: forward, forward+backward, bfloat16); later ones run the fused
    kernels. Worth it for long runs only; where compilation fails (no C++ compiler, an
    operator it cannot trace) the attack warns once and runs the model as it is.
    """
    token = _compile.set(bool(enabled))
    try:
        yield
    finally:
        _compile.reset(token)


def search_model(model: nn.Module, images: torch.Tensor, gradients: bool = True) -> nn.Module:
    """The stand-in for ``model`` that ``images`` are attacked on (``model`` if none is safe).

    ``gradients``: whether the attack differentiates through it (a compiled stand-in is
    tried on what the attack will run).
    """
    search = folded(model, images)
    bfloat16 = resolve(current_precision(), images.device, search, images) == "bfloat16"
    if _compile.get():
        search = _compiled_copy(search, images, gradients, bfloat16)
    if bfloat16:
        search = bfloat16_search(search, model, images)
    return search


def _compiled_copy(
    net: nn.Module, images: torch.Tensor, gradients: bool, bfloat16: bool
) -> nn.Module:
    """``torch.compile(net)``, once per module, weights and mode, if it runs on ``images``."""
    modes = per_weights(_compiled, net, dict)
    mode = (gradients, bfloat16)
    if mode not in modes:
        modes[mode] = _try_compile(net, images, gradients, bfloat16)
    return modes[mode]


def _try_compile(
    net: nn.Module, images: torch.Tensor, gradients: bool, bfloat16: bool
) -> nn.Module:
    # dynamic: the batch shrinks as images are broken; one graph serves every size.
    candidate: nn.Module = torch.compile(net, dynamic=True)  # type: ignore[assignment]
    try:
        # (attacks feed channels-last batches: the layout the graph is traced for)
        trial = images[:2].detach().contiguous(memory_format=layout(images))
        trial.requires_grad_(gradients)
        with torch.enable_grad(), torch.autocast(images.device.type, enabled=bfloat16,
                                                 dtype=torch.bfloat16):  # fmt: skip
            out = candidate(trial)
            if gradients:
                torch.autograd.grad(out.float().sum(), trial)
    except Exception as error:  # noqa: BLE001 - any failure: search on the model as it is
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        log.warning("torch.compile failed (%s): searching on the model uncompiled", first_line)
        candidate = net
    return candidate
