"""The one model type every attack sees: pixels in [0, 1] in, logits out."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class Normalize(nn.Module):
    """Per-channel ``(x - mean) / std`` as the model's first layer."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        # Buffers, not parameters: they move with .to(device) and get no gradients.
        self.register_buffer("mean", torch.tensor(list(mean)).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(list(std)).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class ImageClassifier(nn.Module):
    """A classifier that takes images in [0, 1] and carries its own normalization.

    ``net`` is the bare network (its state dict is what checkpoints hold);
    ``normalize`` maps pixels to the statistics ``net`` was trained on.
    """

    def __init__(
        self,
        net: nn.Module,
        *,
        name: str,
        input_shape: tuple[int, int, int],
        num_classes: int,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        class_names: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        channels = input_shape[0]
        self.normalize: nn.Module = (
            Normalize(mean, std) if mean is not None and std is not None else nn.Identity()
        )
        self.net = net
        self.name = name
        self.input_shape = tuple(input_shape)
        self.num_classes = num_classes
        self.mean = tuple(mean) if mean is not None else (0.0,) * channels
        self.std = tuple(std) if std is not None else (1.0,) * channels
        self.class_names = (
            list(class_names) if class_names else [str(i) for i in range(num_classes)]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.normalize(x))

    @property
    def device(self) -> torch.device:
        for tensor in self.parameters():
            return tensor.device
        for buffer in self.buffers():
            return buffer.device
        return torch.device("cpu")
