"""What one training batch computes: the hook that makes adversarial training one option.

A training step takes the model (in train mode), a batch of images in [0, 1] and labels,
and returns the loss to minimize with the logits it was computed from (for the training
accuracy). The trainer owns everything else: data, optimizer, schedule, checkpoints.
Adversarial steps also take ``set_eps``, through which the trainer warms eps up.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple, Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import nn

from advlab.attacks import FGSM, PGD, Attack
from advlab.attacks.gradient import (
    GradientAscent,
    SteepestAscent,
    default_step_size,
    kl_divergence,
)
from advlab.attacks.norms import LINF, Norm, get_norm
from advlab.models.context import frozen_eval
from advlab.training.config import AdversarialTrainingConfig
from advlab.training.ddp import unwrap


class StepOutput(NamedTuple):
    loss: torch.Tensor  # scalar, mean over the batch
    logits: torch.Tensor  # (N, classes) on the inputs the loss was computed on


class TrainingStep(Protocol):
    def __call__(
        self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor
    ) -> StepOutput: ...


@runtime_checkable
class EpsilonScheduled(Protocol):
    """A step whose perturbation budget the trainer can change between batches."""

    def set_eps(self, eps: float) -> None: ...


class StandardStep:
    """Cross-entropy on the clean batch, of ``logits / temperature``."""

    def __init__(self, temperature: float = 1.0) -> None:
        self.temperature = temperature

    def __call__(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> StepOutput:
        logits = model(images)
        return StepOutput(F.cross_entropy(logits / self.temperature, labels), logits)


class AdversarialStep:
    """Cross-entropy on adversarial examples crafted against the current weights.

    The attack runs the model in eval mode (advlab's attacks always do), so BatchNorm's
    running statistics are not updated by the attack's many forward passes; the model is
    back in train mode for the loss on the adversarial batch. ``make_attack(eps)`` builds
    the attack for a budget, so that eps can be warmed up.
    """

    def __init__(self, attack: Attack | Callable[[float], Attack], eps: float | None = None):
        if isinstance(attack, Attack):
            fixed = attack
            self.make_attack: Callable[[float], Attack] = lambda _eps: fixed
            eps = attack.eps if eps is None else eps
        else:
            self.make_attack = attack
        self.make_attack = _unfolded(self.make_attack)
        if eps is None:
            raise ValueError("AdversarialStep needs eps when given an attack factory")
        self.eps = float(eps)
        self.attack = self.make_attack(self.eps)

    def set_eps(self, eps: float) -> None:
        if eps != self.eps:
            self.eps = float(eps)
            self.attack = self.make_attack(self.eps)

    def __call__(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> StepOutput:
        adversarial = self.attack(unwrap(model), images, labels).adversarial
        logits = model(adversarial)
        return StepOutput(F.cross_entropy(logits, labels), logits)


def _unfolded(make_attack: Callable[[float], Attack]) -> Callable[[float], Attack]:
    """Attacks that search on the model itself: a batch-norm-folded copy would have to be
    made again for every batch (the weights change at every step)."""

    def make(eps: float) -> Attack:
        attack = make_attack(eps)
        attack.search_copy = False
        return attack

    return make


class TradesStep:
    """TRADES (Zhang et al. 2019): ``CE(f(x), y) + beta * KL(f(x) || f(x'))``.

    ``x'`` maximizes the KL term inside the eps ball, from ``x`` plus small Gaussian noise,
    with ``steps`` steps of ``alpha`` (in eval mode, as the authors' code does). The
    reported logits are the clean ones: TRADES trains for clean accuracy and smoothness.
    """

    def __init__(
        self, eps: float, norm: Norm = LINF, alpha: float | None = None, steps: int = 10,
        beta: float = 6.0,
    ) -> None:  # fmt: skip
        self.eps, self.norm, self.steps, self.beta = float(eps), norm, int(steps), float(beta)
        self.alpha_ratio = None if alpha is None or eps == 0 else alpha / eps

    def set_eps(self, eps: float) -> None:
        self.eps = float(eps)

    @property
    def alpha(self) -> float:
        # A fraction of eps, so that it follows eps during warm-up.
        ratio = self.alpha_ratio
        return (ratio if ratio is not None else default_step_size(1.0, self.steps)) * self.eps

    def __call__(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> StepOutput:
        adversarial = self.perturb(unwrap(model), images)
        logits = model(images)
        adversarial_logits = model(adversarial)
        kl = F.kl_div(
            F.log_softmax(adversarial_logits, dim=1), F.softmax(logits, dim=1),
            reduction="batchmean",
        )  # fmt: skip
        return StepOutput(F.cross_entropy(logits, labels) + self.beta * kl, logits)

    def perturb(self, model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        images = images.detach()
        if self.eps == 0:
            return images
        with frozen_eval(model):
            with torch.no_grad():
                natural = F.softmax(model(images), dim=1)
            ball = get_norm(self.norm)
            loop = GradientAscent(
                ball, self.eps, self.steps, objective=kl_divergence,
                update=SteepestAscent(ball, self.alpha), start=_near, channels_last=False,
            )  # fmt: skip
            x, _ = loop.run(model, images, natural)
        return x.detach()


def _near(images: torch.Tensor) -> torch.Tensor:
    """TRADES's start: the images plus small Gaussian noise."""
    return (images + 0.001 * torch.randn_like(images)).clamp(0.0, 1.0)


class DistillationStep:
    """Defensive distillation (Papernot et al. 2016): fit the teacher's soft labels at T.

    Loss: cross-entropy between ``softmax(teacher(x) / T)`` and ``softmax(student(x) / T)``.
    The teacher should itself have been trained at temperature T; the student is used at
    temperature 1, where its logits are about T times too large and its softmax saturates.
    """

    def __init__(self, teacher: nn.Module, temperature: float) -> None:
        self.teacher = teacher.eval()
        for parameter in self.teacher.parameters():
            parameter.requires_grad_(False)
        self.temperature = temperature

    def __call__(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> StepOutput:
        with torch.no_grad():
            soft = F.softmax(self.teacher(images) / self.temperature, dim=1)
        logits = model(images)
        loss = -(soft * F.log_softmax(logits / self.temperature, dim=1)).sum(dim=1).mean()
        return StepOutput(loss, logits)


def make_training_step(
    adversarial: AdversarialTrainingConfig | None, temperature: float = 1.0
) -> TrainingStep:
    """The step for a config: standard (at ``temperature``), or adversarial."""
    if adversarial is None:
        return StandardStep(temperature)
    config = adversarial
    if config.method == "trades":
        return TradesStep(config.eps, config.norm, config.alpha, config.steps, config.beta)
    # An explicit alpha scales with eps during warm-up: it is a fraction of the budget.
    ratio = None if config.alpha is None else config.alpha / config.eps
    if config.method == "fgsm-rs":

        def make_attack(eps: float) -> Attack:
            alpha = None if ratio is None or eps == 0 else ratio * eps
            return FGSM(eps, config.norm, random_start=True, alpha=alpha)

    else:

        def make_attack(eps: float) -> Attack:
            alpha = None if ratio is None or eps == 0 else ratio * eps
            return PGD(eps, alpha, config.steps, config.norm)

    return AdversarialStep(make_attack, config.eps)
