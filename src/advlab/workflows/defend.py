"""``advlab defend`` as a call: the undefended model and each defense side by side."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from advlab.data import ImageDataset, load_dataset
from advlab.errors import check
from advlab.evaluation.session import check_fit
from advlab.models import load_model, resolve_device
from advlab.workflows.common import (
    RunOutput,
    load_data,
    prepare_folder,
    resolve_batch_size,
    searching,
    write_config,
)
from advlab.workflows.config import DefendConfig

RESULT_FILES = ("defend.json",)


@dataclass
class DefendOutput(RunOutput):
    """defend.json's content, its path and the report's; what came from the store."""

    resumed_rows: int = 0  # rows and checks loaded from the store (an interrupted run)
    resumed_checks: int = 0


def run_defend(config: DefendConfig, *, progress: bool = True, force: bool = False) -> DefendOutput:
    """Load the model, its defenses and the data; compare; write defend.json and report.html.

    The comparison is stored row by row: the same config resumes an interrupted run.
    """
    from advlab.evaluation import AttackSpec, ResultStore
    from advlab.evaluation.defend import (
        compare_defenses,
        defense_candidate,
        detector_candidate,
        model_candidate,
    )

    out_dir = prepare_folder(config, force=force, results=RESULT_FILES)
    device = resolve_device(config.device)
    model = load_model(config.model, weights=config.weights, device=device)
    data = load_data(config.dataset, config.split, config.n, config.data_dir, seed=config.seed)
    check_fit(model, data)
    candidates = [defense_candidate(model, spec) for spec in config.defenses]
    for name in config.defended_models:
        defended = load_model(name, device=device)
        check_fit(defended, data)
        candidates.append(model_candidate(defended, name))
    if config.detectors:
        fit = _held_out_images(config, data)
        candidates += [
            detector_candidate(model, name, fit, config.detector_fpr) for name in config.detectors
        ]
    specs = [AttackSpec(name=a.name, norm=a.norm, params=dict(a.params)) for a in config.attacks]
    store = ResultStore(config.store) if config.store else ResultStore()
    batch_size = resolve_batch_size(config.batch_size, [model], len(data))
    write_config(config)
    with searching(config, model, data):
        comparison = compare_defenses(
            model, data, candidates, specs, config.epsilons, seed=config.seed,
            batch_size=batch_size, eot_samples=config.eot_samples,
            gap_threshold=config.gap_threshold, min_retention=config.min_retention,
            checks=config.checks, check_n=config.check_n, check_eps=config.check_eps,
            check_steps=config.check_steps, check_queries=config.check_queries, store=store,
            run_config=config.model_dump(), progress=progress,
        )  # fmt: skip
    results = comparison.to_dict()
    results_path = comparison.write_json(out_dir / "defend.json")
    report_path = None
    if config.report:
        from advlab.reports.defense import write_defense_report

        report_path = write_defense_report(results, out_dir / "report.html")
    return DefendOutput(results, results_path, report_path, comparison.resumed_rows,
                        comparison.resumed_checks)  # fmt: skip


def _held_out_images(config: DefendConfig, data: ImageDataset) -> torch.Tensor:
    """Clean images to fit a detector's threshold on: same split, none of those attacked."""
    full = load_dataset(config.dataset, config.split, None, config.data_dir, seed=config.seed)
    free = np.flatnonzero(~np.isin(full.indices, data.indices))
    check(
        free.size >= 2,
        f"the detector needs clean images outside the {len(data)} attacked ones: lower --n",
    )
    pick = np.random.default_rng(config.seed).permutation(free)[: config.detector_fit_n]
    return full.subset(np.sort(pick)).images
