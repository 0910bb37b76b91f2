"""What an attack returns: the adversarial images, per-image success and query counts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch


class _JudgedOnRead:
    """A field that holds a tensor, or a function that computes it the first time it is read.

    Dataclasses see a descriptor without a class-level default (``__get__`` on the class
    raises AttributeError), so the field stays a required one.
    """

    def __set_name__(self, owner: type, name: str) -> None:
        self.slot = f"_{name}"

    def __get__(self, instance: Any, owner: type | None = None) -> torch.Tensor:
        if instance is None:
            raise AttributeError(self.slot)
        value = instance.__dict__[self.slot]
        if not isinstance(value, torch.Tensor):
            value = instance.__dict__[self.slot] = value()
        return value

    def __set__(self, instance: Any, value: torch.Tensor | Callable[[], torch.Tensor]) -> None:
        instance.__dict__[self.slot] = value


@dataclass
class AttackResult:
    """What an attack returns, one entry per image.

    ``queries`` counts the model evaluations the attack spent on each image: gradient
    computations for white-box attacks, forward queries for black-box ones.

    A white-box attack judges ``success`` on the model with one forward pass when it is
    first read, not before: evaluation (which predicts the adversarial images itself) and
    adversarial training (which only wants the images) never pay for it. Read it before
    you change the model's weights.
    """

    adversarial: torch.Tensor
    if TYPE_CHECKING:  # what callers see: a tensor (given as one, or as a function of none)
        success: torch.Tensor
    else:
        success: _JudgedOnRead = _JudgedOnRead()
    queries: torch.Tensor
    targets: torch.Tensor | None = None

    @property
    def success_rate(self) -> float:
        return float(self.success.float().mean()) if self.success.numel() else 0.0

    def _repr_html_(self) -> str:
        """Jupyter shows the first adversarial examples as an image grid."""
        from advlab.attacks.display import result_html

        return result_html(self)
