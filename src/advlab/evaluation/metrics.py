"""Robustness metrics from per-image outcomes (NumPy arrays, one entry per image).

Every function here is pure: the evaluation reads the per-image rows back from the
results store and computes its numbers with these, so a resumed run and an
uninterrupted one give identical results.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class AttackOutcomes:
    """One attack at one eps, per image (all ``n`` images, in data set order).

    Images the model already got wrong were not attacked: their ``adv_pred`` is the
    clean prediction and their norms and queries are 0.
    """

    clean_correct: np.ndarray  # bool
    adv_pred: np.ndarray  # int64
    confidence: np.ndarray  # float64, softmax probability of adv_pred
    success: np.ndarray  # bool: untargeted fooled, or targeted hit the target
    linf: np.ndarray  # float64
    l2: np.ndarray  # float64
    queries: np.ndarray  # int64


def accuracy(correct: np.ndarray) -> float:
    return float(np.mean(correct)) if correct.size else 0.0


def mean_or_none(values: np.ndarray) -> float | None:
    return float(np.mean(values)) if values.size else None


def median_or_none(values: np.ndarray) -> float | None:
    return float(np.median(values)) if values.size else None


def class_name(names: Sequence[str], label: int) -> str:
    return names[label] if 0 <= label < len(names) else str(label)


def per_class_accuracy(
    correct: np.ndarray, labels: np.ndarray, names: Sequence[str]
) -> dict[str, float | None]:
    """Accuracy per class present in ``labels``, keyed by class name, in label order."""
    return {
        class_name(names, int(label)): accuracy(correct[labels == label])
        for label in np.unique(labels)
    }


def robust_correct(outcomes: AttackOutcomes, labels: np.ndarray) -> np.ndarray:
    """Per image: still classified correctly after the attack."""
    return outcomes.clean_correct & (outcomes.adv_pred == labels)


def attack_metrics(
    outcomes: AttackOutcomes, labels: np.ndarray, names: Sequence[str]
) -> dict[str, Any]:
    """The per (attack, eps) numbers of results.json (timings are added by the caller).

    Robust accuracy is over all images; the success rate over the images the model
    classified correctly (None if there are none); norms and confidence over the
    successful adversarial examples (None if there are none); queries over the images
    the attack ran on.
    """
    correct = robust_correct(outcomes, labels)
    attacked = outcomes.clean_correct
    fooled = attacked & outcomes.success
    return {
        "robust_accuracy": accuracy(correct),
        "attack_success_rate": mean_or_none(fooled[attacked]),
        "mean_linf": mean_or_none(outcomes.linf[fooled]),
        "median_linf": median_or_none(outcomes.linf[fooled]),
        "mean_l2": mean_or_none(outcomes.l2[fooled]),
        "median_l2": median_or_none(outcomes.l2[fooled]),
        "mean_confidence": mean_or_none(outcomes.confidence[fooled]),
        "mean_queries": mean_or_none(outcomes.queries[attacked].astype(np.float64)),
        "median_queries": median_or_none(outcomes.queries[fooled].astype(np.float64)),
        "max_queries_spent": int(outcomes.queries[attacked].max()) if attacked.any() else None,
        "query_curve": query_curve(outcomes.queries[attacked], outcomes.success[attacked]),
        "per_class_robust_accuracy": per_class_accuracy(correct, labels, names),
    }


def query_curve(
    queries: np.ndarray, fooled: np.ndarray, points: int = 24
) -> list[list[float]] | None:
    """Success rate against queries spent: ``[[q, share of images fooled within q], ...]``.

    The standard black-box plot. ``q`` runs over quantiles of the successful images'
    query counts (at most ``points`` of them, always including the largest), so the curve
    is exact at each point and stays small in results.json. None when nothing was attacked.
    """
    if queries.size == 0:
        return None
    spent = np.sort(queries[fooled])
    if spent.size == 0:
        return [[float(queries.max()), 0.0]]
    grid = np.unique(np.quantile(spent, np.linspace(0.0, 1.0, points), method="higher"))
    within = np.searchsorted(spent, grid, side="right") / queries.size
    return [[float(q), float(share)] for q, share in zip(grid, within, strict=True)]


def worst_case_accuracy(robust: Sequence[np.ndarray]) -> float:
    """AutoAttack's per-image worst case: an image counts only if every attack failed."""
    if not robust:
        return 0.0
    return accuracy(np.logical_and.reduce(np.stack(robust), axis=0))
