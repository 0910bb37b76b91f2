"""``advlab evaluate`` as a call: clean and robust accuracy over attacks and an eps sweep."""

from __future__ import annotations

import json
from typing import Any, cast

from advlab.errors import check
from advlab.evaluation.session import check_fit
from advlab.models import ImageClassifier, load_model, resolve_device
from advlab.targets import Target, TargetClassifier
from advlab.workflows.common import (
    RunOutput,
    load_data,
    prepare_folder,
    resolve_batch_size,
    write_config,
)
from advlab.workflows.config import EvaluateConfig
from advlab.workflows.distributed import distributed, on_main, rank_device

RESULT_FILES = ("results.json",)


class EvaluationOutput(RunOutput):
    """results.json's content, its path and report.html's."""


def run_evaluation(
    config: EvaluateConfig, *, progress: bool = True, force: bool = False
) -> EvaluationOutput:
    """Load the model and data named in ``config``, run the sweep, write results and report.

    Results go to the store batch by batch: the same config resumes an interrupted run.
    ``force`` lets the run overwrite the results of a different run in ``config.out``.
    Under ``torchrun`` every rank calls this: the batches are shared out, rank 0 writes
    the one results.json, report and store (see docs/distributed.md).
    """
    with distributed() as ranks:
        check(ranks.world == 1 or not (config.target or config.defense),
              "--target and --defense run in one process: start it without torchrun")  # fmt: skip
        return _run(config, progress=progress and ranks.main, force=force)


def _run(config: EvaluateConfig, *, progress: bool, force: bool) -> EvaluationOutput:
    from advlab.evaluation import AttackSpec, ResultStore, evaluate
    from advlab.evaluation.suite import SuiteSpec

    out_dir = on_main(lambda: prepare_folder(config, force=force, results=RESULT_FILES))
    out_dir = config.folder if out_dir is None else out_dir
    device = rank_device(resolve_device(config.device))
    # A black box stands in for a model wherever a model goes (query-only: the config
    # has checked that every attack is black-box).
    model: ImageClassifier = (
        cast(ImageClassifier, load_target(config.target, **config.target_limits()))
        if config.target
        else load_model(config.model, weights=config.weights, device=device)
    )
    data = load_data(config.dataset, config.split, config.n, config.data_dir, seed=config.seed)
    batch_size = resolve_batch_size(config.batch_size, [model], len(data))
    if not config.target:
        check_fit(model, data)
    specs: list[AttackSpec | SuiteSpec] = [
        AttackSpec(name=a.name, norm=a.norm, params=dict(a.params)) for a in config.attacks
    ]
    if config.suite:  # after the attacks: the run ids of runs without one stay as they were
        specs.append(SuiteSpec(config.suite, config.suite_norm))
    base = model
    if config.defense:
        from advlab.defenses import apply_defense

        model = apply_defense(base, config.defense)
    store = on_main(lambda: ResultStore(config.store) if config.store else ResultStore())
    on_main(lambda: write_config(config))
    evaluation = evaluate(
        model, data, specs, config.epsilons, batch_size=batch_size, seed=config.seed,
        store=store, run_config=_run_config(config), progress=progress,
        examples=config.examples, precision=config.precision, compile=config.compile,
    )  # fmt: skip
    results = evaluation.to_dict()
    results_path = out_dir / "results.json"
    if store is None:  # not rank 0: it writes the files
        return EvaluationOutput(results, results_path, None)
    plain = [spec for spec in specs if isinstance(spec, AttackSpec)]
    if config.defense and plain:
        # The standard attacks above, plus their adaptive versions and the masking checks.
        from advlab.evaluation.defend import compare_defenses, defense_candidate

        comparison = compare_defenses(
            base, data, [defense_candidate(base, config.defense)], plain, config.epsilons,
            seed=config.seed, batch_size=batch_size, progress=progress,
            run_config=config.model_dump(), store=store,  # stored as it goes: resumable
        )  # fmt: skip
        results["defense_comparison"] = comparison.to_dict()
        results_path.write_text(json.dumps(results, indent=2, default=str))
    else:
        evaluation.write_json(results_path)
    report_path = None
    if config.report:
        from advlab.reports import write_html_report

        report_path = write_html_report(results, evaluation.examples, out_dir / "report.html")
    return EvaluationOutput(results, results_path, report_path)


def _run_config(config: EvaluateConfig) -> dict[str, Any]:
    """The config as stored with the run; without a suite exactly as before."""
    values = config.model_dump()
    if values.get("suite") is None:
        values.pop("suite", None)
        values.pop("suite_norm", None)
    return values


def load_target(
    spec: str,
    *,
    timeout: float = 10.0,
    retries: int = 2,
    total_timeout: float | None = None,
) -> TargetClassifier:
    """An HTTP endpoint or ONNX file as a query-only model; only black-box attacks may run
    (:class:`EvaluateConfig` checks that). For an endpoint, ``timeout`` is the deadline of
    each whole request, ``retries`` how often a failed one is retried, and ``total_timeout``
    bounds all requests of the run together (:class:`~advlab.targets.HttpTarget`)."""
    from advlab.targets import HttpTarget, OnnxTarget

    if spec.startswith(("http://", "https://")):
        target: Target = HttpTarget(
            spec, timeout=timeout, retries=retries, total_timeout=total_timeout
        )
    else:
        check(spec.endswith(".onnx"), f"--target must be an http(s):// URL or a .onnx file: {spec}")
        target = OnnxTarget(spec)
    return TargetClassifier(target, name=spec)
