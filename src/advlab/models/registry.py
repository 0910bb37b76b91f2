"""The model registry: a name maps to an architecture, its input format and its weights."""

from __future__ import annotations

import importlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from torch import nn

from advlab.classnames import CIFAR10_CLASSES
from advlab.errors import AdvlabError
from advlab.models import architectures as arch
from advlab.models.checkpoint import load_weights_into, read_sidecar, sha256_of
from advlab.models.classifier import ImageClassifier
from advlab.paths import cache_dir, data_dir

log = logging.getLogger(__name__)

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


_REGISTRY: dict[str, ModelEntry] = {}


def register(entry: ModelEntry) -> ModelEntry:
    _REGISTRY[entry.name] = entry
    return entry


def registered_models() -> list[ModelEntry]:
    get_entry("mnist-cnn")  # attaches the bundled zoo checkpoints once
    return sorted(_REGISTRY.values(), key=lambda entry: entry.name)


register(
    ModelEntry(
        name="mnist-cnn",
        description="Two-conv MNIST CNN trained by advlab (bundled demo model)",
        build=arch.MnistCNN,
        input_shape=(1, 28, 28),
        num_classes=10,
        dataset="mnist",
        mean=MNIST_MEAN,
        std=MNIST_STD,
    )
)
register(
    ModelEntry(
        name="mnist-mlp",
        description="Three-layer fully connected MNIST model (a second architecture)",
        build=arch.MnistMLP,
        input_shape=(1, 28, 28),
        num_classes=10,
        dataset="mnist",
        mean=MNIST_MEAN,
        std=MNIST_STD,
    )
)
register(
    ModelEntry(
        name="cifar-resnet20",
        description="CIFAR-10 ResNet-20 (He et al. 2016), pretrained by Y. Idelbayev, 91.73% top-1",
        build=lambda **kw: arch.CifarResNet(depth=20, **kw),
        input_shape=(3, 32, 32),
        num_classes=10,
        dataset="cifar10",
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        class_names=CIFAR10_CLASSES,
        weights=WeightsSource(
            filename="resnet20-12fca82f.th",
            sha256="12fca82f0bebc4135bf1f32f6e3710e61d5108578464b84fd6d7f5c1b04036c8",
            url="https://github.com/akamaster/pytorch_resnet_cifar10/raw/master/pretrained_models/resnet20-12fca82f.th",
            license="BSD-2-Clause, (c) 2018 Yerlan Idelbayev",
            accuracy=0.9173,
        ),
    )
)
# The deeper siblings of the same family and author, for transfer between architectures.
for _depth, _digest, _accuracy in (
    (32, "d509ac1820d7f25398913559d7e81a13229b1e7adc5648e3bfa5e22dc137f850", 0.9263),
    (44, "014dd6541728a1c700b1642ab640e211dc6eb8ed507d70697458dc8f8a0ae2e4", 0.9310),
    (56, "4bfd97631478d6b638d2764fd2baff3edb1d7d82252d54439343b6596b9b5367", 0.9339),
):
    _file = f"resnet{_depth}-{_digest[:8]}.th"
    register(
        ModelEntry(
            name=f"cifar-resnet{_depth}",
            description=f"CIFAR-10 ResNet-{_depth} (He et al. 2016), pretrained by Y. Idelbayev, "
            f"{_accuracy:.2%} top-1",
            build=lambda _d=_depth, **kw: arch.CifarResNet(depth=_d, **kw),
            input_shape=(3, 32, 32),
            num_classes=10,
            dataset="cifar10",
            mean=IMAGENET_MEAN,
            std=IMAGENET_STD,
            class_names=CIFAR10_CLASSES,
            weights=WeightsSource(
                filename=_file,
                sha256=_digest,
                url=f"https://github.com/akamaster/pytorch_resnet_cifar10/raw/master/pretrained_models/{_file}",
                license="BSD-2-Clause, (c) 2018 Yerlan Idelbayev",
                accuracy=_accuracy,
            ),
        )
    )
