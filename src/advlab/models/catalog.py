"""The models advlab knows by name: its own, the CIFAR-10 ResNets, torchvision's ImageNet ones.

Pure data: :mod:`advlab.models.registry` registers these entries (and the bundled zoo).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from advlab.classnames import CIFAR10_CLASSES
from advlab.models.architectures import (
    CifarResNet,
    CifarResNet18,
    MnistCNN,
    MnistMLP,
    cifar_mobilenetv2,
)
from advlab.models.entry import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    MNIST_MEAN,
    MNIST_STD,
    ModelEntry,
    WeightsSource,
)

BUILTIN: list[ModelEntry] = []
register = BUILTIN.append


def _torchvision_build(name: str, **kwargs: Any) -> nn.Module:
    import torchvision

    return torchvision.models.get_model(name, weights=None, **kwargs)


#: What every model of a data set shares: input shape, classes and normalization.
_DATASETS: dict[str, dict[str, Any]] = {
    "mnist": {"input_shape": (1, 28, 28), "num_classes": 10, "mean": MNIST_MEAN, "std": MNIST_STD},
    "cifar10": {
        "input_shape": (3, 32, 32),
        "num_classes": 10,
        "mean": (0.4914, 0.4822, 0.4465),
        "std": (0.2470, 0.2435, 0.2616),
        "class_names": CIFAR10_CLASSES,
    },
    "imagenet": {
        "input_shape": (3, 224, 224),
        "num_classes": 1000,
        "mean": IMAGENET_MEAN,
        "std": IMAGENET_STD,
    },
}


def _entry(
    dataset: str, name: str, description: str, build: Callable[..., nn.Module], **options: Any
) -> None:
    """Register a model of ``dataset``; ``options`` override the data set's defaults."""
    fields = {**_DATASETS[dataset], **options}
    register(ModelEntry(name=name, description=description, build=build, dataset=dataset, **fields))


_entry("mnist", "mnist-cnn", "Two-conv MNIST CNN trained by advlab (bundled demo model)", MnistCNN)
_entry(
    "mnist",
    "mnist-mlp",
    "Three-layer fully connected MNIST model (a second architecture)",
    MnistMLP,
)
# The CIFAR-10 ResNets of one family and author (He et al. 2016, pretrained by Y. Idelbayev);
# the deeper siblings are there for transfer between architectures.
for _depth, _digest, _accuracy in (
    (20, "12fca82f0bebc4135bf1f32f6e3710e61d5108578464b84fd6d7f5c1b04036c8", 0.9173),
    (32, "d509ac1820d7f25398913559d7e81a13229b1e7adc5648e3bfa5e22dc137f850", 0.9263),
    (44, "014dd6541728a1c700b1642ab640e211dc6eb8ed507d70697458dc8f8a0ae2e4", 0.9310),
    (56, "4bfd97631478d6b638d2764fd2baff3edb1d7d82252d54439343b6596b9b5367", 0.9339),
):
    _file = f"resnet{_depth}-{_digest[:8]}.th"
    _entry(
        "cifar10",
        f"cifar-resnet{_depth}",
        f"CIFAR-10 ResNet-{_depth} (He et al. 2016), pretrained by Y. Idelbayev, "
        f"{_accuracy:.2%} top-1",
        lambda _d=_depth, **kw: CifarResNet(depth=_d, **kw),
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        weights=WeightsSource(
            filename=_file,
            sha256=_digest,
            url=f"https://github.com/akamaster/pytorch_resnet_cifar10/raw/master/pretrained_models/{_file}",
            license="BSD-2-Clause, (c) 2018 Yerlan Idelbayev",
            accuracy=_accuracy,
        ),
    )
_entry(
    "cifar10",
    "cifar-resnet18",
    "ResNet-18 for 32x32 inputs (width configurable, default 64)",
    CifarResNet18,
)
_entry(
    "cifar10",
    "cifar-mobilenetv2",
    "MobileNetV2 for 32x32 inputs (width multiplier configurable, default 1.0)",
    cifar_mobilenetv2,
)
for _name in ("resnet50", "mobilenet_v2"):
    _entry(
        "imagenet",
        _name,
        f"torchvision {_name} on ImageNet (weights: torchvision's named weights)",
        lambda _n=_name, **kw: _torchvision_build(_n, **kw),
    )
