"""MIM / MI-FGSM: momentum iterative FGSM (Dong et al. 2018)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from advlab.attacks.base import AttackOptions, register_attack
from advlab.attacks.gradient import Momentum, Update
from advlab.attacks.norms import LINF, Norm
from advlab.attacks.pgd import IterativeFGSM
from advlab.errors import check

if TYPE_CHECKING:
    from typing_extensions import Unpack


@register_attack
class MIM(IterativeFGSM):
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
        super().__init__(eps, alpha, steps, norm, **options)
        check(decay >= 0, f"decay must be >= 0, got {decay}")
        self.decay = float(decay)
        self.random_start = random_start

    def _update(self) -> Update:
        return Momentum(self.ball, self.step_size(), self.decay)