register(
    ModelEntry(
        name="cifar-resnet18",
        description="ResNet-18 for 32x32 inputs (width configurable, default 64)",
        build=arch.CifarResNet18,
        input_shape=(3, 32, 32),
        num_classes=10,
        dataset="cifar10",
        mean=(0.4914, 0.4822, 0.4465),
        std=(0.2470, 0.2435, 0.2616),
        class_names=CIFAR10_CLASSES,
    )
)
register(
    ModelEntry(
        name="cifar-mobilenetv2",
        description="MobileNetV2 for 32x32 inputs (width multiplier configurable, default 1.0)",
        build=arch.cifar_mobilenetv2,
        input_shape=(3, 32, 32),
        num_classes=10,
        dataset="cifar10",
        mean=(0.4914, 0.4822, 0.4465),
        std=(0.2470, 0.2435, 0.2616),
        class_names=CIFAR10_CLASSES,
    )
)
for _name in ("resnet50", "mobilenet_v2"):
    register(
        ModelEntry(
            name=_name,
            description=f"torchvision {_name} on ImageNet (weights: torchvision's named weights)",
            build=lambda _n=_name, **kw: _torchvision_build(_n, **kw),
            input_shape=(3, 224, 224),
            num_classes=1000,
            dataset="imagenet",
            mean=IMAGENET_MEAN,
            std=IMAGENET_STD,
        )
    )


def _torchvision_build(name: str, **kwargs: Any) -> nn.Module:
    import torchvision

    return torchvision.models.get_model(name, weights=None, **kwargs)


def _load_zoo_entries() -> None:
    """Attach the bundled zoo checkpoints (advlab/zoo/*.json) to their registry entries."""
    zoo = resources.files("advlab") / "zoo"
    if not zoo.is_dir():
        return
    for item in zoo.iterdir():
        if not item.name.endswith(".json"):
            continue
        meta = json.loads(item.read_text())
        name = meta.get("name", item.name.removesuffix(".json"))
        base = _REGISTRY.get(meta["architecture"])
        if base is None:
            continue
        existing = _REGISTRY.get(name)
        if existing is not None and existing.weights is not None:
            continue
        source = WeightsSource(
            filename=item.name.removesuffix(".json") + ".safetensors",
            sha256=meta.get("sha256", ""),
            bundled=True,
            license=meta.get("license", "BSD-3-Clause (advlab's own training)"),
            accuracy=(meta.get("metrics") or {}).get("test_accuracy"),
        )
        _REGISTRY[name] = ModelEntry(
            name=name,
            description=meta.get("description", base.description),
            build=base.build,
            input_shape=base.input_shape,
            num_classes=base.num_classes,
            dataset=base.dataset,
            mean=base.mean,
            std=base.std,
            class_names=base.class_names,
            weights=source,
            arch_kwargs=dict(meta.get("arch_kwargs") or {}),
        )


_zoo_loaded = False


def get_entry(name: str) -> ModelEntry:
    global _zoo_loaded
    if not _zoo_loaded:
        _load_zoo_entries()
        _zoo_loaded = True
    if name not in _REGISTRY:
        known = ", ".join(sorted(_REGISTRY))
        raise AdvlabError(
            f"unknown model '{name}': use one of {known}, a torchvision name as "
            "'torchvision:NAME', 'package.module:factory', or a checkpoint/TorchScript file"
        )
    return _REGISTRY[name]


def resolve_default_weights(entry: ModelEntry, download: bool = True) -> Path:
    """Find the entry's default weights file, downloading into the cache if allowed."""
    source = entry.weights
    if source is None:
        raise AdvlabError(
            f"model '{entry.name}' has no pretrained weights: pass --weights FILE, "
            f"or train one with 'advlab train --model {entry.name}'"
        )
    candidates: list[Path] = []
    if source.bundled:
        candidates.append(Path(str(resources.files("advlab") / "zoo" / source.filename)))
    root = data_dir()
    if root is not None:
        candidates.append(root / source.data_subdir / source.filename)
    cached = cache_dir() / "weights" / source.filename
    candidates.append(cached)
    for candidate in candidates:
        if candidate.is_file():
            _verify_sha256(candidate, source.sha256)
            return candidate
    if source.url and download:
        return _download(source, cached)
    raise AdvlabError(
        f"weights for '{entry.name}' not found (looked in {', '.join(map(str, candidates))}): "
        "set ADVLAB_DATA_DIR to the folder that holds weights/, or pass --weights FILE"
    )


