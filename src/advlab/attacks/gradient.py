"""The one gradient loop of advlab: every white-box Lp attack is this loop with hooks.

FGSM, PGD, BIM and MIM (and TRADES's inner maximization, the detector-aware attacks) differ
only in *what* they ascend, *how* a gradient becomes a step, and where they start::

    ball = get_norm(norm)                            # norm: the user's name for it
    loop = GradientAscent(
        ball=ball, eps=8 / 255, steps=10,
        objective=cross_entropy(targeted=False),      # per-image loss to ascend
        update=SteepestAscent(ball, step_size=2 / 255),  # or Momentum(ball, 2 / 255, 1.0)
        start=start_in_ball(ball, 8 / 255),           # None: the clean images
        restarts=1, early_stop=False, success=misclassified(targeted=False),
    )
    adversarial, queries = loop.run(model, images, goal)

The hooks:

- ``objective(logits, goal) -> loss`` (shape (N,)): what to ascend, per image. ``goal`` is
  any per-image tensor the caller passes to :meth:`GradientAscent.run` (labels, target
  classes, the clean probabilities for :func:`kl_divergence`); the loop slices it along
  with the images. :func:`cross_entropy`, :func:`margin`, :func:`kl_divergence` are here;
  a DLR or detector-aware objective is one more function of the same shape.
- ``update``: an :class:`Update` turns the gradient into the next point before the
  projection. :class:`SteepestAscent` steps ``step_size`` along the norm's steepest-ascent
  direction; :class:`Momentum` (MIM) along an accumulated, L1-normalized gradient. An
  update sees the per-image loss at the current point and which images it is stepping,
  so a step-size schedule with checkpoints (APGD) is an update that keeps per-image step
  sizes and the best point, and returns that point from :meth:`Update.finish`.
- ``start(images) -> points``: :func:`start_in_ball` draws from the ball; ``None`` starts
  at the clean images.
- ``success(logits, goal) -> bool (N,)``: :func:`misclassified`; needed for
  ``early_stop`` (each image stops at the first step where it already succeeds: its
  logits come with the gradient) and for ``restarts > 1`` (later restarts only run on
  images not yet successful; per image the first success is kept, else the point with
  the highest objective).

``run`` returns ``(adversarial, queries)``: the points, projected into ball ∩ [0, 1], and
the gradient evaluations spent per image (int64, on the CPU). The loop does not touch the
model's mode or the RNG: :class:`advlab.attacks.Attack` does (``frozen_eval``, seeds).
``channels_last=False`` feeds the model the points as they are (TRADES; see
:func:`loss_gradient`).

An attack on a classifier *and* a detector is the same loop: ``model`` returns
``(logits, detector score)``, the objective reads both (e.g. ``min(margin, kappa) -
penalty * relu(score - threshold)``), and an :class:`Update` with ``observes_last`` keeps,
per image, the last iterate that fools the classifier unseen by the detector.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from advlab.attacks.norms import LpBall

#: ``(outputs, goal) -> per-image loss to ascend``; outputs: what the model returns.
Objective = Callable[[Any, torch.Tensor], torch.Tensor]
#: ``(outputs, goal) -> per-image bool``: the attack has reached its goal on this image.
Success = Callable[[Any, torch.Tensor], torch.Tensor]
#: ``images -> starting points``.
Start = Callable[[torch.Tensor], torch.Tensor]

_TINY = 1e-12


def default_step_size(eps: float, steps: int) -> float:
    """Madry et al.'s step size, ``2.5 * eps / steps``: the whole ball is reachable."""
    return 2.5 * eps / steps


# -- objectives -----------------------------------------------------------------------------
def margin_loss(logits: torch.Tensor, goal: torch.Tensor, targeted: bool) -> torch.Tensor:
    """Carlini-Wagner margin on the logits, per image, to ascend.

    Untargeted: ``max_{j != y} z_j - z_y``; targeted: ``z_t - max_{j != t} z_j``. Unlike
    cross-entropy it does not pass through a softmax, so it keeps its gradient when the
    softmax saturates (defensive distillation's trick).
    """
    own = logits.gather(1, goal[:, None]).squeeze(1)
    others = logits.scatter(1, goal[:, None], -float("inf")).amax(dim=1)
    return own - others if targeted else others - own


