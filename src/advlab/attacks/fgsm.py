"""FGSM (Goodfellow et al. 2015) and its random-start variant (Wong et al. 2020)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from advlab.attacks.base import Attack, AttackOptions, register_attack
from advlab.attacks.gradient import GradientAscent, SteepestAscent, cross_entropy, start_in_ball
from advlab.attacks.norms import LINF, Norm
from advlab.errors import check

if TYPE_CHECKING:
    from typing_extensions import Unpack


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
        norm: Norm = LINF,
        *,
        random_start: bool = False,
        alpha: float | None = None,
        **options: Unpack[AttackOptions],
    ) -> None:
        super().__init__(eps, norm, **options)
        check(alpha is None or alpha > 0, f"alpha must be > 0, got {alpha}")
        self.random_start = random_start
        self.alpha = alpha

    def step_size(self) -> float:
        """``alpha``, or ``eps`` (``1.25 * eps`` from a random start)."""
        assert self.eps is not None
        if self.alpha is not None:
            return self.alpha
        return 1.25 * self.eps if self.random_start else self.eps

    def _run(
        self, model: nn.Module, images: torch.Tensor, goal: torch.Tensor, targeted: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        assert self.eps is not None
        loop = GradientAscent(
            self.ball, self.eps, steps=1, objective=cross_entropy(targeted),
            update=SteepestAscent(self.ball, self.step_size()),
            start=start_in_ball(self.ball, self.eps) if self.random_start else None,
        )  # fmt: skip
        return loop.run(model, images, goal)
