"""FAB-T: the box-constrained hyperplane projection, and torchattacks' FAB as a referee."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from advlab.attacks import FABT, get_attack
from advlab.attacks.fab import hyperplane_step
from advlab.attacks.norms import get_norm, perturbation_norms
from advlab.errors import AdvlabError


def size(name: str, d: torch.Tensor) -> torch.Tensor:
    return get_norm(name).distance(d, torch.zeros_like(d))


def test_without_the_box_the_step_is_the_textbook_one() -> None:
    torch.manual_seed(0)
    x, w = torch.full((3, 1, 4, 4), 0.5), torch.randn(3, 1, 4, 4)
    c = torch.tensor([0.01, -0.02, 0.0])
    l2 = hyperplane_step(get_norm("l2"), x, w, c)
    flat = w.flatten(1)
    expected = (c / flat.pow(2).sum(1)).view(-1, 1, 1, 1) * w
    assert torch.allclose(l2, expected, atol=1e-7)
    linf = hyperplane_step(get_norm("linf"), x, w, c)
    expected = (c / flat.abs().sum(1)).view(-1, 1, 1, 1) * w.sign()
    assert torch.allclose(linf, expected, atol=1e-7)


@pytest.mark.parametrize("name", ["linf", "l2"])
def test_with_the_box_the_step_is_the_smallest_feasible_one(name: str) -> None:
    optimize = pytest.importorskip("scipy.optimize")
    import numpy as np

    torch.manual_seed(1)
    x = torch.rand(8, 1, 2, 3, dtype=torch.float64)
    w = torch.randn(8, 1, 2, 3, dtype=torch.float64)
    # reachable targets: a fraction of the largest <w, d> the box allows
    most = (w.clamp(min=0) * (1 - x) - w.clamp(max=0) * x).flatten(1).sum(1)
    c = most * torch.linspace(0.05, 0.95, 8, dtype=torch.float64)
    d = hyperplane_step(get_norm(name), x, w, c)
    assert torch.allclose((w * d).flatten(1).sum(1), c, atol=1e-9)
    assert bool(((x + d) >= -1e-12).all() and ((x + d) <= 1 + 1e-12).all())
    for i in range(8):
        xi, wi, ci = x[i].flatten().numpy(), w[i].flatten().numpy(), float(c[i])
        bounds = list(zip(-xi, 1 - xi, strict=True))
        if name == "linf":  # min s subject to |d_j| <= s, <w, d> = c, the box
            n = xi.size
            eye = np.eye(n)
            upper = np.vstack(
                [np.hstack([eye, -np.ones((n, 1))]), np.hstack([-eye, -np.ones((n, 1))])]
            )
            solved = optimize.linprog(
                np.r_[np.zeros(n), 1.0], A_ub=upper, b_ub=np.zeros(2 * n),
                A_eq=np.r_[wi, 0.0][None], b_eq=[ci], bounds=[*bounds, (0, None)],
            )  # fmt: skip
            best = solved.fun
        else:
            solved = optimize.minimize(
                lambda v: float(v @ v), np.zeros_like(xi), method="SLSQP", bounds=bounds,
                constraints=[{"type": "eq", "fun": lambda v, wi=wi, ci=ci: v @ wi - ci}],
                options={"ftol": 1e-14, "maxiter": 500},
            )  # fmt: skip
            best = float(np.sqrt(solved.fun))
        assert float(size(name, d[i : i + 1])) == pytest.approx(best, rel=1e-5, abs=1e-8)


@pytest.mark.parametrize("name", ["linf", "l2"])
def test_an_unreachable_hyperplane_sends_every_pixel_to_its_bound(name: str) -> None:
    x = torch.tensor([[[[0.2, 0.7, 0.5]]]])
    w = torch.tensor([[[[1.0, -2.0, 0.0]]]])
    d = hyperplane_step(get_norm(name), x, w, torch.tensor([10.0]))
    assert torch.allclose(d, torch.tensor([[[[0.8, -0.7, 0.0]]]]))
    d = hyperplane_step(get_norm(name), x, w, torch.tensor([-10.0]))
    assert torch.allclose(d, torch.tensor([[[[-0.2, 0.3, 0.0]]]]))


def test_registered_and_checked() -> None:
    assert get_attack("fab-t") is FABT
    assert FABT(0.1).config()["n_target_classes"] == 9
    with pytest.raises(AdvlabError, match="picks its own targets"):
        FABT(0.1, target="random")
    with pytest.raises(AdvlabError, match="steps must be >= 1"):
        FABT(0.1, steps=0)


def test_broken_images_stay_within_eps(small_mnist_model, mnist_sample) -> None:
    images, labels = mnist_sample[0][:32], mnist_sample[1][:32]
    result = FABT(0.1, 10, n_target_classes=3, seed=0)(small_mnist_model, images, labels)
    assert 0 < int(result.success.sum()) < len(labels)
    assert float(perturbation_norms(result.adversarial, images)["linf"].max()) <= 0.1 + 1e-6
    assert int(result.queries.max()) <= 30


@pytest.fixture(scope="module")
def robust_mnist(data_dir):
    from advlab.data import load_dataset
    from advlab.models import load_model

    data = load_dataset("mnist", split="test", n=40, seed=0, data_dir=data_dir)
    return load_model("mnist-cnn-robust-0.1"), data.images, data.labels


def robust_count(model: nn.Module, adversarial: torch.Tensor, labels: torch.Tensor) -> int:
    with torch.no_grad():
        return int((model(adversarial).argmax(1) == labels).sum())


@pytest.mark.data
@pytest.mark.parametrize("norm, eps", [("linf", 0.2), ("l2", 1.5)])
def test_robust_accuracy_agrees_with_torchattacks(robust_mnist, norm, eps) -> None:
    torchattacks = pytest.importorskip("torchattacks")
    model, images, labels = robust_mnist
    ours = FABT(eps, 25, norm, n_target_classes=3, seed=0)(model, images, labels)
    theirs = torchattacks.FAB(
        model, norm={"linf": "Linf", "l2": "L2"}[norm], eps=eps, steps=25,
        multi_targeted=True, n_classes=4,  # 3 targets
    )(images, labels)  # fmt: skip
    clean = robust_count(model, images, labels)
    ours_count, theirs_count = (
        robust_count(model, ours.adversarial, labels),
        robust_count(model, theirs, labels),
    )
    print(f"robust: ours {ours_count}, torchattacks {theirs_count}, clean {clean} of 40")
    assert 0 < theirs_count < clean
    assert abs(ours_count - theirs_count) <= 1, (ours_count, theirs_count)
