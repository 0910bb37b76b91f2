"""Data sets as images in [0, 1] with labels and class names."""

from advlab.data.dataset import ImageDataset
from advlab.data.loaders import DATASETS, load_dataset, subset_positions

__all__ = ["DATASETS", "ImageDataset", "load_dataset", "subset_positions"]
