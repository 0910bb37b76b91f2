"""``advlab detect`` as a Python call: load, fit the detector, evaluate, write the results.

The detector is fitted on images it is never evaluated on: by default a seeded subset of
the training split; with ``fit_split="test"`` (data sets that have no training split,
such as ``mnist-demo``) a part of the test split disjoint from the evaluated images.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from advlab.config import AttackChoice, epsilon_list
from advlab.data import ImageDataset, load_dataset
from advlab.errors import check
from advlab.evaluation.detection import DETECTORS, build_detector, evaluate_detection
from advlab.evaluation.spec import AttackSpec
from advlab.models import load_model, resolve_device


class DetectConfig(BaseModel):
    """Everything ``advlab detect`` needs; stored in detection.json beside the numbers."""

    model_config = ConfigDict(extra="forbid")

    model: str = "mnist-cnn"
    weights: str | None = None
    dataset: str = "mnist"
    data_dir: str | None = None
    detector: str = "squeeze"
    fpr: float = 0.05
    attacks: list[AttackChoice] = Field(
        default_factory=lambda: [AttackChoice(name="fgsm"), AttackChoice(name="pgd")]
    )
    epsilons: list[float] = Field(default_factory=lambda: [0.1, 0.3])
    n: int = Field(default=500, gt=0)
    n_fit: int = Field(default=2000, ge=4)
    fit_split: str = "train"
    train_attack: AttackChoice = Field(
        default_factory=lambda: AttackChoice(name="pgd", params={"steps": 20})
    )
    adaptive: bool = True
    adaptive_steps: int = Field(default=40, gt=0)
    batch_size: int = Field(default=128, gt=0)
    seed: int = 0
    device: str = "auto"
    out: str = "advlab-detect"
    report: bool = False

    @field_validator("detector")
    @classmethod
    def _known(cls, name: str) -> str:
        if name not in DETECTORS:
            raise ValueError(f"unknown detector '{name}': use {' or '.join(DETECTORS)}")
        return name

    @field_validator("fpr")
    @classmethod
    def _fpr(cls, fpr: float) -> float:
        if not 0 < fpr < 1:
            raise ValueError(f"the false positive rate --fpr must be in (0, 1), got {fpr}")
        return fpr

    @field_validator("fit_split")
    @classmethod
    def _split(cls, split: str) -> str:
        if split not in ("train", "test"):
            raise ValueError(f"unknown fit split '{split}': use train or test")
        return split

    @field_validator("epsilons")
    @classmethod
    def _eps(cls, values: list[float]) -> list[float]:
        return epsilon_list(values)

    @model_validator(mode="after")
    def _linf_range(self) -> DetectConfig:
        if not self.attacks:
            raise ValueError("give at least one --attack")
        if max(self.epsilons) > 1:
            raise ValueError(
                f"L-inf eps is in [0, 1] pixel units, got {max(self.epsilons)}: "
                "use e.g. 8/255=0.0314"
            )
        return self

    @property
    def out_dir(self) -> Path:
        return Path(self.out).expanduser()


@dataclass
class DetectionOutput:
    results: dict[str, Any]
    results_path: Path
    report_path: Path | None


def detection_data(
    dataset: str,
    n: int,
    n_fit: int,
    *,
    seed: int = 0,
    fit_split: str = "train",
    data_dir: str | None = None,
) -> tuple[ImageDataset, ImageDataset]:
    """``(fit, test)``: disjoint seeded subsets, ``fit`` from ``fit_split``."""
    if fit_split != "test":
        test = load_dataset(dataset, "test", n, data_dir, seed=seed)
        return load_dataset(dataset, fit_split, n_fit, data_dir, seed=seed), test
    full = load_dataset(dataset, "test", None, data_dir, seed=seed)
    check(
        n + n_fit <= len(full),
        f"data set '{dataset}' has {len(full)} test images, fewer than n + n_fit = {n + n_fit}: "
        "lower --n or --n-fit",
    )
    order = np.random.default_rng(seed).permutation(len(full))
    return full.subset(np.sort(order[n : n + n_fit])), full.subset(np.sort(order[:n]))


def run_detection(config: DetectConfig, *, progress: bool = True) -> DetectionOutput:
    """Fit the detector named in ``config``, evaluate it, write detection.json (and report)."""
    device = resolve_device(config.device)
    model = load_model(config.model, weights=config.weights, device=device)
    fit_data, test = detection_data(
        config.dataset, config.n, config.n_fit, seed=config.seed,
        fit_split=config.fit_split, data_dir=config.data_dir,
    )  # fmt: skip
    check(
        tuple(model.input_shape) == test.image_shape,
        f"model '{model.name}' expects images of shape {tuple(model.input_shape)} but data set "
        f"'{test.name}' has {test.image_shape}: pick a matching model and data set",
    )
    train = AttackSpec(config.train_attack.name, config.train_attack.norm,
                       dict(config.train_attack.params))  # fmt: skip
    detector = build_detector(
        config.detector,
        model,
        config.fpr,
        training_attacks=[
            train.build(eps, config.seed + i) for i, eps in enumerate(config.epsilons)
        ],
        batch_size=config.batch_size,
        seed=config.seed,
    )
    detector.fit(fit_data.images)
    evaluation = evaluate_detection(
        detector,
        test,
        [AttackSpec(a.name, a.norm, dict(a.params)) for a in config.attacks],
        config.epsilons,
        adaptive=config.adaptive,
        adaptive_steps=config.adaptive_steps,
        batch_size=config.batch_size,
        seed=config.seed,
        fit=_describe(fit_data),
        run_config=config.model_dump(),
        progress=progress,
    )
    out_dir = config.out_dir
    results = evaluation.to_dict()
    results_path = evaluation.write_json(out_dir / "detection.json")
    report_path = None
    if config.report:
        from advlab.reports.detection import write_detection_report

        report_path = write_detection_report(results, out_dir / "report.html")
    return DetectionOutput(results, results_path, report_path)


def _describe(data: ImageDataset) -> dict[str, Any]:
    """Which images the detector was fitted on, for the record."""
    indices = np.ascontiguousarray(np.asarray(data.indices, dtype=np.int64))
    return {
        "dataset": data.name,
        "split": data.split,
        "n": len(data),
        "indices_sha256": hashlib.sha256(indices.tobytes()).hexdigest(),
    }
