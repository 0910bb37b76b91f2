"""The cascade: later attacks only on images still robust, per-image worst case, presets."""

from __future__ import annotations

import pytest
import torch

from advlab.attacks import APGD, APGDT, FGSM, PGD, SUITES, Cascade, Square, suite
from advlab.attacks.cascade import CLEAN, ROBUST
from advlab.attacks.norms import perturbation_norms
from advlab.errors import AdvlabError

EPS = 0.1


@pytest.fixture(scope="module")
def batch(mnist_sample):
    return mnist_sample[0][:40], mnist_sample[1][:40]


def test_each_attack_runs_only_on_the_images_still_robust(small_mnist_model, batch) -> None:
    model, (images, labels) = small_mnist_model, batch
    cascade = Cascade({
        "fgsm": FGSM(EPS, seed=0),
        "pgd": PGD(EPS, steps=10, seed=0),
        "square": Square(EPS, max_queries=50, seed=0),
    })  # fmt: skip
    result = cascade(model, images, labels)
    with torch.no_grad():
        clean_wrong = model(images).argmax(1) != labels
        fooled = model(result.adversarial).argmax(1) != labels

    assert result.stages == ("fgsm", "pgd", "square")
    assert torch.equal(result.broken_by == CLEAN, clean_wrong)
    assert torch.equal(result.success, clean_wrong | fooled)
    assert result.robust_accuracy == pytest.approx(1 - float(result.success.float().mean()))
    # each stage ran exactly on the images every earlier one failed on
    for stage, label in enumerate(result.stages, start=1):
        ran = result.queries_by_attack[label] > 0
        assert torch.equal(ran, result.broken_by.eq(ROBUST) | result.broken_by.ge(stage))
    assert bool((result.broken_by == 1).any()) and bool((result.broken_by == 2).any())
    assert torch.equal(result.queries, sum(result.queries_by_attack.values()))
    assert bool((result.queries[clean_wrong] == 0).all())
    assert result.breakers()[int(clean_wrong.nonzero()[0])] == "clean"
    assert set(result.breakers()) <= {None, "clean", "fgsm", "pgd", "square"}
    assert float(perturbation_norms(result.adversarial, images)["linf"].max()) <= EPS + 1e-6
    assert set(result.seconds_by_attack) == set(result.stages)


def test_the_cascade_is_the_worst_case_of_its_attacks(small_mnist_model, batch) -> None:
    model, (images, labels) = small_mnist_model, batch
    ce, targeted = APGD(EPS, 10, seed=0), APGDT(EPS, 10, n_target_classes=3, seed=0)
    result = Cascade({"apgd-ce": ce, "apgd-t": targeted})(model, images, labels)
    alone = [attack(model, images, labels).success for attack in (ce, targeted)]
    assert int(result.success.sum()) >= max(int(s.sum()) for s in alone)
    # The first stage sees the same images as APGD alone (APGD skips the misclassified
    # ones itself), with the same seed: the same examples.
    assert torch.equal((result.broken_by == CLEAN) | (result.broken_by == 1), alone[0])


def test_presets_and_their_checks() -> None:
    assert sorted(SUITES) == ["fast", "quick", "standard"]
    standard = suite("standard", 8 / 255)
    assert list(standard.attacks) == ["apgd-ce", "apgd-t", "fab-t", "square"]
    assert standard.attacks["square"].max_queries == 5000
    assert standard.attacks["apgd-t"].n_target_classes == 9
    assert list(suite("fast", 0.5, "l2").attacks) == ["apgd-ce", "apgd-t"]
    assert suite("fast", 0.5, "l2").norm == "l2"
    assert suite("quick", 0.1, seed=3).config()["cascade"][0]["apgd-ce"]["seed"] == 3
    with pytest.raises(AdvlabError, match="unknown suite 'strong'"):
        suite("strong", 0.1)
    with pytest.raises(AdvlabError, match="untargeted"):
        Cascade({"pgd": PGD(0.1, target="random")})
    with pytest.raises(AdvlabError, match="differs"):
        Cascade({"a": PGD(0.1), "b": PGD(0.2)})
    with pytest.raises(AdvlabError, match="at least one attack"):
        Cascade({})


def test_bad_input_gets_the_attacks_one_line_errors(small_mnist_model) -> None:
    with pytest.raises(AdvlabError, match=r"images must be in \[0, 1\]"):
        suite("quick", EPS)(
            small_mnist_model, torch.full((2, 1, 28, 28), 255.0), torch.zeros(2).long()
        )
    with pytest.raises(AdvlabError, match="torch.nn.Module"):
        suite("quick", EPS)(lambda x: x, torch.zeros(2, 1, 28, 28), torch.zeros(2).long())


@pytest.mark.slow
def test_quick_suite_on_a_model(small_mnist_model, batch) -> None:
    model, (images, labels) = small_mnist_model, batch
    result = suite("quick", EPS)(model, images, labels)
    with torch.no_grad():
        assert torch.equal(result.success, model(result.adversarial).argmax(1) != labels)
    assert int(result.queries.max()) <= 20 + 3 * 20


def test_a_float64_model_with_a_black_box_attack(small_mnist_model, batch) -> None:
    """Black-box attacks answer in float32; the cascade keeps the model's dtype."""
    import copy

    model = copy.deepcopy(small_mnist_model).double()
    images, labels = batch[0][:8].double(), batch[1][:8]
    result = Cascade({"square": Square(EPS, max_queries=20, seed=0)})(model, images, labels)
    assert result.adversarial.dtype == torch.float64
    assert float(perturbation_norms(result.adversarial, images)["linf"].max()) <= EPS + 1e-6
