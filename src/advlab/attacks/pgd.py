"""BIM / I-FGSM (Kurakin et al. 2017) and PGD (Madry et al. 2018): iterated FGSM steps.

Both are :class:`IterativeFGSM` (as are FGSM, one step, and MIM, with momentum): ``steps``
gradient steps of size ``alpha``, each projected into the ball. BIM starts at the image;
PGD adds a random start, restarts, early stopping, a choice of loss and a larger step.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from advlab.attacks.base import Attack, AttackOptions, check_counts, register_attack
from advlab.attacks.gradient import (
    OBJECTIVES,
    GradientAscent,
    SteepestAscent,
    Update,
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


class IterativeFGSM(Attack):
    """``steps`` FGSM steps of size ``alpha`` (default ``eps / steps``), each projected.

    The loop of FGSM, BIM, PGD and MIM. Without PGD's options (these class attributes) it
    starts at the image, runs once, every image all steps, and ascends the cross-entropy.
    """

    random_start: bool = False
    restarts: int = 1
    early_stop: bool = False
    loss: str = "ce"

    def __init__(
        self,
        eps: float = 8 / 255,
        alpha: float | None = None,
        steps: int = 10,
        norm: Norm = LINF,
        **options: Unpack[AttackOptions],
    ) -> None:
        super().__init__(eps, norm, **options)
        check_counts(steps=steps)
        check(alpha is None or alpha > 0, f"alpha must be > 0, got {alpha}")
        self.alpha = alpha
        self.steps = int(steps)

    def step_size(self) -> float:
        """``alpha``, or by default ``eps / steps``."""
        assert self.eps is not None
        return self.alpha if self.alpha is not None else self.eps / self.steps

    def _run(
        self, model: nn.Module, images: torch.Tensor, goal: torch.Tensor, targeted: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        assert self.eps is not None
        loop = GradientAscent(
            self.ball, self.eps, self.steps, objective=OBJECTIVES[self.loss](targeted),
            update=self._update(),
            start=start_in_ball(self.ball, self.eps) if self.random_start else None,
            restarts=self.restarts, early_stop=self.early_stop, success=misclassified(targeted),
        )  # fmt: skip
        return loop.run(model, images, goal)

    def _update(self) -> Update:
        """How a step follows the gradient (MIM: with momentum)."""
        return SteepestAscent(self.ball, self.step_size())


@register_attack
class BIM(IterativeFGSM):
    """Basic iterative method: PGD without a random start, step ``eps / steps`` by default."""

    name = "bim"


@register_attack
class PGD(IterativeFGSM):
    """Projected gradient ascent on the cross-entropy, ``steps`` steps of size ``alpha``.

    Takes BIM's parameters (``eps``, ``alpha``, ``steps``, ``norm``) and these options.
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
        *args: Any,
        random_start: bool = True,
        restarts: int = 1,
        early_stop: bool = False,
        loss: str = "ce",
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        check(loss in OBJECTIVES, f"unknown loss '{loss}': use one of {', '.join(LOSSES)}")
        check_counts(restarts=restarts)
        self.loss = loss
        self.early_stop = bool(early_stop)
        self.random_start = random_start
        self.restarts = int(restarts)

    def step_size(self) -> float:
        """``alpha``, or by default 2.5 * eps / steps (Madry et al.)."""
        assert self.eps is not None
        return self.alpha if self.alpha is not None else default_step_size(self.eps, self.steps)
