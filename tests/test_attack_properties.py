"""Invariants every registered attack must keep, checked with hypothesis.

The tests iterate over ``ATTACKS``, so an attack registered later is covered without
editing this file. Each attack is built with small budgets (any integer parameter whose
name says steps, iterations, queries, evaluations or restarts) to stay fast; an attack
that needs more than eps and norm to be built gets its extra arguments in ``EXTRA``.
``advlab.defenses`` is imported here so that the detector-aware attacks it registers are
always among them, whatever the order in which pytest imports the test modules.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import advlab.defenses  # noqa: F401  (registers the detector-aware attacks)
from advlab.attacks import ATTACKS, PGD, Attack
from advlab.attacks.norms import perturbation_norms
from advlab.data import load_dataset
from advlab.defenses import BinaryDetector, Detector, FeatureSqueezingDetector
from advlab.errors import AdvlabError

NAMES = sorted(ATTACKS)
AWARE = ("squeeze-aware-pgd", "detector-aware-pgd")
_FITTED: dict[tuple[str, int], Detector] = {}


def fitted_detector(name: str, model: nn.Module) -> Detector:
    """A small detector of the kind attack ``name`` knows, fitted once per model."""
    key = (name, id(model))  # the detector holds the model: the id stays unique
    if key not in _FITTED:
        dtype = next(model.parameters()).dtype
        images = load_dataset("mnist-demo", n=64, seed=2).images.to(dtype)
        if name == "squeeze-aware-pgd":
            detector: Detector = FeatureSqueezingDetector(model, fpr=0.1)  # type: ignore[arg-type]
        else:
            training = PGD(eps=0.3, steps=3, seed=0)
            detector = BinaryDetector(model, training, 0.1, hidden=16, epochs=3)  # type: ignore[arg-type]
        _FITTED[key] = detector.fit(images)
    return _FITTED[key]


# Small budgets for whatever an attack calls its iteration counts (matched by substring).
FAST_VALUES = {"step": 3, "iter": 3, "quer": 30, "eval": 10, "restart": 2, "candidate": 4}
# Required arguments beyond eps and norm, given the model under attack.
EXTRA: dict[str, Callable[[nn.Module], dict[str, Any]]] = {
    "transfer": lambda model: {"surrogates": [model], "attack_params": {"steps": 3}},
    **{name: lambda model, name=name: {"detector": fitted_detector(name, model)} for name in AWARE},
}
EPS_RANGE = {"linf": (0.0, 0.3), "l2": (0.0, 3.0)}
PROPERTY_SETTINGS = settings(
    max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def fast_kwargs(cls: type[Attack]) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    for name, param in inspect.signature(cls.__init__).parameters.items():
        if isinstance(param.default, bool) or not isinstance(param.default, int):
            continue
        for key, value in FAST_VALUES.items():
            if key in name:
                kwargs[name] = min(param.default, value)
    return kwargs


def build(cls: type[Attack], model: nn.Module, **kwargs: Any) -> Attack | None:
    """The attack with fast settings, or None where it rejects the combination."""
    extra = EXTRA[cls.name](model) if cls.name in EXTRA else {}
    try:
        return cls(**fast_kwargs(cls), **extra, **kwargs)
    except AdvlabError:
        return None


def supported_norms(cls: type[Attack], model: nn.Module) -> list[str]:
    if "norm" not in inspect.signature(cls.__init__).parameters:
        attack = build(cls, model, eps=0.1)
        return [attack.norm] if attack is not None else []
    return [norm for norm in EPS_RANGE if build(cls, model, eps=0.1, norm=norm) is not None]


@pytest.fixture(scope="module")
def models(small_mnist_model):
    """The small model in float32 and float64 (separate copies, not the shared fixture)."""
    return {torch.float32: copy.deepcopy(small_mnist_model),
            torch.float64: copy.deepcopy(small_mnist_model).double()}  # fmt: skip


def scenarios(cls: type[Attack], model: nn.Module) -> st.SearchStrategy[dict[str, Any]]:
    @st.composite
    def draw_case(draw: st.DrawFn) -> dict[str, Any]:
        norm = draw(st.sampled_from(supported_norms(cls, model)))
        low, high = EPS_RANGE[norm]
        eps = draw(st.one_of(st.just(low), st.floats(low, high, allow_nan=False)))
        strategies = [None] + [
            target
            for target in ("random", "least-likely")
            if build(cls, model, eps=eps, norm=norm, target=target) is not None
        ]
        return {
            "norm": norm,
            "eps": eps,
            "target": draw(st.sampled_from(strategies)),
            "seed": draw(st.integers(0, 2**16)),
            "start": draw(st.integers(0, 240)),
            "n": draw(st.integers(1, 6)),
            "dtype": draw(st.sampled_from([torch.float32, torch.float64])),
        }

    return draw_case()


def make_attack(cls: type[Attack], case: dict[str, Any], model: nn.Module) -> Attack:
    kwargs = {"eps": case["eps"], "seed": case["seed"]}
    if "norm" in inspect.signature(cls.__init__).parameters:
        kwargs["norm"] = case["norm"]
    if case["target"] is not None:
        kwargs["target"] = case["target"]
    attack = build(cls, model, **kwargs)
    assert attack is not None, f"{cls.__name__} rejected {kwargs}"
    return attack


def inputs(sample, case: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = sample
    window = slice(case["start"], case["start"] + case["n"])
    return images[window].to(case["dtype"]), labels[window]


def check_result_invariants(cls: type[Attack], case: dict[str, Any], models, sample) -> None:
    """Ball, box, dtype, shape, device, query counts and success flags of one run."""
    model = models[case["dtype"]]
    attack = make_attack(cls, case, model)
    images, labels = inputs(sample, case)
    result = attack(model, images, labels)
    adversarial = result.adversarial

    assert adversarial.shape == images.shape
    assert adversarial.dtype == images.dtype
    assert adversarial.device == images.device
    assert not adversarial.requires_grad
    assert float(adversarial.min()) >= 0.0 and float(adversarial.max()) <= 1.0
    size = perturbation_norms(adversarial, images)[attack.norm]
    assert float(size.max()) <= case["eps"] * (1 + 1e-5) + 1e-6

    assert result.queries.shape == labels.shape and result.queries.dtype == torch.int64
    assert bool((result.queries >= 0).all())
    with torch.no_grad():
        predictions = model(adversarial).argmax(1)
    if case["target"] is None:
        assert result.targets is None
        assert torch.equal(result.success, predictions != labels)
    else:
        assert result.targets is not None and result.targets.shape == labels.shape
        assert torch.equal(result.success, predictions == result.targets)


def check_model_state_and_determinism(
    cls: type[Attack], case: dict[str, Any], models, sample
) -> None:
    """The model comes back exactly as it was; a seeded attack repeats itself."""
    model = models[case["dtype"]]
    attack = make_attack(cls, case, model)
    images, labels = inputs(sample, case)
    # A mixed state to restore: train mode with one sub-module in eval, and one
    # parameter frozen while the others train.
    model.train()
    model.net.features.eval()
    params = list(model.parameters())
    for index, param in enumerate(params):
        param.requires_grad_(index != 0)
        param.grad = None
    modes = [module.training for module in model.modules()]
    weights = [param.detach().clone() for param in params]
    rng = torch.get_rng_state()
    try:
        first = attack(model, images, labels)
        second = attack(model, images, labels)

        assert [module.training for module in model.modules()] == modes
        assert [param.requires_grad for param in params] == [i != 0 for i in range(len(params))]
        assert all(param.grad is None for param in params)
        assert all(torch.equal(p, w) for p, w in zip(params, weights, strict=True))
        # A seeded attack uses its own random stream and leaves the global one alone.
        assert torch.equal(torch.get_rng_state(), rng)
        assert torch.equal(first.adversarial, second.adversarial)
        assert torch.equal(first.success, second.success)
        assert torch.equal(first.queries, second.queries)
    finally:
        model.eval()
        for param in params:
            param.requires_grad_(True)


def test_the_detector_aware_attacks_are_covered(models):
    for name in AWARE:
        assert name in NAMES
        assert supported_norms(ATTACKS[name], models[torch.float32]) == ["linf", "l2"]


@pytest.mark.parametrize("name", NAMES)
def test_every_attack_can_be_built_for_a_norm(name, models):
    assert supported_norms(ATTACKS[name], models[torch.float32]), (
        f"{name}: rejects every norm with eps=0.1; add its required arguments to EXTRA"
    )


@pytest.mark.parametrize("name", NAMES)
def test_results_stay_in_ball_and_box_and_match_predictions(name, models, mnist_sample):
    cls = ATTACKS[name]

    @PROPERTY_SETTINGS
    @given(case=scenarios(cls, models[torch.float32]))
    def check(case: dict[str, Any]) -> None:
        check_result_invariants(cls, case, models, mnist_sample)

    check()


@pytest.mark.parametrize("name", NAMES)
def test_model_is_left_as_found_and_seeded_runs_repeat(name, models, mnist_sample):
    cls = ATTACKS[name]

    @PROPERTY_SETTINGS
    @given(case=scenarios(cls, models[torch.float32]))
    def check(case: dict[str, Any]) -> None:
        check_model_state_and_determinism(cls, case, models, mnist_sample)

    check()
