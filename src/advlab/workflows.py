"""End-to-end jobs shared by the CLI and the Python API: evaluate, attack, demo."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from advlab.config import AttackChoice, DefendConfig, EvaluateConfig
from advlab.data import ImageDataset, load_dataset
from advlab.errors import check
from advlab.models import ImageClassifier, load_model, resolve_device
from advlab.targets import Target, TargetClassifier

log = logging.getLogger(__name__)

# Sized to run in about a minute on two CPU cores: 10-step PGD/MIM, and DeepFool over the
# three strongest runner-up classes (the usual choice; all ten barely change the result).
DEMO_ATTACKS = ["fgsm", "pgd:steps=10", "mim:steps=10", "deepfool:steps=50,num_candidates=4"]
DEMO_EPSILONS = [0.05, 0.1, 0.2, 0.3]


def check_compatible(model: ImageClassifier, data: ImageDataset) -> None:
    """The data set must fit the model before any work starts."""
    if model.input_shape and all(model.input_shape):
        check(
            tuple(model.input_shape) == data.image_shape,
            f"model '{model.name}' expects images of shape {tuple(model.input_shape)} but data set "
            f"'{data.name}' has {data.image_shape}: pick a matching model and data set",
        )
    if model.num_classes and len(data):
        top = int(data.labels.max())
        check(
            top < model.num_classes,
            f"data set '{data.name}' has label {top} but model '{model.name}' has only "
            f"{model.num_classes} classes",
        )


@dataclass
class EvaluationOutput:
    results: dict[str, Any]
    results_path: Path
    report_path: Path | None


def run_evaluation(config: EvaluateConfig, *, progress: bool = True) -> EvaluationOutput:
    """Load the model and data named in ``config``, run the sweep, write results and report."""
    from advlab.evaluation import AttackSpec, ResultStore, evaluate

    device = resolve_device(config.device)
    model = (
        load_target(config.target, config.attacks)
        if config.target
        else load_model(config.model, weights=config.weights, device=device)
    )
    data = load_dataset(config.dataset, config.split, config.n, config.data_dir, seed=config.seed)
    specs = [AttackSpec(name=a.name, norm=a.norm, params=dict(a.params)) for a in config.attacks]
    base = model
    if config.defense:
        from advlab.defenses import apply_defense

        model = apply_defense(base, config.defense)
    store = ResultStore(config.store) if config.store else ResultStore()
    out_dir = config.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    evaluation = evaluate(
        model,
        data,
        specs,
        config.epsilons,
        batch_size=config.batch_size,
        seed=config.seed,
        store=store,
        run_config=config.model_dump(),
        progress=progress,
        examples=config.examples,
    )
    results = evaluation.to_dict()
    results_path = out_dir / "results.json"
    if config.defense:
        # The standard attacks above, plus their adaptive versions and the masking checks.
        from advlab.evaluation.defend import compare_defenses, defense_candidate

        comparison = compare_defenses(
            base, data, [defense_candidate(base, config.defense)], specs, config.epsilons,
            seed=config.seed, batch_size=config.batch_size, progress=progress,
            run_config=config.model_dump(), store=store,  # stored as it goes: resumable
        )  # fmt: skip
        results["defense_comparison"] = comparison.to_dict()
        results_path.write_text(json.dumps(results, indent=2, default=str))
    else:
        evaluation.write_json(results_path)
    (out_dir / "config.yaml").write_text(_yaml_dump(config.model_dump()))
    report_path = None
    if config.report:
        from advlab.reports import write_html_report

        report_path = write_html_report(results, evaluation.examples, out_dir / "report.html")
    return EvaluationOutput(results, results_path, report_path)


def load_target(spec: str, attacks: list[AttackChoice]) -> TargetClassifier:
    """An HTTP endpoint or ONNX file as a query-only model; only black-box attacks may run."""
    from advlab.attacks import get_attack
    from advlab.targets import HttpTarget, OnnxTarget

    for choice in attacks:
        check(
            not get_attack(choice.name).needs_gradients,
            f"attack '{choice.name}' needs gradients, which --target {spec} cannot give: "
            "use a black-box attack (square, simba, hopskipjump, transfer)",
        )
    if spec.startswith(("http://", "https://")):
        target: Target = HttpTarget(spec)
    else:
        check(spec.endswith(".onnx"), f"--target must be an http(s):// URL or a .onnx file: {spec}")
        target = OnnxTarget(spec)
    return TargetClassifier(target, name=spec)


def _yaml_dump(data: dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(json.loads(json.dumps(data, default=str)), sort_keys=False)


def demo_config(
    out: str = "advlab-demo", n: int = 300, store: str | None = None
) -> EvaluateConfig:
    """The offline demo: the bundled MNIST CNN on 300 held-out bundled images."""
    return EvaluateConfig(
        model="mnist-cnn",
        dataset="mnist-demo",
        n=n,
        seed=0,
        attacks=[AttackChoice.parse(text) for text in DEMO_ATTACKS],
        epsilons=DEMO_EPSILONS,
        batch_size=300,
        device="cpu",
        out=out,
        store=store,
    )


def run_attack(
    model: ImageClassifier,
    data: ImageDataset,
    choice: AttackChoice,
    eps: float,
    *,
    batch_size: int = 128,
    seed: int = 0,
    out_dir: Path,
    png: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Attack every image of ``data``; write ``adversarial.npz`` (and PNGs) to ``out_dir``."""
    from advlab.attacks import get_attack
    from advlab.progress import progress_bar

    check_compatible(model, data)
    attack = get_attack(choice.name)(eps=eps, norm=choice.norm, seed=seed, **choice.params)
    device = model.device
    adversarial, success, predictions, queries = [], [], [], []
    with progress_bar(len(data), f"{choice.name} eps={eps:g}", enabled=progress) as advance:
        for _, images, labels in data.batches(batch_size):
            result = attack(model, images.to(device), labels.to(device))
            with torch.no_grad():
                predictions.append(model(result.adversarial).argmax(1).cpu())
            adversarial.append(result.adversarial.cpu())
            success.append(result.success.cpu())
            queries.append(result.queries)
            advance(len(labels))
    adv = torch.cat(adversarial)
    out_dir.mkdir(parents=True, exist_ok=True)
    npz_path = out_dir / "adversarial.npz"
    np.savez_compressed(
        npz_path,
        adversarial=adv.numpy().astype(np.float32),
        clean=data.images.numpy().astype(np.float32),
        labels=data.labels.numpy(),
        predictions=torch.cat(predictions).numpy(),
        success=torch.cat(success).numpy(),
        queries=torch.cat(queries).numpy(),
        indices=data.indices,
    )
    if png:
        _write_pngs(adv, out_dir / "png", data)
    summary = {
        "attack": attack.config(),
        "model": model.name,
        "dataset": data.name,
        "n": len(data),
        "seed": seed,
        "success_rate": float(torch.cat(success).float().mean()),
        "file": str(npz_path),
    }
    (out_dir / "attack.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary


def _write_pngs(images: torch.Tensor, folder: Path, data: ImageDataset) -> None:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    pixels = (images.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    for position, array in enumerate(pixels):
        label = data.class_names[int(data.labels[position])].replace("/", "-").replace(" ", "_")
        image = Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)
        image.save(folder / f"{int(data.indices[position]):06d}_{label}.png")


@dataclass
class DefendOutput:
    results: dict[str, Any]
    results_path: Path
    report_path: Path | None
    resumed_rows: int = 0  # rows and checks loaded from the store (an interrupted run)
    resumed_checks: int = 0


def run_defend(config: DefendConfig, *, progress: bool = True) -> DefendOutput:
    """Load the model, its defenses and the data; compare; write defend.json and report.html."""
    from advlab.evaluation import AttackSpec, ResultStore
    from advlab.evaluation.defend import (
        compare_defenses,
        defense_candidate,
        detector_candidate,
        model_candidate,
    )

    device = resolve_device(config.device)
    model = load_model(config.model, weights=config.weights, device=device)
    data = load_dataset(config.dataset, config.split, config.n, config.data_dir, seed=config.seed)
    check_compatible(model, data)
    candidates = [defense_candidate(model, spec) for spec in config.defenses]
    for name in config.defended_models:
        defended = load_model(name, device=device)
        check_compatible(defended, data)
        candidates.append(model_candidate(defended, name))
    if config.detectors:
        fit = _held_out_images(config, data)
        candidates += [
            detector_candidate(model, name, fit, config.detector_fpr) for name in config.detectors
        ]
    specs = [AttackSpec(name=a.name, norm=a.norm, params=dict(a.params)) for a in config.attacks]
    store = ResultStore(config.store) if config.store else ResultStore()
    comparison = compare_defenses(
        model, data, candidates, specs, config.epsilons, seed=config.seed,
        batch_size=config.batch_size, eot_samples=config.eot_samples,
        gap_threshold=config.gap_threshold, min_retention=config.min_retention,
        checks=config.checks, check_n=config.check_n, check_eps=config.check_eps,
        check_steps=config.check_steps, check_queries=config.check_queries, store=store,
        run_config=config.model_dump(), progress=progress,
    )  # fmt: skip
    out_dir = config.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    results = comparison.to_dict()
    results_path = comparison.write_json(out_dir / "defend.json")
    (out_dir / "config.yaml").write_text(_yaml_dump(config.model_dump()))
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