def cross_entropy(targeted: bool) -> Objective:
    """Cross-entropy of the goal class: ascended (untargeted) or descended (targeted)."""

    def objective(logits: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        loss = F.cross_entropy(logits, goal, reduction="none")
        return -loss if targeted else loss

    return objective


def margin(targeted: bool) -> Objective:
    """The Carlini-Wagner margin (:func:`margin_loss`)."""

    def objective(logits: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        return margin_loss(logits, goal, targeted)

    return objective


def kl_divergence(logits: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
    """``KL(goal || softmax(logits))`` per image; ``goal`` holds the clean probabilities."""
    return F.kl_div(F.log_softmax(logits, dim=1), goal, reduction="none").sum(dim=1)


#: The objectives attacks offer by name (``PGD(loss=...)``).
OBJECTIVES: dict[str, Callable[[bool], Objective]] = {"ce": cross_entropy, "margin": margin}


def misclassified(targeted: bool) -> Success:
    """Success of a classification attack: the target class, or any other class."""

    def success(logits: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        predictions = logits.argmax(1)
        return predictions == goal if targeted else predictions != goal

    return success


def start_in_ball(ball: LpBall, eps: float) -> Start:
    """Start from a uniformly random point of the ball around each image."""
    return lambda images: ball.random_start(images, eps)


# -- updates --------------------------------------------------------------------------------
class Update:
    """How the loop turns a gradient into the next point (before the projection).

    ``index`` holds the rows of the batch being stepped (``None``: all of them), so that
    an update with per-image state (momentum, step sizes, best points) updates the right
    rows. :meth:`observe` sees every evaluated point with the model's outputs there (and,
    with ``observes_last``, the final point too, at the cost of one more forward pass),
    so an update can keep the best iterate by any rule and return it from :meth:`finish`.
    """

    #: Evaluate the final point too (no gradient), so that :meth:`observe` sees it.
    observes_last: bool = False

    def begin(self, images: torch.Tensor) -> None:
        """A descent of ``images`` starts (each restart calls it again)."""

    def observe(
        self, x: torch.Tensor, outputs: Any, loss: torch.Tensor, index: torch.Tensor | None
    ) -> None:
        """The model's ``outputs`` and the objective at the points ``x`` (rows ``index``)."""

    def __call__(
        self, x: torch.Tensor, grad: torch.Tensor, loss: torch.Tensor, index: torch.Tensor | None
    ) -> torch.Tensor:
        raise NotImplementedError

    def finish(self, x: torch.Tensor) -> torch.Tensor:
        """The descent's result given its last point (an APGD returns its best one)."""
        return x


class SteepestAscent(Update):
    """``x + step_size * direction(grad)``: FGSM, PGD, BIM."""

    def __init__(self, ball: LpBall, step_size: float) -> None:
        self.ball, self.step_size = ball, step_size

    def __call__(
        self, x: torch.Tensor, grad: torch.Tensor, loss: torch.Tensor, index: torch.Tensor | None
    ) -> torch.Tensor:
        return x + self.step_size * self.ball.direction(grad)


class Momentum(Update):
    """MIM: step along ``m = decay * m + grad / mean(|grad|)`` (per image).

    Normalizing per image makes every image's gradient count equally in the momentum,
    whatever its loss scale (the paper's L1 normalization).
    """

    def __init__(self, ball: LpBall, step_size: float, decay: float) -> None:
        self.ball, self.step_size, self.decay = ball, step_size, decay
        self.buffer = torch.zeros(0)

    def begin(self, images: torch.Tensor) -> None:
        self.buffer = torch.zeros_like(images)

    def __call__(
        self, x: torch.Tensor, grad: torch.Tensor, loss: torch.Tensor, index: torch.Tensor | None
    ) -> torch.Tensor:
        scale = grad.abs().mean(dim=tuple(range(1, grad.dim())), keepdim=True).clamp_min(_TINY)
        if index is None:
            self.buffer = self.decay * self.buffer + grad / scale
            momentum = self.buffer
        else:
            momentum = self.decay * self.buffer[index] + grad / scale
            self.buffer[index] = momentum
        return x + self.step_size * self.ball.direction(momentum)


# -- the loop -------------------------------------------------------------------------------
def loss_gradient(
    model: Callable[[torch.Tensor], Any],
    x: torch.Tensor,
    goal: torch.Tensor,
    objective: Objective,
    channels_last: bool = True,
) -> tuple[torch.Tensor, Any, torch.Tensor]:
    """Gradient of the summed per-image ``objective`` w.r.t. ``x``, the outputs and the loss.

    ``model`` is anything differentiable from images to what ``objective`` reads: a
    classifier's logits, or e.g. a ``(logits, detector score)`` pair for an attack on a
    detector too; the outputs come back detached.

    With ``channels_last`` the input goes in that layout: oneDNN (CPU) and cuDNN run
    convolutions and their input gradients faster in it (ResNet-20 on CIFAR-10, 2 CPU
    cores: about 1.2-1.4x per step), and elementwise layers do not care. It changes the
    rounding of the gradient, not its value.
    """
    x = x.detach()
    if channels_last:
        x = x.contiguous(memory_format=layout(x))
    x.requires_grad_(True)
    outputs = model(x)
    loss = objective(outputs, goal)
    (grad,) = torch.autograd.grad(loss.sum(), x)
    return grad.detach(), _detach(outputs), loss.detach()


def _detach(outputs: Any) -> Any:
    if isinstance(outputs, torch.Tensor):
        return outputs.detach()
    return type(outputs)(_detach(value) for value in outputs)


def layout(x: torch.Tensor) -> torch.memory_format:
    """Channels-last for image batches (see :func:`loss_gradient`)."""
    return torch.channels_last if x.dim() == 4 else torch.contiguous_format


@dataclass
class GradientAscent:
    """The loop: ``steps`` projected updates from ``start``, with restarts and early stop."""

    ball: LpBall
    eps: float
    steps: int
    objective: Objective
    update: Update
    start: Start | None = None
    restarts: int = 1
    early_stop: bool = False
    success: Success | None = None
    channels_last: bool = True

    def run(
        self, model: Callable[[torch.Tensor], Any], images: torch.Tensor, goal: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(adversarial, gradient evaluations per image)`` for ``images``."""
        if self.restarts == 1:
            # Nothing to choose between: skip the forward pass that ranks the restarts.
            return self.descend(model, images, goal)
        assert self.success is not None, "restarts need a success test"
        best = images.clone()
        best_loss = torch.full(
            (images.shape[0],), -float("inf"), device=images.device, dtype=images.dtype
        )
        done = torch.zeros(images.shape[0], dtype=torch.bool, device=images.device)
        queries = torch.zeros(images.shape[0], dtype=torch.int64)
        for _ in range(self.restarts):
            # Later restarts only work on the images not yet successful.
            active = (~done).nonzero().squeeze(1)
            if active.numel() == 0:
                break
            adversarial, spent = self.descend(model, images[active], goal[active])
            queries[active.cpu()] += spent
            with torch.no_grad():
                outputs = model(adversarial)
                loss = self.objective(outputs, goal[active])
                hit = self.success(outputs, goal[active])
            better = hit | (loss > best_loss[active])
            index = active[better]
            best[index] = adversarial[better]
            best_loss[index] = loss[better]
            done[active[hit]] = True
        return best, queries

    def descend(
        self, model: Callable[[torch.Tensor], Any], images: torch.Tensor, goal: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One run from one start; the points and the gradient steps spent on each."""
        x = self.start(images) if self.start is not None else images.clone()
        self.update.begin(images)
        if not self.early_stop:
            for _ in range(self.steps):
                grad, outputs, loss = loss_gradient(
                    model, x, goal, self.objective, self.channels_last
                )
                self.update.observe(x, outputs, loss, None)
                x = self.ball.project(self.update(x, grad, loss, None), images, self.eps)
            if self.update.observes_last:
                self._observe_last(model, x, goal, None)
            spent = torch.full((images.shape[0],), self.steps, dtype=torch.int64)
            return self.update.finish(x), spent
        assert self.success is not None, "early stop needs a success test"
        spent = torch.zeros(images.shape[0], dtype=torch.int64, device=images.device)
        active = torch.arange(images.shape[0], device=images.device)
        for _ in range(self.steps):
            points = x[active]
            grad, outputs, loss = loss_gradient(
                model, points, goal[active], self.objective, self.channels_last
            )
            spent[active] += 1
            self.update.observe(points, outputs, loss, active)
            keep = ~self.success(outputs, goal[active])
            active, grad, loss = active[keep], grad[keep], loss[keep]
            if active.numel() == 0:
                break
            stepped = self.update(x[active], grad, loss, active)
            x[active] = self.ball.project(stepped, images[active], self.eps)
        else:
            if self.update.observes_last:
                self._observe_last(model, x[active], goal[active], active)
        return self.update.finish(x), spent.cpu()

    def _observe_last(
        self, model: Callable[[torch.Tensor], Any], x: torch.Tensor, goal: torch.Tensor,
        index: torch.Tensor | None,
    ) -> None:  # fmt: skip
        with torch.no_grad():
            outputs = model(x.contiguous(memory_format=layout(x)) if self.channels_last else x)
            self.update.observe(x, outputs, self.objective(outputs, goal), index)
