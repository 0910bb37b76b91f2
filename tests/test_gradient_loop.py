"""The one gradient loop (advlab.attacks.gradient), driven directly through its hooks.

PGD, MIM and TRADES written as hooks of :class:`GradientAscent` give, bit for bit, what the
pre-refactor hand-written loops gave (hashes in ``fixtures/attack_reference.json``); and
the hooks a later attack needs (observing every point, keeping the best) behave.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from advlab.attacks import frozen_eval
from advlab.attacks.gradient import (
    GradientAscent,
    Momentum,
    SteepestAscent,
    Update,
    cross_entropy,
    default_step_size,
    kl_divergence,
    margin,
    misclassified,
    start_in_ball,
)
from advlab.attacks.norms import NORMS, get_norm, perturbation_norms
from advlab.data import load_dataset
from advlab.errors import AdvlabError
from advlab.models import load_model

REFERENCE = json.loads(
    (Path(__file__).resolve().parent / "fixtures" / "attack_reference.json").read_text()
)["cases"]


@pytest.fixture
def setup():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    data = load_dataset("mnist-demo", n=16, seed=0)
    yield load_model("mnist-cnn"), data.images, data.labels
    torch.set_num_threads(threads)


def sha(tensor: torch.Tensor) -> str:
    return hashlib.sha256(tensor.detach().float().contiguous().numpy().tobytes()).hexdigest()


def test_pgd_is_the_loop_with_steepest_ascent(setup) -> None:
    model, images, labels = setup
    ball, eps = get_norm("linf"), 0.3
    loop = GradientAscent(ball, eps, 10, cross_entropy(False),
                          SteepestAscent(ball, default_step_size(eps, 10)),
                          start=start_in_ball(ball, eps))  # fmt: skip
    torch.manual_seed(0)
    with frozen_eval(model):
        adversarial, queries = loop.run(model, images, labels)
    assert sha(adversarial) == REFERENCE["pgd-linf"]["adversarial"]["sha256"]
    assert queries.tolist() == [10] * 16


def test_pgd_margin_with_early_stop_and_restarts_is_the_loop(setup) -> None:
    model, images, labels = setup
    ball, eps = get_norm("l2"), 2.0
    targets = None
    torch.manual_seed(3)
    with frozen_eval(model), torch.no_grad():
        num_classes = model(images).shape[1]
    offset = torch.randint(1, num_classes, labels.shape)
    targets = (labels + offset) % num_classes
    loop = GradientAscent(ball, eps, 7, cross_entropy(True),
                          SteepestAscent(ball, default_step_size(eps, 7)),
                          start=start_in_ball(ball, eps), restarts=2, early_stop=True,
                          success=misclassified(True))  # fmt: skip
    with frozen_eval(model):
        adversarial, queries = loop.run(model, images, targets)
    adversarial = ball.project(adversarial, images, eps)  # the framework's final clip
    reference = REFERENCE["pgd-random-target-l2"]
    assert sha(adversarial) == reference["adversarial"]["sha256"]
    assert int(queries.sum()) == reference["queries"]["sum"]


def test_mim_is_the_loop_with_a_momentum_update(setup) -> None:
    model, images, labels = setup
    ball, eps = get_norm("linf"), 0.3
    loop = GradientAscent(ball, eps, 10, cross_entropy(False), Momentum(ball, eps / 10, 1.0))
    torch.manual_seed(0)
    with frozen_eval(model):
        adversarial, _ = loop.run(model, images, labels)
    assert sha(adversarial) == REFERENCE["mim"]["adversarial"]["sha256"]


def test_trades_is_the_loop_with_a_kl_objective(setup) -> None:
    model, images, _ = setup
    ball, eps = get_norm("linf"), 0.3

    def near(x: torch.Tensor) -> torch.Tensor:
        return (x + 0.001 * torch.randn_like(x)).clamp(0.0, 1.0)

    loop = GradientAscent(ball, eps, 5, kl_divergence,
                          SteepestAscent(ball, default_step_size(1.0, 5) * eps), start=near,
                          channels_last=False)  # fmt: skip
    torch.manual_seed(0)
    with frozen_eval(model):
        with torch.no_grad():
            natural = F.softmax(model(images), dim=1)
        adversarial, _ = loop.run(model, images, natural)
    assert sha(adversarial) == REFERENCE["trades-linf"]["adversarial"]["sha256"]


class _Recorder(Update):
    """Steepest ascent that keeps, per image, the point of the highest loss it saw."""

    observes_last = True

    def __init__(self, ball, step_size: float) -> None:
        self.inner = SteepestAscent(ball, step_size)
        self.seen: list[int] = []

    def begin(self, images: torch.Tensor) -> None:
        self.best = images.clone()
        self.best_loss = torch.full((images.shape[0],), -float("inf"))

    def observe(self, x, outputs, loss, index) -> None:
        index = torch.arange(x.shape[0]) if index is None else index
        self.seen.append(int(index.numel()))
        better = loss > self.best_loss[index]
        self.best[index[better]] = x[better]
        self.best_loss[index[better]] = loss[better]

    def __call__(self, x, grad, loss, index):
        return self.inner(x, grad, loss, index)

    def finish(self, x: torch.Tensor) -> torch.Tensor:
        return self.best


@pytest.mark.parametrize("early_stop", [False, True])
def test_an_update_sees_every_point_and_returns_its_best(setup, early_stop: bool) -> None:
    model, images, labels = setup
    ball, eps = get_norm("linf"), 0.05
    recorder = _Recorder(ball, 0.01)
    objective = margin(False)
    loop = GradientAscent(ball, eps, 4, objective, recorder, early_stop=early_stop,
                          success=misclassified(False))  # fmt: skip
    with frozen_eval(model):
        adversarial, queries = loop.run(model, images, labels)
        with torch.no_grad():
            final = objective(model(adversarial), labels)
    # every step's point plus the last one (of the images still running)
    assert len(recorder.seen) == 5 if not early_stop else len(recorder.seen) <= 5
    assert torch.equal(adversarial, recorder.best)
    assert bool((final >= recorder.best_loss - 1e-4).all())
    assert float(perturbation_norms(adversarial, images)["linf"].max()) <= eps + 1e-6
    assert int(queries.max()) <= 4


def test_tuple_outputs_reach_the_objective(setup) -> None:
    """An objective may read several outputs, e.g. logits and a detector's score."""
    model, images, labels = setup
    ball, eps = get_norm("l2"), 1.0

    def both(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = model(x)
        return logits, logits.logsumexp(dim=1)

    def objective(outputs, goal):
        logits, score = outputs
        return F.cross_entropy(logits, goal, reduction="none") - 0.1 * score

    def fooled(outputs, goal):
        return outputs[0].argmax(1) != goal

    loop = GradientAscent(ball, eps, 3, objective, SteepestAscent(ball, 0.5),
                          early_stop=True, success=fooled)  # fmt: skip
    with frozen_eval(model):
        adversarial, _ = loop.run(both, images, labels)
    assert float(perturbation_norms(adversarial, images)["l2"].max()) <= eps + 1e-5


def test_norms_are_looked_up_by_name() -> None:
    assert sorted(NORMS) == ["l2", "linf"]
    assert get_norm("linf").name == "linf" and get_norm("l2").name == "l2"
    with pytest.raises(AdvlabError, match="unknown norm 'l7'"):
        get_norm("l7")
    assert get_norm("linf").box_diameter((3, 4, 4)) == 1.0
    assert get_norm("l2").box_diameter((1, 2, 2)) == 2.0


@pytest.mark.parametrize("name", ["linf", "l2"])
def test_a_ball_keeps_points_inside_itself_and_the_box(name: str) -> None:
    ball = get_norm(name)
    torch.manual_seed(0)
    x0 = torch.rand(5, 3, 8, 8)
    eps = 0.1 if name == "linf" else 1.0
    start = ball.random_start(x0, eps)
    far = ball.project(x0 + 5 * ball.direction(torch.randn_like(x0)), x0, eps)
    inside = ball.shrink_into(torch.randn_like(x0), eps)
    for point in (start, far):
        assert float(ball.distance(point, x0).max()) <= eps + 1e-6
        assert 0.0 <= float(point.min()) and float(point.max()) <= 1.0
    assert torch.equal(ball.clip_delta(inside, eps), inside)
