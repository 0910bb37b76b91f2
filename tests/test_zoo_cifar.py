"""The bundled CIFAR-10 zoo models: small, accurate, and a ResNet/MobileNet pair that transfers.

The weights ship with the package; the CIFAR-10 test images come from ``ADVLAB_DATA_DIR``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from advlab.attacks import PGD
from advlab.data import load_dataset
from advlab.evaluation import AttackSpec
from advlab.evaluation.transfer import transfer_matrix
from advlab.models import get_entry, load_model
from advlab.models.checkpoint import sha256_of

ZOO = Path(__file__).parents[1] / "src" / "advlab" / "zoo"
CIFAR_ZOO = {  # name: (architecture, least test accuracy the issue or the docs promise)
    "cifar-mobilenetv2": ("cifar-mobilenetv2", 0.88),
    "cifar-resnet20-advlab": ("cifar-resnet20", 0.88),
}
EPS = 8 / 255


@pytest.fixture(scope="module")
def cifar_sample(data_dir):
    return load_dataset("cifar10", n=300, seed=0)


def _accuracy_and_pgd_success(name: str, sample) -> tuple[float, float]:
    """Clean accuracy on ``sample``, and PGD-10's success rate at 8/255 on the first 64
    images the model gets right."""
    model = load_model(name)
    images, labels = sample.images, sample.labels
    with torch.no_grad():
        correct = model(images).argmax(1) == labels
    result = PGD(eps=EPS, steps=10, seed=0)(model, images[correct][:64], labels[correct][:64])
    return float(correct.float().mean()), result.success_rate


@pytest.mark.parametrize("name", sorted(CIFAR_ZOO))
def test_cifar_zoo_file_is_small_and_its_sidecar_records_provenance(name: str) -> None:
    architecture, least = CIFAR_ZOO[name]
    weights = ZOO / f"{name}.safetensors"
    assert weights.is_file(), f"the bundled zoo/{name}.safetensors is missing"
    assert weights.stat().st_size < 5_000_000
    sidecar = json.loads((ZOO / f"{name}.json").read_text())
    assert sidecar["name"] == name and sidecar["architecture"] == architecture
    assert sidecar["sha256"] == sha256_of(weights)
    assert sidecar["metrics"]["test_accuracy"] >= least
    assert sidecar["training"]["dataset"] == "cifar10" and "seed" in sidecar["training"]
    assert f"{name}.train.yaml" in sidecar["command"]
    assert get_entry(name).weights is not None and get_entry(name).weights.bundled


@pytest.mark.data
@pytest.mark.parametrize("name", sorted(CIFAR_ZOO))
def test_cifar_zoo_model_is_accurate_and_falls_to_pgd(name: str, cifar_sample) -> None:
    accuracy, fooled = _accuracy_and_pgd_success(name, cifar_sample)
    assert accuracy >= 0.85  # on 300 images, against >= 88% on all 10,000
    assert fooled > 0.9  # an undefended model


def test_the_pair_is_a_resnet_and_a_mobilenet() -> None:
    resnet, mobilenet = load_model("cifar-resnet20-advlab"), load_model("cifar-mobilenetv2")

    def depthwise(model: nn.Module) -> bool:
        return any(isinstance(m, nn.Conv2d) and m.groups > 1 for m in model.modules())

    assert not depthwise(resnet) and depthwise(mobilenet)


@pytest.mark.data
def test_examples_crafted_on_the_resnet_transfer_to_the_mobilenet_and_back(cifar_sample) -> None:
    models = {name: load_model(name) for name in ("cifar-resnet20-advlab", "cifar-mobilenetv2")}
    sample = cifar_sample.subset(list(range(96)))
    attacks = [AttackSpec("fgsm"), AttackSpec("mim", params={"steps": 5})]
    result = transfer_matrix(models, None, attacks, [EPS], sample, progress=False)
    for attack in ("fgsm", "mim"):
        for source in models:
            for target in models:
                cell = result.cell(attack, EPS, source, target)
                # Real transfer, far above the few images an unrelated change of 8/255
                # would flip; the white-box diagonal is higher still.
                least = 0.7 if source == target else 0.3
                assert cell.success_rate > least, f"{attack} {source}->{target}"


ROBUST = "cifar-resnet20-robust-8"


def test_the_robust_cifar_model_ships_with_its_recipe_and_measured_robustness() -> None:
    weights = ZOO / f"{ROBUST}.safetensors"
    sidecar = json.loads((ZOO / f"{ROBUST}.json").read_text())
    assert sidecar["sha256"] == sha256_of(weights) and weights.stat().st_size < 2_000_000
    assert sidecar["training"]["adversarial"]["method"] == "trades"  # the last stage
    assert sidecar["training"]["adversarial"]["eps"] == pytest.approx(8 / 255)
    for stage in ("train", "pgd.train", "decay.train", "trades.train"):
        assert f"{ROBUST}.{stage}.yaml" in sidecar["command"]
        assert (ZOO / f"{ROBUST}.{stage}.yaml").is_file()
    metrics = sidecar["metrics"]
    assert metrics["test_accuracy"] >= 0.70  # issue 12's bar: >= 70% clean, >= 38% suite
    assert metrics["suite"] == "standard" and metrics["suite_n"] == 1000
    assert (
        metrics["suite_eps"] == pytest.approx(8 / 255) and metrics["suite_robust_accuracy"] >= 0.38
    )
    assert 0.0 < metrics["suite_robust_accuracy"] < metrics["test_accuracy"]
    assert get_entry(ROBUST).weights is not None and get_entry(ROBUST).weights.bundled


@pytest.mark.data
def test_the_robust_cifar_model_resists_the_pgd_that_breaks_the_others(cifar_sample) -> None:
    accuracy, fooled = _accuracy_and_pgd_success(ROBUST, cifar_sample)
    assert accuracy >= 0.65  # on 300 images, against >= 70% on all 10,000
    assert fooled < 0.7  # the undefended models: > 0.9
