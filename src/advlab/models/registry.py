"""The model registry: a name maps to an architecture, its input format and its weights.

The built-in entries come from :mod:`advlab.models.catalog`; the bundled zoo checkpoints
(``advlab/zoo/*.json``) are attached on first lookup.
"""

from __future__ import annotations

import dataclasses
import json
from importlib import resources

from advlab.errors import AdvlabError
from advlab.models.catalog import BUILTIN
from advlab.models.entry import IMAGENET_MEAN, IMAGENET_STD, ModelEntry, WeightsSource
from advlab.models.weights import resolve_default_weights

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "ModelEntry",
    "WeightsSource",
    "get_entry",
    "register",
    "registered_models",
    "resolve_default_weights",
]

_REGISTRY: dict[str, ModelEntry] = {}


def register(entry: ModelEntry) -> ModelEntry:
    _REGISTRY[entry.name] = entry
    return entry


for _entry in BUILTIN:
    register(_entry)


def registered_models() -> list[ModelEntry]:
    get_entry("mnist-cnn")  # attaches the bundled zoo checkpoints once
    return sorted(_REGISTRY.values(), key=lambda entry: entry.name)


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
        # The architecture's entry, with the checkpoint's name, description and weights.
        _REGISTRY[name] = dataclasses.replace(
            base,
            name=name,
            description=meta.get("description", base.description),
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
