"""``advlab attack`` as a call: craft adversarial examples and save them as .npz (and PNGs)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from advlab.data import ImageDataset
from advlab.evaluation.session import check_fit
from advlab.models import load_model, resolve_device
from advlab.workflows.common import (
    load_data,
    prepare_folder,
    resolve_batch_size,
    searching,
    write_config,
)
from advlab.workflows.config import AttackConfig

RESULT_FILES = ("adversarial.npz", "attack.json")


@dataclass
class AttackOutput:
    summary: dict[str, Any]  # what attack.json holds
    path: Path  # adversarial.npz

    @property
    def success_rate(self) -> float:
        return float(self.summary["success_rate"])


def run_attack(config: AttackConfig, *, progress: bool = True, force: bool = False) -> AttackOutput:
    """Attack every image of the configured data; write ``adversarial.npz`` (and PNGs)."""
    from advlab.attacks import get_attack
    from advlab.progress import progress_bar

    out_dir = prepare_folder(config, force=force, results=RESULT_FILES)
    model = load_model(config.model, weights=config.weights, device=resolve_device(config.device))
    data = load_data(config.dataset, config.split, config.n, config.data_dir, seed=config.seed)
    batch_size = resolve_batch_size(config.batch_size, [model], len(data))
    check_fit(model, data)
    choice = config.attack
    attack = get_attack(choice.name)(
        eps=config.eps, norm=choice.norm, seed=config.seed, **choice.params
    )
    write_config(config)
    adversarial, success, predictions, queries = [], [], [], []
    label = f"{choice.name} eps={config.eps:g}"
    with (
        searching(config, model, data) as precision,
        progress_bar(len(data), label, enabled=progress) as advance,
    ):
        for _, images, labels in data.batches(batch_size):
            result = attack(model, images.to(model.device), labels.to(model.device))
            with torch.no_grad():
                predictions.append(model(result.adversarial).argmax(1).cpu())
            adversarial.append(result.adversarial.cpu())
            success.append(result.success.cpu())
            queries.append(result.queries)
            advance(len(labels))
    adv = torch.cat(adversarial)
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
    if config.png:
        _write_pngs(adv, out_dir / "png", data)
    summary = {
        "attack": attack.config(),
        "model": model.name,
        "dataset": data.name,
        "n": len(data),
        "seed": config.seed,
        "precision": precision,
        "success_rate": float(torch.cat(success).float().mean()),
        "file": str(npz_path),
    }
    (out_dir / "attack.json").write_text(json.dumps(summary, indent=2, default=str))
    return AttackOutput(summary, npz_path)


def _write_pngs(images: torch.Tensor, folder: Path, data: ImageDataset) -> None:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    pixels = (images.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    for position, array in enumerate(pixels):
        label = data.class_names[int(data.labels[position])].replace("/", "-").replace(" ", "_")
        image = Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)
        image.save(folder / f"{int(data.indices[position]):06d}_{label}.png")
