"""APGD and APGD-T (Croce & Hein 2020): PGD without a step size to tune.

"Reliable evaluation of adversarial robustness with an ensemble of diverse parameter-free
attacks" (ICML 2020), the white-box half of AutoAttack. Both are the one gradient loop
(:mod:`advlab.attacks.gradient`) with one update, :class:`APGDStep`:

- the step size starts at ``2 * eps`` (per image) and is halved at checkpoints when the
  loss went up in fewer than ``rho`` of the steps since the last checkpoint, or when
  neither the step size nor the best loss changed since then; a halving restarts the
  image from its best point so far;
- each step is a projected steepest-ascent step followed by momentum ``alpha`` on the
  previous iterate: ``x' = P(x + alpha * (z - x) + (1 - alpha) * (x - x_prev))``;
- per image it keeps the first adversarial point it finds (what robust accuracy counts),
  else the point of the highest loss.

The checkpoints follow the reference implementation's integer schedule: the first after
``max(int(0.22 * steps), 1)`` steps, each later window ``max(int(0.03 * steps), 1)`` steps
shorter, down to ``max(int(0.06 * steps), 1)`` (the paper's ``p_{j+1} = p_j + max(p_j -
p_{j-1} - 0.03, 0.06)``). All the bookkeeping stays on the device: no host sync per step
(but with ``early_stop``, the loop's one per step to drop the images already fooled).

:class:`APGD` ascends the cross-entropy or the DLR loss (untargeted, or towards a
``target``); :class:`APGDT` is AutoAttack's APGD-T: an untargeted attack that runs the
targeted DLR loss towards each of the ``n_target_classes`` most likely other classes in
turn, each run only on the images still robust. ``queries`` count gradient evaluations;
each run also spends one forward pass on its last point and each attack one on the
clean images (to skip those already misclassified).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from advlab.attacks.base import Attack, AttackOptions, check_counts, register_attack
from advlab.attacks.gradient import (
    GradientAscent,
    Objective,
    Success,
    Update,
    cross_entropy,
    misclassified,
    start_in_ball,
)
from advlab.attacks.norms import LINF, LpBall, Norm, keep, per_image
from advlab.errors import check

if TYPE_CHECKING:
    from typing_extensions import Unpack

_TINY = 1e-12


# -- losses ---------------------------------------------------------------------------------
def dlr_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Difference of logits ratio, to ascend: ``-(z_y - max_{i != y} z_i) / (z_pi1 - z_pi3)``.

    Invariant to shifting and rescaling the logits, so a saturated softmax or a model
    that scales its logits up cannot hide the gradient. Needs at least 3 classes.
    """
    top = logits.topk(3, dim=1).values
    own = logits.gather(1, labels[:, None]).squeeze(1)
    others = logits.scatter(1, labels[:, None], -float("inf")).amax(dim=1)
    return -(own - others) / (top[:, 0] - top[:, 2] + _TINY)


def dlr_targeted_loss(
    logits: torch.Tensor, targets: torch.Tensor, labels: torch.Tensor | None = None
) -> torch.Tensor:
    """Targeted DLR, to ascend: ``-(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2)``.

    Without ``labels``, ``z_y`` is the largest logit of a class other than the target:
    the same value while the image is still classified as its label. Needs 4 classes.
    """
    top = logits.topk(4, dim=1).values
    target = logits.gather(1, targets[:, None]).squeeze(1)
    if labels is None:
        own = logits.scatter(1, targets[:, None], -float("inf")).amax(dim=1)
    else:
        own = logits.gather(1, labels[:, None]).squeeze(1)
    return -(own - target) / (top[:, 0] - (top[:, 2] + top[:, 3]) / 2 + _TINY)


def dlr(targeted: bool) -> Objective:
    """The DLR loss: untargeted, or towards the goal class (see :func:`dlr_targeted_loss`)."""
    if targeted:
        return lambda logits, goal: dlr_targeted_loss(logits, goal)
    return dlr_loss


