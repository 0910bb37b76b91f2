"""What one training batch computes: the hook that makes adversarial training one option.

A training step takes the model (in train mode), a batch of images in [0, 1] and labels,
and returns the loss to minimize with the logits it was computed from (for the training
accuracy). The trainer owns everything else: data, optimizer, schedule, checkpoints.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from advlab.attacks import FGSM, PGD, Attack
from advlab.errors import AdvlabError
from advlab.training.config import AdversarialTrainingConfig


class StepOutput(NamedTuple):
    loss: torch.Tensor  # scalar, mean over the batch
    logits: torch.Tensor  # (N, classes) on the inputs the loss was computed on


class TrainingStep(Protocol):
    def __call__(
        self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor
    ) -> StepOutput: ...


class StandardStep:
    """Cross-entropy on the clean batch."""

    def __call__(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> StepOutput:
        logits = model(images)
        return StepOutput(F.cross_entropy(logits, labels), logits)


class AdversarialStep:
    """Cross-entropy on adversarial examples crafted against the current weights.

    The attack runs the model in eval mode (advlab's attacks always do), so BatchNorm's
    running statistics are not updated by the attack's many forward passes; the model is
    back in train mode for the loss on the adversarial batch.
    """

    def __init__(self, attack: Attack) -> None:
        self.attack = attack

    def __call__(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> StepOutput:
        adversarial = self.attack(model, images, labels).adversarial
        logits = model(adversarial)
        return StepOutput(F.cross_entropy(logits, labels), logits)


def make_training_step(adversarial: AdversarialTrainingConfig | None) -> TrainingStep:
    """The step for a config: standard, or adversarial with the configured attack."""
    if adversarial is None:
        return StandardStep()
    if adversarial.method == "fgsm-rs":
        attack: Attack = FGSM(
            adversarial.eps, adversarial.norm, random_start=True, alpha=adversarial.alpha
        )
        return AdversarialStep(attack)
    if adversarial.method == "pgd":
        attack = PGD(adversarial.eps, adversarial.alpha, adversarial.steps, adversarial.norm)
        return AdversarialStep(attack)
    raise AdvlabError(
        f"adversarial training method '{adversarial.method}' is not yet implemented: "
        "use 'pgd' or 'fgsm-rs'"
    )
