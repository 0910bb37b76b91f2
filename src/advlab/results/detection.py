"""What a detection evaluation returns: the content of detection.json."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypedDict

from advlab import __version__
from advlab.results.base import JsonResult, Record, build, find, mapping, records, run_fields


class RocCurve(TypedDict):
    """The corner points of a ROC curve (false and true positive rates)."""

    fpr: list[float]
    tpr: list[float]


class _DetectorName(TypedDict):
    detector: str


class DetectorInfo(_DetectorName, total=False):
    """A fitted detector's configuration: its name ("squeeze", "binary", ...), target
    false positive rate, threshold and text description; each detector adds its own
    options (the squeezers; the binary detector's layer, training and attacks)."""

    fpr: float
    threshold: float | None
    description: str
    squeezers: list[str]


class FitData(TypedDict, total=False):
    """The clean images a detector was fitted on, for the record."""

    dataset: str
    split: str
    n: int
    indices_sha256: str


@dataclass
class DetectionEntry(Record):
    """One attack at one eps against the detector. Rates are fractions in [0, 1].

    ``attacked`` images were classified correctly and attacked; ``fooled`` of them now
    fool the model. ``detection_rate`` is over the fooled ones, ``detection_rate_all``
    over all attacked, ``evasion_rate`` (fooled and not flagged) over all attacked.
    ``auc`` separates the clean images from the fooled adversarial examples, ``auc_all``
    from all attacked ones; ``roc`` is the curve behind ``auc``. None where a set is empty.
    ``adaptive`` marks the attack on model and detector together.
    """

    WHAT = "a detection result"

    attack: str
    key: str
    norm: str
    eps: float
    adaptive: bool
    attacked: int
    fooled: int
    attack_success_rate: float | None
    detection_rate: float | None
    detection_rate_all: float | None
    evasion_rate: float | None
    auc: float | None
    auc_all: float | None
    roc: RocCurve
    seconds: float
    config: dict[str, Any]


@dataclass
class DetectionEvaluation(JsonResult):
    """A finished detection evaluation; :meth:`to_dict` is the detection.json content."""

    FILE = "detection.json"

    model: str
    weights_sha256: str
    dataset: str
    split: str
    n: int
    seed: int
    device: str
    detector: DetectorInfo
    fit: FitData
    clean_accuracy: float
    false_positive_rate: float
    results: list[DetectionEntry]
    config: dict[str, Any]
    seconds: float
    advlab_version: str = field(default=__version__)

    def entry(self, attack: str, eps: float) -> DetectionEntry:
        """The entry for an attack (its name or key) at ``eps``."""
        return find(self.results, attack, eps, "detection result")

    @property
    def fpr_target(self) -> float | None:
        """The false positive rate the detector's threshold was set for."""
        return self.detector.get("fpr")

    def to_dict(self) -> dict[str, Any]:
        return {
            **run_fields(self),
            "detector": self.detector,
            "fit": self.fit,
            "clean_accuracy": self.clean_accuracy,
            "fpr_target": self.fpr_target,
            "false_positive_rate": self.false_positive_rate,
            "results": [entry.to_dict() for entry in self.results],
            "config": self.config,
            "seconds": self.seconds,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DetectionEvaluation:
        """The evaluation of a detection.json (``fpr_target`` is the detector's ``fpr``)."""
        data = mapping(data, "detection.json")
        entries = records(data, "results", "detection.json")
        detector = dict(data.get("detector") or {})
        if "fpr" not in detector and data.get("fpr_target") is not None:
            detector["fpr"] = data["fpr_target"]
        return build(
            cls,
            data,
            "detection.json",
            detector=detector,
            results=[DetectionEntry.from_dict(entry) for entry in entries],
        )
