"""FGSM (Goodfellow et al. 2015) and its random-start variant (Wong et al. 2020)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from advlab.attacks.base import AttackOptions, register_attack
from advlab.attacks.norms import LINF, Norm
from advlab.attacks.pgd import IterativeFGSM

if TYPE_CHECKING:
    from typing_extensions import Unpack


@register_attack
class FGSM(IterativeFGSM):
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
        super().__init__(eps, alpha, 1, norm, **options)
        self.random_start = random_start

    def step_size(self) -> float:
        """``alpha``, or ``eps`` (``1.25 * eps`` from a random start)."""
        assert self.eps is not None
        if self.alpha is not None:
            return self.alpha
        return 1.25 * self.eps if self.random_start else self.eps
