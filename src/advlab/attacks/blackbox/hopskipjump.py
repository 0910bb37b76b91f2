"""HopSkipJump (Chen, Jordan, Wainwright 2020): a decision-based attack, top-1 labels only.

From an adversarial starting point, repeat: binary search to the decision boundary,
estimate the boundary's normal by Monte-Carlo sampling (is each random probe still
adversarial?), take a geometric step along it, and search back to the boundary. The
distance to the original shrinks with every iteration.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from advlab.attacks.base import AttackOptions, check_counts, register_attack
from advlab.attacks.blackbox.base import BlackBoxAttack
from advlab.attacks.norms import L2, Norm
from advlab.errors import check
from advlab.targets import QueryBudget

if TYPE_CHECKING:
    from typing_extensions import Unpack

_TINY = 1e-12
# Random-noise draws tried per image when no image of the batch is a usable start.
_INIT_TRIES = 100
# The geometric step search halves at most this often (the reference never gives up).
_MAX_HALVINGS = 25
# Monte-Carlo probes are queried in chunks of about this many pixel values (64 MB).
_CHUNK_ELEMENTS = 2**24


@register_attack
class HopSkipJump(BlackBoxAttack):
    """Decision-based HopSkipJump in L2 or L-inf, batched over images.

    ``eps=None`` is the minimal-perturbation mode: the result is the closest adversarial
    example found, successful when one was found at all. With ``eps`` an image succeeds
    only within eps, and stops early once there unless ``early_stop=False``: then it keeps
    shrinking the perturbation for the whole budget, so the median distance shows what
    more queries buy (the report's budget curve). Iteration ``t`` spends
    ``min(init_evals * sqrt(t), max_num_evals)`` queries on the gradient estimate, fewer
    when the image's budget is short: every phase is planned against the queries left.
    Each image is first queried clean (a misclassified image is done at distance 0); a
    start is the nearest batch image the target already puts in an adversarial class,
    else uniform noise.
    """

    name = "hopskipjump"
    output_kind = "labels"

    def __init__(
        self,
        eps: float | None = None,
        norm: Norm = L2,
        *,
        max_queries: int = 5000,
        num_iterations: int = 64,
        init_evals: int = 100,
        max_num_evals: int = 10_000,
        gamma: float = 1.0,
        early_stop: bool = True,
        **options: Unpack[AttackOptions],
    ) -> None:
        check(options.get("target") != "least-likely",
              "HopSkipJump sees labels only, so it cannot rank classes: use target='random' "
              "or pass targets explicitly")  # fmt: skip
        super().__init__(eps, norm, max_queries=max_queries, **options)
        check_counts(num_iterations=num_iterations, init_evals=init_evals)
        check(max_num_evals >= init_evals,
              f"max_num_evals must be >= init_evals={init_evals}, got {max_num_evals}")  # fmt: skip
        check(gamma > 0, f"gamma must be > 0, got {gamma}")
        self.num_iterations = int(num_iterations)
        self.init_evals = int(init_evals)
        self.max_num_evals = int(max_num_evals)
        self.gamma = float(gamma)
        self.early_stop = bool(early_stop)

    def _run(
        self, budget: QueryBudget, images: torch.Tensor, goal: torch.Tensor, targeted: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        n, d = images.shape[0], math.prod(images.shape[1:])
        if n == 0:
            return images.clone(), torch.zeros(0, dtype=torch.bool, device=images.device)
        ball = self.ball
        # The binary search's stopping threshold (the paper's theta).
        theta = self.gamma / (d * ball.dimension_factor(d))
        search_queries = math.ceil(math.log2(1.0 / theta)) + 1
        index = torch.arange(n, device=images.device)
        predictions = budget.labels(images, index)
        found = self.is_adversarial(predictions, goal, targeted)
        start, started = self._initialize(budget, images, goal, targeted, predictions, ~found)

        current = images.clone()
        # the distance before the last binary search (the paper's dist_post_update)
        dist_post = torch.zeros(n, dtype=images.dtype, device=images.device)
        live = started.nonzero().squeeze(1)
        if live.numel():
            current[live], dist_post[live] = self._binary_search(
                budget, images[live], start[live], live, goal, targeted, theta
            )
        dist = self._distance(current, images)
        best, best_dist = current.clone(), torch.where(found | started, dist, math.inf)
        found |= started

        alive = started.clone()
        for iteration in range(1, self.num_iterations + 1):
            if self.eps is not None and self.early_stop:
                alive &= best_dist > self.eps
            wanted = min(int(self.init_evals * math.sqrt(iteration)), self.max_num_evals)
            # Keep enough budget for one step query and one full binary search.
            evals = (budget.remaining(index) - search_queries - 1).clamp(max=wanted)
            alive &= evals >= 1
            active = alive.nonzero().squeeze(1)
            if active.numel() == 0:
                break
            if iteration == 1:
                delta = torch.full_like(dist[active], 0.1)
            else:
                delta = ball.dimension_factor(d) * theta * dist_post[active]
            grad = self._estimate_gradient(
                budget, current[active], active, evals[active], delta, goal, targeted
            )
            update = ball.direction(grad)
            stepped, ok = self._step_search(
                budget, current[active], update, dist[active] / math.sqrt(iteration),
                active, goal, targeted,
            )  # fmt: skip
            moved = active[ok]
            if moved.numel() == 0:
                continue
            boundary, dist_post[moved] = self._binary_search(
                budget, images[moved], stepped[ok], moved, goal, targeted, theta
            )
            current[moved] = boundary
            dist[moved] = self._distance(boundary, images[moved])
            closer = moved[dist[moved] < best_dist[moved]]
            best[closer], best_dist[closer] = current[closer], dist[closer]
        success = found if self.eps is None else found & (best_dist <= self.eps)
        return best, success

    # -- phases -------------------------------------------------------------------------
    def _initialize(
        self,
        budget: QueryBudget,
        images: torch.Tensor,
        goal: torch.Tensor,
        targeted: bool,
        predictions: torch.Tensor,
        pending: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """An adversarial start per pending image: a batch image, else uniform noise."""
        n = images.shape[0]
        index = torch.arange(n, device=images.device)
        start = images.clone()
        started = torch.zeros(n, dtype=torch.bool, device=images.device)
        # usable[i, j]: the target's label for image j is adversarial for image i.
        usable = self.is_adversarial(predictions[None, :], goal[:, None], targeted)
        usable.fill_diagonal_(False)
        ask = (pending & usable.any(dim=1) & budget.can_query(index)).nonzero().squeeze(1)
        if ask.numel():
            flat = images.flatten(1)
            distances = torch.cdist(flat[ask], flat).masked_fill(~usable[ask], math.inf)
            candidates = images[distances.argmin(dim=1)]
            # Verified with the image's own query: a randomized target may disagree.
            hit = self._decide(budget, candidates, ask, goal, targeted)
            start[ask[hit]], started[ask[hit]] = candidates[hit], True
        for _ in range(_INIT_TRIES):
            ask = (pending & ~started & budget.can_query(index)).nonzero().squeeze(1)
            if ask.numel() == 0:
                break
            noise = torch.rand_like(images[ask])
            hit = self._decide(budget, noise, ask, goal, targeted)
            start[ask[hit]], started[ask[hit]] = noise[hit], True
        return start, started

    def _binary_search(
        self,
        budget: QueryBudget,
        originals: torch.Tensor,
        adversarial: torch.Tensor,
        index: torch.Tensor,
        goal: torch.Tensor,
        targeted: bool,
        theta: float,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Boundary points between ``originals`` and ``adversarial`` (verified adversarial).

        Returns the last adversarial probe of each search (so a search cut short by the
        budget still returns a queried adversarial example) and the starting distances.
        """
        dist = self._distance(adversarial, originals)
        low = torch.zeros_like(dist)
        high = self.ball.path_length(dist)
        threshold = (high * theta).clamp(min=_TINY, max=theta)
        out = adversarial.clone()
        while True:
            ask = ((high - low > threshold) & budget.can_query(index)).nonzero().squeeze(1)
            if ask.numel() == 0:
                return out, dist
            mid = (high[ask] + low[ask]) / 2
            probe = self.ball.along(originals[ask], adversarial[ask], mid)
            hit = self._decide(budget, probe, index[ask], goal, targeted)
            high[ask[hit]], out[ask[hit]] = mid[hit], probe[hit]
            low[ask[~hit]] = mid[~hit]

    def _estimate_gradient(
        self,
        budget: QueryBudget,
        points: torch.Tensor,
        index: torch.Tensor,
        counts: torch.Tensor,
        delta: torch.Tensor,
        goal: torch.Tensor,
        targeted: bool,
    ) -> torch.Tensor:
        """Monte-Carlo estimate of the boundary normal at each point (not normalized)."""
        m = points.shape[0]
        owner = torch.repeat_interleave(torch.arange(m, device=points.device), counts)
        sum_probe = torch.zeros_like(points)
        sum_signed = torch.zeros_like(points)
        positives = torch.zeros(m, dtype=points.dtype, device=points.device)
        for rows in owner.split(max(1, _CHUNK_ELEMENTS // points[0].numel())):
            base, scale = points[rows], delta[rows].clamp_min(_TINY).view(-1, 1, 1, 1)
            noise = self.ball.noise(base)
            noise = noise / noise.flatten(1).norm(dim=1).clamp_min(_TINY).view(-1, 1, 1, 1)
            probe = (base + scale * noise).clamp(0.0, 1.0)
            noise = (probe - base) / scale  # the direction actually probed, after the clip
            hit = self._decide(budget, probe, index[rows], goal, targeted).to(points.dtype)
            sum_probe.index_add_(0, rows, noise)
            sum_signed.index_add_(0, rows, (2 * hit - 1).view(-1, 1, 1, 1) * noise)
            positives.index_add_(0, rows, hit)
        total = counts.to(points.dtype)
        mean_sign = (2 * positives - total) / total
        # Baseline subtraction (the paper's variance reduction), except when every probe
        # agreed: then the mean direction, signed by the agreement, is all there is.
        grad = sum_signed - mean_sign.view(-1, 1, 1, 1) * sum_probe
        unanimous = (positives == 0) | (positives == total)
        grad[unanimous] = sum_probe[unanimous] * mean_sign[unanimous].view(-1, 1, 1, 1)
        return grad

    def _step_search(
        self,
        budget: QueryBudget,
        points: torch.Tensor,
        update: torch.Tensor,
        size: torch.Tensor,
        index: torch.Tensor,
        goal: torch.Tensor,
        targeted: bool,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Geometric step-size search: halve the step until the result is adversarial."""
        size = size.clone()
        stepped = points.clone()
        ok = torch.zeros(points.shape[0], dtype=torch.bool, device=points.device)
        for _ in range(_MAX_HALVINGS):
            ask = (~ok & budget.can_query(index)).nonzero().squeeze(1)
            if ask.numel() == 0:
                break
            trial = (points[ask] + size[ask].view(-1, 1, 1, 1) * update[ask]).clamp(0.0, 1.0)
            hit = self._decide(budget, trial, index[ask], goal, targeted)
            stepped[ask[hit]], ok[ask[hit]] = trial[hit], True
            size[ask[~hit]] /= 2
        return stepped, ok

    # -- helpers ------------------------------------------------------------------------
    def _decide(
        self,
        budget: QueryBudget,
        probes: torch.Tensor,
        index: torch.Tensor,
        goal: torch.Tensor,
        targeted: bool,
    ) -> torch.Tensor:
        return self.is_adversarial(budget.labels(probes, index), goal[index], targeted)

    def _distance(self, points: torch.Tensor, originals: torch.Tensor) -> torch.Tensor:
        return self.ball.distance(points, originals)
