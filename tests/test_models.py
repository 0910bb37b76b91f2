"""Model registry, checkpoints and loaders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from advlab.errors import AdvlabError
from advlab.models import build_model, load_model, save_checkpoint
from advlab.models.checkpoint import sidecar_path


@pytest.mark.parametrize(
    ("name", "kwargs", "shape"),
    [
        ("mnist-cnn", {}, (1, 28, 28)),
        ("mnist-mlp", {}, (1, 28, 28)),
        ("cifar-resnet20", {}, (3, 32, 32)),
        ("cifar-resnet18", {"width": 16}, (3, 32, 32)),
        ("cifar-mobilenetv2", {"width": 0.5}, (3, 32, 32)),
    ],
)
def test_registry_architectures_run_on_their_input_size(name, kwargs, shape):
    model = build_model(name, **kwargs).eval()
    with torch.no_grad():
        logits = model(torch.rand(2, *shape))
    assert logits.shape == (2, 10)
    assert model.input_shape == shape


def test_pretrained_cifar_resnet20_reaches_its_published_accuracy(data_dir):
    from advlab.data import load_dataset

    model = load_model("cifar-resnet20")
    data = load_dataset("cifar10", n=500, seed=0)
    with torch.no_grad():
        accuracy = (model(data.images).argmax(1) == data.labels).float().mean().item()
    assert accuracy > 0.88  # 91.73% on the full test set


def test_wrong_sha256_is_rejected(tmp_path, monkeypatch):
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "resnet20-12fca82f.th").write_bytes(b"not the checkpoint")
    monkeypatch.setenv("ADVLAB_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("ADVLAB_HOME", str(tmp_path / "home"))
    with pytest.raises(AdvlabError, match="sha256"):
        load_model("cifar-resnet20")


def test_checkpoint_round_trip_with_sidecar(tmp_path):
    model = build_model("mnist-cnn", width=4, hidden=8)
    path = save_checkpoint(
        model.net,
        tmp_path / "m.safetensors",
        {"name": "tiny", "architecture": "mnist-cnn", "arch_kwargs": {"width": 4, "hidden": 8}},
    )
    sidecar = json.loads(sidecar_path(path).read_text())
    assert sidecar["architecture"] == "mnist-cnn" and len(sidecar["sha256"]) == 64
    loaded = load_model(str(path))
    x = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(loaded(x), model.eval()(x))
    assert loaded.name == "tiny"


def test_pt_state_dict_loads_with_weights_only(tmp_path):
    model = build_model("mnist-mlp", hidden=16)
    path = tmp_path / "m.pth"
    torch.save({"state_dict": {"module." + k: v for k, v in model.net.state_dict().items()}}, path)
    loaded = load_model("mnist-mlp", weights=path, hidden=16)
    for key, value in model.net.state_dict().items():
        assert torch.equal(loaded.net.state_dict()[key], value)


def test_pickled_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "payload": Path("x")}, path)
    with pytest.raises(AdvlabError, match="never pickled code|cannot read"):
        load_model("mnist-mlp", weights=path)


@pytest.mark.parametrize(
    ("spec", "weights", "message"),
    [
        ("no-such-model", None, "unknown model"),
        ("mnist-mlp", "/does/not/exist.safetensors", "not found"),
        ("torchvision:not_a_net", None, "unknown torchvision model"),
        ("os.path:nothing_here", None, "cannot import model factory"),
    ],
)
def test_bad_model_specs_give_one_line_errors(spec, weights, message):
    with pytest.raises(AdvlabError, match=message) as info:
        load_model(spec, weights=weights)
    assert "\n" not in str(info.value)


def test_corrupt_and_mismatched_weights(tmp_path):
    corrupt = tmp_path / "bad.safetensors"
    corrupt.write_bytes(b"\x00garbage")
    with pytest.raises(AdvlabError, match="corrupt"):
        load_model("mnist-mlp", weights=corrupt)
    other = build_model("mnist-cnn", width=4, hidden=8)
    path = save_checkpoint(other.net, tmp_path / "cnn.safetensors", {"architecture": "mnist-cnn"})
    with pytest.raises(AdvlabError, match="do not fit"):
        load_model("mnist-mlp", weights=path)


def test_torchscript_and_factory_models(tmp_path):
    net = build_model("mnist-mlp", hidden=8).eval()
    scripted = torch.jit.trace(net, torch.rand(1, 1, 28, 28))
    path = tmp_path / "model.ts"
    scripted.save(str(path))
    loaded = load_model(str(path))
    x = torch.rand(2, 1, 28, 28)
    with torch.no_grad():
        assert torch.allclose(loaded(x), net(x), atol=1e-6)
    factory = load_model("torchvision.models:mobilenet_v3_small", num_classes=5)
    with torch.no_grad():
        assert factory(torch.rand(1, 3, 64, 64)).shape == (1, 5)


def test_imagenet_architectures_on_real_photos_with_untrained_weights(data_dir):
    from advlab.data import load_dataset

    data = load_dataset("imagenet", n=2, seed=0)
    for name in ("resnet50", "mobilenet_v2"):
        model = load_model(name, pretrained=False)
        with torch.no_grad():
            assert model(data.images).shape == (2, 1000)


def test_models_are_returned_in_eval_mode():
    assert not load_model("mnist-mlp", pretrained=False).training


def _checkpoint_with(tmp_path, **sidecar):
    model = build_model("mnist-cnn", width=4, hidden=8)
    meta = {"architecture": "mnist-cnn", "arch_kwargs": {"width": 4, "hidden": 8}, **sidecar}
    return save_checkpoint(model.net, tmp_path / "m.safetensors", meta)


@pytest.mark.parametrize(
    ("sidecar", "message"),
    [
        ({"arch_kwargs": ["width", 4]}, r"arch_kwargs=.*must be an object"),
        ({"arch_kwargs": {"width": 4, "hidden": 8, "depth": 3}}, "cannot be built.*depth"),
        ({"arch_kwargs": {"width": "four", "hidden": 8}}, "cannot be built"),
        ({"num_classes": "ten"}, r"num_classes='ten'.*positive integer"),
        ({"num_classes": 2.5}, "num_classes=2.5"),
        ({"input_shape": [1, 28]}, "input_shape"),
        ({"architecture": 7}, "architecture=7"),
    ],
)
def test_bad_sidecar_fields_are_one_line_errors(tmp_path, sidecar, message):
    path = _checkpoint_with(tmp_path, **sidecar)
    with pytest.raises(AdvlabError, match=message) as info:
        load_model(str(path))
    assert "\n" not in str(info.value) and "m.json" in str(info.value)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("os:system", "not a model factory"),
        ("builtins:eval", "not a model factory"),
        ("collections:OrderedDict", "not a model factory"),
        ("os:sep", "not a model factory"),
        ("json:dumps", "model factory 'json:dumps' failed"),
        ("platform:python_version", "returned str, not an nn.Module"),
        ("torch.nn:Linear", "model factory 'torch.nn:Linear' failed"),
    ],
)
def test_specs_that_are_not_model_factories(spec, message):
    with pytest.raises(AdvlabError, match=message) as info:
        load_model(spec)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("spec", [None, "", 3, ["mnist-cnn"]])
def test_load_model_without_a_spec(spec):
    with pytest.raises(AdvlabError, match="needs a model spec") as info:
        load_model(spec)
    assert "registry name" in str(info.value) and "\n" not in str(info.value)


def test_build_model_with_unknown_arguments():
    with pytest.raises(AdvlabError, match="cannot be built with arguments.*wdth"):
        build_model("mnist-cnn", wdth=4)


def test_models_package_has_no_import_cycle_and_no_long_module():
    import importlib.util
    import sys

    script = Path(__file__).resolve().parents[1] / "scripts" / "check_architecture.py"
    spec = importlib.util.spec_from_file_location("check_architecture", script)
    module = importlib.util.module_from_spec(spec)
    sys.modules["check_architecture"] = module
    spec.loader.exec_module(module)
    problems = [p for p in module.check() if "models" in p]
    assert problems == []


def test_registry_names_still_import():
    from advlab.models import ModelEntry, get_entry, registered_models, resolve_device
    from advlab.models.registry import IMAGENET_MEAN, resolve_default_weights

    assert isinstance(get_entry("mnist-cnn"), ModelEntry) and len(IMAGENET_MEAN) == 3
    assert "cifar-resnet20" in {entry.name for entry in registered_models()}
    assert callable(resolve_default_weights) and resolve_device("cpu").type == "cpu"
