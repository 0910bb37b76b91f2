"""advlab against an independent implementation (torchattacks 3.5.1) on a real model.

Same model (the pretrained CIFAR-10 ResNet-20), same images, same settings. torchattacks
averages the cross-entropy over the batch where advlab sums it; the batch size is a power
of two, so the scaled gradients have exactly the same signs.
"""

from __future__ import annotations

import pytest
import torch

from advlab.attacks import FGSM, MIM, PGD
from advlab.data import load_dataset
from advlab.models import load_model

torchattacks = pytest.importorskip("torchattacks")

pytestmark = pytest.mark.data

EPS, ALPHA, STEPS = 8 / 255, 2 / 255, 10


@pytest.fixture(scope="module")
def cifar(data_dir):
    data = load_dataset("cifar10", n=64, data_dir=data_dir, seed=0)
    model = load_model("cifar-resnet20")
    return model, data.images, data.labels


def robust_accuracy(model, adversarial, labels) -> float:
    with torch.no_grad():
        return float((model(adversarial).argmax(1) == labels).float().mean())


def test_model_is_accurate_enough_to_attack(cifar):
    model, images, labels = cifar
    assert robust_accuracy(model, images, labels) > 0.8


def test_fgsm_agrees_exactly(cifar):
    model, images, labels = cifar
    ours = FGSM(eps=EPS)(model, images, labels).adversarial
    theirs = torchattacks.FGSM(model, eps=EPS)(images, labels)
    assert torch.equal(ours, theirs)


def unfolded(attack):
    """The attack on the model itself: batch-norm folding (advlab.attacks.fold) changes the
    rounding of every gradient, and a sign step turns rounding into flipped pixels. The
    pixel comparisons check the algorithm; the folded default is checked on its outcome."""
    attack.search_copy = False
    return attack


def assert_nearly_equal(ours: torch.Tensor, theirs: torch.Tensor) -> None:
    # A flipped sign sends a pixel the other way for the remaining steps, and its
    # neighbours' gradients change with it: measured 2% of the pixels after 10 steps.
    differ = (ours - theirs).abs() > 1e-6
    assert float(differ.float().mean()) < 0.05, float(differ.float().mean())


def test_pgd_without_random_start_agrees(cifar):
    model, images, labels = cifar
    ours = PGD(eps=EPS, alpha=ALPHA, steps=STEPS, random_start=False)(model, images, labels)
    theirs = torchattacks.PGD(model, eps=EPS, alpha=ALPHA, steps=STEPS, random_start=False)(
        images, labels
    )
    # Same start, same steps. advlab's channels-last gradients round differently, which
    # can flip the sign of a near-zero gradient entry: nearly every pixel still agrees.
    assert_nearly_equal(ours.adversarial, theirs)
    assert robust_accuracy(model, ours.adversarial, labels) <= robust_accuracy(
        model, theirs, labels
    ) + 1 / len(labels)


def test_pgd_is_at_least_as_strong(cifar):
    model, images, labels = cifar
    # A weak setting, so that the robust accuracies are not both zero.
    eps, alpha, steps = 1 / 255, 0.5 / 255, 3
    ours = PGD(eps=eps, alpha=alpha, steps=steps, seed=0)(model, images, labels)
    torch.manual_seed(1)
    theirs = torchattacks.PGD(model, eps=eps, alpha=alpha, steps=steps)(images, labels)
    ours_accuracy = robust_accuracy(model, ours.adversarial, labels)
    theirs_accuracy = robust_accuracy(model, theirs, labels)
    assert 0.0 < theirs_accuracy < robust_accuracy(model, images, labels)
    # Different random starts: allow one image of noise either way.
    assert ours_accuracy <= theirs_accuracy + 1 / len(labels)
    # Untargeted success is "misclassified", so it is exactly one minus robust accuracy.
    assert ours.success_rate == pytest.approx(1 - ours_accuracy)


def test_pgd_same_seed_same_start_agrees(cifar):
    """Both draw the start with ``uniform_`` on the CPU generator: a shared seed, one start."""
    model, images, labels = cifar
    ours = unfolded(PGD(eps=EPS, alpha=ALPHA, steps=STEPS, seed=3))(model, images, labels)
    torch.manual_seed(3)
    theirs = torchattacks.PGD(model, eps=EPS, alpha=ALPHA, steps=STEPS)(images, labels)
    assert_nearly_equal(ours.adversarial, theirs)
    folded = PGD(eps=EPS, alpha=ALPHA, steps=STEPS, seed=3)(model, images, labels)
    for adversarial in (ours.adversarial, folded.adversarial):
        assert robust_accuracy(model, adversarial, labels) <= robust_accuracy(
            model, theirs, labels
        ) + 1 / len(labels)


def test_mim_agrees_with_mifgsm(cifar):
    model, images, labels = cifar
    ours = MIM(eps=EPS, alpha=ALPHA, steps=STEPS, decay=1.0)(model, images, labels)
    theirs = torchattacks.MIFGSM(model, eps=EPS, alpha=ALPHA, steps=STEPS, decay=1.0)(
        images, labels
    )
    # Rounding (channels-last gradients, the momentum's mean) may flip a few signs.
    assert_nearly_equal(ours.adversarial, theirs)
    assert robust_accuracy(model, ours.adversarial, labels) <= robust_accuracy(
        model, theirs, labels
    ) + 1 / len(labels)
