"""Black-box attacks: no gradients, exact query budgets, real success on MNIST."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator

import pytest
import torch
from torch import nn

import advlab.attacks.blackbox.base as blackbox
from advlab.attacks import (
    MIM,
    PGD,
    HopSkipJump,
    SimBA,
    Square,
    Transfer,
    evaluate_transfer,
    get_attack,
)
from advlab.attacks.blackbox import BlackBoxAttack
from advlab.attacks.norms import perturbation_norms
from advlab.errors import AdvlabError
from advlab.targets import LocalTarget, QueryBudget


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    # Black-box attacks query tiny batches; on a busy 2-core machine a second intra-op
    # thread makes each of those calls several times slower, not faster.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


class GradientTrap(nn.Module):
    """A model that fails if it is run with autograd on, on an input that requires grad,
    or if anything is ever back-propagated through it."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = copy.deepcopy(model)
        self.num_classes = model.num_classes
        self.input_shape = model.input_shape
        self.calls = 0
        for param in self.model.parameters():
            param.requires_grad_(True)  # so that a forward with grad on *would* build a graph
        for module in self.model.modules():
            module.register_full_backward_hook(self._backward_happened)

    @staticmethod
    def _backward_happened(*_: object) -> None:
        raise AssertionError("a backward pass went through the target model")

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        assert not torch.is_grad_enabled(), "the target model ran with autograd enabled"
        assert not images.requires_grad, "the target model got an input that requires grad"
        self.calls += 1
        return self.model(images)


