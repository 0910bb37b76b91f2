"""Square Attack (Andriushchenko et al. 2020): random square updates, scores only.

Each iteration changes one random square window of every image still unbroken and
keeps the change if the loss went down. The window's side shrinks on a fixed schedule
of the fraction of the budget spent (``p_selection``). L-inf sets the window to a random
``+-eps`` per channel; L2 moves mass from one window to another with a "pseudo-Gaussian"
bump so that the perturbation always stays on the eps-sphere.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, ClassVar

import torch

from advlab.attacks.base import AttackOptions, register_attack
from advlab.attacks.blackbox.base import BlackBoxAttack
from advlab.attacks.norms import LINF, L2Ball, LinfBall, LpBall, Norm, get_norm
from advlab.errors import check
from advlab.targets import QueryBudget

if TYPE_CHECKING:
    from typing_extensions import Unpack

_TINY = 1e-12
# The paper resamples a window's signs until they change the image; a cap keeps a
# degenerate case (eps = 0) from looping forever.
_MAX_RESAMPLES = 20
# Fractions of 10,000 queries at which the window area halves (the paper's schedule).
_SCHEDULE = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)


def p_selection(p_init: float, iteration: int, max_queries: int) -> float:
    """Fraction of pixels the window covers at ``iteration``, rescaled to the budget."""
    step = int(iteration / max_queries * 10_000)
    halvings = sum(step > mark for mark in _SCHEDULE)
    return p_init if step > _SCHEDULE[-1] + 2000 else p_init / 2**halvings


def margin_and_loss(
    scores: torch.Tensor, goal: torch.Tensor, targeted: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """The paper's objectives from probabilities: (margin, loss to minimize).

    Log-probabilities differ from logits by a per-image constant, so their margin is the
    logit margin. Untargeted: loss = margin of the true class over the best other one;
    targeted: cross-entropy of the target.
    """
    logp = scores.clamp_min(torch.finfo(scores.dtype).tiny).log()
    goal_logp = logp.gather(1, goal[:, None]).squeeze(1)
    other = logp.scatter(1, goal[:, None], -math.inf).amax(dim=1)
    if targeted:
        return other - goal_logp, -goal_logp
    margin = goal_logp - other
    return margin, margin


def _random_sign(shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
    return torch.randint(0, 2, shape, device=like.device).to(like.dtype) * 2 - 1


def _bump_rectangle(rows: int, cols: int) -> torch.Tensor:
    """Concentric rectangles weighted 1/k^2: the reference's "pseudo-Gaussian" bump."""
    bump = torch.zeros(rows, cols)
    top, left = rows // 2, cols // 2
    for k in range(max(rows // 2 + 1, cols // 2 + 1)):
        row_span = slice(max(top, 0), min(top + 2 * k + 1, rows))
        col_span = slice(max(left, 0), min(left + 2 * k + 1, cols))
        bump[row_span, col_span] += 1.0 / (k + 1) ** 2
        top, left = top - 1, left - 1
    return bump / bump.norm().clamp_min(_TINY)


def square_bump(s: int, like: torch.Tensor) -> torch.Tensor:
    """An s x s update of unit L2 norm: a bump above, its negative below, random transpose."""
    bump = torch.cat([_bump_rectangle(s // 2, s), -_bump_rectangle(s - s // 2, s)])
    bump = bump / bump.norm().clamp_min(_TINY)
    if bool(torch.rand(()) > 0.5):
        bump = bump.t()
    return bump.to(device=like.device, dtype=like.dtype)


class SquareMoves:
    """Square's norm-specific part: the first query and the square update."""

    #: The default fraction of pixels a window covers at first.
    p_init: ClassVar[float]

    def init(self, images: torch.Tensor, eps: float) -> torch.Tensor:
        raise NotImplementedError

    def propose(
        self, images: torch.Tensor, best: torch.Tensor, p: float, eps: float
    ) -> torch.Tensor:
        raise NotImplementedError


class LinfSquares(SquareMoves):
    """L-inf: vertical stripes, then windows set to a random ``+-eps`` per channel."""

    p_init = 0.8

    def init(self, images: torch.Tensor, eps: float) -> torch.Tensor:
        n, c, _, w = images.shape
        # Vertical stripes: the paper found them the best start for untargeted attacks.
        stripes = eps * _random_sign((n, c, 1, w), images)
        return (images + stripes).clamp(0.0, 1.0)

    def propose(
        self, images: torch.Tensor, best: torch.Tensor, p: float, eps: float
    ) -> torch.Tensor:
        m, c, h, w = images.shape
        s = min(max(round(math.sqrt(p * h * w)), 1), h - 1, w - 1)
        window = self._windows(m, s, h, w, images.device)
        delta = best - images
        pending = torch.ones(m, dtype=torch.bool, device=images.device)
        candidates = best.clone()
        # Resample a window's signs until they change the image (e.g. not -eps on a black
        # pixel that is already 0), as the reference does: no query is wasted on a no-op.
        for _ in range(_MAX_RESAMPLES):
            signs = eps * _random_sign((m, c, 1, 1), images)
            trial = (images + torch.where(window, signs, delta)).clamp(0.0, 1.0)
            changed = ((trial - best).abs() > 1e-7).flatten(1).any(dim=1)
            take = pending & changed
            candidates[take] = trial[take]
            pending &= ~changed
            if not bool(pending.any()):
                break
        return candidates

    @staticmethod
    def _windows(m: int, s: int, h: int, w: int, device: torch.device) -> torch.Tensor:
        """One random s x s window per image, as a boolean mask of shape (m, 1, h, w)."""
        # [0, h - s) as in the reference: a window never touches the last row or column.
        top = torch.randint(0, h - s, (m, 1), device=device)
        left = torch.randint(0, w - s, (m, 1), device=device)
        rows, cols = torch.arange(h, device=device), torch.arange(w, device=device)
        in_rows = (rows >= top) & (rows < top + s)
        in_cols = (cols >= left) & (cols < left + s)
        return (in_rows[:, :, None] & in_cols[:, None, :])[:, None]


class L2Squares(SquareMoves):
    """L2: a grid of bumps, then mass moved between two windows, always on the sphere."""

    p_init = 0.1

    def init(self, images: torch.Tensor, eps: float) -> torch.Tensor:
        n, c, h, w = images.shape
        s = max(h // 5, 1)
        start = (h - 5 * s) // 2
        delta = torch.zeros_like(images)
        for top in range(start, start + s * (h // s), s):
            for left in range(start, start + s * (w // s), s):
                bump = square_bump(s, images)
                tile = delta[:, :, top : top + s, left : left + s]
                tile += bump[: tile.shape[2], : tile.shape[3]] * _random_sign((n, c, 1, 1), images)
        return self._on_sphere(images, delta, eps)

    def propose(
        self, images: torch.Tensor, best: torch.Tensor, p: float, eps: float
    ) -> torch.Tensor:
        m, c, h, w = images.shape
        s = max(round(math.sqrt(p * h * w)), 3)
        s = min(s + 1 if s % 2 == 0 else s, h - 1, w - 1)
        # Like the reference, the two windows are shared by the batch (positions as above).
        top, top2 = (int(v) for v in torch.randint(0, h - s, (2,)))
        left, left2 = (int(v) for v in torch.randint(0, w - s, (2,)))
        win1 = (slice(None), slice(None), slice(top, top + s), slice(left, left + s))
        win2 = (slice(None), slice(None), slice(top2, top2 + s), slice(left2, left2 + s))
        delta = best - images
        union = torch.zeros(1, 1, h, w, dtype=images.dtype, device=images.device)
        union[win1] = 1.0
        union[win2] = 1.0
        # The mass in both windows (per channel) plus the unused budget is redistributed
        # into window 1: the new bump added to the old window content, window 2 emptied.
        norm_window1 = delta[win1].pow(2).sum(dim=(2, 3), keepdim=True).sqrt()
        norm_windows = (delta * union).pow(2).sum(dim=(2, 3), keepdim=True).sqrt()
        norm_image = delta.flatten(1).norm(dim=1).view(m, 1, 1, 1)
        update = square_bump(s, images) * _random_sign((m, c, 1, 1), images)
        update = update + delta[win1] / (norm_window1 + _TINY)
        update_norm = update.pow(2).sum(dim=(2, 3), keepdim=True).sqrt().clamp_min(_TINY)
        room = ((eps**2 - norm_image**2).clamp_min(0.0) / c + norm_windows**2).sqrt()
        delta = delta.clone()
        delta[win2] = 0.0
        delta[win1] = update / update_norm * room
        return self._on_sphere(images, delta, eps)

    def _on_sphere(self, images: torch.Tensor, delta: torch.Tensor, eps: float) -> torch.Tensor:
        norm = delta.flatten(1).norm(dim=1).clamp_min(_TINY).view(-1, 1, 1, 1)
        return (images + delta / norm * eps).clamp(0.0, 1.0)


#: Square's moves for each norm it supports (the paper defines L-inf and L2).
SQUARE_MOVES: dict[type[LpBall], SquareMoves] = {LinfBall: LinfSquares(), L2Ball: L2Squares()}


def square_moves(norm: str) -> SquareMoves:
    ball = get_norm(norm)
    supported = ", ".join(cls.name for cls in SQUARE_MOVES)
    check(type(ball) in SQUARE_MOVES, f"Square supports the norms {supported}, not {norm}")
    return SQUARE_MOVES[type(ball)]


@register_attack
class Square(BlackBoxAttack):
    """Score-based Square Attack in L-inf or L2, batched, stopping each image at success.

    ``p_init`` is the initial fraction of pixels a window covers (default 0.8 for L-inf,
    0.1 for L2). The first query of each image is its initialization (vertical stripes for
    L-inf, a grid of bumps for L2); every later query is one square update.
    """

    name = "square"

    def __init__(
        self,
        eps: float = 8 / 255,
        norm: Norm = LINF,
        *,
        max_queries: int = 5000,
        p_init: float | None = None,
        **options: Unpack[AttackOptions],
    ) -> None:
        check(eps is not None, "Square needs an eps: pass e.g. eps=8/255 (L-inf) or eps=0.5 (L2)")
        super().__init__(eps, norm, max_queries=max_queries, **options)
        p_init = square_moves(norm).p_init if p_init is None else p_init
        check(0 < p_init <= 1, f"p_init must be in (0, 1], got {p_init}")
        self.p_init = float(p_init)

    def _run(
        self, budget: QueryBudget, images: torch.Tensor, goal: torch.Tensor, targeted: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        assert self.eps is not None
        moves = square_moves(self.norm)
        index = torch.arange(images.shape[0], device=images.device)
        best = moves.init(images, self.eps)
        # Images whose budget is already spent (on choosing targets) stay clean, unfooled.
        ready = budget.can_query(index)
        best[~ready] = images[~ready]
        asked = index[ready]
        if asked.numel() == 0:
            return best, torch.zeros_like(ready)
        scores = budget.scores(best[asked], asked)
        _, loss = margin_and_loss(scores, goal[asked], targeted)
        best_loss = torch.full_like(goal, math.inf, dtype=loss.dtype).index_put((asked,), loss)
        done = torch.zeros_like(ready).index_put(
            (asked,), self.is_adversarial(scores.argmax(dim=1), goal[asked], targeted)
        )
        for iteration in range(self.max_queries - 1):
            active = (~done & budget.can_query(index)).nonzero().squeeze(1)
            if active.numel() == 0:
                break
            p = p_selection(self.p_init, iteration, self.max_queries)
            candidates = moves.propose(images[active], best[active], p, self.eps)
            scores = budget.scores(candidates, active)
            _, loss = margin_and_loss(scores, goal[active], targeted)
            hit = self.is_adversarial(scores.argmax(dim=1), goal[active], targeted)
            # A hit is kept even without a lower loss: success is what we report.
            keep = hit | (loss < best_loss[active])
            best[active[keep]] = candidates[keep]
            best_loss[active[keep]] = loss[keep]
            done[active[hit]] = True
        return best, done
