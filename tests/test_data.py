"""Data loaders: shapes, ranges, seeded subsets, lookup order and errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from advlab.data import load_dataset
from advlab.errors import AdvlabError


def test_bundled_demo_set_needs_no_data_dir(monkeypatch):
    monkeypatch.delenv("ADVLAB_DATA_DIR", raising=False)
    data = load_dataset("mnist-demo")
    assert len(data) == 5000 and data.image_shape == (1, 28, 28)
    assert torch.bincount(data.labels).tolist() == [500] * 10
    images = data.images
    assert images.dtype == torch.float32 and 0 <= images.min() and images.max() <= 1


def test_seeded_subsets_are_deterministic_and_differ_by_seed():
    a = load_dataset("mnist-demo", n=100, seed=3)
    b = load_dataset("mnist-demo", n=100, seed=3)
    c = load_dataset("mnist-demo", n=100, seed=4)
    assert np.array_equal(a.indices, b.indices) and torch.equal(a.pixels, b.pixels)
    assert not np.array_equal(a.indices, c.indices)
    assert np.all(np.diff(a.indices) > 0)  # kept in original order


@pytest.mark.parametrize(
    ("name", "shape", "classes"),
    [("mnist", (1, 28, 28), 10), ("fashion-mnist", (1, 28, 28), 10), ("cifar10", (3, 32, 32), 10)],
)
def test_array_data_sets_from_the_data_dir(data_dir, name, shape, classes):
    data = load_dataset(name, "test", n=50, seed=0)
    assert data.image_shape == shape and data.num_classes == classes and len(data) == 50


def test_full_mnist_test_split(data_dir):
    data = load_dataset("mnist", "test")
    assert len(data) == 10000
    assert torch.bincount(data.labels)[0] == 980


def test_explicit_data_dir_wins(tmp_path, monkeypatch):
    x = np.full((4, 28, 28), 255, dtype=np.uint8)
    np.savez(tmp_path / "mnist.npz", x_train=x, y_train=np.arange(4), x_test=x, y_test=np.arange(4))
    monkeypatch.setenv("ADVLAB_DATA_DIR", "/nonexistent")
    data = load_dataset("mnist", data_dir=tmp_path)
    assert len(data) == 4 and float(data.images.min()) == 1.0


def test_imagenet_samples_with_labels_csv(data_dir):
    data = load_dataset("imagenet", n=8, seed=0)
    assert data.pixels.shape == (8, 3, 224, 224) and data.num_classes == 1000
    assert data.class_names[0] == "tench"


def test_image_folder_layout(tmp_path):
    from PIL import Image

    for cls in ("cat", "dog"):
        (tmp_path / cls).mkdir()
        for i in range(2):
            Image.new("RGB", (40, 30), (i * 100, 50, 0)).save(tmp_path / cls / f"{i}.png")
    data = load_dataset(f"imagefolder:{tmp_path}", image_size=16)
    assert data.class_names == ["cat", "dog"] and data.labels.tolist() == [0, 0, 1, 1]
    assert data.pixels.shape == (4, 3, 16, 16)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "nope"}, "unknown data set"),
        ({"name": "mnist", "split": "val"}, "unknown split"),
        ({"name": "mnist", "n": 0}, "must be positive"),
        ({"name": "mnist", "data_dir": "/nonexistent/dir"}, "not found"),
        ({"name": "imagefolder:/nonexistent"}, "not found"),
    ],
)
def test_bad_data_requests(kwargs, message):
    with pytest.raises(AdvlabError, match=message):
        load_dataset(**kwargs)


def test_empty_and_corrupt_data_dirs(tmp_path):
    with pytest.raises(AdvlabError, match="not found in"):
        load_dataset("mnist", data_dir=tmp_path, download=False)
    (tmp_path / "mnist.npz").write_bytes(b"this is not a zip")
    with pytest.raises(AdvlabError, match="corrupt"):
        load_dataset("mnist", data_dir=tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(AdvlabError, match="no images"):
        load_dataset(f"imagefolder:{empty}")
