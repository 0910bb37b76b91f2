"""The defense registry: a name maps to a defense once, for the CLI and configuration files.

A spec is ``name`` or ``name:key=value,key=value``; several specs joined by ``+`` are
applied in the order written (the first one sees the input first)::

    apply_defense(model, "jpeg:quality=75+bits:bits=4")
    apply_defense(model, ["resize-pad:min_scale=0.9", "randomized-dropout:p=0.2"])
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from advlab.defenses.preprocess import (
    BitDepthReduction,
    DefendedClassifier,
    GaussianNoise,
    JpegCompression,
    MedianSmoothing,
    RandomResizePad,
)
from advlab.defenses.randomized import RandomizedDropout, RandomizedNoise
from advlab.errors import AdvlabError, check
from advlab.models.classifier import ImageClassifier


@dataclass(frozen=True)
class DefenseEntry:
    """``build`` is a preprocessor class (``preprocess=True``) or ``(model, **params) -> model``."""

    name: str
    build: Callable[..., Any]
    description: str
    preprocess: bool

    def parameters(self) -> dict[str, Any]:
        """Each parameter's default value (its type is the type of the default)."""
        signature = inspect.signature(self.build)
        return {
            key: p.default
            for key, p in signature.parameters.items()
            if key not in ("self", "model") and p.default is not inspect.Parameter.empty
        }

    def apply(self, model: ImageClassifier, params: dict[str, Any]) -> DefendedClassifier:
        if self.preprocess:
            return DefendedClassifier(model, self.build(**params))
        return self.build(model, **params)  # type: ignore[no-any-return]


DEFENSES: dict[str, DefenseEntry] = {}


def register_defense(entry: DefenseEntry) -> DefenseEntry:
    DEFENSES[entry.name] = entry
    return entry


for _entry in (
    DefenseEntry("jpeg", JpegCompression, "JPEG encode/decode (non-differentiable)", True),
    DefenseEntry("bits", BitDepthReduction, "bit-depth reduction (non-differentiable)", True),
    DefenseEntry("median", MedianSmoothing, "median filter, odd size", True),
    DefenseEntry("noise", GaussianNoise, "Gaussian noise on the pixels (randomized)", True),
    DefenseEntry("resize-pad", RandomResizePad, "random resize and pad (randomized)", True),
    DefenseEntry(
        "randomized-dropout", RandomizedDropout, "dropout kept on at inference (randomized)", False
    ),  # fmt: skip
    DefenseEntry(
        "noise-layer", RandomizedNoise, "Gaussian noise inside the network (randomized)", False
    ),  # fmt: skip
):
    register_defense(_entry)


def registered_defenses() -> list[DefenseEntry]:
    return sorted(DEFENSES.values(), key=lambda entry: entry.name)


def get_defense(name: str) -> DefenseEntry:
    key = name.strip().lower().replace("_", "-")
    if key not in DEFENSES:
        raise AdvlabError(f"unknown defense '{name}': use one of {', '.join(sorted(DEFENSES))}")
    return DEFENSES[key]


def parse_defense(spec: str | Sequence[str]) -> list[tuple[DefenseEntry, dict[str, Any]]]:
    """``"jpeg:quality=75+bits"`` -> ``[(jpeg entry, {"quality": 75}), (bits entry, {})]``."""
    specs = spec.split("+") if isinstance(spec, str) else [p for s in spec for p in s.split("+")]
    check(
        bool(specs) and all(s.strip() for s in specs),
        f"empty defense in {spec!r}: write e.g. 'jpeg:quality=75+bits:bits=4'",
    )
    parsed = []
    for part in specs:
        name, _, rest = part.strip().partition(":")
        entry = get_defense(name)
        parsed.append((entry, _parse_params(entry, rest)))
    return parsed


def _parse_params(entry: DefenseEntry, text: str) -> dict[str, Any]:
    defaults = entry.parameters()
    params: dict[str, Any] = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        check(
            bool(sep) and bool(value.strip()),
            f"defense parameter '{item}' needs a value: write {entry.name}:{key}=VALUE",
        )
        check(
            key in defaults,
            f"defense '{entry.name}' has no parameter '{key}': use {', '.join(defaults) or 'none'}",
        )
        params[key] = _convert(entry.name, key, value.strip(), defaults[key])
    return params


def _convert(defense: str, key: str, value: str, default: Any) -> Any:
    """``value`` as the type of the parameter's default (int, float, bool or str)."""
    kind = type(default)
    try:
        if kind is bool:
            return {"true": True, "false": False}[value.lower()]
        if kind in (int, float):
            return kind(value)
    except (KeyError, ValueError):
        raise AdvlabError(f"{defense}:{key} must be a {kind.__name__}, got '{value}'") from None
    return value


def apply_defense(model: ImageClassifier, spec: str | Sequence[str]) -> ImageClassifier:
    """``model`` behind the defenses named in ``spec``, in the order written."""
    defended: ImageClassifier = model
    for entry, params in reversed(parse_defense(spec)):
        defended = entry.apply(defended, params)
    return defended
