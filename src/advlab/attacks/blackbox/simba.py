"""SimBA (Guo et al. 2019): simple black-box attack along orthonormal basis directions.

For each image, SimBA walks through a random order of basis directions ``q`` (pixels, or
low-frequency DCT components first) and tries ``x - step * q``, then ``x + step * q``,
keeping the first that lowers the probability of the true class (or raises the target's).
The basis is orthonormal, so each kept step adds exactly ``step`` in L2.
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING, Literal

import torch

from advlab.attacks.base import AttackOptions, register_attack
from advlab.attacks.blackbox.base import BlackBoxAttack
from advlab.attacks.norms import L2, Norm
from advlab.errors import check
from advlab.targets import QueryBudget

if TYPE_CHECKING:
    from typing_extensions import Unpack

Basis = Literal["pixel", "dct"]
_BASES = ("pixel", "dct")


@functools.lru_cache(maxsize=8)
def dct_matrix(n: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Orthonormal DCT-II matrix: row k is the k-th cosine basis vector of length n."""
    k = torch.arange(n, device=device, dtype=torch.float64)[:, None]
    i = torch.arange(n, device=device, dtype=torch.float64)[None, :]
    matrix = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    matrix[0] /= math.sqrt(2.0)
    return matrix.to(dtype)


def low_frequency_order(
    n: int, shape: tuple[int, int, int], freq_dims: int, device: torch.device
) -> torch.Tensor:
    """Per-image random order of DCT coordinates, lowest frequencies first.

    The first ``freq_dims x freq_dims`` block (all channels) comes first in random order,
    then L-shaped bands of growing frequency, each in random order: the reference's
    "strided" order, which is where SimBA-DCT finds its query efficiency.
    """
    c, h, w = shape
    rows = torch.arange(h, device=device)[:, None].expand(h, w)
    cols = torch.arange(w, device=device)[None, :].expand(h, w)
    stride = max(1, freq_dims // 4)
    band = ((torch.maximum(rows, cols) - freq_dims).clamp_min(-1) // stride + 1).float()
    band = band.expand(c, h, w).reshape(-1)
    return torch.argsort(band + torch.rand(n, c * h * w, device=device), dim=1)


@register_attack
class SimBA(BlackBoxAttack):
    """Score-based SimBA with the pixel or the DCT (low frequency first) basis.

    ``step`` is the L2 length of one move. ``freq_dims`` (DCT only) is the side of the
    first low-frequency block, by default an eighth of the image side (the paper's 28 for
    224-pixel ImageNet) and at least 4. With ``eps`` the
    perturbation is kept inside the ball by projecting every candidate before it is
    queried, so nothing returned ever needs clipping. Each image is queried once clean,
    then at most twice per direction, until it is fooled or its budget is spent.
    """

    name = "simba"

    def __init__(
        self,
        eps: float | None = None,
        norm: Norm = L2,
        *,
        step: float = 0.2,
        basis: Basis = "pixel",
        freq_dims: int | None = None,
        max_queries: int = 5000,
        **options: Unpack[AttackOptions],
    ) -> None:
        super().__init__(eps, norm, max_queries=max_queries, **options)
        check(step > 0, f"step must be > 0, got {step}")
        check(basis in _BASES, f"unknown basis '{basis}': use {' or '.join(_BASES)}")
        check(freq_dims is None or freq_dims >= 1, f"freq_dims must be >= 1, got {freq_dims}")
        self.step = float(step)
        self.basis: Basis = basis
        self.freq_dims = freq_dims

    def _run(
        self, budget: QueryBudget, images: torch.Tensor, goal: torch.Tensor, targeted: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        n = images.shape[0]
        index = torch.arange(n, device=images.device)
        # Images whose budget is already spent (on choosing targets) stay clean, unfooled.
        asked = index[budget.can_query(index)]
        if asked.numel() == 0:
            return images.clone(), torch.zeros(n, dtype=torch.bool, device=images.device)
        probs = budget.scores(images[asked], asked)
        goal_prob = torch.zeros(n, dtype=probs.dtype, device=images.device).index_put(
            (asked,), probs.gather(1, goal[asked][:, None]).squeeze(1)
        )
        done = torch.zeros(n, dtype=torch.bool, device=images.device).index_put(
            (asked,), self.is_adversarial(probs.argmax(dim=1), goal[asked], targeted)
        )
        if self.eps == 0:  # nothing can move: don't walk through every direction
            return images.clone(), done
        order = self._order(images)
        delta = torch.zeros_like(images)  # unclipped; the image is clamp(x + delta)
        adversarial = images.clone()
        for k in range(order.shape[1]):
            active = (~done & budget.can_query(index)).nonzero().squeeze(1)
            if active.numel() == 0:
                break
            direction = self._basis_vectors(order[active, k], images)
            improved = torch.zeros(active.numel(), dtype=torch.bool, device=images.device)
            for sign in (-1.0, 1.0):
                trial_delta = self._into_ball(delta[active] + sign * self.step * direction)
                trial = (images[active] + trial_delta).clamp(0.0, 1.0)
                # Skip queries that cannot change anything (e.g. darkening a black pixel).
                changed = (trial != adversarial[active]).flatten(1).any(dim=1)
                ask = ~improved & changed & budget.can_query(active)
                if not bool(ask.any()):
                    continue
                asked = active[ask]
                probs = budget.scores(trial[ask], asked)
                new_prob = probs.gather(1, goal[asked][:, None]).squeeze(1)
                hit = self.is_adversarial(probs.argmax(dim=1), goal[asked], targeted)
                better = new_prob > goal_prob[asked] if targeted else new_prob < goal_prob[asked]
                # A hit is kept even if the goal's probability moved the wrong way (it can,
                # when another class gains more): success is what we report.
                better |= hit
                kept = asked[better]
                delta[kept] = trial_delta[ask][better]
                adversarial[kept] = trial[ask][better]
                goal_prob[kept] = new_prob[better]
                done[kept] = hit[better]
                improved[ask.nonzero().squeeze(1)[better]] = True
        return adversarial, done

    def _order(self, images: torch.Tensor) -> torch.Tensor:
        n, c, h, w = images.shape
        if self.basis == "pixel":
            return torch.argsort(torch.rand(n, c * h * w, device=images.device), dim=1)
        freq_dims = min(self.freq_dims or max(4, h // 8), h, w)
        return low_frequency_order(n, (c, h, w), freq_dims, images.device)

    def _basis_vectors(self, coords: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        """Unit basis images for flat coordinates ``coords`` (one per row), (m, C, H, W)."""
        _, c, h, w = images.shape
        m = coords.numel()
        if self.basis == "pixel":
            vectors = torch.zeros(m, c * h * w, dtype=images.dtype, device=images.device)
            vectors[torch.arange(m, device=images.device), coords] = 1.0
            return vectors.view(m, c, h, w)
        channel, rest = coords // (h * w), coords % (h * w)
        row_freq, col_freq = rest // w, rest % w
        rows = dct_matrix(h, images.device, images.dtype)[row_freq]
        cols = dct_matrix(w, images.device, images.dtype)[col_freq]
        vectors = torch.zeros(m, c, h, w, dtype=images.dtype, device=images.device)
        vectors[torch.arange(m, device=images.device), channel] = rows[:, :, None] * cols[:, None]
        return vectors

    def _into_ball(self, delta: torch.Tensor) -> torch.Tensor:
        # Inside the ball such that the framework's final clip never moves it.
        return delta if self.eps is None else self.ball.shrink_into(delta, self.eps)
