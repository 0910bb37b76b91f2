"""The detector-aware attacks reproduce, bit for bit, what the pre-refactor code recorded.

``tests/fixtures/aware_reference.json`` holds SHA-256 hashes of the outputs of
SqueezeAwarePGD and DetectorAwarePGD (L-inf, L2, targeted, with and without a random
start), made by ``tests/fixtures/make_aware_reference.py`` on the hand-written loops,
before the attacks became objectives of the one gradient loop.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

FIXTURES = Path(__file__).resolve().parent / "fixtures"
REFERENCE = json.loads((FIXTURES / "aware_reference.json").read_text())["cases"]


def _maker():
    path = FIXTURES / "make_aware_reference.py"
    spec = importlib.util.spec_from_file_location("make_aware_reference", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


MAKER = _maker()


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_every_recorded_case_is_still_checked() -> None:
    assert sorted(MAKER.case_names()) == sorted(REFERENCE)


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_reproduces_the_recorded_output(name: str, one_thread) -> None:
    expected = REFERENCE[name]
    got = MAKER.compute(name)
    assert sorted(got) == sorted(expected)
    for key, value in expected.items():
        if key in ("config", "threshold"):
            assert got[key] == value, f"{name}: {key} changed"
        else:
            assert got[key]["sha256"] == value["sha256"], (
                f"{name}.{key}: got sum {got[key].get('sum')}, recorded {value.get('sum')}"
            )
