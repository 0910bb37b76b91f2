"""The invariants of every attack (tests/test_attack_properties.py), on the two
detector-aware attacks.

They are registered attacks, but each needs a detector fitted for the model under attack:
this module adds a factory for each to ``EXTRA`` of test_attack_properties.py (so that
module covers them too where ``advlab.defenses`` is imported before it collects its
names) and runs the same checks on them here.
"""

from __future__ import annotations

from typing import Any

import pytest
import test_attack_properties as props
import torch
from hypothesis import given
from test_attack_properties import models  # noqa: F401  (the fixture)
from torch import nn

from advlab.attacks import ATTACKS, PGD
from advlab.data import load_dataset
from advlab.defenses import BinaryDetector, Detector, FeatureSqueezingDetector

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


for _name in AWARE:
    props.EXTRA[_name] = lambda model, name=_name: {"detector": fitted_detector(name, model)}


@pytest.mark.parametrize("name", AWARE)
def test_aware_attacks_are_registered_and_built_for_a_norm(name: str, models) -> None:  # noqa: F811
    assert name in ATTACKS
    assert props.supported_norms(ATTACKS[name], models[torch.float32]) == ["linf", "l2"]


@pytest.mark.parametrize("name", AWARE)
def test_results_stay_in_ball_and_box_and_match_predictions(
    name: str,
    models,  # noqa: F811
    mnist_sample,
) -> None:
    cls = ATTACKS[name]

    @props.PROPERTY_SETTINGS
    @given(case=props.scenarios(cls, models[torch.float32]))
    def check(case: dict[str, Any]) -> None:
        props.check_result_invariants(cls, case, models, mnist_sample)

    check()


@pytest.mark.parametrize("name", AWARE)
def test_model_is_left_as_found_and_seeded_runs_repeat(
    name: str,
    models,  # noqa: F811
    mnist_sample,
) -> None:
    cls = ATTACKS[name]

    @props.PROPERTY_SETTINGS
    @given(case=props.scenarios(cls, models[torch.float32]))
    def check(case: dict[str, Any]) -> None:
        props.check_model_state_and_determinism(cls, case, models, mnist_sample)

    check()
