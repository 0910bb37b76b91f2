"""The search copy of a model: batch norm folded into the convolution before it, the
weights in channels-last, for the steps of an attack.

In eval mode a ``BatchNorm`` after a convolution (or linear layer) is a fixed affine map
per channel, so it can be folded into that layer's weights and bias: the same function, to
float rounding (~1e-6 on a CIFAR ResNet-20's logits), without the batch-norm passes, which
are ~15% of a ResNet-20 forward+backward on CPU. Attacks use the folded copy only to
*search* (white-box gradient steps, the queries of black-box attacks on a local model):
every verdict (success, robust accuracy) is taken on the model the user gave.

The copy's weights are in channels-last memory format, the layout oneDNN runs
convolutions and pooling fastest in on CPU. Inputs in that layout alone do not get there
when the first convolution sees one channel (an MNIST CNN: a 1-channel batch is both
layouts, and stays in the default one): its copy forwards ~2x faster in float32, ~5x under
bfloat16 autocast, so a model with convolutions and no batch norm gets a copy too.

A copy is made only where it cannot change what the model computes beyond rounding: the
model is in eval mode, every sub-module is a stock ``torch.nn``, torchvision or advlab
layer (a user's own module may branch on its inputs or draw random numbers, which tracing
would freeze), no sub-module has hooks, and the copy's logits match the model's on the
first batch. Anything else, or a model with neither batch norm nor convolution, is
attacked as it is.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any, TypeVar

import torch
from torch import nn

#: Where the layers come from that tracing cannot change the meaning of.
STOCK_MODULES = ("torch.nn.", "torchvision.models.", "torchvision.ops.misc", "advlab.models.")
#: Largest |folded - original| logit difference, relative to the largest logit, accepted.
TOLERANCE = 1e-4

_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
_CONVOLUTIONS = (nn.Conv2d,)
_cache: weakref.WeakKeyDictionary[nn.Module, tuple[Any, nn.Module]] = weakref.WeakKeyDictionary()


def folded(model: nn.Module, images: torch.Tensor) -> nn.Module:
    """``model`` with its batch norms folded, or ``model`` itself where that is not safe.

    ``images`` (a batch the attack is about to run on) checks the folded copy's logits.
    The copy is cached per model and made again when its weights or buffers change.
    """
    if not foldable(model):
        return model
    return per_weights(_cache, model, lambda: _fold(model, images))


class ChannelsLastInputs(nn.Module):
    """``net`` fed channels-last image batches: with its batch norms folded, a CIFAR
    ResNet-20 forward pass then takes ~0.7 of the model's own on CPU."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.net(x)


def foldable(model: nn.Module) -> bool:
    """Eval mode, stock layers without hooks, and a batch norm or a 2-D convolution."""
    modules = list(model.modules())
    return (
        not any(module.training for module in modules)
        and any(isinstance(module, (*_BATCH_NORMS, *_CONVOLUTIONS)) for module in modules)
        and all(type(module).__module__.startswith(STOCK_MODULES) for module in modules[1:])
        and type(model).__module__.startswith(STOCK_MODULES)
        and not any(module._forward_hooks or module._forward_pre_hooks for module in modules)
    )


def _fold(model: nn.Module, images: torch.Tensor) -> nn.Module:
    from torch.fx.experimental.optimization import fuse

    try:
        copy = fuse(model)
    except Exception:  # not traceable: attack the model as it is
        return model
    for param in copy.parameters():
        param.requires_grad_(False)
    if any(isinstance(module, _CONVOLUTIONS) for module in copy.modules()):
        copy = copy.to(memory_format=torch.channels_last)
    copy.eval()
    with torch.no_grad():
        expected, got = model(images), copy(images)
    scale = float(expected.abs().max()) or 1.0
    if got.shape != expected.shape or float((got - expected).abs().max()) > TOLERANCE * scale:
        return model
    return copy


T = TypeVar("T")


def per_weights(
    cache: weakref.WeakKeyDictionary[nn.Module, tuple[Any, T]], model: nn.Module,
    make: Callable[[], T],
) -> T:  # fmt: skip
    """``make()`` once per ``model`` and weights: kept in ``cache`` until they change."""
    key = fingerprint(model)
    cached = cache.get(model)
    if cached is None or cached[0] != key:
        cache[model] = cached = (key, make())
    return cached[1]


def fingerprint(model: nn.Module) -> tuple[Any, ...]:
    """Changes whenever a weight or buffer is replaced or changed in place."""
    tensors = [*model.parameters(), *model.buffers()]
    return tuple((id(tensor), tensor._version, tensor.device) for tensor in tensors)
