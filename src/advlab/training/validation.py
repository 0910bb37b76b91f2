"""What an epoch is judged by: clean accuracy, PGD robust accuracy on a fixed held-out
subset, the best epoch, and when to stop (catastrophic overfitting, lost patience)."""

from __future__ import annotations

import logging

import torch
from torch import nn

from advlab.attacks import PGD
from advlab.data import ImageDataset
from advlab.models import ImageClassifier
from advlab.training.config import AdversarialTrainingConfig, TrainConfig

log = logging.getLogger(__name__)

EVAL_BATCH = 1000

EpochRecord = dict[str, float]


def selection_score(record: EpochRecord) -> float:
    """What picks the best epoch: robust validation accuracy when measured, else clean."""
    return record.get("val_robust_accuracy", record["val_accuracy"])


@torch.no_grad()
def evaluate_accuracy(model: nn.Module, data: ImageDataset, device: torch.device) -> float:
    """Top-1 accuracy on ``data`` in eval mode (the model is left in eval mode)."""
    model.eval()
    correct = 0
    for _, images, labels in data.batches(EVAL_BATCH):
        predictions = model(images.to(device)).argmax(1)
        correct += int((predictions == labels.to(device)).sum())
    return correct / max(len(data), 1)


def robust_val_set(
    config: TrainConfig, val: ImageDataset, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """A fixed, seeded subset of the validation images for PGD robust accuracy."""
    adversarial = config.adversarial
    if adversarial is None:
        return None
    order = torch.randperm(len(val), generator=torch.Generator().manual_seed(config.seed))
    index = order[: adversarial.val_n]
    images = val.pixels[index].to(device).float().div_(255.0)
    return images, val.labels[index].to(device)


def robust_accuracy(
    adversarial: AdversarialTrainingConfig,
    model: ImageClassifier,
    images: torch.Tensor,
    labels: torch.Tensor,
) -> float:
    """PGD robust accuracy at the validation eps."""
    # A fixed seed: every epoch faces the same random starts, so epochs compare fairly.
    attack = PGD(adversarial.validation_eps, steps=adversarial.val_steps,
                 norm=adversarial.norm, seed=0)  # fmt: skip
    robust = 0
    for start in range(0, len(labels), EVAL_BATCH):
        chunk = slice(start, start + EVAL_BATCH)
        result = attack(model, images[chunk], labels[chunk])
        robust += int((~result.success).sum())
    return robust / max(len(labels), 1)


def stop_reason(config: TrainConfig, history: list[EpochRecord]) -> str | None:
    """Catastrophic overfitting or lost patience: why to stop after this epoch, if so."""
    record = history[-1]
    adversarial = config.adversarial
    if adversarial is not None and len(history) > 1:
        best = max(item["val_robust_accuracy"] for item in history[:-1])
        if record["val_robust_accuracy"] < best - adversarial.overfit_drop:
            record["catastrophic_overfitting"] = 1.0
            message = (
                f"catastrophic overfitting at epoch {int(record['epoch'])}: PGD robust "
                f"accuracy fell from {best:.4f} to {record['val_robust_accuracy']:.4f} "
                f"(train acc {record['train_accuracy']:.4f}); the best checkpoint is the "
                "last robust one"
            )
            log.warning("%s", message)
            if adversarial.early_stop:
                return message
    if config.patience is not None:
        best_epoch = max(history, key=selection_score)["epoch"]
        if record["epoch"] - best_epoch >= config.patience:
            return f"no improvement for {config.patience} epochs (early stopping)"
    return None
