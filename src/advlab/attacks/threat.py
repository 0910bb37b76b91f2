"""Threat models: the three hooks an Lp gradient attack needs, written once per norm.

``random_start`` draws a point in the ball, ``direction`` turns a gradient into the
steepest-ascent step of unit size for the norm, ``project`` maps back into the ball.
"""

from __future__ import annotations

from typing import Literal

import torch

Norm = Literal["linf", "l2"]
NORMS: tuple[Norm, ...] = ("linf", "l2")
_TINY = 1e-12


def _per_image_norm(x: torch.Tensor) -> torch.Tensor:
    """L2 norm of each image, shaped (N, 1, 1, 1) for broadcasting."""
    return x.flatten(1).norm(p=2, dim=1).clamp_min(_TINY).view(-1, *([1] * (x.dim() - 1)))


def random_start(x0: torch.Tensor, eps: float, norm: Norm) -> torch.Tensor:
    if norm == "linf":
        delta = torch.empty_like(x0).uniform_(-eps, eps)
    else:
        # Uniform in the L2 ball: a random direction with radius eps * U^(1/d).
        delta = torch.randn_like(x0)
        d = x0[0].numel()
        radius = eps * torch.rand(x0.shape[0], device=x0.device, dtype=x0.dtype) ** (1.0 / d)
        delta = delta / _per_image_norm(delta) * radius.view(-1, *([1] * (x0.dim() - 1)))
    return (x0 + delta).clamp(0.0, 1.0)


def direction(grad: torch.Tensor, norm: Norm) -> torch.Tensor:
    if norm == "linf":
        return grad.sign()
    return grad / _per_image_norm(grad)


def project(x: torch.Tensor, x0: torch.Tensor, eps: float, norm: Norm) -> torch.Tensor:
    """Nearest point of the eps-ball around ``x0`` intersected with the [0, 1] box."""
    delta = x - x0
    if norm == "linf":
        delta = delta.clamp(-eps, eps)
    else:
        scale = (eps / _per_image_norm(delta)).clamp(max=1.0)
        delta = delta * scale
    return (x0 + delta).clamp(0.0, 1.0)


def perturbation_norms(adversarial: torch.Tensor, x0: torch.Tensor) -> dict[str, torch.Tensor]:
    delta = (adversarial - x0).flatten(1)
    return {"linf": delta.abs().amax(dim=1), "l2": delta.norm(p=2, dim=1)}
