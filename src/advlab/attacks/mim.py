"""MIM / MI-FGSM: momentum iterative FGSM (Dong et al. 2018)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from advlab.attacks.base import Attack, AttackOptions, check_counts, register_attack
from advlab.attacks.gradient import GradientAscent, Momentum, cross_entropy, start_in_ball
from advlab.attacks.norms import LINF, Norm
from advlab.errors import check

if TYPE_CHECKING:
    from typing_extensions import Unpack


@register_attack
class MIM(Attack):
    """Iterative FGSM whose step follows an accumulated, L1-normalized gradient.

    Each step adds ``grad / mean(|grad|)`` to a momentum buffer decayed by ``decay`` and
    moves ``alpha`` along the buffer's steepest-ascent direction for the norm, then
    projects into the ball. ``alpha`` defaults to ``eps / steps``, as in the paper.
    """

    name = "mim"

    def __init__(
        self,
        eps: float = 8 / 255,
        alpha: float | None = None,
        steps: int = 10,
        decay: float = 1.0,
        norm: Norm = LINF,
        *,
        random_start: bool = False,
        **options: Unpack[AttackOptions],
    ) -> None:
        super().__init__(eps, norm, **options)
        check_counts(steps=steps)
        check(alpha is None or alpha > 0, f"alpha must be > 0, got {alpha}")
        check(decay >= 0, f"decay must be >= 0, got {decay}")
        self.alpha = alpha
        self.steps = int(steps)
        self.decay = float(decay)
        self.random_start = random_start

    def step_size(self) -> float:
        assert self.eps is not None
        return self.alpha if self.alpha is not None else self.eps / self.steps

    def _run(
        self, model: nn.Module, images: torch.Tensor, goal: torch.Tensor, targeted: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        assert self.eps is not None
        loop = GradientAscent(
            self.ball, self.eps, self.steps, objective=cross_entropy(targeted),
            update=Momentum(self.ball, self.step_size(), self.decay),
            start=start_in_ball(self.ball, self.eps) if self.random_start else None,
        )  # fmt: skip
        return loop.run(model, images, goal)
