"""White-box attacks on a real (small) MNIST model: closed forms, strength, bad input."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from advlab.attacks import BIM, FGSM, MIM, PGD, DeepFool, get_attack
from advlab.attacks.norms import perturbation_norms
from advlab.errors import AdvlabError


def accuracy(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(images).argmax(1) == labels).float().mean())


# -- closed forms -------------------------------------------------------------------------


def test_fgsm_equals_its_closed_form(small_mnist_model, mnist_sample):
    images, labels = mnist_sample[0][:64], mnist_sample[1][:64]
    eps = 0.1
    x = images.clone().requires_grad_(True)
    F.cross_entropy(small_mnist_model(x), labels).backward()
    expected = (images + eps * x.grad.sign()).clamp(0, 1)

    result = FGSM(eps=eps)(small_mnist_model, images, labels)

    assert torch.equal(result.adversarial, expected)
    assert result.queries.tolist() == [1] * 64


def test_targeted_fgsm_steps_down_the_target_loss(small_mnist_model, mnist_sample):
    images, labels = mnist_sample[0][:32], mnist_sample[1][:32]
    targets = (labels + 1) % 10
    x = images.clone().requires_grad_(True)
    F.cross_entropy(small_mnist_model(x), targets).backward()
    expected = (images - 0.1 * x.grad.sign()).clamp(0, 1)

    result = FGSM(eps=0.1)(small_mnist_model, images, labels, targets=targets)

    assert torch.equal(result.adversarial, expected)


def test_mim_with_zero_decay_is_bim(small_mnist_model, mnist_sample):
    """Without momentum, MIM's normalized step has BIM's sign, so the two must agree."""
    images, labels = mnist_sample[0][:32], mnist_sample[1][:32]
    mim = MIM(eps=0.1, steps=5, decay=0.0)(small_mnist_model, images, labels)
    bim = BIM(eps=0.1, steps=5)(small_mnist_model, images, labels)
    assert torch.equal(mim.adversarial, bim.adversarial)


def test_mim_momentum_changes_the_path_and_stays_strong(small_mnist_model, mnist_sample):
    images, labels = mnist_sample[0][:128], mnist_sample[1][:128]
    with_momentum = MIM(eps=0.2, steps=10)(small_mnist_model, images, labels)
    without = MIM(eps=0.2, steps=10, decay=0.0)(small_mnist_model, images, labels)
    assert not torch.equal(with_momentum.adversarial, without.adversarial)
    assert with_momentum.success_rate > 0.6
    assert with_momentum.queries.tolist() == [10] * len(labels)


def test_mim_l2_stays_in_ball_and_fools(small_mnist_model, mnist_sample):
    images, labels = mnist_sample[0][:128], mnist_sample[1][:128]
    result = MIM(eps=3.0, steps=10, norm="l2")(small_mnist_model, images, labels)
    l2 = perturbation_norms(result.adversarial, images)["l2"]
    assert float(l2.max()) <= 3.0 + 1e-4
    assert result.success_rate > 0.6


# -- the attacks really work --------------------------------------------------------------


def test_pgd_at_eps_03_breaks_mnist(small_mnist_model, mnist_sample):
    images, labels = mnist_sample
    assert accuracy(small_mnist_model, images, labels) > 0.9
    result = PGD(eps=0.3, alpha=0.05, steps=10, seed=0)(small_mnist_model, images, labels)
    assert accuracy(small_mnist_model, result.adversarial, labels) < 0.10
    assert result.success_rate > 0.9


@pytest.mark.parametrize("how", ["explicit", "random", "least-likely"])
def test_targeted_pgd_hits_its_targets(small_mnist_model, mnist_sample, how):
    images, labels = mnist_sample[0][:128], mnist_sample[1][:128]
    if how == "explicit":
        targets = (labels + 3) % 10
        attack = PGD(eps=0.3, alpha=0.03, steps=20, seed=0)
        result = attack(small_mnist_model, images, labels, targets=targets)
        assert torch.equal(result.targets, targets)
    else:
        attack = PGD(eps=0.3, alpha=0.03, steps=20, target=how, seed=0)
        result = attack(small_mnist_model, images, labels)
    assert result.targets is not None
    with torch.no_grad():
        predictions = small_mnist_model(result.adversarial).argmax(1)
        clean = small_mnist_model(images)
    assert torch.equal(result.success, predictions == result.targets)
    # The least likely class is the hardest target for a small model.
    assert float((predictions == result.targets).float().mean()) > (
        0.6 if how == "least-likely" else 0.85
    )
    if how == "random":
        assert bool((result.targets != labels).all())
    if how == "least-likely":
        assert torch.equal(result.targets, clean.argmin(1))


def test_pgd_restarts_never_lower_success(small_mnist_model, mnist_sample):
    images, labels = mnist_sample[0][:128], mnist_sample[1][:128]
    settings = dict(eps=0.1, alpha=0.02, steps=5, seed=0)
    one = PGD(**settings)(small_mnist_model, images, labels)
    four = PGD(**settings, restarts=4)(small_mnist_model, images, labels)
    # A partly robust setting, so that restarts have something to add.
    assert 0.05 < one.success_rate < 0.95
    # Same seed: the first restart is the single run, so every image it fooled stays fooled.
    assert bool(four.success[one.success].all())
    assert four.success_rate >= one.success_rate
    # Later restarts only spend queries on the images not yet fooled.
    assert bool((four.queries[one.success] == 5).all())
    assert int(four.queries.max()) <= 20


class _Saturated(torch.nn.Module):
    """A model whose logits are 1000x too large, as defensive distillation leaves them."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 1000.0 * self.model(x)


