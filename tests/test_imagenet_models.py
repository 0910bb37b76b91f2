"""ResNet-50 and MobileNetV2 on ImageNet: the commands a user with torchvision's weights runs.

Nothing is downloaded: untrained weights stand in for torchvision's files in a temporary
torch hub cache, under the file names torchvision looks for, and the real ImageNet photos
of the shared data folder are the images.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlparse

import pytest
import torch
import torchvision
from helpers import run_cli
from torch import nn

from advlab.data import load_dataset
from advlab.errors import AdvlabError
from advlab.models import Normalize, load_model
from advlab.models.registry import IMAGENET_MEAN, IMAGENET_STD

NAMES = ("resnet50", "mobilenet_v2")
SAMPLE = 4  # photos the attacks run on


def _cached_file(name: str) -> Path:
    url = torchvision.models.get_model_weights(name).DEFAULT.url
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(url).path).name


@pytest.fixture
def hub_cache(tmp_path, monkeypatch) -> dict[str, dict[str, torch.Tensor]]:
    """Untrained weights saved where torchvision's named weights would be cached."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    states = {}
    for seed, name in enumerate(NAMES):
        torch.manual_seed(seed)
        states[name] = torchvision.models.get_model(name, weights=None).eval().state_dict()
        _cached_file(name).parent.mkdir(parents=True, exist_ok=True)
        torch.save(states[name], _cached_file(name))
    return states


@pytest.fixture
def fitted_hub_cache(hub_cache, data_dir) -> None:
    """As ``hub_cache``, with each model's last layer fitted to the sample's photos.

    An untrained network gets every photo wrong, so no attack would run at all; an
    untrained body with a last layer solved to classify the SAMPLE photos correctly gives
    the attacks something to break (only the weights differ from the real ones).
    """
    images = load_dataset("imagenet", n=SAMPLE, seed=0)
    for name in NAMES:
        net = torchvision.models.get_model(name, weights=None).eval()
        net.load_state_dict(hub_cache[name])
        owner, key = (net, "fc") if name == "resnet50" else (net.classifier, "1")
        head = getattr(owner, key)
        setattr(owner, key, nn.Identity())
        with torch.no_grad():
            features = net(Normalize(IMAGENET_MEAN, IMAGENET_STD)(images.images))
        # Minimum-norm weights giving the true class a logit of 10 and the others 0.
        goal = 10 * nn.functional.one_hot(images.labels, 1000).float()
        weight = torch.linalg.lstsq(features, goal, driver="gelsd").solution.t()
        state = dict(hub_cache[name])
        prefix = "fc" if name == "resnet50" else "classifier.1"
        state[f"{prefix}.weight"], state[f"{prefix}.bias"] = weight, torch.zeros(1000)
        assert head.weight.shape == weight.shape
        torch.save(state, _cached_file(name))


def test_named_weights_are_read_from_the_hub_cache(hub_cache) -> None:
    for name in NAMES:
        model = load_model(name)
        loaded = model.net.state_dict()
        assert all(torch.equal(loaded[key], value) for key, value in hub_cache[name].items())
        assert model.input_shape == (3, 224, 224) and model.num_classes == 1000


class _Payload:
    """Any pickled object that is not plain data: weights_only refuses to build it."""


def test_a_cached_file_that_is_not_plain_data_is_refused(hub_cache) -> None:
    torch.save({"conv1.weight": _Payload()}, _cached_file("resnet50"))
    with pytest.raises(AdvlabError, match="cannot read the cached torchvision weights"):
        load_model("resnet50")


def test_a_cached_file_of_another_architecture_is_refused(hub_cache) -> None:
    torch.save(hub_cache["mobilenet_v2"], _cached_file("resnet50"))
    with pytest.raises(AdvlabError, match="do not fit"):
        load_model("resnet50")


def test_transfer_and_evaluate_on_imagenet_photos(fitted_hub_cache, tmp_path, capsys) -> None:
    out = tmp_path / "transfer"
    code, _, err = run_cli(
        ["transfer", "--source", "resnet50", "--source", "mobilenet_v2", "--dataset",
         "imagenet", "--attack", "pgd:steps=5", "--eps", "8/255", "--n", str(SAMPLE),
         "--batch-size", str(SAMPLE), "--out", str(out), "--quiet"],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    saved = json.loads((out / "transfer.json").read_text())
    cells = {(cell["source"], cell["target"]): cell for cell in saved["cells"]}
    assert set(cells) == {(source, target) for source in NAMES for target in NAMES}
    for name in NAMES:  # white box: every photo both get right is broken
        assert cells[name, name]["n_both_correct"] == SAMPLE
        assert cells[name, name]["success_rate"] == 1.0
    assert len(list(out.glob("transfer-pgd-*.png"))) == 1

    evaluated = tmp_path / "evaluate"
    code, _, err = run_cli(
        ["evaluate", "--model", "mobilenet_v2", "--dataset", "imagenet", "--attack", "fgsm",
         "--eps", "8/255", "--n", str(SAMPLE), "--out", str(evaluated), "--store",
         str(tmp_path / "store.sqlite"), "--no-report", "--quiet"],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    results = json.loads((evaluated / "results.json").read_text())
    assert results["model"] == "mobilenet_v2" and results["clean_accuracy"] == 1.0
    (fgsm,) = results["results"]
    assert fgsm["robust_accuracy"] < 1.0 and fgsm["mean_linf"] <= 8 / 255 + 1e-6