def _towards_pair(logits: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
    """APGD-T's objective; ``goal`` holds (label, target) per image."""
    return dlr_targeted_loss(logits, goal[:, 1], goal[:, 0])


def _fooled_pair(logits: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
    """APGD-T's success: misclassified (whatever the class); ``goal`` as above."""
    return logits.argmax(1) != goal[:, 0]


def top_target_pairs(
    logits: torch.Tensor, goal: torch.Tensor, n_target_classes: int
) -> Iterator[torch.Tensor]:
    """AutoAttack's targets (APGD-T, FAB-T): (label, target) per image for target ``j`` =
    1 .. ``n_target_classes``, the clean image's ``j+1``-th most likely class."""
    ranked = logits.argsort(dim=1, descending=True)
    for j in range(1, min(n_target_classes, logits.shape[1] - 1) + 1):
        yield torch.stack([goal, ranked[:, j]], dim=1)


#: The losses APGD ascends, by name.
APGD_LOSSES = {"ce": cross_entropy, "dlr": dlr}


# -- the update -----------------------------------------------------------------------------
def checkpoints(steps: int) -> dict[int, int]:
    """The steps at which APGD may halve its step size, each with its window's length."""
    window = max(int(0.22 * steps), 1)
    shrink, shortest = max(int(0.03 * steps), 1), max(int(0.06 * steps), 1)
    marks, step = {}, window
    while step < steps:
        marks[step] = window
        window = max(window - shrink, shortest)
        step += window
    return marks


class APGDStep(Update):
    """APGD's update: per-image step sizes halved at checkpoints, momentum, best points.

    Bound to one descent's ``goal`` (the rows the loop passes to ``begin``) so that it can
    judge success itself; after :meth:`finish`, ``found`` tells per image whether the
    returned point is adversarial and ``best_loss`` the highest loss seen.
    """

    observes_last = True

    def __init__(
        self,
        ball: LpBall,
        eps: float,
        steps: int,
        goal: torch.Tensor,
        success: Success,
        rho: float = 0.75,
        alpha: float = 0.75,
    ) -> None:
        self.ball, self.eps, self.goal, self.success = ball, eps, goal, success
        self.rho, self.alpha = rho, alpha
        self.marks = checkpoints(steps)

    def begin(self, images: torch.Tensor) -> None:
        n, device = images.shape[0], images.device
        self.origin = images
        self.step = torch.full((n,), 2 * self.eps, device=device, dtype=images.dtype)
        self.t = 0
        self.previous = images.clone()
        self.first, self.best, self.best_grad = images.clone(), images.clone(), images.clone()
        self.found = torch.zeros(n, dtype=torch.bool, device=device)
        self.improved = torch.zeros(n, dtype=torch.bool, device=device)
        self.best_loss = torch.full((n,), -float("inf"), device=device, dtype=images.dtype)
        self.last_loss = self.best_loss.clone()
        self.loss_at_check = self.best_loss.clone()
        self.increases = torch.zeros(n, dtype=torch.int64, device=device)
        self.halved_at_check = torch.ones(n, dtype=torch.bool, device=device)

    def observe(
        self, x: torch.Tensor, outputs: torch.Tensor, loss: torch.Tensor, index: torch.Tensor | None
    ) -> None:
        rows = slice(None) if index is None else index
        hit = self.success(outputs, self.goal[rows]) & ~self.found[rows]
        keep(self.first, rows, hit, x)
        self.found[rows] |= hit
        loss = loss.to(self.best_loss.dtype)
        improved = loss > self.best_loss[rows]
        keep(self.best, rows, improved, x)
        keep(self.best_loss, rows, improved, loss)
        self.improved[rows] = improved

    def __call__(
        self, x: torch.Tensor, grad: torch.Tensor, loss: torch.Tensor, index: torch.Tensor | None
    ) -> torch.Tensor:
        rows = slice(None) if index is None else index
        loss = loss.to(self.best_loss.dtype)
        if self.t > 0:
            self.increases[rows] += (loss > self.last_loss[rows]).long()
        self.last_loss[rows] = loss
        self.best_grad[rows] = torch.where(
            per_image(self.improved[rows], x), grad, self.best_grad[rows]
        )
        if self.t in self.marks:
            x, grad = self._checkpoint(x, grad, rows, self.marks[self.t])
        step = per_image(self.step[rows], x)
        origin = self.origin[rows]
        z = self.ball.project(x + step * self.ball.direction(grad), origin, self.eps)
        if self.t > 0:
            moved = x + self.alpha * (z - x) + (1 - self.alpha) * (x - self.previous[rows])
            z = self.ball.project(moved, origin, self.eps)
        self.previous[rows] = x
        self.t += 1
        return z

    def _checkpoint(
        self, x: torch.Tensor, grad: torch.Tensor, rows: slice | torch.Tensor, window: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Halve the step where progress stalled, and restart those images from their best."""
        best_loss = self.best_loss[rows]
        stalled = self.increases[rows].to(best_loss.dtype) < self.rho * window
        stuck = ~self.halved_at_check[rows] & (best_loss <= self.loss_at_check[rows])
        halve = stalled | stuck
        self.step[rows] = torch.where(halve, self.step[rows] / 2, self.step[rows])
        self.halved_at_check[rows] = halve
        self.loss_at_check[rows] = best_loss
        self.increases[rows] = 0
        back = per_image(halve, x)
        return torch.where(back, self.best[rows], x), torch.where(back, self.best_grad[rows], grad)

    def finish(self, x: torch.Tensor) -> torch.Tensor:
        return torch.where(per_image(self.found, x), self.first, self.best)


# -- the attacks ----------------------------------------------------------------------------
class AutoPGD(Attack):
    """APGD's loop over the descents :meth:`_runs` yields, each on the images still robust.

    ``restarts`` > 1 runs again from a new random start on the images not yet fooled.
    With ``early_stop`` an image stops at its first adversarial point (the result is the
    same: APGD keeps the first one anyway); ``early_stop=False`` runs every image all
    steps without a host sync per step. Costs ``steps`` gradient evaluations per image
    and descent.
    """

    def __init__(
        self,
        eps: float = 8 / 255,
        steps: int = 100,
        norm: Norm = LINF,
        *,
        restarts: int = 1,
        rho: float = 0.75,
        early_stop: bool = True,
        **options: Unpack[AttackOptions],
    ) -> None:
        check(eps is not None, "APGD needs an eps")
        super().__init__(eps, norm, **options)
        check_counts(steps=steps, restarts=restarts)
        check(0 < rho <= 1, f"rho must be in (0, 1], got {rho}")
        self.steps, self.restarts = int(steps), int(restarts)
        self.rho, self.early_stop = float(rho), bool(early_stop)

    @abstractmethod
    def _runs(
        self, logits: torch.Tensor, goal: torch.Tensor, targeted: bool
    ) -> Iterator[tuple[torch.Tensor, Objective, Success]]:
        """Each descent: its per-image goal, objective and success test."""

    def _run(
        self, model: nn.Module, images: torch.Tensor, goal: torch.Tensor, targeted: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        assert self.eps is not None
        with torch.no_grad():
            logits = model(images)
        done = misclassified(targeted)(logits, goal)
        adversarial = images.clone()
        best_loss = torch.full((images.shape[0],), -float("inf"), device=images.device,
                               dtype=images.dtype)  # fmt: skip
        queries = torch.zeros(images.shape[0], dtype=torch.int64)
        for run_goal, objective, success in self._runs(logits, goal, targeted):
            active = (~done).nonzero().squeeze(1)
            if active.numel() == 0:
                break
            update = APGDStep(self.ball, self.eps, self.steps, run_goal[active], success, self.rho)
            loop = GradientAscent(
                self.ball, self.eps, self.steps, objective, update,
                start=start_in_ball(self.ball, self.eps), early_stop=self.early_stop,
                success=success,
            )  # fmt: skip
            points, spent = loop.run(model, images[active], run_goal[active])
            queries[active.cpu()] += spent
            loss = update.best_loss
            better = update.found | (loss > best_loss[active])
            adversarial[active[better]] = points[better]
            best_loss[active[better]] = loss[better]
            done[active[update.found]] = True
        return adversarial, queries


@register_attack
class APGD(AutoPGD):
    """Auto-PGD: ``steps`` steps with a self-tuning step size and momentum (see the module).

    ``loss`` is "ce" (cross-entropy, AutoAttack's APGD-CE) or "dlr"; the other parameters
    are :class:`AutoPGD`'s. Costs ``steps`` gradient evaluations per image and restart.
    """

    name = "apgd"

    def __init__(self, *args: Any, loss: str = "ce", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        names = ", ".join(APGD_LOSSES)
        check(loss in APGD_LOSSES, f"unknown loss '{loss}': use one of {names}")
        self.loss = loss

    def _runs(
        self, logits: torch.Tensor, goal: torch.Tensor, targeted: bool
    ) -> Iterator[tuple[torch.Tensor, Objective, Success]]:
        check(self.loss != "dlr" or logits.shape[1] >= (4 if targeted else 3),
              f"the DLR loss needs at least {4 if targeted else 3} classes")  # fmt: skip
        for _ in range(self.restarts):
            yield goal, APGD_LOSSES[self.loss](targeted), misclassified(targeted)


@register_attack
class APGDT(AutoPGD):
    """APGD-T (AutoAttack): targeted DLR towards each of the top other classes in turn.

    Untargeted in its goal: an image counts as broken once misclassified as any class.
    Target ``j`` (1 .. ``n_target_classes``) is the clean image's ``j+1``-th most likely
    class; each target's run (and each restart) covers only the images still robust.
    Costs up to ``n_target_classes * restarts * steps`` gradient evaluations per image.
    """

    name = "apgd-t"

    def __init__(self, *args: Any, n_target_classes: int = 9, **kwargs: Any) -> None:
        check(kwargs.get("target") is None,
              "apgd-t picks its own targets (the most likely other classes); "
              "use APGD(loss='dlr', target=...) to attack towards one class")  # fmt: skip
        check_counts(n_target_classes=n_target_classes)
        super().__init__(*args, **kwargs)
        self.n_target_classes = int(n_target_classes)

    def _runs(
        self, logits: torch.Tensor, goal: torch.Tensor, targeted: bool
    ) -> Iterator[tuple[torch.Tensor, Objective, Success]]:
        check(not targeted, "apgd-t picks its own targets: pass no targets")
        check(logits.shape[1] >= 4, "apgd-t needs a model with at least 4 classes")
        for pair in top_target_pairs(logits, goal, self.n_target_classes):
            for _ in range(self.restarts):
                yield pair, _towards_pair, _fooled_pair
