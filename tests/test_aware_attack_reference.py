"""The detector-aware attacks reproduce, bit for bit, what the pre-refactor code recorded.

``tests/fixtures/aware_reference.json`` holds SHA-256 hashes of the outputs of
SqueezeAwarePGD and DetectorAwarePGD (L-inf, L2, targeted, with and without a random
start), made by ``tests/fixtures/make_aware_reference.py`` on the hand-written loops,
before the attacks became objectives of the one gradient loop.
"""

from __future__ import annotations

import json

import pytest
import torch
from helpers import FIXTURES, assert_matches_reference, fixture_module

REFERENCE = json.loads((FIXTURES / "aware_reference.json").read_text())["cases"]
MAKER = fixture_module("make_aware_reference")


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_every_recorded_case_is_still_checked() -> None:
    assert sorted(MAKER.case_names()) == sorted(REFERENCE)


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_reproduces_the_recorded_output(name: str, one_thread) -> None:
    assert_matches_reference(
        name, MAKER.compute(name), REFERENCE[name], exact=("config", "threshold")
    )
