"""Model contexts: run a model without changing it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch import nn


@contextlib.contextmanager
def frozen_eval(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode and no parameter gradients for the duration; restore both after.

    Restores every sub-module's own ``training`` flag, not just the top one, so a model
    that keeps e.g. dropout on deliberately is given back exactly as it was found.
    """
    modes = [(module, module.training) for module in model.modules()]
    grads = [(param, param.requires_grad) for param in model.parameters()]
    model.eval()
    for param, _ in grads:
        param.requires_grad_(False)
    try:
        yield model
    finally:
        for module, mode in modes:
            module.training = mode
        for param, flag in grads:
            param.requires_grad_(flag)
