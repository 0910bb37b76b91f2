"""The trained binary detector, its adaptive attack, and the detection evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from advlab.attacks import FGSM, PGD
from advlab.data import load_dataset
from advlab.defenses import BinaryDetector, DetectorAwarePGD, build_detector
from advlab.defenses.detectors.binary import feature_layer
from advlab.errors import AdvlabError
from advlab.evaluation.detection import evaluate_detection
from advlab.evaluation.spec import AttackSpec
from advlab.models import ImageClassifier
from advlab.reports.detection import summary_rows, write_detection_report

FPR = 0.05


@pytest.fixture(scope="module")
def clean_splits() -> tuple[torch.Tensor, torch.Tensor]:
    """800 images to fit the detector and 500 to test its FPR, disjoint from mnist_sample."""
    data = load_dataset("mnist-demo")
    taken = set(load_dataset("mnist-demo", n=256, seed=1).indices.tolist())
    free = np.array([i for i, index in enumerate(data.indices.tolist()) if index not in taken])
    free = np.random.default_rng(0).permutation(free)
    return data.subset(free[:800]).images, data.subset(free[800:1300]).images


@pytest.fixture(scope="module")
def detector(
    small_mnist_model: ImageClassifier, clean_splits: tuple[torch.Tensor, torch.Tensor]
) -> BinaryDetector:
    # 600 training images attacked with a short PGD; 200 set the threshold.
    attack = PGD(eps=0.3, alpha=0.03, steps=10, seed=0)
    return BinaryDetector(small_mnist_model, attack, fpr=FPR, epochs=40).fit(clean_splits[0])


def _fooled(detector: BinaryDetector, attack, sample: tuple[torch.Tensor, torch.Tensor]):
    result = attack(detector.model, *sample)
    return result.adversarial[result.success]


def test_features_are_the_input_of_the_last_linear_layer(
    detector: BinaryDetector, mnist_sample: tuple[torch.Tensor, torch.Tensor]
) -> None:
    model = detector.model
    assert detector.layer == "net.classifier.3"  # Linear(hidden, 10) of MnistCNN
    images = mnist_sample[0][:8]
    with torch.no_grad():
        logits, features = detector.features(images)
        by_hand = model.net.classifier[:3](model.net.features(model.normalize(images)))
        assert torch.equal(logits, model(images))
    assert features.shape == (8, 32) and torch.allclose(features, by_hand)
    assert feature_layer(model, "net.classifier.1")[0] == "net.classifier.1"


def test_separates_clean_from_pgd_at_the_target_fpr(
    detector: BinaryDetector,
    clean_splits: tuple[torch.Tensor, torch.Tensor],
    mnist_sample: tuple[torch.Tensor, torch.Tensor],
) -> None:
    assert detector.trained_on == {"train_images": 600, "calibration_images": 200}
    held_out = float(detector.detect(clean_splits[1]).float().mean())
    # 200 calibration and 500 test images: the two estimates are each ~0.01-0.015 off.
    assert abs(held_out - FPR) < 0.04
    # A new PGD (other seed, more steps) on images the detector never saw.
    adversarial = _fooled(detector, PGD(eps=0.3, alpha=0.01, steps=20, seed=1), mnist_sample)
    assert adversarial.shape[0] > 200
    _, _, area = detector.roc(clean_splits[1], adversarial)
    # Measured: AUC 0.95, 63% of the fooled examples flagged (the narrow test CNN).
    assert area > 0.9
    assert float(detector.detect(adversarial).float().mean()) > 0.5


def test_save_and_load_give_the_same_scores(
    detector: BinaryDetector,
    tmp_path: Path,
    mnist_sample: tuple[torch.Tensor, torch.Tensor],
    small_mnist_model: ImageClassifier,
) -> None:
    path = detector.save(tmp_path / "detector.safetensors")
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar["threshold"] == detector.threshold and sidecar["layer"] == detector.layer
    assert sidecar["attacks"][0]["attack"] == "pgd"
    loaded = BinaryDetector.load(path, small_mnist_model)
    images = mnist_sample[0][:64]
    assert torch.equal(loaded.score(images), detector.score(images))
    assert loaded.threshold == detector.threshold and loaded.hidden == detector.hidden
    other = ImageClassifier(
        nn.Sequential(nn.Flatten(), nn.Linear(784, 10)),
        name="other",
        input_shape=(1, 28, 28),
        num_classes=10,
    )
    with pytest.raises(AdvlabError, match="other weights"):
        BinaryDetector.load(path, other)


def test_adaptive_attack_lowers_the_detection_rate(
    detector: BinaryDetector, mnist_sample: tuple[torch.Tensor, torch.Tensor]
) -> None:
    images, labels = mnist_sample[0][:96], mnist_sample[1][:96]
    plain = PGD(eps=0.3, steps=10, seed=0)(detector.model, images, labels)
    aware = DetectorAwarePGD(detector, eps=0.3, steps=10, seed=0)(detector.model, images, labels)
    assert plain.success_rate > 0.9 and aware.success_rate > 0.9
    plain_rate = float(detector.detect(plain.adversarial[plain.success]).float().mean())
    aware_rate = float(detector.detect(aware.adversarial[aware.success]).float().mean())
    # Measured: 83% of plain PGD's examples flagged, 1% of the aware attack's.
    assert aware_rate < plain_rate - 0.4
    # Within the ball and the box, like every attack's result.
    assert float((aware.adversarial - images).abs().max()) <= 0.3 + 1e-6


def test_evaluate_detection_counts_and_report(
    detector: BinaryDetector, tmp_path: Path, small_mnist_model: ImageClassifier
) -> None:
    data = load_dataset("mnist-demo", n=96, seed=7)
    evaluation = evaluate_detection(detector, data, [AttackSpec("fgsm")], [0.3], adaptive_steps=10,
                                    batch_size=64, seed=0, progress=False)  # fmt: skip
    plain, aware = evaluation.entry("fgsm", 0.3), evaluation.results[-1]
    assert aware.adaptive and aware.attack == "detector-aware-pgd" and not plain.adaptive
    assert evaluation.false_positive_rate == float(detector.detect(data.images).float().mean())
    for entry in (plain, aware):
        assert entry.fooled <= entry.attacked <= 96
        assert entry.attack_success_rate == pytest.approx(entry.fooled / entry.attacked)
        missed = entry.fooled * (1 - entry.detection_rate) / entry.attacked
        assert entry.evasion_rate == pytest.approx(missed)
        assert entry.roc["fpr"][0] == 0 and entry.roc["tpr"][-1] == 1 and 0 <= entry.auc <= 1
    assert aware.detection_rate < plain.detection_rate
    results = json.loads(json.dumps(evaluation.to_dict()))
    assert results["detector"]["threshold"] == detector.threshold
    assert results["seed"] == 0 and results["config"]["adaptive_steps"] == 10
    (row,) = summary_rows(results)
    assert row["adaptive_detection_rate"] == aware.detection_rate
    html = write_detection_report(results, tmp_path / "report.html").read_text()
    assert 'id="detection"' in html and "data:image/png;base64," in html
    assert f"{100 * plain.detection_rate:.2f}%" in html
    assert f"{100 * aware.detection_rate:.2f}%" in html


def test_errors(small_mnist_model: ImageClassifier, detector: BinaryDetector) -> None:
    with pytest.raises(AdvlabError, match="false positive rate"):
        BinaryDetector(small_mnist_model, fpr=1.5)
    untrained = BinaryDetector(small_mnist_model, FGSM(eps=0.1))
    with pytest.raises(AdvlabError, match="fit"):
        untrained.detect(torch.rand(2, 1, 28, 28))
    with pytest.raises(AdvlabError, match="fit"):
        DetectorAwarePGD(untrained)
    with pytest.raises(AdvlabError, match="no module"):
        BinaryDetector(small_mnist_model, layer="nope")
    with pytest.raises(AdvlabError, match="unknown detector"):
        build_detector("magnet", small_mnist_model)
    with pytest.raises(AdvlabError, match="safetensors"):
        detector.save("detector.pt")
