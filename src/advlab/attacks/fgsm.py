"""FGSM (Goodfellow et al. 2015) and its random-start variant (Wong et al. 2020)."""

from __future__ import annotations

import torch
from torch import nn

from advlab.attacks.base import Attack, register_attack
from advlab.attacks.threat import Norm, direction, project, random_start
from advlab.errors import check


@register_attack
class FGSM(Attack):
    """One gradient step of size ``eps`` (L-inf: ``x + eps * sign(grad)``).

    With ``random_start=True`` it starts from a uniform point in the ball and steps by
    ``alpha`` (default ``1.25 * eps``, as in fast adversarial training), then projects.
    """

    name = "fgsm"

    def __init__(
        self,
        eps: float = 8 / 255,
        norm: Norm = "linf",
        *,
        random_start: bool = False,
        alpha: float | None = None,
        target: str | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__(eps, norm, target=target, seed=seed)
        check(alpha is None or alpha > 0, f"alpha must be > 0, got {alpha}")
        self.random_start = random_start
        self.alpha = alpha

    def _run(
        self, model: nn.Module, images: torch.Tensor, goal: torch.Tensor, targeted: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        assert self.eps is not None
        step = self.alpha if self.alpha is not None else (
            1.25 * self.eps if self.random_start else self.eps
        )
        start = random_start(images, self.eps, self.norm) if self.random_start else images
        grad, _ = self.loss_gradient(model, start, goal, targeted)
        stepped = start + step * direction(grad, self.norm)
        adversarial = project(stepped, images, self.eps, self.norm)
        return adversarial, torch.ones(images.shape[0], dtype=torch.int64)
