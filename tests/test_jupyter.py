"""Rich HTML in Jupyter (``_repr_html_``) and the explorer widget, without a notebook."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from advlab.attacks import FGSM
from advlab.data import load_dataset
from advlab.models import load_model
from advlab.results import DefenseComparison, DetectionEvaluation, Evaluation, TransferMatrix

FIXTURES = Path(__file__).parent / "fixtures" / "results"


def test_every_typed_result_renders_its_numbers_as_html():
    evaluation = Evaluation.read_json(FIXTURES / "results.json")
    text = evaluation._repr_html_()
    assert "<table" in text and f"{100 * evaluation.clean_accuracy:.2f}%" in text
    for entry in evaluation.results:
        assert f"{100 * entry.robust_accuracy:.2f}%" in text
    comparison = DefenseComparison.read_json(FIXTURES / "defend.json")
    assert all(row.label in comparison._repr_html_() for row in comparison.rows)
    matrix = TransferMatrix.read_json(FIXTURES / "transfer.json")
    assert all(source in matrix._repr_html_() for source in matrix.sources)
    detection = DetectionEvaluation.read_json(FIXTURES / "detection.json")
    assert detection.detector["detector"] in detection._repr_html_()


def test_html_escapes_untrusted_names():
    evaluation = Evaluation.read_json(FIXTURES / "results.json")
    evaluation.model = "<script>alert(1)</script>"
    text = evaluation._repr_html_()
    assert "<script>" not in text and "&lt;script&gt;" in text


@pytest.fixture(scope="module")
def mnist():
    data = load_dataset("mnist-demo", n=6, seed=1)
    return load_model("mnist-cnn"), data.images, data.labels


def test_attack_result_renders_an_image_grid(mnist):
    model, images, labels = mnist
    result = FGSM(eps=0.3)(model, images, labels)
    text = result._repr_html_()
    assert text.count("data:image/png;base64,") == images.shape[0]
    assert f"{100 * result.success_rate:.1f}%" in text


def test_explorer_reattacks_when_a_control_moves(mnist):
    pytest.importorskip("ipywidgets")
    from advlab.widgets import Explorer, attack_example

    model, images, labels = mnist
    explorer = Explorer(model, images, labels, attacks=["fgsm", "pgd"], eps=0.05)
    first = explorer.example
    explorer.eps.value = 0.3
    assert explorer.example is not first and explorer.example.eps == pytest.approx(0.3)
    robust = (explorer.example.adv_pred == labels).float().mean()
    assert f"{100 * robust:.0f}% under attack" in explorer.status.value
    assert explorer.output.value.startswith("<img")
    explorer.attack.value = "pgd"
    assert explorer.example.attack == "pgd"
    example = attack_example(model, images, labels, "fgsm", 0.3)
    assert torch.equal(example.adv_pred, explorer_example_preds(model, example.adversarial))


def explorer_example_preds(model, images):
    with torch.no_grad():
        return model(images).argmax(dim=1)
