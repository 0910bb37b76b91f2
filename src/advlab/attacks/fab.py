"""FAB-T (Croce & Hein 2020): the targeted fast adaptive boundary attack, as in AutoAttack.

"Minimally distorted adversarial examples with a fast adaptive boundary attack" (ICML
2020). FAB looks for the *smallest* perturbation that changes the class: each step
linearizes ``f = z_y - z_t`` (label against target) at the current point, projects both
the current point and the clean image onto the linearized boundary (within the [0, 1]
box), and moves to a mix of the two, biased towards the clean image by at most
``alpha_max`` and overshooting by ``eta``. Once a point is misclassified it is recorded
if it is the closest so far and pulled back towards the clean image by ``beta``.

It is the one gradient loop (:mod:`advlab.attacks.gradient`) with :class:`FABStep`; the
box-constrained projection onto a hyperplane is :func:`hyperplane_step`, written once
for every norm through the ball's steepest-ascent direction. As in AutoAttack, an image
counts as broken only if its closest adversarial point lies within ``eps``; the targets
are the clean image's most likely other classes, each run on the images still robust.
``queries`` count gradient evaluations (``steps`` per target and restart).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from advlab.attacks.apgd import top_target_pairs
from advlab.attacks.base import Attack, AttackOptions, check_counts, register_attack
from advlab.attacks.gradient import GradientAscent, Update
from advlab.attacks.norms import LINF, LpBall, Norm, keep, per_image
from advlab.errors import check

if TYPE_CHECKING:
    from typing_extensions import Unpack

_TINY = 1e-12


def hyperplane_step(
    ball: LpBall, x: torch.Tensor, w: torch.Tensor, c: torch.Tensor
) -> torch.Tensor:
    """The smallest step ``d`` (per image) with ``<w, d> = c`` and ``x + d`` in [0, 1].

    Minimal in L-inf and L2: the solution moves each pixel along the ball's steepest-
    ascent direction ``u`` of ``w`` by ``min(s, room)``, where ``room`` is how far the
    pixel can go before it leaves the box, and ``<w, d>`` grows piecewise linearly in
    ``s``; sorting the rooms finds the piece where it reaches ``c``, exactly. Where the
    box does not reach the hyperplane, every pixel goes to its bound (the closest step).
    (For a norm whose steepest direction is not the sign or a multiple of ``w``, L1 say,
    the step is feasible but not the smallest.)
    """
    flip = torch.where(c < 0, -1.0, 1.0).to(w.dtype)
    w, c = w * flip.view(-1, *([1] * (w.dim() - 1))), c.abs()
    u = ball.direction(w).flatten(1)
    room = torch.where(u > 0, 1 - x.flatten(1), -x.flatten(1))
    room = torch.where(u != 0, room / torch.where(u != 0, u, 1), 0).clamp_min(0)
    rate = w.flatten(1) * u  # <w, d> grows by rate * ds while the pixel has room
    rooms, order = room.sort(dim=1)
    rates = rate.gather(1, order)
    grown, reached = rates.cumsum(1), (rates * rooms).cumsum(1)
    total = grown[:, -1:]
    at_breaks = reached + rooms * (total - grown)  # <w, d(s)> at s = each room
    k = (at_breaks >= c[:, None]).to(torch.uint8).argmax(dim=1, keepdim=True)
    before = F.pad(reached, (1, 0)).gather(1, k)
    slope = (total - F.pad(grown, (1, 0)).gather(1, k)).clamp_min(_TINY)
    s = torch.where(at_breaks[:, -1:] >= c[:, None], (c[:, None] - before) / slope, rooms[:, -1:])
    return (u * torch.minimum(room, s)).view_as(x)


def _label_minus_target(logits: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
    """``z_y - z_t`` per image; ``goal`` holds (label, target): the boundary is at 0."""
    return (logits.gather(1, goal[:, :1]) - logits.gather(1, goal[:, 1:])).squeeze(1)


class FABStep(Update):
    """FAB's update: steps towards the linearized boundary; keeps the closest adversarial."""

    observes_last = True

    def __init__(
        self, ball: LpBall, goal: torch.Tensor, alpha_max: float, eta: float, beta: float
    ) -> None:
        self.ball, self.goal = ball, goal
        self.alpha_max, self.eta, self.beta = alpha_max, eta, beta

    def begin(self, images: torch.Tensor) -> None:
        n = images.shape[0]
        self.origin, self.best = images, images.clone()
        self.best_norm = torch.full((n,), float("inf"), device=images.device, dtype=images.dtype)
        self.fooled = torch.zeros(n, dtype=torch.bool, device=images.device)

    def observe(
        self, x: torch.Tensor, outputs: torch.Tensor, loss: torch.Tensor, index: torch.Tensor | None
    ) -> None:
        rows = slice(None) if index is None else index
        fooled = outputs.argmax(1) != self.goal[rows, 0]
        norm = self.ball.distance(x, self.origin[rows])
        better = fooled & (norm < self.best_norm[rows])
        keep(self.best, rows, better, x)
        keep(self.best_norm, rows, better, norm)
        self.fooled[rows] = fooled

    def __call__(
        self, x: torch.Tensor, grad: torch.Tensor, loss: torch.Tensor, index: torch.Tensor | None
    ) -> torch.Tensor:
        rows = slice(None) if index is None else index
        origin = self.origin[rows]
        # A fooled point is pulled back towards the clean image first; the step from
        # there uses the linear model of f at x (the gradient we have).
        x_from = torch.where(per_image(self.fooled[rows], x), origin + self.beta * (x - origin), x)

        def linear(at: torch.Tensor) -> torch.Tensor:
            return loss + (grad * (at - x)).flatten(1).sum(1)

        to_boundary = hyperplane_step(self.ball, x_from, grad, -linear(x_from))
        from_origin = hyperplane_step(self.ball, origin, grad, -linear(origin))
        zero = torch.zeros_like(x)
        near = self.ball.distance(to_boundary, zero).clamp_min(1e-8)
        far = self.ball.distance(from_origin, zero).clamp_min(1e-8)
        alpha = per_image((near / (near + far)).clamp(0, self.alpha_max), x)
        moved = (x_from + self.eta * to_boundary) * (1 - alpha)
        return (moved + (origin + self.eta * from_origin) * alpha).clamp(0, 1)

    @property
    def found(self) -> torch.Tensor:
        return torch.isfinite(self.best_norm)

    def finish(self, x: torch.Tensor) -> torch.Tensor:
        return self.best