class RecordingBudget(QueryBudget):
    """A QueryBudget that remembers, in order, which image each answer was for."""

    made: list[RecordingBudget] = []

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.events: list[tuple[torch.Tensor, torch.Tensor]] = []
        RecordingBudget.made.append(self)

    def scores(self, images: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        answer = super().scores(images, index)
        self.events.append((index.clone(), answer.argmax(dim=1)))
        return answer

    def labels(self, images: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        answer = super().labels(images, index)
        self.events.append((index.clone(), answer.clone()))
        return answer


def _fooled(model: nn.Module, adversarial: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(adversarial).argmax(dim=1) != labels


# name -> (factory taking the clean model, stops-at-first-success)
CONTRACT: dict[str, tuple[Callable[[nn.Module], BlackBoxAttack], bool]] = {
    "square-linf": (lambda _m: Square(0.3, "linf", max_queries=40, seed=0), True),
    "square-l2": (lambda _m: Square(3.0, "l2", max_queries=40, seed=0), True),
    "simba-pixel": (lambda _m: SimBA(2.0, step=0.5, max_queries=40, seed=0), True),
    "simba-dct": (lambda _m: SimBA(step=0.5, basis="dct", max_queries=40, seed=0), True),
    "hsj-l2": (lambda _m: HopSkipJump(max_queries=150, seed=0), False),
    "hsj-linf-eps": (lambda _m: HopSkipJump(0.3, "linf", max_queries=150, seed=0), False),
    "transfer": (lambda m: Transfer(0.2, surrogates=[m], seed=0), True),
}


@pytest.mark.parametrize("name", list(CONTRACT))
def test_black_box_contract(
    name: str, small_mnist_model: nn.Module, mnist_sample, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No gradients ever, the budget is exact, success is real, finished images rest."""
    factory, stops_at_success = CONTRACT[name]
    images, labels = mnist_sample[0][:12], mnist_sample[1][:12]
    trap = GradientTrap(small_mnist_model)
    target = LocalTarget(trap, output=factory(small_mnist_model).output_kind)
    monkeypatch.setattr(blackbox, "QueryBudget", RecordingBudget)
    RecordingBudget.made.clear()
    attack = factory(small_mnist_model)

    result = attack(target, images, labels)

    assert trap.calls > 0
    assert all(param.grad is None for param in trap.parameters())
    # The budget: never exceeded, and the target's own count is the sum of the per-image
    # counts (nothing was queried off the books).
    assert int(result.queries.max()) <= attack.max_queries
    assert target.queries == int(result.queries.sum()) > 0
    # Success is real (checked on the clean model) and inside the threat model.
    assert bool(_fooled(small_mnist_model, result.adversarial, labels)[result.success].all())
    if attack.eps is not None:
        norms = perturbation_norms(result.adversarial, images)[attack.norm]
        assert float(norms.max()) <= attack.eps + 1e-5
    if stops_at_success:
        (budget,) = RecordingBudget.made
        _assert_no_query_after_success(budget.events, labels)


def _assert_no_query_after_success(
    events: list[tuple[torch.Tensor, torch.Tensor]], labels: torch.Tensor
) -> None:
    finished: set[int] = set()
    for index, answers in events:
        for image, answer in zip(index.tolist(), answers.tolist(), strict=True):
            assert image not in finished, f"image {image} was queried after it was fooled"
            if answer != int(labels[image]):
                finished.add(image)


def test_gradient_trap_catches_a_white_box_attack(small_mnist_model, mnist_sample) -> None:
    # The trap above must be able to fail: a gradient attack through it does.
    images, labels = mnist_sample[0][:4], mnist_sample[1][:4]
    with pytest.raises(AssertionError, match="autograd"):
        PGD(eps=0.1, steps=1)(GradientTrap(small_mnist_model), images, labels)


def test_square_linf_matches_pgd_with_few_queries(small_mnist_model, mnist_sample) -> None:
    images, labels = mnist_sample[0][:64], mnist_sample[1][:64]
    pgd = PGD(eps=0.3, alpha=0.025, steps=20, seed=0)(small_mnist_model, images, labels)
    target = LocalTarget(small_mnist_model)
    square = Square(0.3, "linf", max_queries=1000, seed=0)(target, images, labels)
    median_queries = float(square.queries[square.success].float().median())
    print(f"square linf eps=0.3: success {square.success_rate:.3f} (pgd-20 "
          f"{pgd.success_rate:.3f}), median queries {median_queries:.0f}")  # fmt: skip
    assert square.success_rate >= 0.95 * pgd.success_rate
    assert median_queries < 500
    # Unbroken images spent their whole budget; broken ones stopped early on average.
    assert bool((square.queries[~square.success] == 1000).all())
    assert target.queries == int(square.queries.sum())


def test_square_l2_beats_random_noise_of_the_same_norm(small_mnist_model, mnist_sample) -> None:
    images, labels = mnist_sample[0][:24], mnist_sample[1][:24]
    eps = 4.0
    result = Square(eps, "l2", max_queries=500, seed=0)(small_mnist_model, images, labels)
    l2 = perturbation_norms(result.adversarial, images)["l2"]
    assert float(l2.max()) <= eps + 1e-5
    torch.manual_seed(0)
    noise = torch.randn_like(images)
    noise = noise / noise.flatten(1).norm(dim=1).view(-1, 1, 1, 1) * eps
    random_rate = float(
        _fooled(small_mnist_model, (images + noise).clamp(0, 1), labels).float().mean()
    )
    print(f"square l2 eps={eps}: success {result.success_rate:.3f}, random noise {random_rate:.3f}")
    assert result.success_rate >= 0.6
    assert result.success_rate >= random_rate + 0.4


@pytest.mark.parametrize("basis", ["pixel", "dct"])
def test_simba_fools_most_images(basis: str, small_mnist_model, mnist_sample) -> None:
    images, labels = mnist_sample[0][:16], mnist_sample[1][:16]
    free = SimBA(step=0.5, basis=basis, max_queries=600, seed=0)(small_mnist_model, images, labels)
    assert free.success_rate >= 0.8
    bounded = SimBA(3.5, step=0.5, basis=basis, max_queries=600, seed=0)(
        small_mnist_model, images, labels
    )
    l2 = perturbation_norms(bounded.adversarial, images)["l2"]
    assert float(l2.max()) <= 3.5 + 1e-5
    assert bounded.success_rate >= 0.5
    assert bool(_fooled(small_mnist_model, bounded.adversarial, labels)[bounded.success].all())


def test_hopskipjump_shrinks_the_perturbation_as_the_budget_grows(
    small_mnist_model, mnist_sample
) -> None:
    images, labels = mnist_sample[0][:8], mnist_sample[1][:8]
    medians = []
    for budget in (200, 1000, 3000):
        target = LocalTarget(small_mnist_model, output="labels")
        result = HopSkipJump(max_queries=budget, seed=0)(target, images, labels)
        assert bool(result.success.all())  # every image had the budget for a start
        assert bool(_fooled(small_mnist_model, result.adversarial, labels).all())
        assert int(result.queries.max()) <= budget
        assert target.queries == int(result.queries.sum())
        medians.append(float(perturbation_norms(result.adversarial, images)["l2"].median()))
    print(f"hopskipjump median L2 at 200/1000/3000 queries: {medians}")
    assert medians[0] > medians[1] > medians[2]


def test_hopskipjump_with_eps_succeeds_only_inside_the_ball(small_mnist_model, mnist_sample):
    images, labels = mnist_sample[0][:8], mnist_sample[1][:8]
    free = HopSkipJump(max_queries=400, seed=0)(small_mnist_model, images, labels)
    eps = float(perturbation_norms(free.adversarial, images)["l2"].median())
    bounded = HopSkipJump(eps, max_queries=400, seed=0)(small_mnist_model, images, labels)
    distances = perturbation_norms(bounded.adversarial, images)["l2"]
    assert 0 < bounded.success_rate < 1
    assert bool((distances[bounded.success] <= eps + 1e-5).all())
    assert bool(_fooled(small_mnist_model, bounded.adversarial, labels)[bounded.success].all())
    # An image stops as soon as it is inside the ball; a failed one used its budget.
    assert bool((bounded.queries[bounded.success] < 400).all())
    assert bool((bounded.queries[~bounded.success] >= 400 - 30).all())


def test_hopskipjump_without_early_stop_keeps_shrinking_inside_the_ball(
    small_mnist_model, mnist_sample
) -> None:
    images, labels = mnist_sample[0][:8], mnist_sample[1][:8]
    eps = 10.0  # every adversarial example HopSkipJump finds on MNIST is inside
    stopping = HopSkipJump(eps, max_queries=600, seed=0)(small_mnist_model, images, labels)
    going_on = HopSkipJump(eps, max_queries=600, early_stop=False, seed=0)(
        small_mnist_model, images, labels
    )
    assert bool(stopping.success.all()) and bool(going_on.success.all())
    assert int(going_on.queries.max()) <= 600
    assert float(going_on.queries.float().mean()) > float(stopping.queries.float().mean())
    l2_stopping = perturbation_norms(stopping.adversarial, images)["l2"].median()
    l2_going_on = perturbation_norms(going_on.adversarial, images)["l2"].median()
    assert float(l2_going_on) < float(l2_stopping)


def _one_per_class(labels: torch.Tensor, k: int) -> torch.Tensor:
    first = [int((labels == c).nonzero()[0]) for c in range(10) if bool((labels == c).any())]
    return torch.tensor(first[:k])


def test_targeted_attacks_hit_their_targets(small_mnist_model, mnist_sample) -> None:
    images, labels = mnist_sample
    pick = _one_per_class(labels, 8)
    images, labels = images[pick], labels[pick]
    # Each target is the class of another image in the batch: what HopSkipJump starts from.
    targets = labels.roll(1)
    attacks = [
        Square(0.3, "linf", max_queries=1000, seed=0),
        SimBA(step=0.5, basis="dct", max_queries=1500, seed=0),
        HopSkipJump(max_queries=300, seed=0),
    ]
    for attack in attacks:
        result = attack(small_mnist_model, images, labels, targets)
        with torch.no_grad():
            hit = small_mnist_model(result.adversarial).argmax(dim=1) == targets
        assert torch.equal(result.success, result.success & hit), attack
        assert result.success_rate >= 0.75, (attack, result.success_rate)


def test_random_targets_are_drawn_without_a_query(small_mnist_model, mnist_sample) -> None:
    images, labels = mnist_sample[0][:8], mnist_sample[1][:8]
    result = Square(0.3, max_queries=300, target="random", seed=0)(
        small_mnist_model, images, labels
    )
    assert result.targets is not None and bool((result.targets != labels).all())
    assert result.success_rate >= 0.5


def test_transfer_on_itself_matches_white_box(small_mnist_model, mnist_sample) -> None:
    images, labels = mnist_sample[0][:32], mnist_sample[1][:32]
    white = MIM(eps=0.15, steps=10, seed=0)(small_mnist_model, images, labels)
    target = LocalTarget(small_mnist_model, output="labels")
    transfer = Transfer(0.15, surrogates=[small_mnist_model], seed=0)
    result = transfer(target, images, labels)
    assert torch.equal(result.success, white.success)
    assert 0.0 < result.success_rate < 1.0  # a comparison with something to compare
    assert torch.equal(result.queries, torch.ones(32, dtype=torch.int64))
    assert target.queries == 32
    # craft once, score anywhere: the same examples and the same verdicts
    crafted = transfer.craft(images, labels)
    assert torch.allclose(crafted, result.adversarial)
    assert torch.equal(evaluate_transfer(crafted, labels, small_mnist_model), result.success)


def test_transfer_ensemble_averages_logits(small_mnist_model, mnist_sample) -> None:
    images, labels = mnist_sample[0][:16], mnist_sample[1][:16]
    single = Transfer(0.15, surrogates=[small_mnist_model], seed=0)
    pair = Transfer(0.15, surrogates=[small_mnist_model, small_mnist_model], seed=0)
    # Two copies of one model average to that model: identical examples.
    assert torch.allclose(single.craft(images, labels), pair.craft(images, labels), atol=1e-6)
    scaled = copy.deepcopy(small_mnist_model)
    with torch.no_grad():
        last = scaled.net.classifier[-1]
        last.weight.mul_(3.0)
        last.bias.mul_(3.0)
    ensemble = Transfer(0.15, surrogates=[small_mnist_model, scaled]).surrogate()
    with torch.no_grad():
        expected = (small_mnist_model(images) + scaled(images)) / 2
        assert torch.allclose(ensemble(images), expected, atol=1e-5)


def test_targeted_transfer_spends_one_query(small_mnist_model, mnist_sample) -> None:
    images, labels = mnist_sample[0][:16], mnist_sample[1][:16]
    attack = Transfer(0.3, surrogates=[small_mnist_model], target="least-likely", seed=0)
    target = LocalTarget(small_mnist_model)
    result = attack(target, images, labels)
    assert target.queries == 16 and bool((result.queries == 1).all())
    with torch.no_grad():
        least = small_mnist_model(images).argmin(dim=1)
    assert result.targets is not None and torch.equal(result.targets, least)


def test_registry_config_and_errors(small_mnist_model) -> None:
    for name, cls in [("square", Square), ("simba", SimBA), ("hopskipjump", HopSkipJump),
                      ("transfer", Transfer)]:  # fmt: skip
        assert get_attack(name) is cls
    config = Transfer(0.1, surrogates=[small_mnist_model, "mnist-cnn"]).config()
    assert config["surrogates"] == [small_mnist_model.name, "mnist-cnn"]
    assert config["attack"] == "transfer" and config["surrogate_attack"] == "mim"
    assert Square(0.3, "l2").p_init == 0.1 and Square(0.3).p_init == 0.8
    with pytest.raises(AdvlabError, match="basis"):
        SimBA(basis="wavelet")  # type: ignore[arg-type]
    with pytest.raises(AdvlabError, match="eps"):
        Square(None)  # type: ignore[arg-type]
    with pytest.raises(AdvlabError, match="labels only"):
        HopSkipJump(target="least-likely")
    with pytest.raises(AdvlabError, match="labels only"):
        Square(0.3)(LocalTarget(small_mnist_model, output="labels"), *_two_images())
    with pytest.raises(AdvlabError, match="surrogate"):
        Transfer(0.1)
    with pytest.raises(AdvlabError, match="white-box"):
        Transfer(0.1, surrogates=[small_mnist_model], attack="square")
    with pytest.raises(AdvlabError, match="attack_params"):
        Transfer(0.1, surrogates=[small_mnist_model], attack_params={"nonsense": 1})


def _two_images() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.zeros(2, 1, 28, 28), torch.zeros(2, dtype=torch.int64)


def test_same_seed_same_result(small_mnist_model, mnist_sample) -> None:
    images, labels = mnist_sample[0][:8], mnist_sample[1][:8]
    first = Square(0.2, max_queries=30, seed=3)(small_mnist_model, images, labels)
    second = Square(0.2, max_queries=30, seed=3)(small_mnist_model, images, labels)
    assert torch.equal(first.adversarial, second.adversarial)
    assert torch.equal(first.queries, second.queries)


def test_a_local_target_answers_in_eval_mode_and_leaves_the_mode_as_it_was() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10), nn.Dropout(0.9))
    images = torch.rand(8, 1, 28, 28)
    target = LocalTarget(model)
    model.train()  # dropout on: a query in this mode would be random
    first, second = target.predict_scores(images), target.predict_scores(images)
    assert torch.equal(first, second) and model.training and model[2].training
    model.eval()  # the fast path: nothing to switch
    assert torch.equal(target.predict_scores(images), first) and not model.training
