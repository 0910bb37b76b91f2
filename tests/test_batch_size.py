"""``--batch-size auto``: measured per model, bounded by free memory, the same on resume."""

from __future__ import annotations

import pytest
import torch
import yaml

import advlab.evaluation.batch_size as batching
from advlab.evaluation.batch_size import auto_batch_size, bytes_per_image
from advlab.models import build_model
from advlab.workflows import EvaluateConfig, run_evaluation

CPU = torch.device("cpu")


def test_an_image_costs_what_its_activations_take_and_a_wider_model_more() -> None:
    narrow, wide = build_model("mnist-cnn", width=8), build_model("mnist-cnn", width=32)
    narrow_bytes = bytes_per_image(narrow, (1, 28, 28), CPU)
    assert narrow_bytes > 2 * 28 * 28 * 4  # more than the image and its gradient
    assert bytes_per_image(wide, (1, 28, 28), CPU) > 2 * narrow_bytes
    assert all(p.grad is None for p in narrow.parameters())  # only the input's gradient


def test_the_batch_fills_the_share_of_free_memory_up_to_the_cap(monkeypatch) -> None:
    model = build_model("mnist-cnn", width=8)
    per_image = bytes_per_image(model, (1, 28, 28), CPU)
    monkeypatch.setattr(batching, "free_bytes", lambda device: int(40 * per_image))
    assert auto_batch_size(model, (1, 28, 28), CPU) == int(40 * batching.MEMORY_SHARE)
    monkeypatch.setattr(batching, "free_bytes", lambda device: 2**40)
    assert auto_batch_size(model, (1, 28, 28), CPU) == batching.CAP["cpu"]
    assert auto_batch_size(model, (1, 28, 28), CPU, n=30) == 30
    monkeypatch.setattr(batching, "free_bytes", lambda device: 1)
    assert auto_batch_size(model, (1, 28, 28), CPU) == 1


def test_an_auto_run_stores_the_number_it_chose_and_resumes_under_auto(
    tmp_path, monkeypatch
) -> None:
    monkeypatch.setattr(batching, "free_bytes", lambda device: 2**40)
    config = EvaluateConfig(model="mnist-cnn", n=40, attacks=["fgsm"], epsilons=[0.1],
                            batch_size="auto", out=str(tmp_path / "run"), device="cpu",
                            store=str(tmp_path / "s.sqlite"), report=False)  # fmt: skip
    first = run_evaluation(config, progress=False)
    assert first.results["config"]["batch_size"] == 40  # all 40 images: under the cap
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["batch_size"] == "auto"
    again = run_evaluation(config, progress=False, force=True)
    assert again.results["run_id"] == first.results["run_id"]


@pytest.mark.parametrize("bad", ["many", 0, -3, 2.5, True])
def test_a_batch_size_that_is_neither_a_count_nor_auto_is_refused(bad, tmp_path) -> None:
    with pytest.raises(ValueError, match="batch_size must be a whole number > 0 or auto"):
        EvaluateConfig(batch_size=bad, out=str(tmp_path))
