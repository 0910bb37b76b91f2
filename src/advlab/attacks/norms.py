"""Threat models: the norm-specific math of every attack, one class per norm.

Users name a norm with a string (``norm="linf"`` or ``"l2"``); :func:`get_norm` turns it
into a ball object that holds all the math that depends on it, so that no attack branches
on the name. Every method takes ``eps`` as an argument (the objects hold no state)::

    ball = get_norm("l2")
    x = ball.random_start(images, eps)             # a uniform point of ball ∩ [0, 1]
    x = ball.project(x + alpha * ball.direction(grad), images, eps)
    ball.distance(x, images)                       # per image

Adding a norm (L1, say) is one new subclass of :class:`LpBall` with the ``@register_norm``
decorator and its name in :data:`Norm`.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import torch

from advlab.errors import AdvlabError, check

#: The norm names users pass (``attack.norm`` keeps the string).
Norm = Literal["linf", "l2"]
LINF: Norm = "linf"
L2: Norm = "l2"
_TINY = 1e-12


def per_image(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Per-image values shaped (N, 1, 1, 1) (as many ones as ``like`` has) to broadcast."""
    return values.view(-1, *([1] * (like.dim() - 1)))


def keep(store: torch.Tensor, rows: Any, better: torch.Tensor, value: torch.Tensor) -> None:
    """A keep-best record: ``store[rows]`` takes ``value`` on the images where ``better``."""
    store[rows] = torch.where(per_image(better, value), value, store[rows])


def _l2_per_image(x: torch.Tensor) -> torch.Tensor:
    """L2 norm of each image, at least ``_TINY``, shaped (N, 1, 1, 1)."""
    return per_image(x.flatten(1).norm(p=2, dim=1).clamp_min(_TINY), x)


