"""Randomized model changes: dropout and noise that stay on at inference.

Both insert a layer into the network (not in pixel space), either on the network's input
(after the model's normalization) or right after its first conv/linear layer, as random
self-ensemble (Liu et al. 2018) adds noise before the convolutions and dropout-at-test
defenses (Feinman et al. 2017, Wang et al. 2018) keep dropout active. The layers ignore
``eval()``: attacks put models in eval mode, and the defense must still be random there.
The network's structure is copied with its weights shared, so the wrapped model is left
exactly as it was and no memory is spent on weights.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from advlab.defenses.base import (
    DefendedClassifier,
    DefenseLayer,
    iter_leaves,
    share_structure,
)
from advlab.defenses.preprocess import GaussianNoise
from advlab.errors import AdvlabError, check
from advlab.models.classifier import ImageClassifier

Where = Literal["input", "first-layer"]
WHERE: tuple[Where, ...] = ("input", "first-layer")


class AlwaysDropout(DefenseLayer):
    """Dropout with probability ``p`` in train *and* eval mode (rescaled by ``1 / (1 - p)``)."""

    randomized = True
    spec_name = "dropout"
    param_names = ("p",)

    def __init__(self, p: float = 0.2) -> None:
        super().__init__()
        check(math.isfinite(p) and 0 <= p < 1, f"dropout p must be in [0, 1), got {p!r}")
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.dropout(x, self.p, training=True)


class NoiseLayer(GaussianNoise):
    """Add N(0, sigma^2) noise to the features in train and eval mode (no clipping)."""

    spec_name = "noise-layer"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.sigma * torch.randn_like(x)


def insert_layer(net: nn.Module, layer: nn.Module, where: Where) -> nn.Module:
    """A structure copy of ``net`` with ``layer`` on its input or after its first layer.

    "First layer" is the first ``Conv2d`` or ``Linear`` in module registration order,
    which is the execution order for every architecture in advlab's registry.
    """
    check(where in WHERE, f"unknown position '{where}': use one of {', '.join(WHERE)}")
    if where == "input":
        return nn.Sequential(layer, net)
    copy = share_structure(net)
    for name, module in iter_leaves(copy):
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            parent_name, _, child = name.rpartition(".")
            parent = copy.get_submodule(parent_name) if parent_name else copy
            setattr(parent, child, nn.Sequential(module, layer))
            return copy
    raise AdvlabError(
        f"{type(net).__name__} has no Conv2d or Linear layer to follow: use where='input'"
    )


class InsertedLayer(DefendedClassifier):
    """``model`` with a random ``layer`` inserted into its network at ``where``.

    The layer is part of the base name (``label(params,where=...)``), so that
    preprocessing added later keeps it in the model's name.
    """

    label = ""

    def __init__(self, model: ImageClassifier, layer: DefenseLayer, where: Where) -> None:
        super().__init__(model)
        self.net = insert_layer(self.net, layer, where)
        args = ",".join(
            f"{key}={value}" for key, value in {**layer.params(), "where": where}.items()
        )
        self.base_name = f"{self.base_name}+{self.label}({args})"
        self.name = self._default_name()


class RandomizedDropout(InsertedLayer):
    """``model`` with dropout (probability ``p``) kept active at inference.

    ``where="first-layer"`` (default) drops activations of the first conv/linear layer;
    ``where="input"`` drops input values after normalization.
    """

    label = "randomized-dropout"

    def __init__(
        self, model: ImageClassifier, p: float = 0.2, where: Where = "first-layer"
    ) -> None:
        super().__init__(model, AlwaysDropout(p), where)


class RandomizedNoise(InsertedLayer):
    """``model`` with a :class:`NoiseLayer` (``sigma``) on the network input or first layer."""

    label = "noise-layer"

    def __init__(
        self, model: ImageClassifier, sigma: float = 0.1, where: Where = "first-layer"
    ) -> None:
        super().__init__(model, NoiseLayer(sigma), where)
