"""Batch norm folding for the attacks' gradient steps: same function, only where it is safe."""

from __future__ import annotations

import torch
from torch import nn

from advlab.attacks.fold import foldable, folded


def _net(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Flatten(), nn.Linear(8 * 8 * 8, 10),
    )  # fmt: skip
    for module in net:
        if isinstance(module, nn.BatchNorm2d):  # statistics that are not the identity
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
    return net.eval()


def test_the_folded_copy_computes_the_same_logits_and_gradients_without_batch_norm() -> None:
    net, images = _net(), torch.rand(4, 3, 8, 8)
    copy = folded(net, images)
    assert copy is not net
    assert not any(isinstance(m, nn.BatchNorm2d) for m in copy.modules())
    assert not any(p.requires_grad for p in copy.parameters())
    torch.testing.assert_close(copy(images), net(images), rtol=1e-5, atol=1e-5)
    grads = []
    for model in (net, copy):
        x = images.clone().requires_grad_(True)
        model(x).logsumexp(1).sum().backward()
        grads.append(x.grad)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-6)


def test_the_copy_is_cached_until_a_weight_changes() -> None:
    net, images = _net(), torch.rand(2, 3, 8, 8)
    first = folded(net, images)
    assert folded(net, images) is first
    with torch.no_grad():
        net[0].weight.mul_(2.0)  # what an optimizer step does: an in-place change
    second = folded(net, images)
    assert second is not first
    torch.testing.assert_close(second(images), net(images), rtol=1e-5, atol=1e-5)


class _Noisy(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 0.1 * torch.randn_like(x)  # tracing would freeze this draw


def test_nothing_is_folded_where_tracing_could_change_the_model() -> None:
    images = torch.rand(2, 3, 8, 8)
    training = _net().train()
    assert folded(training, images) is training  # batch statistics, not a fixed map
    custom = nn.Sequential(_Noisy(), *_net())
    assert not foldable(custom) and folded(custom, images) is custom
    hooked = _net()
    hooked[1].register_forward_hook(lambda module, args, out: out * 2)
    assert folded(hooked, images) is hooked
    plain = nn.Sequential(nn.Flatten(), nn.Linear(192, 10)).eval()
    assert folded(plain, images) is plain  # no batch norm, no convolution: nothing to gain


def test_a_convolutional_model_without_batch_norm_gets_a_channels_last_copy() -> None:
    net = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(),
        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(16 * 14 * 14, 10),
    ).eval()  # fmt: skip
    images = torch.rand(4, 1, 28, 28)
    copy = folded(net, images)
    assert copy is not net
    weight = [p for p in copy.parameters() if p.dim() == 4][1]
    assert weight.is_contiguous(memory_format=torch.channels_last)
    assert not net[2].weight.is_contiguous(memory_format=torch.channels_last)  # untouched
    with torch.no_grad():
        torch.testing.assert_close(copy(images), net(images), rtol=1e-4, atol=1e-5)


def test_attacks_search_on_the_folded_copy_and_judge_on_the_model(monkeypatch) -> None:
    from advlab.attacks import PGD, search

    net, images = _net(), torch.rand(8, 3, 8, 8)
    with torch.no_grad():
        labels = net(images).argmax(1)
    searched = []
    real = search.folded
    monkeypatch.setattr(search, "folded", lambda model, x: searched.append(model) or real(model, x))
    result = PGD(eps=0.1, steps=5, seed=0)(net, images, labels)
    assert searched == [net]
    with torch.no_grad():
        assert torch.equal(result.success, net(result.adversarial).argmax(1) != labels)
    unfolded = PGD(eps=0.1, steps=5, seed=0)
    unfolded.search_copy = False
    assert abs(unfolded(net, images, labels).success_rate - result.success_rate) <= 1 / 8
    assert len(searched) == 1


def test_adversarial_training_attacks_the_model_itself() -> None:
    from advlab.training.config import AdversarialTrainingConfig
    from advlab.training.steps import make_training_step

    step = make_training_step(AdversarialTrainingConfig(method="pgd", eps=0.1, steps=2))
    assert step.attack.search_copy is False  # type: ignore[attr-defined]
    step.set_eps(0.05)  # type: ignore[attr-defined]
    assert step.attack.search_copy is False  # type: ignore[attr-defined]


def test_black_box_attacks_query_the_folded_copy_and_are_judged_on_the_model() -> None:
    from advlab.attacks import HopSkipJump, Square
    from advlab.attacks.fold import _cache

    net, images = _net(3), torch.rand(12, 3, 8, 8)
    with torch.no_grad():
        labels = net(images).argmax(1)
    for attack in (Square(eps=0.1, max_queries=50, seed=0), HopSkipJump(max_queries=60, seed=0)):
        _cache.pop(net, None)
        result = attack(net, images, labels)
        assert net in _cache  # the queries went to the folded copy
        with torch.no_grad():
            fooled = net(result.adversarial).argmax(1) != labels
        assert torch.equal(result.success, fooled), attack.name
        assert int(result.queries.max()) <= attack.max_queries
    # Without folding the same attack runs on the model itself, to the same verdicts.
    _cache.pop(net, None)
    plain = Square(eps=0.1, max_queries=50, seed=0)
    plain.search_copy = False
    result = plain(net, images, labels)
    assert net not in _cache
    with torch.no_grad():
        assert torch.equal(result.success, net(result.adversarial).argmax(1) != labels)
