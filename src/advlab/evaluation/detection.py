"""Detection evaluation: what share of adversarial examples a detector flags, and at what cost.

For a fitted detector and a sweep of attacks x epsilons, each attack runs on the images
the model classifies correctly. Per (attack, eps) the evaluation counts the images the
attack fooled, the share of those the detector flags (the detection rate that matters:
an adversarial example that fails is no threat) and the share of all attacked images,
and the ROC AUC of telling them from the clean images. The false-positive rate is
measured on the evaluated clean images, which the detector was not fitted on. With
``adaptive=True`` the same is measured for an attack that knows the detector
(:class:`~advlab.defenses.SqueezeAwarePGD` or
:class:`~advlab.defenses.DetectorAwarePGD`), since a detector is only as
good as the best attack on model and detector together.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, cast

import torch

from advlab.attacks import Attack
from advlab.attacks.norms import Norm
from advlab.data import ImageDataset
from advlab.defenses import (
    DETECTORS,
    Detector,
    DetectorAwareAttack,
    adaptive_attack,
    auc,
    build_detector,
    roc_curve,
)
from advlab.errors import AdvlabError, check
from advlab.evaluation.session import precision_identity, predict, searched_precision, session
from advlab.evaluation.spec import AttackSpec, check_sweep, data_identity, derive_seed, run_id_of
from advlab.evaluation.store import ResultStore
from advlab.progress import progress_bar
from advlab.results import (
    DetectionEntry,
    DetectionEvaluation,
    DetectorInfo,
    FitData,
    RocCurve,
)

log = logging.getLogger(__name__)

__all__ = [
    "DETECTORS",
    "DetectionEntry",
    "DetectionEvaluation",
    "Detector",
    "adaptive_attack",
    "build_detector",
    "evaluate_detection",
]


def evaluate_detection(
    detector: Detector,
    data: ImageDataset,
    attacks: Sequence[AttackSpec],
    epsilons: Sequence[float],
    *,
    adaptive: bool = True,
    adaptive_steps: int = 40,
    adaptive_norm: Norm = "linf",
    batch_size: int = 128,
    seed: int = 0,
    fit: FitData | None = None,
    run_config: dict[str, Any] | None = None,
    progress: bool = True,
    store: ResultStore | None = None,
) -> DetectionEvaluation:
    """Detection rates of a fitted ``detector`` on ``data`` under every attack and eps.

    ``data`` must not hold the images the detector was fitted on: its clean images
    measure the false-positive rate. ``fit`` describes the fitting data for the record.
    With a ``store``, each (attack, eps) entry is stored as it is done, so the same call
    after an interrupt resumes where it stopped.
    """
    attacks, epsilons = list(attacks), [float(eps) for eps in epsilons]
    check(len(data) > 0, "the data set is empty: give at least one image")
    check_sweep(attacks, epsilons, batch_size)
    check(adaptive_steps >= 1, f"adaptive_steps must be >= 1, got {adaptive_steps}")
    check(detector.threshold is not None, "fit the detector before evaluating it")
    assert detector.threshold is not None
    model, started = detector.model, time.perf_counter()
    device = model.device
    images, labels = data.images, data.labels
    clean_scores = detector.score(images)
    predictions = predict(model, images, batch_size)
    correct = (predictions == labels).nonzero().squeeze(1)
    runs: list[tuple[AttackSpec | None, float]] = [
        (spec, eps) for spec in attacks for eps in epsilons
    ]
    if adaptive:
        runs += [(None, eps) for eps in epsilons]
    config = {
        **(run_config or {}), "attacks": [spec.to_dict() for spec in attacks],
        "epsilons": epsilons, "adaptive": adaptive, "adaptive_steps": adaptive_steps,
        "adaptive_norm": adaptive_norm, "batch_size": batch_size, "seed": seed,
        "precision": searched_precision(model, data),
    }  # fmt: skip
    identity = {
        **data_identity(model, data), "kind": "detection", "seed": seed,
        # The detector by its settings and by what it makes of these very images.
        "detector": detector.config(),
        "clean_scores_sha256": _sha256(clean_scores),
        **{key: config[key] for key in ("attacks", "epsilons", "adaptive", "adaptive_steps",
                                        "adaptive_norm", "batch_size")},
    }  # fmt: skip
    identity.update(precision_identity(config["precision"]))
    run_id = run_id_of(identity)
    entries = []
    with session(store, run_id, identity, config, len(runs), "detection evaluation") as run:
        stored = run.store.parts(run_id)
        earlier = run.store.unit_seconds(run_id)
        for index, (spec, eps) in enumerate(runs):
            key = spec.key if spec is not None else (
                f"{adaptive_attack(detector, eps, adaptive_norm).name}-{adaptive_norm}"
            )  # fmt: skip
            name = f"entry/{index}/{key}@{eps!r}"
            if name in stored:
                entries.append(_load_entry(stored[name][0]))
                continue
            build = functools.partial(_build, detector, spec, key, eps, adaptive_norm,
                                      adaptive_steps, seed)  # fmt: skip
            entry = _run_one(detector, build, key, eps, images[correct], labels[correct],
                             clean_scores, batch_size, device, progress)  # fmt: skip
            run.store.write_part(run_id, name, entry.to_dict(), entry.seconds)
            entries.append(entry)
        evaluation = DetectionEvaluation(
            model=identity["model"], weights_sha256=identity["weights_sha256"],
            dataset=data.name, split=data.split, n=len(data), seed=seed, device=str(device),
            # A detector adds its own options to the keys DetectorInfo names.
            detector=cast(DetectorInfo, {**detector.config(), "description": repr(detector)}),
            fit=FitData(**(fit or {})),
            clean_accuracy=float((predictions == labels).float().mean()),
            false_positive_rate=float((clean_scores > detector.threshold).float().mean()),
            results=entries, config=config,
            seconds=earlier + time.perf_counter() - started,
        )  # fmt: skip
        run.finish(evaluation.to_dict())
    return evaluation


def _sha256(values: torch.Tensor) -> str:
    return hashlib.sha256(values.detach().cpu().contiguous().numpy().tobytes()).hexdigest()


def _load_entry(data: dict[str, Any]) -> DetectionEntry:
    try:
        return DetectionEntry(**data)
    except TypeError as error:
        raise AdvlabError(
            f"the results store holds an unreadable detection entry ({error}): move the store "
            "away or pass another one"
        ) from None


def _build(
    detector: Detector,
    spec: AttackSpec | None,
    key: str,
    eps: float,
    norm: Norm,
    steps: int,
    seed: int,
    offset: int,
) -> Attack:
    """The attack of one batch: ``spec``, or (None) the adaptive attack on the detector."""
    unit_seed = derive_seed(seed, key, eps, offset)
    if spec is None:
        return adaptive_attack(detector, eps, norm, steps, unit_seed)
    return spec.build(eps, unit_seed)


def _run_one(
    detector: Detector,
    build: Callable[[int], Attack],
    key: str,
    eps: float,
    images: torch.Tensor,
    labels: torch.Tensor,
    clean_scores: torch.Tensor,
    batch_size: int,
    device: torch.device,
    progress: bool,
) -> DetectionEntry:
    """Attack ``images`` batch by batch (each batch its own seed) and score the results."""
    assert detector.threshold is not None
    started = time.perf_counter()
    first: Attack | None = None
    adversarial, fooled = [], []
    with progress_bar(images.shape[0], f"{key} eps={eps:g}", enabled=progress) as advance:
        for offset in range(0, images.shape[0], batch_size):
            attack: Attack = build(offset)
            first = first or attack
            batch = images[offset : offset + batch_size].to(device)
            result = attack(detector.model, batch, labels[offset : offset + batch_size].to(device))
            adversarial.append(result.adversarial.cpu())
            fooled.append(result.success.cpu())
            advance(batch.shape[0])
    first = first or build(0)
    attacked = images.shape[0]
    scores = detector.score(torch.cat(adversarial)) if attacked else torch.zeros(0)
    success = torch.cat(fooled) if attacked else torch.zeros(0, dtype=torch.bool)
    flagged = scores > detector.threshold
    fooled_count = int(success.sum())
    curve, area = _roc(clean_scores, scores[success])
    _, area_all = _roc(clean_scores, scores)
    config = {key: value for key, value in first.config().items() if key != "detector"}
    return DetectionEntry(
        attack=first.name,
        key=key,
        norm=first.norm,
        eps=eps,
        adaptive=isinstance(first, DetectorAwareAttack),
        attacked=attacked,
        fooled=fooled_count,
        attack_success_rate=_rate(fooled_count, attacked),
        detection_rate=_rate(int(flagged[success].sum()), fooled_count),
        detection_rate_all=_rate(int(flagged.sum()), attacked),
        evasion_rate=_rate(int((success & ~flagged).sum()), attacked),
        auc=area,
        auc_all=area_all,
        roc=curve,
        seconds=time.perf_counter() - started,
        config=config,
    )


def _rate(count: int, total: int) -> float | None:
    return count / total if total else None


def _roc(negatives: torch.Tensor, positives: torch.Tensor) -> tuple[RocCurve, float | None]:
    """The ROC's corner points (the curve is drawn exactly from them) and its AUC."""
    if negatives.numel() == 0 or positives.numel() == 0:
        return {"fpr": [], "tpr": []}, None
    fpr, tpr, _ = roc_curve(negatives, positives)
    # A point in the middle of a straight horizontal or vertical run adds nothing.
    keep = torch.ones(fpr.numel(), dtype=torch.bool)
    if fpr.numel() > 2:
        flat = (fpr[1:-1] == fpr[:-2]) & (fpr[1:-1] == fpr[2:])
        level = (tpr[1:-1] == tpr[:-2]) & (tpr[1:-1] == tpr[2:])
        keep[1:-1] = ~(flat | level)
    points: RocCurve = {
        "fpr": [round(float(v), 6) for v in fpr[keep]],
        "tpr": [round(float(v), 6) for v in tpr[keep]],
    }
    return points, auc(fpr, tpr)