def _verify_sha256(path: Path, expected: str) -> None:
    if expected and sha256_of(path) != expected:
        raise AdvlabError(
            f"weights file {path} has the wrong sha256 (corrupt or a different file): "
            "delete it and fetch it again"
        )


def _download(source: WeightsSource, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    log.info("downloading %s to %s", source.url, target)
    try:
        torch.hub.download_url_to_file(str(source.url), str(target), hash_prefix=source.sha256)
    except Exception as error:
        raise AdvlabError(
            f"could not download {source.url} ({error}); "
            "download it by hand and pass --weights FILE"
        ) from None
    return target


def _wrap(net: nn.Module, entry: ModelEntry) -> ImageClassifier:
    return ImageClassifier(
        net,
        name=entry.name,
        input_shape=entry.input_shape,
        num_classes=entry.num_classes,
        mean=entry.mean,
        std=entry.std,
        class_names=entry.class_names,
    )


def build_model(name: str, **arch_kwargs: Any) -> ImageClassifier:
    """An untrained registry model (for training)."""
    entry = get_entry(name)
    kwargs = {**entry.arch_kwargs, **arch_kwargs}
    return _wrap(entry.build(**kwargs), entry)


def load_model(
    spec: str,
    weights: str | Path | None = None,
    device: str | torch.device | None = None,
    *,
    pretrained: bool = True,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    **arch_kwargs: Any,
) -> ImageClassifier:
    """Load a model by registry name, torchvision name, factory or file, in eval mode.

    ``spec`` is one of:

    * a registry name (``advlab models`` lists them), e.g. ``"mnist-cnn"``;
    * ``"torchvision:NAME"`` for any torchvision classifier (``weights`` may be a
      torchvision weights name such as ``"IMAGENET1K_V2"`` or ``"DEFAULT"``);
    * ``"package.module:factory"``, a function returning an ``nn.Module``;
    * a ``.safetensors`` checkpoint with its JSON sidecar, or a TorchScript file.

    ``weights`` overrides the default weights with a file (.safetensors, or .pt/.pth read
    with ``weights_only=True``). ``pretrained=False`` returns random weights. The model
    takes images in [0, 1]; ``mean``/``std`` add a normalization layer for factory and
    TorchScript models that expect normalized inputs.
    """
    model = _load_model(spec, weights, pretrained, mean, std, arch_kwargs)
    model.eval()
    if device is not None:
        model.to(resolve_device(device))
    return model


def resolve_device(device: str | torch.device | None) -> torch.device:
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise AdvlabError(f"unknown device '{device}': use cpu, cuda, cuda:N or auto") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise AdvlabError("device 'cuda' requested but no CUDA GPU is available: use --device cpu")
    return resolved


def _load_model(
    spec: str,
    weights: str | Path | None,
    pretrained: bool,
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
    arch_kwargs: dict[str, Any],
) -> ImageClassifier:
    path = Path(spec)
    if path.suffix in {".safetensors", ".pt", ".pth", ".ts", ".jit"} or path.is_file():
        return _load_file_model(path, mean, std)
    if spec.startswith("torchvision:"):
        return _load_torchvision(spec.split(":", 1)[1], weights, pretrained, arch_kwargs)
    if ":" in spec:
        return _load_factory(spec, weights, mean, std, arch_kwargs)
    entry = get_entry(spec)
    if entry.dataset == "imagenet" and entry.weights is None:
        return _load_torchvision(spec, weights, pretrained, arch_kwargs, entry)
    model = build_model(spec, **arch_kwargs)
    if weights is not None:
        load_weights_into(model.net, weights)
    elif pretrained:
        load_weights_into(model.net, resolve_default_weights(entry))
    return model


def _load_file_model(
    path: Path, mean: Sequence[float] | None, std: Sequence[float] | None
) -> ImageClassifier:
    if not path.is_file():
        raise AdvlabError(f"model file not found: {path} (check the path)")
    if path.suffix == ".safetensors":
        meta = read_sidecar(path)
        model = build_model(meta["architecture"], **(meta.get("arch_kwargs") or {}))
        load_weights_into(model.net, path)
        if meta.get("class_names"):
            model.class_names = list(meta["class_names"])
        if meta.get("num_classes"):
            model.num_classes = int(meta["num_classes"])
        if meta.get("input_shape"):
            model.input_shape = tuple(int(v) for v in meta["input_shape"])
        model.name = meta.get("name", path.stem)
        return model
    try:
        net = torch.jit.load(str(path), map_location="cpu")
    except Exception:
        raise AdvlabError(
            f"{path} is not a TorchScript file: for a state dict pass --model ARCH --weights {path}"
        ) from None
    return ImageClassifier(
        net, name=path.stem, input_shape=(0, 0, 0), num_classes=0, mean=mean, std=std
    )


def _load_torchvision(
    name: str,
    weights: str | Path | None,
    pretrained: bool,
    arch_kwargs: dict[str, Any],
    entry: ModelEntry | None = None,
) -> ImageClassifier:
    import torchvision

    try:
        net = torchvision.models.get_model(name, weights=None, **arch_kwargs)
    except ValueError:
        raise AdvlabError(
            f"unknown torchvision model '{name}': see torchvision.models.list_models()"
        ) from None
    if weights is not None and Path(str(weights)).suffix in {".pth", ".pt", ".safetensors"}:
        load_weights_into(net, weights)
    elif pretrained or weights is not None:
        weights_name = str(weights) if weights is not None else "DEFAULT"
        try:
            enum = torchvision.models.get_model_weights(name)
            named = enum[weights_name] if weights_name != "DEFAULT" else enum.DEFAULT
        except (KeyError, ValueError):
            raise AdvlabError(
                f"unknown weights '{weights_name}' for torchvision model '{name}'"
            ) from None
        _load_torchvision_weights(net, named)
    num_classes = int(arch_kwargs.get("num_classes", 1000))
    return ImageClassifier(
        net,
        name=entry.name if entry else name,
        input_shape=(3, 224, 224),
        num_classes=num_classes,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
    )


def _load_torchvision_weights(net: nn.Module, named: Any) -> None:
    """torchvision's named weights from the torch hub cache, downloaded only when absent.

    torch.hub checks the checksum only when it downloads and unpickles with
    ``weights_only=False`` unless told otherwise: a file in the cache is read as data only.
    """
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(named.url).path).name
    try:
        state = named.get_state_dict(progress=True, check_hash=True, weights_only=True)
    except Exception as error:
        if cached.is_file():
            raise AdvlabError(
                f"cannot read the cached torchvision weights {cached} ({type(error).__name__}: "
                f"{str(error).splitlines()[0][:200]}): delete the file to download it again"
            ) from None
        raise AdvlabError(
            f"torchvision weights {named} are not cached and could not be downloaded "
            f"({type(error).__name__}); copy the file to {cached} or pass --weights "
            "FILE.pth, or --no-pretrained for random weights"
        ) from None
    try:
        net.load_state_dict(state)
    except RuntimeError as error:
        raise AdvlabError(
            f"the cached torchvision weights {cached} do not fit {named}: "
            f"{str(error).splitlines()[0][:200]}; delete the file to download it again"
        ) from None


def _load_factory(
    spec: str,
    weights: str | Path | None,
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
    arch_kwargs: dict[str, Any],
) -> ImageClassifier:
    module_name, _, attr = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as error:
        raise AdvlabError(f"cannot import model factory '{spec}': {error}") from None
    net = factory(**arch_kwargs)
    if isinstance(net, ImageClassifier):
        model = net
    else:
        if not isinstance(net, nn.Module):
            raise AdvlabError(
                f"model factory '{spec}' returned {type(net).__name__}, not nn.Module"
            )
        model = ImageClassifier(
            net, name=spec, input_shape=(0, 0, 0), num_classes=0, mean=mean, std=std
        )
    if weights is not None:
        load_weights_into(model.net, weights)
    return model
