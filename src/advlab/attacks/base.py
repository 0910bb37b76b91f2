"""The attack framework: configuration, input checks, model context and the final clip.

An attack is a configured object that does not hold the model::

    result = PGD(eps=8 / 255, alpha=2 / 255, steps=10)(model, images, labels)

Subclasses implement :meth:`Attack._run` only. :meth:`Attack.__call__` checks the
inputs, puts the model in eval mode with parameter gradients off (and restores both),
picks targets, and after the attack clips the result into the epsilon ball and [0, 1]
itself, so a buggy attack can never return an out-of-bounds example.
"""

from __future__ import annotations

import inspect
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from advlab.attacks.threat import NORMS, Norm, project
from advlab.errors import AdvlabError, check
from advlab.models.context import frozen_eval

TARGET_STRATEGIES = ("random", "least-likely")


@dataclass
class AttackResult:
    """What an attack returns, one entry per image.

    ``queries`` counts the model evaluations the attack spent on each image: gradient
    computations for white-box attacks, forward queries for black-box ones.
    """

    adversarial: torch.Tensor
    success: torch.Tensor
    queries: torch.Tensor
    targets: torch.Tensor | None = None

    @property
    def success_rate(self) -> float:
        return float(self.success.float().mean()) if self.success.numel() else 0.0


def check_inputs(images: Any, labels: Any, model: nn.Module | None = None) -> None:
    """One-line errors for the inputs users most often get wrong."""
    check(isinstance(images, torch.Tensor), "images must be a torch.Tensor of shape (N, C, H, W)")
    check(isinstance(labels, torch.Tensor), "labels must be a torch.Tensor of class indices")
    check(images.dim() == 4, f"images must have shape (N, C, H, W), got {tuple(images.shape)}")
    check(images.is_floating_point(), f"images must be float in [0, 1], got dtype {images.dtype}")
    check(labels.dim() == 1 and labels.shape[0] == images.shape[0],
          f"labels must have shape ({images.shape[0]},), got {tuple(labels.shape)}")  # fmt: skip
    check(not labels.is_floating_point(), "labels must be integer class indices")
    if images.numel():
        check(not bool(torch.isnan(images).any()), "images contain NaN values: clean the input")
        low, high = float(images.min()), float(images.max())
        check(low >= 0.0 and high <= 1.0,
              f"images must be in [0, 1] (got {low:.3g}..{high:.3g}): divide uint8 pixels by 255 "
              "and let the model normalize")  # fmt: skip
    shape = getattr(model, "input_shape", None)
    if shape and all(shape):
        check(tuple(images.shape[1:]) == tuple(shape),
              f"images have shape {tuple(images.shape[1:])} but the model expects {tuple(shape)}; "
              "check the channel count and image size")  # fmt: skip
    num_classes = getattr(model, "num_classes", 0)
    if num_classes and labels.numel():
        low, high = int(labels.min()), int(labels.max())
        check(low >= 0 and high < num_classes,
              f"labels must be in [0, {num_classes - 1}], got {low}..{high}")  # fmt: skip


def check_eps(eps: float | None, norm: str) -> None:
    check(norm in NORMS, f"unknown norm '{norm}': use one of {', '.join(NORMS)}")
    if eps is None:
        return
    check(isinstance(eps, (int, float)) and math.isfinite(eps),
          f"eps must be a number, got {eps!r}")  # fmt: skip
    check(eps >= 0, f"eps must be >= 0, got {eps}")
    if norm == "linf":
        check(eps <= 1, f"L-inf eps is in [0, 1] pixel units, got {eps}: use e.g. 8/255, not 8")


