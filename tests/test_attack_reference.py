"""The attacks reproduce, bit for bit, what the pre-refactor code recorded.

``tests/fixtures/attack_reference.json`` holds SHA-256 hashes of the outputs of PGD (L-inf,
L2, restarts, early stop, margin loss, targeted), BIM, MIM, FGSM, DeepFool, the black-box
attacks, Transfer and one TRADES step, made by ``tests/fixtures/make_attack_reference.py``
on the code before the attacks were rewritten on one gradient loop. Each case is run again
here with the same model, images and seed and must hash the same.
"""

from __future__ import annotations

import json

import pytest
import torch
from helpers import FIXTURES, assert_matches_reference, fixture_module

REFERENCE = json.loads((FIXTURES / "attack_reference.json").read_text())["cases"]
MAKER = fixture_module("make_attack_reference")


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_every_recorded_case_is_still_checked() -> None:
    assert sorted(MAKER.case_names()) == sorted(REFERENCE)


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_reproduces_the_recorded_output(name: str, one_thread) -> None:
    assert_matches_reference(name, MAKER.compute(name), REFERENCE[name], exact=("config",))
