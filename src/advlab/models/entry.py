"""What the registry knows about a model: its architecture, input format and weights."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)


@dataclass(frozen=True)
class WeightsSource:
    """Where an entry's default weights live, tried in order: package, data dir, cache, URL."""

    filename: str
    sha256: str
    bundled: bool = False  # shipped inside advlab/zoo
    data_subdir: str = "weights"  # relative to ADVLAB_DATA_DIR
    url: str | None = None
    license: str = ""
    accuracy: float | None = None  # measured top-1 on the entry's data set test split


@dataclass(frozen=True)
class ModelEntry:
    name: str
    description: str
    build: Callable[..., nn.Module]
    input_shape: tuple[int, int, int]
    num_classes: int
    dataset: str
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    class_names: tuple[str, ...] | None = None
    weights: WeightsSource | None = None
    arch_kwargs: dict[str, Any] = field(default_factory=dict)
