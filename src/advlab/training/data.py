"""The training and validation sets of a run, and the batch augmentation.

Everything here is seeded: the same config picks the same images, so a resumed run sees
exactly the data the interrupted one saw.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from advlab.data import ImageDataset, load_dataset, subset_positions
from advlab.errors import AdvlabError
from advlab.training.config import TrainConfig

log = logging.getLogger(__name__)


@dataclass
class TrainData:
    train: ImageDataset
    val: ImageDataset
    excluded: int  # training images dropped because they are in ``config.exclude``


def image_hashes(pixels: torch.Tensor) -> list[str]:
    """sha256 of each image's uint8 bytes: equal images, equal hashes."""
    array = pixels.numpy()
    return [hashlib.sha256(image.tobytes()).hexdigest() for image in array]


def exclusion_mask(train: ImageDataset, other: ImageDataset) -> np.ndarray:
    """True for each training image whose pixels also appear in ``other``."""
    if train.image_shape != other.image_shape:
        raise AdvlabError(
            f"cannot exclude '{other.name}' from '{train.name}': images are "
            f"{other.image_shape} vs {train.image_shape}; exclude a set of the same image size"
        )
    seen = set(image_hashes(other.pixels))
    return np.array([digest in seen for digest in image_hashes(train.pixels)], dtype=bool)


def prepare_data(config: TrainConfig) -> TrainData:
    """Load the train split, drop excluded images, then split off validation and subset."""
    name = config.dataset_name
    full = load_dataset(name, split="train", data_dir=config.data_dir)
    positions = np.arange(len(full), dtype=np.int64)
    excluded = 0
    if config.exclude is not None:
        # mnist-demo (and every evaluation-only set) has only a test split.
        other = load_dataset(config.exclude, split="test", data_dir=_data_dir_for(config))
        drop = exclusion_mask(full, other)
        excluded = int(drop.sum())
        positions = positions[~drop]
        log.info("excluded %d training images that are also in %s", excluded, config.exclude)
    if config.val_split == "test":
        val = load_dataset(name, split="test", data_dir=config.data_dir)
    else:
        # A seeded permutation of what is left, so the held-out part never meets training.
        order = np.random.default_rng(config.seed).permutation(len(positions))
        n_val = max(1, int(round(len(positions) * float(config.val_split))))
        val = full.subset(np.sort(positions[order[:n_val]]))
        positions = np.sort(positions[order[n_val:]])
    if config.n_train is not None:
        positions = positions[subset_positions(len(positions), config.n_train, config.seed)]
    if config.n_val is not None:
        val = val.subset(subset_positions(len(val), config.n_val, config.seed))
    if len(positions) == 0:
        raise AdvlabError("no training images left after exclusion: check --exclude and --n-train")
    return TrainData(full.subset(positions), val, excluded)


def _data_dir_for(config: TrainConfig) -> Path | None:
    # A data_dir that is one .npz file names the training set only.
    if config.data_dir is not None and Path(config.data_dir).expanduser().is_dir():
        return config.data_dir
    return None


def augment_batch(pixels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random crop (zero padding 4 for 32x32 RGB, 2 for one-channel images) and, for RGB,
    a random horizontal flip; uint8 in, uint8 out, drawn from ``generator`` only."""
    n, channels, height, width = pixels.shape
    pad = 4 if channels == 3 else 2
    padded = torch.nn.functional.pad(pixels, (pad, pad, pad, pad))
    offsets = torch.randint(0, 2 * pad + 1, (n, 2), generator=generator)
    out = torch.empty_like(pixels)
    for i, (dy, dx) in enumerate(offsets.tolist()):
        out[i] = padded[i, :, dy : dy + height, dx : dx + width]
    if channels == 3:
        flip = torch.rand(n, generator=generator) < 0.5
        out[flip] = out[flip].flip(-1)
    return out
