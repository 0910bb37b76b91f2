"""compiled_search: attacks search on torch.compile of the model, or on the model as it is."""

from __future__ import annotations

import json
import logging
import weakref

import pytest
import torch
import yaml
from helpers import run_cli
from torch import nn

import advlab.attacks.search as search
from advlab.attacks import PGD, compiled_search
from advlab.attacks.search import search_model
from advlab.models import load_model


@pytest.fixture(scope="module")
def model() -> nn.Module:
    return load_model("mnist-mlp", device="cpu").eval()


@pytest.fixture
def sample(mnist_sample) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = mnist_sample
    return images[:32], labels[:32]


def test_a_compiled_search_is_the_same_attack(model, sample) -> None:
    images, labels = sample
    attack = PGD(eps=0.1, steps=10, seed=0)
    eager = attack(model, images, labels)
    with compiled_search():
        stand_in = search_model(model, images)
        compiled = attack(model, images, labels)
    assert stand_in is not model and "Optimized" in type(stand_in).__name__
    assert not hasattr(search_model(model, images), "_orig_mod")  # off outside the context
    adversarial = compiled.adversarial
    assert (adversarial - images).abs().amax() <= 0.1 + 1e-6
    assert 0 <= adversarial.min() <= adversarial.max() <= 1
    with torch.no_grad():
        judged = model(adversarial).argmax(1) != labels
    assert torch.equal(compiled.success, judged)
    # Fused kernels round differently: the same attack to an image or so.
    assert abs(int(compiled.success.sum()) - int(eager.success.sum())) <= 1
    assert int(eager.success.sum()) >= 8  # (an attack that breaks something)


def test_where_compile_fails_the_attack_warns_once_and_runs_uncompiled(
    model, sample, monkeypatch, caplog
) -> None:
    images, labels = sample

    def broken(net: nn.Module, **options: object) -> nn.Module:
        class Failing(nn.Module):
            def forward(self, x: torch.Tensor) -> torch.Tensor:
                raise RuntimeError("InductorError: no C++ compiler found\nmore lines")

        return Failing()

    monkeypatch.setattr(torch, "compile", broken)
    monkeypatch.setattr(search, "_compiled", weakref.WeakKeyDictionary())
    with caplog.at_level(logging.WARNING), compiled_search():
        assert search_model(model, images) is model
        result = PGD(eps=0.1, steps=5, seed=0)(model, images, labels)
    assert caplog.text.count("torch.compile failed (InductorError: no C++ compiler found)") == 1
    assert result.success.any()


def test_evaluate_compile_is_the_same_run_resumed(capsys, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("ADVLAB_HOME", str(tmp_path / "home"))
    out, store = tmp_path / "out", tmp_path / "results.sqlite"
    base = ["evaluate", "--model", "mnist-mlp", "-a", "pgd", "-e", "0.1", "--n", "16",
            "--device", "cpu", "--no-report", "--quiet", "--out", str(out),
            "--store", str(store)]  # fmt: skip
    code, _, err = run_cli(base, capsys)
    assert code == 0, err
    first = json.loads((out / "results.json").read_text())
    code, _, err = run_cli([*base, "--compile"], capsys)
    assert code == 0, err
    again = json.loads((out / "results.json").read_text())
    # How it runs, not what it computes: the stored rows are reused, to the number.
    assert again["run_id"] == first["run_id"]
    assert again["worst_case"] == first["worst_case"]
    assert yaml.safe_load((out / "config.yaml").read_text())["compile"] is True
