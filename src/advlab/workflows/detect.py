"""``advlab detect`` as a call: load, fit the detector, evaluate, write the results.

The detector is fitted on images it is never evaluated on: by default a seeded subset of
the training split; with ``fit_split="test"`` (data sets that have no training split,
such as ``mnist-demo``) a part of the test split disjoint from the evaluated images.
"""

from __future__ import annotations

import hashlib

import numpy as np

from advlab.data import ImageDataset, load_dataset
from advlab.errors import check
from advlab.evaluation.detection import build_detector, evaluate_detection
from advlab.evaluation.session import check_fit
from advlab.evaluation.spec import AttackSpec
from advlab.evaluation.store import ResultStore
from advlab.models import load_model, resolve_device
from advlab.results import FitData
from advlab.workflows.common import (
    RunOutput,
    load_data,
    prepare_folder,
    resolve_batch_size,
    searching,
    write_config,
)
from advlab.workflows.config import DetectConfig

RESULT_FILES = ("detection.json",)


class DetectionOutput(RunOutput):
    """detection.json's content, its path and report.html's."""


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
        test = load_data(dataset, "test", n, data_dir, seed=seed)
        return load_data(dataset, fit_split, n_fit, data_dir, seed=seed, option="--n-fit"), test
    full = load_dataset(dataset, "test", None, data_dir, seed=seed)
    check(
        n + n_fit <= len(full),
        f"data set '{dataset}' has {len(full)} test images, fewer than n + n_fit = {n + n_fit}: "
        "lower --n or --n-fit",
    )
    order = np.random.default_rng(seed).permutation(len(full))
    return full.subset(np.sort(order[n : n + n_fit])), full.subset(np.sort(order[:n]))


def run_detection(
    config: DetectConfig, *, progress: bool = True, force: bool = False
) -> DetectionOutput:
    """Fit the detector named in ``config``, evaluate it, write detection.json (and report)."""
    out_dir = prepare_folder(config, force=force, results=RESULT_FILES)
    device = resolve_device(config.device)
    model = load_model(config.model, weights=config.weights, device=device)
    fit_data, test = detection_data(
        config.dataset, config.n, config.n_fit, seed=config.seed,
        fit_split=config.fit_split, data_dir=config.data_dir,
    )  # fmt: skip
    check_fit(model, test)
    batch_size = resolve_batch_size(config.batch_size, [model], len(test))
    train = AttackSpec(config.train_attack.name, config.train_attack.norm,
                       dict(config.train_attack.params))  # fmt: skip
    detector = build_detector(
        config.detector,
        model,
        config.fpr,
        training_attacks=[
            train.build(eps, config.seed + i) for i, eps in enumerate(config.epsilons)
        ],
        batch_size=batch_size,
        seed=config.seed,
    )
    write_config(config)
    with searching(config, model, test):
        detector.fit(fit_data.images)
        evaluation = evaluate_detection(
            detector,
            test,
            [AttackSpec(a.name, a.norm, dict(a.params)) for a in config.attacks],
            config.epsilons,
            adaptive=config.adaptive,
            adaptive_steps=config.adaptive_steps,
            batch_size=batch_size,
            seed=config.seed,
            fit=_describe(fit_data),
            run_config=config.model_dump(),
            progress=progress,
            store=ResultStore(config.store) if config.store else ResultStore(),
        )
    results = evaluation.to_dict()
    results_path = evaluation.write_json(out_dir / "detection.json")
    report_path = None
    if config.report:
        from advlab.reports.detection import write_detection_report

        report_path = write_detection_report(results, out_dir / "report.html")
    return DetectionOutput(results, results_path, report_path)


def _describe(data: ImageDataset) -> FitData:
    """Which images the detector was fitted on, for the record."""
    indices = np.ascontiguousarray(np.asarray(data.indices, dtype=np.int64))
    return {
        "dataset": data.name,
        "split": data.split,
        "n": len(data),
        "indices_sha256": hashlib.sha256(indices.tobytes()).hexdigest(),
    }