@register_attack
class FABT(Attack):
    """FAB-T: minimal-norm targeted steps towards each of the top other classes in turn.

    Untargeted in its goal, like APGD-T: an image is broken when some target's run finds
    a misclassified point within ``eps``. Restarts after the first start at random within
    ``eps / 2``. Costs up to ``n_target_classes * restarts * steps`` gradient evaluations
    per image (AutoAttack: 9 x 1 x 100).
    """

    name = "fab-t"

    def __init__(
        self,
        eps: float = 8 / 255,
        steps: int = 100,
        norm: Norm = LINF,
        *,
        n_target_classes: int = 9,
        restarts: int = 1,
        alpha_max: float = 0.1,
        eta: float = 1.05,
        beta: float = 0.9,
        **options: Unpack[AttackOptions],
    ) -> None:
        check(eps is not None, "FAB-T needs an eps")
        check(
            options.get("target") is None,
            "fab-t picks its own targets (the most likely other classes)",
        )
        super().__init__(eps, norm, **options)
        check_counts(steps=steps, restarts=restarts, n_target_classes=n_target_classes)
        self.steps, self.restarts = int(steps), int(restarts)
        self.n_target_classes = int(n_target_classes)
        self.alpha_max, self.eta, self.beta = float(alpha_max), float(eta), float(beta)

    def _run(
        self, model: nn.Module, images: torch.Tensor, goal: torch.Tensor, targeted: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        assert self.eps is not None
        check(not targeted, "fab-t picks its own targets: pass no targets")
        with torch.no_grad():
            logits = model(images)
        robust = logits.argmax(1) == goal
        adversarial = images.clone()
        queries = torch.zeros(images.shape[0], dtype=torch.int64)
        diameter = self.ball.box_diameter(images.shape[1:])
        for pair in top_target_pairs(logits, goal, self.n_target_classes):
            for restart in range(self.restarts):
                active = robust.nonzero().squeeze(1)
                if active.numel() == 0:
                    return adversarial, queries
                update = FABStep(self.ball, pair[active], self.alpha_max, self.eta, self.beta)
                start = None if restart == 0 else self._random_start
                loop = GradientAscent(self.ball, diameter, self.steps, _label_minus_target,
                                      update, start=start)  # fmt: skip
                points, spent = loop.run(model, images[active], pair[active])
                queries[active.cpu()] += spent
                broken = update.found & (update.best_norm <= self.eps)
                adversarial[active[broken]] = points[broken]
                robust[active[broken]] = False
        return adversarial, queries

    def _random_start(self, images: torch.Tensor) -> torch.Tensor:
        assert self.eps is not None
        return self.ball.random_start(images, self.eps / 2)
