"""The rows of a defense comparison: a model, what kind of defense it is, and its cost."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from advlab.defenses import Detector, DetectorEntry, apply_defense, get_detector
from advlab.errors import AdvlabError, check
from advlab.models import ImageClassifier

Kind = Literal["undefended", "preprocess", "model", "detector"]
UNDEFENDED = "undefended"


@dataclass
class Candidate:
    """One row of the comparison: a model, what kind of defense it is, and its cost.

    ``training_seconds``: what the defended model cost to train, when its checkpoint
    records it (None: unknown; preprocessing and detectors add no training).
    """

    label: str
    model: ImageClassifier
    kind: Kind
    spec: str
    training_seconds: float | None = None
    detector: Detector | None = None
    detector_entry: DetectorEntry | None = None


def undefended_candidate(model: ImageClassifier, spec: str | None = None) -> Candidate:
    name = spec or model.name
    return Candidate(UNDEFENDED, model, "undefended", name, training_seconds(name))


def defense_candidate(model: ImageClassifier, spec: str) -> Candidate:
    """``model`` behind the preprocessing ``spec`` (see :func:`advlab.defenses.apply_defense`)."""
    defended = apply_defense(model, spec)
    label = defended.name.removeprefix(f"{model.name}+")
    return Candidate(label, defended, "preprocess", spec)


def model_candidate(model: ImageClassifier, spec: str | None = None) -> Candidate:
    """A model trained as a defense (distilled, adversarially trained), e.g. a zoo entry;
    the row is labelled with the model's name (a checkpoint's sidecar name, not its path)."""
    return Candidate(
        model.name, model, "model", spec or model.name, training_seconds(spec or model.name)
    )


def detector_candidate(
    model: ImageClassifier, name: str, clean_images: torch.Tensor, fpr: float = 0.05
) -> Candidate:
    """``model`` with detector ``name``, its threshold fitted on ``clean_images`` (use
    images the comparison does not attack) for a false-positive rate of ``fpr``."""
    entry = get_detector(name)
    check(clean_images.shape[0] >= 2, "fit the detector on at least 2 clean images")
    detector = entry.build(model, fpr)
    detector.fit(clean_images)
    return Candidate(f"detector:{entry.name}", model, "detector", entry.name,
                     detector=detector, detector_entry=entry)  # fmt: skip


def training_seconds(spec: str, _teacher: bool = True) -> float | None:
    """Training time recorded in the sidecar of a registered model or checkpoint file.

    ``training_seconds`` if the sidecar has it, else the sum of its epochs' ``seconds``,
    plus the teacher's time for a distilled student whose teacher checkpoint is still
    there; None when there is no sidecar or no timing (e.g. torchvision models).
    """
    from advlab.models.checkpoint import read_sidecar, sidecar_path
    from advlab.models.registry import get_entry, resolve_default_weights

    try:
        if Path(spec).suffix in (".safetensors", ".pt", ".pth") and sidecar_path(spec).is_file():
            meta = read_sidecar(spec)
        else:
            entry = get_entry(spec)
            if entry.weights is None:
                return None
            meta = read_sidecar(resolve_default_weights(entry, download=False))
    except (AdvlabError, OSError):
        return None
    if isinstance(meta.get("training_seconds"), (int, float)):
        return float(meta["training_seconds"])
    seconds = [r.get("seconds") for r in meta.get("history") or [] if isinstance(r, dict)]
    numbers = [float(s) for s in seconds if isinstance(s, (int, float))]
    if not numbers:
        return None
    teacher = (meta.get("training") or {}).get("distill_from")
    extra = training_seconds(str(teacher), _teacher=False) if teacher and _teacher else None
    return sum(numbers) + (extra or 0.0)
