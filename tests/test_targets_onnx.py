"""OnnxTarget and export_onnx: parity with the PyTorch model, logit detection, clear errors."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from advlab.errors import AdvlabError
from advlab.targets import LocalTarget, OnnxTarget, QueryBudget, export_onnx

onnx = pytest.importorskip("onnx", reason="pip install 'advlab[onnx]'")
pytest.importorskip("onnxruntime", reason="pip install 'advlab[onnx]'")
pytest.importorskip("onnxscript", reason="pip install 'advlab[onnx]'")


@pytest.fixture(scope="module")
def onnx_file(small_mnist_model, tmp_path_factory) -> Path:
    return export_onnx(small_mnist_model, tmp_path_factory.mktemp("onnx") / "mnist.onnx")


def _tiny_graph(path: Path, *, probabilities: bool) -> Path:
    """A hand-made graph with a fixed batch of 1: 2x2 pixels flattened into 4 'classes'."""
    helper = onnx.helper
    nodes = [helper.make_node("Flatten", ["images"], ["flat"], axis=1)]
    if probabilities:
        nodes.append(helper.make_node("Softmax", ["flat"], ["out"], axis=1))
    else:
        nodes.append(helper.make_node("Identity", ["flat"], ["out"]))
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("images", onnx.TensorProto.FLOAT, [1, 1, 2, 2])],
        [helper.make_tensor_value_info("out", onnx.TensorProto.FLOAT, [1, 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_exported_model_matches_pytorch(onnx_file, small_mnist_model, mnist_sample) -> None:
    images = mnist_sample[0][:64]
    target = OnnxTarget(onnx_file)
    local = LocalTarget(small_mnist_model)
    assert target.input_shape == (1, 28, 28) and target.num_classes == 10
    assert target.name == "mnist-cnn" and target.class_names == small_mnist_model.class_names
    scores = target.predict_scores(images)
    torch.testing.assert_close(scores, local.predict_scores(images), atol=1e-4, rtol=0)
    assert torch.allclose(scores.sum(dim=1), torch.ones(64), atol=1e-5)  # softmax applied
    assert torch.equal(target.predict_labels(images), scores.argmax(dim=1))
    assert target.queries == 128
    # A batch of one goes through the dynamic batch axis too.
    torch.testing.assert_close(target.predict_scores(images[:1]), scores[:1], atol=1e-5, rtol=0)


def test_works_under_a_query_budget(onnx_file, mnist_sample) -> None:
    target = OnnxTarget(onnx_file, output="labels")
    images = mnist_sample[0][:8]
    budget = QueryBudget(target, 8, max_queries=1, device=images.device)
    budget.labels(images, torch.arange(8))
    with pytest.raises(AdvlabError, match="labels only"):
        target.predict_scores(images)
    with pytest.raises(AdvlabError, match="budget"):
        budget.labels(images[:1], torch.tensor([0]))


def test_logits_are_detected_and_probabilities_kept(tmp_path) -> None:
    images = torch.rand(5, 1, 2, 2)  # 5 images through a graph fixed to batch 1
    flat = images.flatten(1)
    logits = OnnxTarget(_tiny_graph(tmp_path / "logits.onnx", probabilities=False))
    torch.testing.assert_close(logits.predict_scores(images), torch.softmax(flat, dim=1))
    probs = OnnxTarget(_tiny_graph(tmp_path / "probs.onnx", probabilities=True))
    torch.testing.assert_close(probs.predict_scores(images), torch.softmax(flat, dim=1))
    raw = OnnxTarget(tmp_path / "logits.onnx", softmax=False)
    torch.testing.assert_close(raw.predict_scores(images), flat)


def test_wrong_image_shape_is_a_clear_error(onnx_file) -> None:
    with pytest.raises(AdvlabError, match=r"expects \(N, 1, 28, 28\)"):
        OnnxTarget(onnx_file).predict_scores(torch.rand(2, 3, 28, 28))
    with pytest.raises(AdvlabError, match="disagrees"):
        OnnxTarget(onnx_file, input_shape=(3, 28, 28))


def test_missing_or_corrupt_files_are_clear_errors(tmp_path) -> None:
    with pytest.raises(AdvlabError, match="not found"):
        OnnxTarget(tmp_path / "absent.onnx")
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"this is not a protobuf" * 10)
    with pytest.raises(AdvlabError, match="not a valid ONNX model"):
        OnnxTarget(corrupt)


def test_missing_onnxruntime_names_the_install(tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes the import fail
    with pytest.raises(AdvlabError, match="pip install"):
        OnnxTarget(tmp_path / "model.onnx")


def test_graph_outputs_match_numpy_reference(onnx_file, small_mnist_model) -> None:
    # The exported graph holds the normalization: raw [0, 1] pixels give the same logits.
    import onnxruntime

    session = onnxruntime.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    images = torch.rand(3, 1, 28, 28)
    (logits,) = session.run(None, {"images": images.numpy()})
    with torch.no_grad():
        expected = small_mnist_model(images).numpy()
    np.testing.assert_allclose(logits, expected, atol=1e-4)


def test_outputs_declared_as_scores_must_be_in_the_unit_range(tmp_path) -> None:
    graph = _tiny_graph(tmp_path / "identity.onnx", probabilities=False)
    raw = OnnxTarget(graph, softmax=False)
    with pytest.raises(AdvlabError, match=r"identity.onnx.*outside \[0, 1\]"):
        raw.predict_scores(torch.rand(2, 1, 2, 2) - 1.5)  # negative "scores"
    with pytest.raises(AdvlabError, match="NaN"):
        OnnxTarget(graph).predict_scores(torch.full((1, 1, 2, 2), float("nan")))
