"""PGD (Madry et al. 2018) and BIM / I-FGSM (Kurakin et al. 2017)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from advlab.attacks.base import Attack, AttackOptions, check_counts, register_attack
from advlab.attacks.gradient import (
    OBJECTIVES,
    GradientAscent,
    SteepestAscent,
    default_step_size,
    misclassified,
    start_in_ball,
)
from advlab.attacks.norms import LINF, Norm
from advlab.errors import check

if TYPE_CHECKING:
    from typing_extensions import Unpack

#: The losses PGD can ascend, by name.
LOSSES = tuple(OBJECTIVES)


@register_attack
class PGD(Attack):
    """Projected gradient ascent on the cross-entropy, ``steps`` steps of size ``alpha``.

    ``restarts`` > 1 repeats the attack from new random starts and keeps, per image, the
    first adversarial example found (or else the one with the highest loss).
    ``loss="margin"`` ascends the Carlini-Wagner margin on the logits instead of the
    cross-entropy: the attack to use when a model's softmax saturates (distillation).
    ``early_stop=True`` stops each image at the first step where it is already fooled
    (its logits are computed for the gradient anyway): the same or higher success rate for
    a fraction of the work when only robust accuracy matters; off by default, because
    adversarial training wants the full-strength perturbation.
    """

    name = "pgd"

    def __init__(
        self,
        eps: float = 8 / 255,
        alpha: float | None = None,
        steps: int = 10,
        norm: Norm = LINF,
        *,
        random_start: bool = True,
        restarts: int = 1,
        early_stop: bool = False,
        loss: str = "ce",
        **options: Unpack[AttackOptions],
    ) -> None:
        super().__init__(eps, norm, **options)
        check(loss in OBJECTIVES, f"unknown loss '{loss}': use one of {', '.join(LOSSES)}")
        self.loss = loss
        self.early_stop = bool(early_stop)
        check_counts(steps=steps, restarts=restarts)
        check(alpha is None or alpha > 0, f"alpha must be > 0, got {alpha}")
        self.alpha = alpha
        self.steps = int(steps)
        self.random_start = random_start
        self.restarts = int(restarts)

    def step_size(self) -> float:
        """``alpha``, or by default 2.5 * eps / steps (Madry et al.)."""
        assert self.eps is not None
        return self.alpha if self.alpha is not None else default_step_size(self.eps, self.steps)

    def _run(
        self, model: nn.Module, images: torch.Tensor, goal: torch.Tensor, targeted: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        assert self.eps is not None
        loop = GradientAscent(
            self.ball, self.eps, self.steps, objective=OBJECTIVES[self.loss](targeted),
            update=SteepestAscent(self.ball, self.step_size()),
            start=start_in_ball(self.ball, self.eps) if self.random_start else None,
            restarts=self.restarts, early_stop=self.early_stop, success=misclassified(targeted),
        )  # fmt: skip
        return loop.run(model, images, goal)


@register_attack
class BIM(PGD):
    """Basic iterative method: PGD without a random start, step ``eps / steps`` by default."""

    name = "bim"

    def __init__(
        self,
        eps: float = 8 / 255,
        alpha: float | None = None,
        steps: int = 10,
        norm: Norm = LINF,
        **options: Unpack[AttackOptions],
    ) -> None:
        super().__init__(eps, alpha, steps, norm, random_start=False, **options)

    def step_size(self) -> float:
        assert self.eps is not None
        return self.alpha if self.alpha is not None else self.eps / self.steps