def test_margin_loss_beats_a_saturated_softmax(small_mnist_model, mnist_sample):
    images, labels = mnist_sample
    saturated = _Saturated(small_mnist_model)
    cross_entropy = PGD(eps=0.2, steps=10, seed=0)(saturated, images, labels)
    margin = PGD(eps=0.2, steps=10, loss="margin", seed=0)(saturated, images, labels)
    # Cross-entropy's gradient underflows to zero on confident images: apparent robustness.
    assert margin.success_rate > cross_entropy.success_rate + 0.2
    assert (
        margin.success_rate
        >= PGD(eps=0.2, steps=10, seed=0)(small_mnist_model, images, labels).success_rate - 0.02
    )  # as strong as CE on the unscaled model
    with pytest.raises(AdvlabError, match="unknown loss 'cw'"):
        PGD(eps=0.1, loss="cw")


def test_deepfool_is_minimal_compared_with_pgd(small_mnist_model, mnist_sample):
    """DeepFool's L2 is smaller than the smallest grid eps at which PGD-L2 succeeds."""
    images, labels = mnist_sample[0][:48], mnist_sample[1][:48]
    deepfool = DeepFool()(small_mnist_model, images, labels)
    assert deepfool.success_rate > 0.95
    deepfool_l2 = perturbation_norms(deepfool.adversarial, images)["l2"]

    smallest = torch.full((len(labels),), math.inf)
    for eps in [3.0, 2.0, 1.5, 1.0, 0.75, 0.5]:  # largest first: smaller successes overwrite
        pgd = PGD(eps=eps, steps=10, norm="l2", seed=0)(small_mnist_model, images, labels)
        smallest[pgd.success] = eps
    both = deepfool.success & smallest.isfinite()
    assert int(both.sum()) > 30
    assert float(deepfool_l2[both].mean()) < float(smallest[both].mean())


def test_deepfool_stops_each_image_when_it_flips(small_mnist_model, mnist_sample):
    images, labels = mnist_sample[0][:64], mnist_sample[1][:64]
    with torch.no_grad():
        wrong = small_mnist_model(images).argmax(1) != labels
    result = DeepFool()(small_mnist_model, images, labels)
    # Already misclassified images cost nothing and are returned unchanged.
    assert bool((result.queries[wrong] == 0).all())
    assert torch.equal(result.adversarial[wrong], images[wrong])
    # A few linearization steps suffice on a ReLU network; the count varies per image.
    assert 1.0 <= float(result.queries[~wrong].float().mean()) < 6
    capped = DeepFool(steps=1)(small_mnist_model, images, labels)
    assert int(capped.queries.max()) == 1
    assert capped.success_rate < result.success_rate


