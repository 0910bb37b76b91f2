"""What a detection evaluation returns: one entry per (attack, eps), and detection.json."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import advlab


@dataclass
class DetectionEntry:
    """One attack at one eps against the detector. Rates are fractions in [0, 1].

    ``attacked`` images were classified correctly and attacked; ``fooled`` of them now
    fool the model. ``detection_rate`` is over the fooled ones, ``detection_rate_all``
    over all attacked, ``evasion_rate`` (fooled and not flagged) over all attacked.
    ``auc`` separates the clean images from the fooled adversarial examples, ``auc_all``
    from all attacked ones; ``roc`` is the curve behind ``auc``. None where a set is empty.
    """

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
    roc: dict[str, list[float]]
    seconds: float
    config: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class DetectionEvaluation:
    """A finished detection evaluation; :meth:`to_dict` is the detection.json content."""

    model: str
    weights_sha256: str
    dataset: str
    split: str
    n: int
    seed: int
    device: str
    detector: dict[str, Any]
    fit: dict[str, Any]
    clean_accuracy: float
    false_positive_rate: float
    results: list[DetectionEntry]
    config: dict[str, Any]
    seconds: float
    advlab_version: str = field(default=advlab.__version__)

    def entry(self, attack: str, eps: float) -> DetectionEntry:
        """The entry for an attack (its name or key) at ``eps``."""
        for entry in self.results:
            if attack in (entry.attack, entry.key) and entry.eps == eps:
                return entry
        raise KeyError(f"no detection result for {attack} at eps {eps}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "advlab_version": self.advlab_version,
            "model": self.model,
            "weights_sha256": self.weights_sha256,
            "dataset": self.dataset,
            "split": self.split,
            "n": self.n,
            "seed": self.seed,
            "device": self.device,
            "detector": self.detector,
            "fit": self.fit,
            "clean_accuracy": self.clean_accuracy,
            "fpr_target": self.detector.get("fpr"),
            "false_positive_rate": self.false_positive_rate,
            "results": [entry.to_dict() for entry in self.results],
            "config": self.config,
            "seconds": self.seconds,
        }

    def write_json(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2, default=str))
        return path