class Attack(ABC):
    """Base class of every attack. Subclasses set ``name`` and implement ``_run``."""

    name: ClassVar[str] = ""
    #: White-box attacks read gradients; black-box ones never may.
    needs_gradients: ClassVar[bool] = True

    def __init__(
        self,
        eps: float | None,
        norm: Norm = "linf",
        *,
        target: str | None = None,
        seed: int | None = None,
    ) -> None:
        check_eps(eps, norm)
        if target is not None:
            strategies = " or ".join(TARGET_STRATEGIES)
            check(target in TARGET_STRATEGIES,
                  f"unknown target strategy '{target}': use {strategies}")  # fmt: skip
        self.eps = None if eps is None else float(eps)
        self.norm: Norm = norm
        self.target = target
        self.seed = seed

    # -- public -----------------------------------------------------------------------
    @property
    def targeted(self) -> bool:
        return self.target is not None

    def config(self) -> dict[str, Any]:
        """The attack's full configuration (stored beside every result)."""
        params = inspect.signature(type(self).__init__).parameters
        config = {key: getattr(self, key) for key in params if key != "self" and hasattr(self, key)}
        return {"attack": self.name, **config}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if k != "attack")
        return f"{type(self).__name__}({args})"

    def __call__(
        self,
        model: nn.Module,
        images: torch.Tensor,
        labels: torch.Tensor,
        targets: torch.Tensor | None = None,
    ) -> AttackResult:
        check_inputs(images, labels, model)
        images = images.detach()
        labels = labels.detach().long()
        generator_state = self._seed_rng(images.device)
        try:
            with frozen_eval(model):
                targets = self._resolve_targets(model, images, labels, targets)
                goal = targets if targets is not None else labels
                adversarial, queries = self._run(model, images, goal, targets is not None)
                adversarial = self._clip(adversarial.detach(), images)
                with torch.no_grad():
                    layout = _layout(adversarial)
                    predictions = model(adversarial.contiguous(memory_format=layout)).argmax(1)
        finally:
            self._restore_rng(generator_state)
        success = predictions == targets if targets is not None else predictions != labels
        return AttackResult(adversarial, success, queries.to(torch.int64).cpu(), targets)

    # -- for subclasses ---------------------------------------------------------------
    @abstractmethod
    def _run(
        self, model: nn.Module, images: torch.Tensor, goal: torch.Tensor, targeted: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(adversarial, queries per image)``; ``goal`` is labels or targets."""

    @staticmethod
    def loss_gradient(
        model: nn.Module, x: torch.Tensor, goal: torch.Tensor, targeted: bool, loss: str = "ce"
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Gradient of the attacker's objective (to ascend) w.r.t. the input, and logits.

        The input goes in channels-last: oneDNN (CPU) and cuDNN run convolutions and
        their input gradients faster in that layout (ResNet-20 on CIFAR-10, 2 CPU cores:
        about 1.2-1.4x per step), and elementwise layers do not care. It changes the
        rounding of the gradient, not its value.
        """
        x = x.detach().contiguous(memory_format=_layout(x)).requires_grad_(True)
        logits = model(x)
        if loss == "margin":
            objective = margin_loss(logits, goal, targeted).sum()
        else:
            objective = F.cross_entropy(logits, goal, reduction="sum")
            if targeted:
                objective = -objective
        (grad,) = torch.autograd.grad(objective, x)
        return grad.detach(), logits.detach()

    # -- internals --------------------------------------------------------------------
    def _clip(self, adversarial: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        if self.eps is None:
            return adversarial.clamp(0.0, 1.0)
        return project(adversarial, images, self.eps, self.norm)

    def _resolve_targets(
        self,
        model: nn.Module,
        images: torch.Tensor,
        labels: torch.Tensor,
        targets: torch.Tensor | None,
    ) -> torch.Tensor | None:
        if targets is not None:
            check(isinstance(targets, torch.Tensor) and targets.shape == labels.shape,
                  "targets must be a tensor of class indices, one per image")  # fmt: skip
            return targets.to(labels.device).long()
        if self.target is None:
            return None
        with torch.no_grad():
            logits = model(images)
        num_classes = logits.shape[1]
        if self.target == "least-likely":
            return logits.argmin(dim=1)
        # random: uniform over the classes other than the true one
        offset = torch.randint(1, num_classes, labels.shape, device=labels.device)
        return (labels + offset) % num_classes

    def _seed_rng(self, device: torch.device) -> Any:
        if self.seed is None:
            return None
        state = (torch.get_rng_state(),
                 torch.cuda.get_rng_state(device) if device.type == "cuda" else None)  # fmt: skip
        torch.manual_seed(self.seed)
        return state

    @staticmethod
    def _restore_rng(state: Any) -> None:
        if state is None:
            return
        torch.set_rng_state(state[0])
        if state[1] is not None:
            torch.cuda.set_rng_state(state[1])


ATTACKS: dict[str, type[Attack]] = {}


def register_attack(cls: type[Attack]) -> type[Attack]:
    """Class decorator: make ``cls`` available by its ``name`` (CLI, configs)."""
    check(bool(cls.name), f"{cls.__name__} needs a name")
    ATTACKS[cls.name] = cls
    return cls


def get_attack(name: str) -> type[Attack]:
    key = name.lower().replace("_", "-")
    if key not in ATTACKS:
        raise AdvlabError(f"unknown attack '{name}': use one of {', '.join(sorted(ATTACKS))}")
    return ATTACKS[key]


LOSSES = ("ce", "margin")


def margin_loss(logits: torch.Tensor, goal: torch.Tensor, targeted: bool) -> torch.Tensor:
    """Carlini-Wagner margin on the logits, per image, to ascend.

    Untargeted: ``max_{j != y} z_j - z_y``; targeted: ``z_t - max_{j != t} z_j``. Unlike
    cross-entropy it does not pass through a softmax, so it keeps its gradient when the
    softmax saturates (defensive distillation's trick).
    """
    own = logits.gather(1, goal[:, None]).squeeze(1)
    others = logits.scatter(1, goal[:, None], -float("inf")).amax(dim=1)
    return own - others if targeted else others - own


def _layout(x: torch.Tensor) -> torch.memory_format:
    """Channels-last for image batches (see :meth:`Attack.loss_gradient`)."""
    return torch.channels_last if x.dim() == 4 else torch.contiguous_format
