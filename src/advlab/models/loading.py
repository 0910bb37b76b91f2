"""``load_model`` and ``build_model``: a spec (name, file, factory) to a model in eval mode.

A TorchScript file and a ``package.module:factory`` spec run code when loaded: load them
only from sources you trust. A registry name or a ``.safetensors`` checkpoint runs none.
"""

from __future__ import annotations

import importlib
import inspect
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from advlab.errors import AdvlabError
from advlab.models.checkpoint import load_weights_into, read_sidecar, sidecar_path
from advlab.models.classifier import ImageClassifier
from advlab.models.entry import IMAGENET_MEAN, IMAGENET_STD, ModelEntry
from advlab.models.registry import get_entry
from advlab.models.weights import load_torchvision_weights, resolve_default_weights

_SPEC_FORMS = (
    "a registry name (advlab models), 'torchvision:NAME', 'package.module:factory', "
    "or a .safetensors/TorchScript file"
)


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
    try:
        net = entry.build(**kwargs)
    except (TypeError, ValueError) as error:
        raise AdvlabError(
            f"model '{name}' cannot be built with arguments {kwargs} "
            f"({_first_line(error)}): drop or fix them"
        ) from None
    return _wrap(net, entry)


def load_model(
    spec: str | os.PathLike[str],
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
    * ``"package.module:factory"``, a function returning an ``nn.Module`` (this imports
      and runs that code: use only factories you trust);
    * a ``.safetensors`` checkpoint with its JSON sidecar (runs no code), or a TorchScript
      file (runs the code it holds: load only files you trust).

    ``weights`` overrides the default weights with a file (.safetensors, or .pt/.pth read
    with ``weights_only=True``). ``pretrained=False`` returns random weights. The model
    takes images in [0, 1]; ``mean``/``std`` add a normalization layer for factory and
    TorchScript models that expect normalized inputs.
    """
    if not isinstance(spec, (str, os.PathLike)) or not os.fspath(spec):
        raise AdvlabError(f"load_model needs a model spec, got {spec!r}: pass {_SPEC_FORMS}")
    model = _load_model(os.fspath(spec), weights, pretrained, mean, std, arch_kwargs)
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


def _first_line(error: BaseException, limit: int = 200) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0][:limit] if text else ''}".rstrip(": ")


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
        return _load_checkpoint(path)
    try:
        net = torch.jit.load(str(path), map_location="cpu")
    except Exception:
        raise AdvlabError(
            f"{path} is not a TorchScript file: for a state dict pass --model ARCH --weights {path}"
        ) from None
    return ImageClassifier(
        net, name=path.stem, input_shape=(0, 0, 0), num_classes=0, mean=mean, std=std
    )


def _load_checkpoint(path: Path) -> ImageClassifier:
    """A ``.safetensors`` checkpoint built from its sidecar, every sidecar field checked."""
    meta = read_sidecar(path)
    side = sidecar_path(path)

    def bad(field: str, want: str) -> AdvlabError:
        value = repr(meta.get(field))[:80]
        return AdvlabError(f"checkpoint sidecar {side} has {field}={value}: it must be {want}")

    architecture = meta["architecture"]
    if not isinstance(architecture, str):
        raise bad("architecture", "a registry model name")
    kwargs = meta.get("arch_kwargs") or {}
    if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
        raise bad("arch_kwargs", "an object of the architecture's arguments")
    num_classes = meta.get("num_classes")
    if num_classes is not None and (type(num_classes) is not int or num_classes < 1):
        raise bad("num_classes", "a positive integer")
    shape = meta.get("input_shape")
    if shape is not None and not (
        isinstance(shape, list) and len(shape) == 3 and all(type(v) is int and v > 0 for v in shape)
    ):
        raise bad("input_shape", "a list of three positive integers [C, H, W]")
    names = meta.get("class_names")
    if names is not None and not isinstance(names, list):
        raise bad("class_names", "a list of names")
    try:
        model = build_model(architecture, **kwargs)
    except AdvlabError as error:
        raise AdvlabError(f"checkpoint sidecar {side}: {error}") from None
    load_weights_into(model.net, path)
    if names:
        model.class_names = [str(name) for name in names]
    if num_classes:
        model.num_classes = num_classes
    if shape:
        model.input_shape = tuple(shape)
    model.name = str(meta.get("name", path.stem))
    return model


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
        load_torchvision_weights(net, named)
    num_classes = int(arch_kwargs.get("num_classes", 1000))
    return ImageClassifier(
        net,
        name=entry.name if entry else name,
        input_shape=(3, 224, 224),
        num_classes=num_classes,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
    )


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
    except (ImportError, AttributeError, ValueError, TypeError) as error:
        raise AdvlabError(f"cannot import model factory '{spec}': {_first_line(error)}") from None
    is_module_class = inspect.isclass(factory) and issubclass(factory, nn.Module)
    builtin_or_class = inspect.isbuiltin(factory) or inspect.isclass(factory)
    if not callable(factory) or (builtin_or_class and not is_module_class):
        raise AdvlabError(
            f"'{spec}' is not a model factory ({type(factory).__name__}): name a function "
            "or nn.Module class that returns the model, e.g. torchvision.models:resnet18"
        )
    try:
        net = factory(**arch_kwargs)
    except Exception as error:
        raise AdvlabError(
            f"model factory '{spec}' failed ({_first_line(error)}): check its arguments"
        ) from None
    if isinstance(net, ImageClassifier):
        model = net
    else:
        if not isinstance(net, nn.Module):
            raise AdvlabError(
                f"model factory '{spec}' returned {type(net).__name__}, not an nn.Module: "
                "name a function that returns the model"
            )
        model = ImageClassifier(
            net, name=spec, input_shape=(0, 0, 0), num_classes=0, mean=mean, std=std
        )
    if weights is not None:
        load_weights_into(model.net, weights)
    return model
