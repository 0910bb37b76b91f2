"""Names for defenses and detectors, for the CLI and configuration files.

A defense spec is ``name`` or ``name:key=value,key=value`` (the grammar of
:mod:`advlab.spec`); several specs joined by ``+`` are applied in the order written
(the first one sees the input first)::

    apply_defense(model, "jpeg:quality=75+bits:bits=4")
    apply_defense(model, ["resize-pad:min_scale=0.9", "randomized-dropout:p=0.2"])

A detector is named ``feature-squeezing`` (alias ``squeeze``) or ``binary``; its entry
builds it and the attack that knows it (:func:`build_detector`, :func:`adaptive_attack`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from advlab.attacks.base import Attack
from advlab.attacks.norms import Norm
from advlab.defenses.base import DefendedClassifier
from advlab.defenses.detectors.aware import DetectorAwarePGD, SqueezeAwarePGD
from advlab.defenses.detectors.base import Detector
from advlab.defenses.detectors.binary import BinaryDetector
from advlab.defenses.detectors.squeezing import FeatureSqueezingDetector
from advlab.defenses.preprocess import (
    BitDepthReduction,
    GaussianNoise,
    JpegCompression,
    MedianSmoothing,
    RandomResizePad,
)
from advlab.defenses.randomized import RandomizedDropout, RandomizedNoise
from advlab.errors import AdvlabError
from advlab.models.classifier import ImageClassifier
from advlab.spec import Registry, split_chain, split_spec, typed_option

# -- defenses ---------------------------------------------------------------------------


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
        return self.build(model, **params)


DEFENSES: Registry[DefenseEntry] = Registry("defense")


def register_defense(entry: DefenseEntry) -> DefenseEntry:
    return DEFENSES.register(entry)


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
    return DEFENSES.resolve(name)


def parse_defense(spec: str | Sequence[str]) -> list[tuple[DefenseEntry, dict[str, Any]]]:
    """``"jpeg:quality=75+bits"`` -> ``[(jpeg entry, {"quality": 75}), (bits entry, {})]``."""
    parsed = []
    for part in split_chain(spec, "defense"):
        name, items = split_spec(part)
        entry = get_defense(name)
        defaults = entry.parameters()
        params = dict(
            typed_option(item, defaults, kind="defense", name=entry.name) for item in items
        )
        parsed.append((entry, params))
    return parsed


def apply_defense(model: ImageClassifier, spec: str | Sequence[str]) -> ImageClassifier:
    """``model`` behind the defenses named in ``spec``, in the order written."""
    defended: ImageClassifier = model
    for entry, params in reversed(parse_defense(spec)):
        defended = entry.apply(defended, params)
    return defended


# -- detectors --------------------------------------------------------------------------


@dataclass(frozen=True)
class DetectorEntry:
    """A detector class by name, and the class of the attack on model and detector together."""

    name: str
    detector: type[Detector]
    attack: Callable[..., Attack]
    description: str

    @property
    def build(self) -> Callable[..., Detector]:
        """``build(model, fpr, *, training_attacks, batch_size, seed)``: the unfitted
        detector (see :meth:`~advlab.defenses.detectors.base.Detector.create`)."""
        return self.detector.create

    def aware(
        self,
        detector: Detector,
        eps: float,
        norm: Norm = "linf",
        steps: int = 40,
        seed: int | None = None,
    ) -> Attack:
        """The attack on ``detector`` and its model together."""
        return self.attack(detector, eps=eps, norm=norm, steps=steps, seed=seed)


DETECTORS: Registry[DetectorEntry] = Registry("detector")


def register_detector(entry: DetectorEntry, *aliases: str) -> DetectorEntry:
    return DETECTORS.register(entry, *aliases)


register_detector(
    DetectorEntry(
        "feature-squeezing",
        FeatureSqueezingDetector,
        SqueezeAwarePGD,
        "feature squeezing (Xu et al. 2018): L1 change of the softmax under squeezers",
    ),
    "squeeze",
)
register_detector(
    DetectorEntry(
        "binary",
        BinaryDetector,
        DetectorAwarePGD,
        "a classifier trained on the model's penultimate features, clean vs adversarial",
    )
)


def get_detector(name: str) -> DetectorEntry:
    """The entry of detector ``name`` (``squeeze`` reads as ``feature-squeezing``)."""
    return DETECTORS.resolve(name)


def build_detector(
    name: str, model: ImageClassifier, fpr: float = 0.05, **options: Any
) -> Detector:
    """An unfitted detector by name. ``options`` are those of
    :meth:`~advlab.defenses.detectors.base.Detector.create`: ``training_attacks`` (the
    binary detector's), ``batch_size`` and ``seed``."""
    return get_detector(name).build(model, fpr, **options)


def adaptive_attack(
    detector: Detector, eps: float, norm: Norm = "linf", steps: int = 40, seed: int | None = None
) -> Attack:
    """The attack on model and ``detector`` together, for a detector advlab knows."""
    for entry in DETECTORS.values():
        if isinstance(detector, entry.detector):
            return entry.aware(detector, eps, norm, steps, seed)
    raise AdvlabError(
        f"no adaptive attack is known for {type(detector).__name__}: pass adaptive=False"
    )
