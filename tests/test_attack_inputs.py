"""Bad or unusual input to an attack: a one-line AdvlabError, or a sensible result.

Issue 14, items 12 and 13: float64 images, explicit targets out of range, a model that is
not an ``nn.Module``, HopSkipJump on an empty batch, ``eps=True``, ``max_queries=2.5``,
and score-based attacks whose budget ends while they pick least-likely targets.
"""

from __future__ import annotations

import pytest
import torch

from advlab.attacks import FGSM, MIM, PGD, DeepFool, HopSkipJump, SimBA, Square, Transfer
from advlab.errors import AdvlabError


@pytest.fixture(scope="module")
def batch(mnist_sample):
    return mnist_sample[0][:6], mnist_sample[1][:6]


ALL = [
    lambda: FGSM(0.1),
    lambda: PGD(0.1, steps=2),
    lambda: MIM(0.1, steps=2),
    lambda: DeepFool(steps=2),
    lambda: Square(0.1, max_queries=5, seed=0),
    lambda: SimBA(1.0, max_queries=5, seed=0),
    lambda: HopSkipJump(max_queries=30, num_iterations=1, init_evals=5, seed=0),
]
IDS = ["fgsm", "pgd", "mim", "deepfool", "square", "simba", "hopskipjump"]


@pytest.mark.parametrize("make", ALL, ids=IDS)
def test_float64_images_are_attacked_as_float32(make, small_mnist_model, batch) -> None:
    images, labels = batch
    result = make()(small_mnist_model, images.double(), labels)
    assert result.adversarial.dtype == torch.float32
    assert result.adversarial.shape == images.shape


@pytest.mark.parametrize("make", ALL[:2] + ALL[4:6], ids=IDS[:2] + IDS[4:6])
def test_explicit_targets_out_of_range(make, small_mnist_model, batch) -> None:
    images, labels = batch
    with pytest.raises(AdvlabError, match=r"targets must be in \[0, 9\], got .*\.\.10"):
        make()(small_mnist_model, images, labels, targets=torch.full_like(labels, 10))
    with pytest.raises(AdvlabError, match=r"targets must be in \[0, 9\], got -1"):
        make()(small_mnist_model, images, labels, targets=torch.full_like(labels, -1))
    with pytest.raises(AdvlabError, match="targets must be a tensor of class indices"):
        make()(small_mnist_model, images, labels, targets=labels[:2])


@pytest.mark.parametrize("make", ALL, ids=IDS)
@pytest.mark.parametrize("model", ["mnist-cnn", lambda x: x, None], ids=["str", "fn", "none"])
def test_a_model_that_is_not_a_module(make, model, batch) -> None:
    images, labels = batch
    with pytest.raises(AdvlabError, match="(must be a torch.nn.Module|expected a model)"):
        make()(model, images, labels)


def test_hopskipjump_on_an_empty_batch(small_mnist_model) -> None:
    images, labels = torch.zeros(0, 1, 28, 28), torch.zeros(0, dtype=torch.int64)
    for attack in (HopSkipJump(max_queries=50, seed=0), HopSkipJump(0.3, "linf", seed=0),
                   Square(0.3, max_queries=5), PGD(0.1, steps=2)):  # fmt: skip
        result = attack(small_mnist_model, images, labels)
        assert result.adversarial.shape == (0, 1, 28, 28)
        assert result.success.shape == (0,) and result.queries.shape == (0,)


@pytest.mark.parametrize("bad", [True, False, "0.1", float("nan")])
def test_eps_must_be_a_number(bad) -> None:
    with pytest.raises(AdvlabError, match="eps must be a number"):
        PGD(eps=bad)


@pytest.mark.parametrize("bad", [2.5, 0, True, "10"])
def test_max_queries_must_be_a_whole_number(bad) -> None:
    for cls in (Square, SimBA, HopSkipJump):
        with pytest.raises(AdvlabError, match="max_queries must be a whole number >= 1"):
            cls(max_queries=bad)


@pytest.mark.parametrize("cls", [Square, SimBA])
@pytest.mark.parametrize("max_queries", [1, 2])
def test_least_likely_targets_with_a_budget_that_ends(
    cls, max_queries: int, small_mnist_model, batch
) -> None:
    """Choosing the targets spends the only query: the attack stops, nothing fooled."""
    images, labels = batch
    attack = cls(0.3 if cls is Square else 2.0, max_queries=max_queries,
                 target="least-likely", seed=0)  # fmt: skip
    result = attack(small_mnist_model, images, labels)
    assert result.targets is not None and result.targets.shape == labels.shape
    assert int(result.queries.max()) <= max_queries
    if max_queries == 1:
        assert not bool(result.success.any())
        assert torch.equal(result.adversarial, images)


def test_transfer_still_takes_explicit_targets(small_mnist_model, batch) -> None:
    images, labels = batch
    attack = Transfer(0.2, surrogates=[small_mnist_model], attack="pgd", seed=0)
    result = attack(small_mnist_model, images, labels, targets=(labels + 1) % 10)
    assert torch.equal(result.targets, (labels + 1) % 10)
