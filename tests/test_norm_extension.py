"""Adding a norm is one new class: an L1 ball, registered for this test only, runs PGD,
FGSM, MIM and DeepFool with no change to any attack; Square (defined for L-inf and L2
only) refuses it in one line.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pytest
import torch

from advlab.attacks import FGSM, MIM, PGD, DeepFool, Square
from advlab.attacks.norms import NORMS, LpBall, perturbation_norms
from advlab.errors import AdvlabError


def _rows(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return values.view(-1, *([1] * (like.dim() - 1)))


class L1Ball(LpBall):
    name = "l1"

    def random_start(self, x0: torch.Tensor, eps: float) -> torch.Tensor:
        delta = torch.randn_like(x0)
        radius = eps * torch.rand(x0.shape[0], dtype=x0.dtype)
        delta = delta / _rows(delta.flatten(1).abs().sum(1), x0) * _rows(radius, x0)
        return (x0 + delta).clamp(0.0, 1.0)

    def direction(self, grad: torch.Tensor) -> torch.Tensor:
        flat = grad.flatten(1)
        top = flat.abs().argmax(dim=1, keepdim=True)
        step = torch.zeros_like(flat).scatter(1, top, flat.gather(1, top).sign())
        return step.view_as(grad)

    def clip_delta(self, delta: torch.Tensor, eps: float) -> torch.Tensor:
        # Euclidean projection onto the L1 ball (Duchi et al. 2008), per image.
        flat = delta.flatten(1)
        size = flat.abs()
        outside = size.sum(1) > eps
        if not bool(outside.any()):
            return delta
        mu = size.sort(dim=1, descending=True).values
        cumulative = mu.cumsum(1)
        ranks = torch.arange(1, flat.shape[1] + 1, dtype=flat.dtype)
        rho = ((mu - (cumulative - eps) / ranks) > 0).sum(1, keepdim=True)
        theta = (cumulative.gather(1, rho - 1) - eps) / rho
        shrunk = flat.sign() * (size - theta).clamp_min(0.0)
        return torch.where(outside[:, None], shrunk, flat).view_as(delta)

    def distance(self, x: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        return (x - x0).flatten(1).abs().sum(1)

    def dual_norm(self, w: torch.Tensor, dim: int) -> torch.Tensor:
        return w.abs().amax(dim)

    def steepest_step(self, w, size, dual):
        flat = w.flatten(1)
        top = flat.abs().argmax(dim=1, keepdim=True)
        step = torch.zeros_like(flat).scatter(1, top, flat.gather(1, top).sign())
        return _rows(size, w) * step.view_as(w)

    def dimension_factor(self, d: int) -> float:
        return 1.0

    def box_diameter(self, image_shape: Sequence[int]) -> float:
        return float(math.prod(image_shape))

    def noise(self, like: torch.Tensor) -> torch.Tensor:
        return torch.randn_like(like)

    def path_length(self, distance: torch.Tensor) -> torch.Tensor:
        return torch.ones_like(distance)

    def along(self, x0, x, t):
        return (1 - _rows(t, x)) * x0 + _rows(t, x) * x


@pytest.fixture
def l1(monkeypatch):
    monkeypatch.setitem(NORMS, "l1", L1Ball())


@pytest.mark.parametrize(
    "make",
    [
        lambda: PGD(eps=3.0, alpha=0.5, steps=10, norm="l1", seed=0),
        lambda: PGD(eps=3.0, steps=5, norm="l1", restarts=2, early_stop=True, seed=0),
        lambda: FGSM(eps=3.0, norm="l1", random_start=True, seed=0),
        lambda: MIM(eps=3.0, steps=10, norm="l1", seed=0),
        lambda: DeepFool(eps=3.0, norm="l1", steps=10),
    ],
    ids=["pgd", "pgd-restarts", "fgsm", "mim", "deepfool"],
)
def test_an_l1_ball_runs_every_gradient_attack(make, l1, small_mnist_model, mnist_sample):
    images, labels = mnist_sample[0][:16], mnist_sample[1][:16]
    attack = make()
    result = attack(small_mnist_model, images, labels)
    assert attack.norm == "l1" and attack.config()["norm"] == "l1"
    size = perturbation_norms(result.adversarial, images)["l1"]
    assert float(size.max()) <= 3.0 + 1e-4
    assert 0.0 <= float(result.adversarial.min()) and float(result.adversarial.max()) <= 1.0
    if not isinstance(attack, FGSM):
        assert float(size.max()) > 0.5  # it moved


def test_square_says_which_norms_it_supports(l1):
    with pytest.raises(AdvlabError, match="Square supports the norms linf, l2, not l1"):
        Square(eps=3.0, norm="l1")
