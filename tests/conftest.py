"""Shared fixtures: small real models and data, built once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from advlab.data import load_dataset
from advlab.models import ImageClassifier, build_model

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """``ADVLAB_DATA_DIR`` (``.ci/run`` sets it); tests that need it skip without it."""
    value = os.environ.get("ADVLAB_DATA_DIR")
    if not value or not Path(value).is_dir():
        pytest.skip("ADVLAB_DATA_DIR is not set to the shared data folder")
    return Path(value)


@pytest.fixture(scope="session")
def mnist_sample() -> tuple[torch.Tensor, torch.Tensor]:
    """256 held-out MNIST images from the bundled demo set, float in [0, 1]."""
    data = load_dataset("mnist-demo", n=256, seed=1)
    return data.images, data.labels


@pytest.fixture(scope="session")
def small_mnist_model() -> ImageClassifier:
    """An MNIST CNN trained for a few seconds on demo images (about 90% accurate).

    Real enough that attacks have something to break, independent of the bundled
    weights, and cheap: a narrow network and 2,000 images.
    """
    torch.manual_seed(0)
    data = load_dataset("mnist-demo", n=2000, seed=0)
    model = build_model("mnist-cnn", width=8, hidden=32)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    generator = torch.Generator().manual_seed(0)
    for _ in range(3):
        order = torch.randperm(len(data), generator=generator)
        for start in range(0, len(data), 64):
            index = order[start : start + 64]
            images, labels = data.pixels[index].float() / 255, data.labels[index]
            optimizer.zero_grad()
            F.cross_entropy(model(images), labels).backward()
            optimizer.step()
    model.eval()
    return model
