"""Adaptive attacks on defended models: BPDA (Athalye et al. 2018) and EOT (Athalye et al. 2018).

A defense that masks or randomizes gradients looks robust under a plain gradient attack
without being robust. advlab therefore attacks a *surrogate* of the defended model:

- :func:`bpda`: every non-differentiable preprocessor keeps its forward but passes the
  gradient straight through (identity) in the backward pass;
- :func:`eot`: the forward averages the logits over ``samples`` random draws, so the
  attack follows the expected gradient rather than one noisy draw;
- :func:`adaptive_model`: BPDA and/or EOT as the defense's flags ask;
- :class:`RescaledLogits`: logits scaled back out of softmax saturation (distillation).

The examples crafted on the surrogate are then judged on the real defended model:
:func:`evaluate_adaptive` does both steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from advlab.attacks.base import Attack, AttackResult
from advlab.defenses.base import (
    Compose,
    DefendedClassifier,
    DefenseLayer,
    describe,
    is_differentiable,
    is_randomized,
    substitute,
)
from advlab.errors import check
from advlab.models.classifier import ImageClassifier
from advlab.models.context import frozen_eval

Reduce = Literal["logits", "probs"]


class StraightThrough(DefenseLayer):
    """Forward ``layer(x)``; backward identity (BPDA with g(x) = x)."""

    differentiable = True

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.layer = layer
        self.spec_name = f"bpda[{describe(layer)}]"

    @property
    def randomized(self) -> bool:  # type: ignore[override]
        return is_randomized(self.layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return substitute(x, self.layer(x.detach()).detach(), "identity")


def straight_through(module: nn.Module) -> nn.Module:
    """``module`` with each non-differentiable defense layer wrapped in StraightThrough."""
    if isinstance(module, Compose):
        return Compose(*(straight_through(step) for step in module.steps))
    if isinstance(module, DefenseLayer) and not is_differentiable(module):
        return StraightThrough(module)
    return module


def bpda(defended: DefendedClassifier) -> DefendedClassifier:
    """The defended model with straight-through gradients through its non-differentiable
    preprocessing; the forward (and so every prediction) is unchanged."""
    check(
        isinstance(defended, DefendedClassifier),
        "bpda needs a DefendedClassifier: wrap the model with advlab.defenses.defend first",
    )
    check(
        type(defended).forward is DefendedClassifier.forward,
        "apply bpda before eot: use eot(bpda(defended)) or adaptive_model(defended)",
    )
    check(
        is_differentiable(defended.net),
        "BPDA only replaces preprocessing; this defense's network itself is not "
        "differentiable: attack it with a black-box attack",
    )
    surrogate = DefendedClassifier(defended)  # the same network, normalization and names
    surrogate.preprocess = straight_through(defended.preprocess)
    surrogate.name = f"bpda({defended.name})"
    return surrogate


class EOT(DefendedClassifier):
    """Expectation over transformation: the forward averages ``samples`` draws of ``model``.

    ``reduce="logits"`` averages logits; ``"probs"`` averages softmax probabilities and
    returns their log (so cross-entropy on the output is the loss of the expected
    probability). Either way the gradient is the average of the per-draw gradients of
    what is averaged, whose variance shrinks as 1 / samples.
    """

    def __init__(
        self, model: ImageClassifier, samples: int = 10, reduce: Reduce = "logits"
    ) -> None:
        check(
            isinstance(samples, int) and samples >= 1, f"EOT samples must be >= 1, got {samples!r}"
        )
        check(
            reduce in ("logits", "probs"), f"EOT reduce must be 'logits' or 'probs', got {reduce!r}"
        )
        super().__init__(model)
        self.samples = samples
        self.reduce = reduce
        self.name = f"eot({model.name},samples={samples})"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total: torch.Tensor | None = None
        for _ in range(self.samples):
            logits = super().forward(x)
            value = logits if self.reduce == "logits" else logits.softmax(dim=1)
            total = value if total is None else total + value
        assert total is not None
        mean = total / self.samples
        return mean if self.reduce == "logits" else mean.clamp_min(1e-12).log()


def eot(model: ImageClassifier, samples: int = 10, reduce: Reduce = "logits") -> EOT:
    """``model`` whose logits are averaged over ``samples`` random draws (see :class:`EOT`)."""
    return EOT(model, samples, reduce)


class RescaledLogits(DefendedClassifier):
    """The model's logits divided by their per-image standard deviation (held constant).

    Predictions are unchanged (a positive per-image scale keeps the argmax), but the
    softmax of the rescaled logits is not saturated, so cross-entropy attacks get a
    gradient again where huge logits (defensive distillation) made it exactly zero in
    float32. This is the attack on the logits of Carlini and Wagner 2016.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = super().forward(x)
        return logits / logits.detach().std(dim=1, keepdim=True).clamp_min(1e-12)


def adaptive_model(defended: ImageClassifier, samples: int = 10) -> ImageClassifier:
    """The surrogate to attack: BPDA if the defense masks gradients, EOT if it is random.

    A model that is neither (or is not a DefendedClassifier) is returned unchanged.
    """
    if not isinstance(defended, DefendedClassifier):
        return defended
    model: ImageClassifier = defended
    if not defended.differentiable:
        model = bpda(defended)
    if defended.randomized:
        model = eot(model, samples)
    return model


@dataclass
class AdaptiveResult(AttackResult):
    """An attack crafted on the surrogate; ``success`` is judged on the real defense.

    ``surrogate_success`` is the attack's own verdict on the surrogate (for comparison).
    """

    surrogate_success: torch.Tensor | None = None


def evaluate_adaptive(
    attack: Attack,
    defended: ImageClassifier,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    samples: int = 10,
    surrogate: ImageClassifier | None = None,
) -> AdaptiveResult:
    """Craft with ``attack`` on :func:`adaptive_model` (or ``surrogate``), then check each
    example on ``defended`` itself (one forward: one random draw for a random defense).

    Robust accuracy under the adaptive attack is ``1 - result.success_rate`` for an
    untargeted attack: images the defense already misclassifies count as successes.
    """
    target = surrogate if surrogate is not None else adaptive_model(defended, samples)
    crafted = attack(target, images, labels)
    with frozen_eval(defended), torch.no_grad():
        predictions = defended(crafted.adversarial).argmax(dim=1)
    labels = labels.to(predictions.device)
    if crafted.targets is not None:
        success = predictions == crafted.targets.to(predictions.device)
    else:
        success = predictions != labels
    return AdaptiveResult(
        crafted.adversarial, success, crafted.queries, crafted.targets, crafted.success
    )


def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, draws: int = 1) -> float:
    """Top-1 accuracy of ``model`` averaged over ``draws`` forward passes (random defenses)."""
    check(draws >= 1, f"draws must be >= 1, got {draws}")
    with frozen_eval(model), torch.no_grad():
        correct = sum(
            (model(images).argmax(dim=1) == labels.to(images.device)).float().mean().item()
            for _ in range(draws)
        )
    return correct / draws
