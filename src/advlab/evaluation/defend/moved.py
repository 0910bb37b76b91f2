"""Code that is moving to ``advlab.defenses`` (issue 11), kept here unchanged until the merge.

The detector registry and its ``Detector`` protocol, and ``RescaledLogits``, of the
defense comparison; and the detectors of the detection evaluation (``advlab detect``):
``DETECTION_DETECTORS`` (its ``DETECTORS``), ``ScoringDetector`` (its ``Detector``),
``build_detector``, ``adaptive_attack`` and ``detector_config``. The defenses helper
writes ``defenses/registry.py`` (one registry of detectors) and ``defenses/adaptive.py``
(``RescaledLogits``); at the merge this module is deleted and its importers import
from there.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from advlab.attacks import Attack
from advlab.attacks.threat import Norm
from advlab.defenses import DefendedClassifier
from advlab.defenses.binary_detector import BinaryDetector, DetectorAwarePGD
from advlab.defenses.detection import FeatureSqueezingDetector, SqueezeAwarePGD
from advlab.defenses.preprocess import describe
from advlab.errors import AdvlabError, check
from advlab.models import ImageClassifier

# -- detectors: anything with fit / detect, registered by name ---------------------------


class Detector(Protocol):
    """What the comparison needs of a detector: a threshold from clean images, and flags."""

    def fit(self, clean_images: torch.Tensor) -> Any: ...

    def detect(self, images: torch.Tensor) -> torch.Tensor: ...


@dataclass(frozen=True)
class DetectorEntry:
    """``build(model, fpr)`` makes an unfitted detector; ``aware(detector, eps, norm, steps,
    seed)`` an attack on model and detector together (None: no adaptive attack known)."""

    name: str
    build: Callable[[ImageClassifier, float], Detector]
    aware: Callable[[Any, float, str, int, int], Attack] | None
    description: str


DETECTORS: dict[str, DetectorEntry] = {}


def register_detector(entry: DetectorEntry) -> DetectorEntry:
    DETECTORS[entry.name] = entry
    return entry


def get_detector(name: str) -> DetectorEntry:
    key = name.strip().lower().replace("_", "-")
    if key not in DETECTORS:
        known = ", ".join(sorted(DETECTORS))
        raise AdvlabError(f"unknown detector '{name}': use one of {known}")
    return DETECTORS[key]


register_detector(
    DetectorEntry(
        "feature-squeezing",
        lambda model, fpr: FeatureSqueezingDetector(model, fpr=fpr),
        lambda detector, eps, norm, steps, seed: SqueezeAwarePGD(
            detector,
            eps=eps,
            norm=norm,  # type: ignore[arg-type]
            steps=steps,
            seed=seed,
        ),
        "feature squeezing (Xu et al. 2018); adaptive: SqueezeAwarePGD",
    )
)


# -- the rows ---------------------------------------------------------------------------


class RescaledLogits(DefendedClassifier):
    """The model's logits divided by their per-image standard deviation (held constant).

    Predictions are unchanged (a positive per-image scale keeps the argmax), but the
    softmax of the rescaled logits is not saturated, so cross-entropy attacks get a
    gradient again where huge logits (defensive distillation) made it exactly zero in
    float32. This is the attack on the logits of Carlini and Wagner 2016.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = super().forward(x)
        return logits / logits.detach().std(dim=1, keepdim=True).clamp_min(1e-12)


# -- the detectors of the detection evaluation (evaluation/detection.py) ----------------

#: The detectors ``advlab detect --detector NAME`` can build.
DETECTION_DETECTORS = {
    "squeeze": "feature squeezing (Xu et al. 2018): L1 change of the softmax under squeezers",
    "binary": "a classifier trained on the model's penultimate features, clean vs adversarial",
}


class ScoringDetector(Protocol):
    """What the evaluation needs of a detector: a model, a threshold and scores."""

    model: ImageClassifier
    fpr: float
    threshold: float | None

    def score(self, images: torch.Tensor) -> torch.Tensor: ...


def build_detector(
    name: str,
    model: ImageClassifier,
    fpr: float = 0.05,
    *,
    training_attacks: Sequence[Attack] | None = None,
    batch_size: int = 256,
    seed: int = 0,
) -> FeatureSqueezingDetector | BinaryDetector:
    """An unfitted detector by name; ``training_attacks`` are the binary detector's."""
    check(
        name in DETECTION_DETECTORS,
        f"unknown detector '{name}': use {' or '.join(DETECTION_DETECTORS)}",
    )
    if name == "squeeze":
        return FeatureSqueezingDetector(model, fpr=fpr, batch_size=batch_size)
    return BinaryDetector(model, training_attacks, fpr, batch_size=batch_size, seed=seed)


def adaptive_attack(
    detector: ScoringDetector,
    eps: float,
    norm: Norm = "linf",
    steps: int = 40,
    seed: int | None = None,
) -> Attack:
    """The attack on model and ``detector`` together, for a detector advlab knows."""
    if isinstance(detector, FeatureSqueezingDetector):
        return SqueezeAwarePGD(detector, eps=eps, steps=steps, norm=norm, seed=seed)
    if isinstance(detector, BinaryDetector):
        return DetectorAwarePGD(detector, eps=eps, steps=steps, norm=norm, seed=seed)
    raise AdvlabError(
        f"no adaptive attack is known for {type(detector).__name__}: pass adaptive=False"
    )


def detector_config(detector: ScoringDetector) -> dict[str, Any]:
    """A detector's full configuration, threshold included, as plain JSON data."""
    if isinstance(detector, BinaryDetector):
        return detector.config()
    if isinstance(detector, FeatureSqueezingDetector):
        return {
            "detector": "squeeze",
            "squeezers": [describe(squeezer) for squeezer in detector.squeezers],
            "fpr": detector.fpr,
            "threshold": detector.threshold,
        }
    return {
        "detector": type(detector).__name__,
        "fpr": detector.fpr,
        "threshold": detector.threshold,
    }