def test_deepfool_linf_is_smaller_in_linf_than_l2_variant(small_mnist_model, mnist_sample):
    images, labels = mnist_sample[0][:64], mnist_sample[1][:64]
    linf = DeepFool(norm="linf")(small_mnist_model, images, labels)
    l2 = DeepFool(norm="l2")(small_mnist_model, images, labels)
    both = linf.success & l2.success
    assert int(both.sum()) > 50
    linf_size = perturbation_norms(linf.adversarial, images)["linf"][both]
    l2_size = perturbation_norms(l2.adversarial, images)["linf"][both]
    assert float(linf_size.mean()) < float(l2_size.mean())


def test_deepfool_with_eps_is_projected(small_mnist_model, mnist_sample):
    images, labels = mnist_sample[0][:32], mnist_sample[1][:32]
    result = DeepFool(eps=0.5)(small_mnist_model, images, labels)
    assert float(perturbation_norms(result.adversarial, images)["l2"].max()) <= 0.5 + 1e-5
    unbounded = DeepFool()(small_mnist_model, images, labels)
    assert result.success_rate < unbounded.success_rate


# -- registry -----------------------------------------------------------------------------


def test_new_attacks_are_registered():
    assert get_attack("mim") is MIM
    assert get_attack("deepfool") is DeepFool
    assert get_attack("PGD") is PGD


# -- bad input ----------------------------------------------------------------------------


@pytest.fixture
def batch(mnist_sample):
    return mnist_sample[0][:4], mnist_sample[1][:4]


@pytest.mark.parametrize("attack", [FGSM(0.1), PGD(0.1, steps=2), MIM(0.1, steps=2), DeepFool()])
def test_bad_images_are_explained(small_mnist_model, batch, attack):
    images, labels = batch
    cases = [
        (images[0], labels, r"shape \(N, C, H, W\)"),
        (images.repeat(1, 3, 1, 1), labels, r"channel count"),
        (images * 255, labels, r"\[0, 1\].*divide uint8 pixels by 255"),
        (images.masked_fill(images > 0.5, float("nan")), labels, r"NaN"),
        ((images * 255).to(torch.uint8), labels, r"float"),
        (images, labels + 10, r"labels must be in \[0, 9\]"),
        (images, labels[:2], r"labels must have shape \(4,\)"),
        (images.numpy(), labels, r"torch.Tensor"),
    ]
    for bad_images, bad_labels, message in cases:
        with pytest.raises(AdvlabError, match=message):
            attack(small_mnist_model, bad_images, bad_labels)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: PGD(eps=-0.1), r"eps must be >= 0"),
        (lambda: FGSM(eps=8), r"use e.g. 8/255"),
        (lambda: MIM(eps=1.5), r"use e.g. 8/255"),
        (lambda: PGD(eps=0.1, norm="l1"), r"unknown norm 'l1': use one of linf, l2"),
        (lambda: DeepFool(norm="l3"), r"unknown norm"),
        (lambda: MIM(eps=float("nan")), r"eps must be a number"),
        (lambda: MIM(steps=0), r"steps must be >= 1"),
        (lambda: MIM(decay=-1), r"decay must be >= 0"),
        (lambda: PGD(target="nearest"), r"unknown target strategy 'nearest'"),
        (lambda: DeepFool(target="random"), r"DeepFool is untargeted"),
        (lambda: DeepFool(num_candidates=1), r"num_candidates must be >= 2"),
        (lambda: get_attack("pgd-ce"), r"unknown attack 'pgd-ce': use one of .*deepfool.*pgd"),
    ],
)
def test_bad_settings_are_explained(make, message):
    with pytest.raises(AdvlabError, match=message):
        make()


def test_deepfool_rejects_explicit_targets(small_mnist_model, batch):
    images, labels = batch
    with pytest.raises(AdvlabError, match="DeepFool is untargeted"):
        DeepFool()(small_mnist_model, images, labels, targets=(labels + 1) % 10)


def test_a_user_subclass_passes_the_parents_options_on_by_keyword() -> None:
    from advlab.attacks import PGD

    class Logged(PGD):
        def __init__(self, eps: float, **kwargs) -> None:
            super().__init__(eps, **kwargs)

    attack = Logged(0.1, steps=3, alpha=0.01, seed=1)
    assert (attack.steps, attack.alpha, attack.seed) == (3, 0.01, 1)
    with pytest.raises(TypeError, match="Logged.__init__.*bogus"):
        Logged(0.1, bogus=1)
