"""Base class of black-box attacks: they see a query-only :class:`Target`, never a model."""

from __future__ import annotations

import numbers
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from advlab.attacks.base import Attack, AttackOptions, AttackResult, _model_dtype, check_inputs
from advlab.attacks.fold import ChannelsLastInputs
from advlab.attacks.norms import LINF, Norm
from advlab.attacks.search import search_model
from advlab.errors import check
from advlab.targets import LocalTarget, QueryBudget, as_target
from advlab.targets.base import OutputKind

if TYPE_CHECKING:
    from typing_extensions import Unpack


class BlackBoxAttack(Attack):
    """Score- or decision-based attack under a per-image query budget.

    Subclasses implement ``_run(budget, images, goal, targeted) -> (adversarial, success)``,
    querying only through ``budget.scores`` or ``budget.labels`` (``success`` as their own
    queries saw it; the result keeps it only where the clip did not move the example);
    the budget refuses to answer past ``max_queries`` per image, and
    the result's ``queries`` are the budget's own counts. ``model`` may be an
    ``nn.Module`` or any :class:`advlab.targets.Target`.
    """

    needs_gradients: ClassVar[bool] = False
    output_kind: ClassVar[OutputKind] = "scores"

    def __init__(
        self,
        eps: float | None,
        norm: Norm = LINF,
        *,
        max_queries: int = 1000,
        **options: Unpack[AttackOptions],
    ) -> None:
        super().__init__(eps, norm, **options)
        whole = isinstance(max_queries, numbers.Integral) and not isinstance(max_queries, bool)
        check(whole and max_queries >= 1,
              f"max_queries must be a whole number >= 1, got {max_queries!r}")  # fmt: skip
        self.max_queries = int(max_queries)

    # -- Attack -------------------------------------------------------------------------
    @contextmanager
    def _session(
        self, model: Any, images: torch.Tensor, labels: torch.Tensor, targets: Any
    ) -> Iterator[QueryBudget]:
        target = as_target(model, self.output_kind)
        check_inputs(images, labels, target, targets)
        budget = QueryBudget(target, images.shape[0], self.max_queries, images.device)
        if isinstance(model, nn.Module) and self.search_copy:
            fast = search_model(model, images.detach().to(_model_dtype(model, images)),
                                gradients=False)  # fmt: skip
            if fast is not model:
                # The queries go to a faster stand-in (folded, maybe bfloat16: the same
                # predictions); success is judged on the model itself (``_result``).
                search = LocalTarget(ChannelsLastInputs(fast), self.output_kind)
                search.num_classes, search.input_shape = target.num_classes, target.input_shape
                budget.target, budget.judge = search, target
        yield budget

    def _scores(self, session: QueryBudget, images: torch.Tensor) -> torch.Tensor:
        index = torch.arange(images.shape[0], device=images.device)
        return session.scores(images, index)

    def _num_classes(self, session: QueryBudget) -> int | None:
        return session.target.num_classes

    def _result(
        self,
        session: QueryBudget,
        images: torch.Tensor,
        goal: torch.Tensor,
        targets: torch.Tensor | None,
        adversarial: torch.Tensor,
        success: torch.Tensor,
    ) -> AttackResult:
        clipped = self._clip(adversarial.detach(), images)
        if session.judge is not None:  # the queries went to a folded copy: ask the model
            predictions = session.judge.predict_labels(clipped).to(images.device)
            success = self.is_adversarial(predictions, goal, targets is not None)
        else:
            # An attack that left the ball has its success revoked: we only report what was
            # verified by its own queries on the example we return.
            moved = (clipped - adversarial).flatten(1).abs().amax(dim=1) > 1e-6
            success = success.to(images.device) & ~moved
        return AttackResult(clipped, success, session.used.cpu(), targets)