class LpBall(ABC):
    """The eps-ball of one norm around an image, intersected with the [0, 1] box."""

    #: The name users pass and ``attack.norm`` keeps.
    name: ClassVar[str] = ""

    # -- gradient attacks ---------------------------------------------------------------
    @abstractmethod
    def random_start(self, x0: torch.Tensor, eps: float) -> torch.Tensor:
        """A uniformly random point of the ball around each image, clipped to [0, 1]."""

    @abstractmethod
    def direction(self, grad: torch.Tensor) -> torch.Tensor:
        """The steepest-ascent direction of unit norm for ``grad`` (per image)."""

    def project(self, x: torch.Tensor, x0: torch.Tensor, eps: float) -> torch.Tensor:
        """The nearest point of the eps-ball around ``x0`` intersected with [0, 1]."""
        return (x0 + self.clip_delta(x - x0, eps)).clamp(0.0, 1.0)

    @abstractmethod
    def clip_delta(self, delta: torch.Tensor, eps: float) -> torch.Tensor:
        """``delta`` moved into the ball of radius eps around 0 (the box aside)."""

    def shrink_into(self, delta: torch.Tensor, eps: float) -> torch.Tensor:
        """``delta`` moved into the ball such that :meth:`project` leaves it as it is.

        Rescaling norms (L2) stop a hair inside the sphere, where rounding cannot push a
        later projection to move the point again; clipping norms need no such margin.
        """
        return self.clip_delta(delta, eps)

    # -- measuring ----------------------------------------------------------------------
    @abstractmethod
    def distance(self, x: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        """The norm of ``x - x0`` per image, shape (N,)."""

    @abstractmethod
    def dual_norm(self, w: torch.Tensor, dim: int) -> torch.Tensor:
        """The dual norm of ``w`` along ``dim`` (L1 for L-inf, L2 for L2)."""

    @abstractmethod
    def steepest_step(
        self, w: torch.Tensor, size: torch.Tensor, dual: torch.Tensor
    ) -> torch.Tensor:
        """The step of norm ``size`` that moves furthest along ``w`` (``dual`` = its dual norm).

        Its inner product with ``w`` is ``size * dual``: DeepFool's step onto a linearized
        boundary at distance ``size``.
        """

    @abstractmethod
    def dimension_factor(self, d: int) -> float:
        """``max ||v||_1 / ||v||`` over d-dimensional v: sqrt(d) for L2, d for L-inf."""

    @abstractmethod
    def box_diameter(self, image_shape: Sequence[int]) -> float:
        """The smallest eps whose ball covers the whole [0, 1] box around any image."""

    def check_eps(self, eps: float) -> None:  # noqa: B027 - most norms accept any eps
        """Refuse an eps that makes no sense for this norm (beyond ``eps >= 0``)."""

    # -- decision-based search (HopSkipJump) --------------------------------------------
    @abstractmethod
    def noise(self, like: torch.Tensor) -> torch.Tensor:
        """Random probe directions (not normalized) whose law suits the norm."""

    @abstractmethod
    def path_length(self, distance: torch.Tensor) -> torch.Tensor:
        """The end parameter of :meth:`along` that reaches a point at ``distance``."""

    @abstractmethod
    def along(self, x0: torch.Tensor, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The point at parameter ``t`` (per image) of a path from ``x0`` (t = 0) to ``x``.

        Every point of the path is at most as far from ``x0`` as ``x``, so that a binary
        search over ``t`` between a clean and an adversarial point finds the boundary.
        """

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


NORMS: dict[str, LpBall] = {}


def register_norm(cls: type[LpBall]) -> type[LpBall]:
    """Class decorator: make a norm available by its ``name``."""
    check(bool(cls.name), f"{cls.__name__} needs a name")
    NORMS[cls.name] = cls()
    return cls


def get_norm(name: str) -> LpBall:
    """The ball object for a norm name; a one-line error naming the known ones."""
    if not isinstance(name, str) or name not in NORMS:
        raise AdvlabError(f"unknown norm '{name}': use one of {', '.join(NORMS)}")
    return NORMS[name]


@register_norm
class LinfBall(LpBall):
    """L-inf: every pixel moves by at most eps."""

    name = LINF

    def random_start(self, x0: torch.Tensor, eps: float) -> torch.Tensor:
        return (x0 + torch.empty_like(x0).uniform_(-eps, eps)).clamp(0.0, 1.0)

    def direction(self, grad: torch.Tensor) -> torch.Tensor:
        return grad.sign()

    def clip_delta(self, delta: torch.Tensor, eps: float) -> torch.Tensor:
        return delta.clamp(-eps, eps)

    def distance(self, x: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        return (x - x0).flatten(1).abs().amax(dim=1)

    def dual_norm(self, w: torch.Tensor, dim: int) -> torch.Tensor:
        return w.abs().sum(dim)

    def steepest_step(
        self, w: torch.Tensor, size: torch.Tensor, dual: torch.Tensor
    ) -> torch.Tensor:
        return per_image(size, w) * w.sign()

    def dimension_factor(self, d: int) -> float:
        return float(d)

    def box_diameter(self, image_shape: Sequence[int]) -> float:
        return 1.0

    def check_eps(self, eps: float) -> None:  # noqa: B027 - most norms accept any eps
        check(eps <= 1, f"L-inf eps is in [0, 1] pixel units, got {eps}: use e.g. 8/255, not 8")

    def noise(self, like: torch.Tensor) -> torch.Tensor:
        return torch.rand_like(like) * 2 - 1

    def path_length(self, distance: torch.Tensor) -> torch.Tensor:
        return distance.clone()  # the path clips to a growing L-inf radius

    def along(self, x0: torch.Tensor, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        radius = per_image(t, x)
        return torch.minimum(torch.maximum(x, x0 - radius), x0 + radius)


@register_norm
class L2Ball(LpBall):
    """L2: the perturbation's Euclidean length is at most eps."""

    name = L2

    def random_start(self, x0: torch.Tensor, eps: float) -> torch.Tensor:
        # Uniform in the L2 ball: a random direction with radius eps * U^(1/d).
        delta = torch.randn_like(x0)
        d = x0[0].numel()
        radius = eps * torch.rand(x0.shape[0], device=x0.device, dtype=x0.dtype) ** (1.0 / d)
        delta = delta / _l2_per_image(delta) * per_image(radius, x0)
        return (x0 + delta).clamp(0.0, 1.0)

    def direction(self, grad: torch.Tensor) -> torch.Tensor:
        return grad / _l2_per_image(grad)

    def clip_delta(self, delta: torch.Tensor, eps: float) -> torch.Tensor:
        return delta * (eps / _l2_per_image(delta)).clamp(max=1.0)

    def shrink_into(self, delta: torch.Tensor, eps: float) -> torch.Tensor:
        return self.clip_delta(delta, eps * (1 - 1e-6))

    def distance(self, x: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        return (x - x0).flatten(1).norm(p=2, dim=1)

    def dual_norm(self, w: torch.Tensor, dim: int) -> torch.Tensor:
        return w.norm(p=2, dim=dim)

    def steepest_step(
        self, w: torch.Tensor, size: torch.Tensor, dual: torch.Tensor
    ) -> torch.Tensor:
        return per_image(size / dual, w) * w

    def dimension_factor(self, d: int) -> float:
        return math.sqrt(d)

    def box_diameter(self, image_shape: Sequence[int]) -> float:
        return math.sqrt(math.prod(image_shape))

    def noise(self, like: torch.Tensor) -> torch.Tensor:
        return torch.randn_like(like)

    def path_length(self, distance: torch.Tensor) -> torch.Tensor:
        return torch.ones_like(distance)  # the path blends towards x

    def along(self, x0: torch.Tensor, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t = per_image(t, x)
        return (1 - t) * x0 + t * x


def perturbation_norms(adversarial: torch.Tensor, x0: torch.Tensor) -> dict[str, torch.Tensor]:
    """The size of ``adversarial - x0`` per image in every registered norm."""
    return {name: ball.distance(adversarial, x0) for name, ball in NORMS.items()}
