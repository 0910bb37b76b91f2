"""The in-memory data set type every loader returns."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass
class ImageDataset:
    """Images as uint8 NCHW (converted to float [0, 1] per batch) with int64 labels.

    Keeping pixels as uint8 holds CIFAR-10's training set in 150 MB instead of 600 MB;
    ``indices`` are the positions in the original split, so a subset is reproducible.
    """

    name: str
    split: str
    pixels: torch.Tensor  # uint8, (N, C, H, W)
    labels: torch.Tensor  # int64, (N,)
    class_names: list[str]
    indices: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def __post_init__(self) -> None:
        if self.indices.size == 0:
            self.indices = np.arange(len(self.labels), dtype=np.int64)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        _, c, h, w = self.pixels.shape
        return (int(c), int(h), int(w))

    @property
    def images(self) -> torch.Tensor:
        """All images as float32 in [0, 1] (use :meth:`batches` for large sets)."""
        return self.pixels.float().div_(255.0)

    def subset(self, positions: np.ndarray | list[int]) -> ImageDataset:
        positions = np.asarray(positions, dtype=np.int64)
        index = torch.from_numpy(positions)
        return ImageDataset(
            self.name,
            self.split,
            self.pixels[index],
            self.labels[index],
            self.class_names,
            self.indices[positions],
        )

    def batches(
        self, batch_size: int, start: int = 0
    ) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
        """Yield ``(offset, images, labels)`` from ``start`` on, images float in [0, 1]."""
        for offset in range(start, len(self), batch_size):
            pixels = self.pixels[offset : offset + batch_size]
            yield offset, pixels.float().div_(255.0), self.labels[offset : offset + batch_size]
