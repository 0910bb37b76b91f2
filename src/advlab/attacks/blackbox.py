"""Base class of black-box attacks: they see a query-only :class:`Target`, never a model."""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, ClassVar

import torch
from torch import nn

from advlab.attacks.base import Attack, AttackResult, check_inputs
from advlab.attacks.threat import Norm
from advlab.errors import check
from advlab.targets import QueryBudget, Target, as_target
from advlab.targets.base import OutputKind


class BlackBoxAttack(Attack):
    """Score- or decision-based attack under a per-image query budget.

    Subclasses implement :meth:`_attack`, querying only through ``budget.scores`` or
    ``budget.labels``; the budget refuses to answer past ``max_queries`` per image, and
    the result's ``queries`` are the budget's own counts.
    """

    needs_gradients: ClassVar[bool] = False
    output_kind: ClassVar[OutputKind] = "scores"

    def __init__(
        self,
        eps: float | None,
        norm: Norm = "linf",
        *,
        max_queries: int = 1000,
        target: str | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__(eps, norm, target=target, seed=seed)
        check(max_queries >= 1, f"max_queries must be >= 1, got {max_queries}")
        self.max_queries = int(max_queries)

    def __call__(  # type: ignore[override]
        self,
        model: nn.Module | Target,
        images: torch.Tensor,
        labels: torch.Tensor,
        targets: torch.Tensor | None = None,
    ) -> AttackResult:
        target = as_target(model, self.output_kind)
        check_inputs(images, labels, target)
        images, labels = images.detach(), labels.detach().long()
        budget = QueryBudget(target, images.shape[0], self.max_queries, images.device)
        state = self._seed_rng(images.device)
        try:
            goal_targets = self._pick_targets(budget, images, labels, targets)
            goal = goal_targets if goal_targets is not None else labels
            adversarial, success = self._attack(budget, images, goal, goal_targets is not None)
        finally:
            self._restore_rng(state)
        clipped = self._clip(adversarial.detach(), images)
        # An attack that left the ball has its success revoked: we only report what was
        # verified by its own queries on the example we return.
        moved = (clipped - adversarial).flatten(1).abs().amax(dim=1) > 1e-6
        success = success.to(images.device) & ~moved
        return AttackResult(clipped, success, budget.used.cpu(), goal_targets)

    def _pick_targets(
        self,
        budget: QueryBudget,
        images: torch.Tensor,
        labels: torch.Tensor,
        targets: torch.Tensor | None,
    ) -> torch.Tensor | None:
        if targets is not None:
            return targets.to(labels.device).long()
        if self.target is None:
            return None
        num_classes = budget.target.num_classes
        check(num_classes > 0, "targeted black-box attacks need the target's number of classes")
        if self.target == "least-likely":
            index = torch.arange(images.shape[0], device=images.device)
            return budget.scores(images, index).argmin(dim=1)
        offset = torch.randint(1, num_classes, labels.shape, device=labels.device)
        return (labels + offset) % num_classes

    @abstractmethod
    def _attack(
        self, budget: QueryBudget, images: torch.Tensor, goal: torch.Tensor, targeted: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(adversarial, success)``; success as seen by the attack's own queries."""

    def _run(self, *args: Any, **kwargs: Any) -> Any:  # pragma: no cover - not used
        raise NotImplementedError("black-box attacks run through _attack")

    @staticmethod
    def is_adversarial(
        predictions: torch.Tensor, goal: torch.Tensor, targeted: bool
    ) -> torch.Tensor:
        return predictions == goal if targeted else predictions != goal
