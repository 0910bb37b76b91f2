"""The CUDA paths: bfloat16 search, torch.compile, the automatic batch size, a run on the GPU.

Skipped where no CUDA device is present (this project's CI); ``benchmarks/gpu_check.sh``
runs them in a session that is lent a GPU.
"""

from __future__ import annotations

import json

import pytest
import torch
from helpers import run_cli
from torch import nn

from advlab.attacks import APGD, PGD, compiled_search, search_precision
from advlab.attacks.precision import BFloat16Search, fast_bfloat16, resolve
from advlab.attacks.search import search_model
from advlab.data import load_dataset
from advlab.evaluation.batch_size import CAP, auto_batch_size, bytes_per_image, free_bytes
from advlab.models import build_model, load_model

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
CUDA = torch.device("cuda")


@pytest.fixture(scope="module")
def models() -> dict[str, nn.Module]:
    return {device: load_model("mnist-cnn", device=device).eval() for device in ("cpu", "cuda")}


@pytest.fixture(scope="module")
def sample() -> tuple[torch.Tensor, torch.Tensor]:
    data = load_dataset("mnist-demo", n=128, seed=3)
    return data.images, data.labels


def _in_ball(adversarial: torch.Tensor, images: torch.Tensor, eps: float) -> None:
    assert float((adversarial - images).abs().max()) <= eps + 1e-6
    assert float(adversarial.min()) >= 0 and float(adversarial.max()) <= 1


def test_attacks_on_the_gpu_break_what_they_break_on_the_cpu(models, sample) -> None:
    images, labels = sample
    broken = {}
    for device, model in models.items():
        x, y = images.to(device), labels.to(device)
        for attack in (PGD(eps=0.15, steps=10, seed=0), APGD(0.15, 20, seed=0)):
            result = attack(model, x, y)
            _in_ball(result.adversarial, x, 0.15)
            broken[device, type(attack).__name__] = int(result.success.sum())
    for name in ("PGD", "APGD"):  # other kernels round otherwise: within two images
        assert abs(broken["cpu", name] - broken["cuda", name]) <= 2
        assert broken["cuda", name] > 10  # the attack really breaks images on the GPU


def test_bfloat16_search_on_the_gpu_keeps_the_float32_verdicts(models, sample) -> None:
    model = models["cuda"]
    images, labels = sample[0].to(CUDA), sample[1].to(CUDA)
    # Points on the float32 decision boundary: bisected between an image and its
    # adversarial example to where the float32 prediction changes.
    adversarial = PGD(eps=0.3, alpha=0.05, steps=20, seed=0)(model, images, labels).adversarial
    with torch.no_grad():
        broken = model(adversarial).argmax(1) != labels
        x0, x1 = images[broken], adversarial[broken]
        low = torch.zeros(len(x0), 1, 1, 1, device=CUDA)
        high = torch.ones_like(low)
        for _ in range(30):
            middle = (low + high) / 2
            same = model(x0 + middle * (x1 - x0)).argmax(1) == labels[broken]
            low = torch.where(same[:, None, None, None], middle, low)
            high = torch.where(same[:, None, None, None], high, middle)
        points = torch.cat([x0 + low * (x1 - x0), x0 + high * (x1 - x0)])
    assert len(points) >= 40
    if not fast_bfloat16(CUDA):
        pytest.skip("this GPU has no fast bfloat16")
    assert resolve("auto", CUDA) == "bfloat16"
    with search_precision("bfloat16"):
        search = search_model(model, images)
    assert isinstance(search, BFloat16Search)
    with torch.no_grad():
        assert torch.equal(search(points).argmax(1), model(points).argmax(1))


def test_a_bfloat16_attack_on_the_gpu_is_as_strong_and_judged_in_float32(models, sample) -> None:
    model = models["cuda"]
    images, labels = sample[0].to(CUDA), sample[1].to(CUDA)
    results = {}
    for precision in ("float32", "bfloat16"):
        with search_precision(precision):
            results[precision] = APGD(0.15, 20, seed=0)(model, images, labels)
    with torch.no_grad():
        judged = model(results["bfloat16"].adversarial).argmax(1) != labels
    assert torch.equal(results["bfloat16"].success, judged)
    _in_ball(results["bfloat16"].adversarial, images, 0.15)
    counts = [int(result.success.sum()) for result in results.values()]
    assert abs(counts[0] - counts[1]) <= 2


def test_a_compiled_search_on_the_gpu_breaks_the_same_images(models, sample) -> None:
    model = models["cuda"]
    images, labels = sample[0].to(CUDA), sample[1].to(CUDA)
    plain = APGD(0.15, 20, seed=0)(model, images, labels)
    with compiled_search():
        compiled = APGD(0.15, 20, seed=0)(model, images, labels)
    _in_ball(compiled.adversarial, images, 0.15)
    assert abs(int(plain.success.sum()) - int(compiled.success.sum())) <= 2


def test_the_automatic_batch_size_fits_the_gpus_free_memory(models) -> None:
    per_image = bytes_per_image(models["cuda"], (1, 28, 28), CUDA)
    size = auto_batch_size(models["cuda"], (1, 28, 28), CUDA, n=100_000)
    assert 64 <= size <= CAP["cuda"]
    assert size * per_image <= free_bytes(CUDA)
    resnet = build_model("cifar-resnet18").to(CUDA)  # random weights: memory only
    assert bytes_per_image(resnet, (3, 32, 32), CUDA) > per_image


def test_an_evaluation_on_the_gpu_agrees_with_one_on_the_cpu(tmp_path, capsys) -> None:
    accuracy = {}
    for device in ("cpu", "cuda"):
        out = tmp_path / device
        code, _, err = run_cli(
            ["evaluate", "--model", "mnist-cnn", "-n", "64", "--suite", "quick", "--eps", "0.15",
             "--device", device, "--precision", "auto", "--batch-size", "auto",
             "--out", str(out), "--store", str(tmp_path / f"{device}.db"), "--quiet"],
            capsys,
        )  # fmt: skip
        assert code == 0, err
        results = json.loads((out / "results.json").read_text())
        accuracy[device] = results["suite"][0]["robust_accuracy"]
    assert abs(accuracy["cpu"] - accuracy["cuda"]) <= 2 / 64
