"""What an evaluation returns: the numbers of results.json and a few example images."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypedDict

import torch

#: Fields that measure time, not robustness: they differ between a resumed and a fresh run.
TIMING_FIELDS = ("seconds", "images_per_second")


class AttackExamples(TypedDict):
    """The first images of the first batch for one (attack, eps), on the CPU.

    ``clean`` and ``adversarial`` are float (k, C, H, W) in [0, 1]; the rest hold one entry
    per image. Images the model got wrong were not attacked: adversarial equals clean.
    """

    attack: str
    key: str
    norm: str
    eps: float
    clean: torch.Tensor
    adversarial: torch.Tensor
    labels: torch.Tensor
    clean_pred: torch.Tensor
    clean_conf: torch.Tensor
    adv_pred: torch.Tensor
    adv_conf: torch.Tensor


@dataclass
class AttackEvaluation:
    """One attack at one eps. Accuracies and rates are fractions in [0, 1].

    ``attack_success_rate`` is over the images classified correctly before the attack;
    the norms and ``mean_confidence`` over its successful adversarial examples;
    ``mean_queries`` and ``max_queries_spent`` over the images it ran on,
    ``median_queries`` over the images it fooled, and ``query_curve`` the share fooled
    within q queries (see :func:`advlab.evaluation.metrics.query_curve`). Each is None
    when that set is empty.
    """

    attack: str
    key: str
    norm: str
    eps: float
    targeted: bool
    robust_accuracy: float
    attack_success_rate: float | None
    mean_linf: float | None
    median_linf: float | None
    mean_l2: float | None
    median_l2: float | None
    mean_confidence: float | None
    mean_queries: float | None
    median_queries: float | None
    max_queries_spent: int | None
    query_curve: list[list[float]] | None
    per_class_robust_accuracy: dict[str, float]
    seconds: float
    images_per_second: float | None
    config: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Evaluation:
    """A finished robustness evaluation; :meth:`to_dict` is the results.json content."""

    run_id: str
    model: str
    dataset: str
    split: str
    n: int
    seed: int
    class_names: list[str]
    clean_accuracy: float
    per_class_clean_accuracy: dict[str, float]
    results: list[AttackEvaluation]
    worst_case: dict[float, float]
    config: dict[str, Any]
    weights_sha256: str
    advlab_version: str
    device: str
    seconds: float
    examples: dict[tuple[str, float], AttackExamples] = field(default_factory=dict, repr=False)

    def result(self, attack: str, eps: float) -> AttackEvaluation:
        """The entry for an attack (its name or key) at ``eps``."""
        for entry in self.results:
            if attack in (entry.key, entry.attack) and entry.eps == eps:
                return entry
        raise KeyError(f"no result for {attack} at eps {eps}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "advlab_version": self.advlab_version,
            "model": self.model,
            "weights_sha256": self.weights_sha256,
            "dataset": self.dataset,
            "split": self.split,
            "n": self.n,
            "seed": self.seed,
            "device": self.device,
            "class_names": list(self.class_names),
            "clean_accuracy": self.clean_accuracy,
            "per_class_clean_accuracy": dict(self.per_class_clean_accuracy),
            "results": [entry.to_dict() for entry in self.results],
            "worst_case": {str(eps): value for eps, value in self.worst_case.items()},
            "config": self.config,
            "seconds": self.seconds,
        }

    def write_json(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2, default=str))
        return path


def without_timings(results: dict[str, Any]) -> dict[str, Any]:
    """``results`` (a to_dict()) minus the timing fields, to compare two runs' numbers."""
    out = {key: value for key, value in results.items() if key not in TIMING_FIELDS}
    out["results"] = [
        {key: value for key, value in entry.items() if key not in TIMING_FIELDS}
        for entry in results.get("results", [])
    ]
    return out
