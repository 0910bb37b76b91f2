"""The attacks reproduce, bit for bit, what the pre-refactor code recorded.

``tests/fixtures/attack_reference.json`` holds SHA-256 hashes of the outputs of PGD (L-inf,
L2, restarts, early stop, margin loss, targeted), BIM, MIM, FGSM, DeepFool, the black-box
attacks, Transfer and one TRADES step, made by ``tests/fixtures/make_attack_reference.py``
on the code before the attacks were rewritten on one gradient loop. Each case is run again
here with the same model, images and seed and must hash the same.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

FIXTURES = Path(__file__).resolve().parent / "fixtures"
REFERENCE = json.loads((FIXTURES / "attack_reference.json").read_text())["cases"]


def _maker():
    path = FIXTURES / "make_attack_reference.py"
    spec = importlib.util.spec_from_file_location("make_attack_reference", path)
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
        if key == "config":
            assert got[key] == value, f"{name}: config() changed"
        else:
            assert got[key]["sha256"] == value["sha256"], (
                f"{name}.{key}: got sum {got[key].get('sum')}, recorded {value.get('sum')}"
            )
