"""Feature-squeezing detection: threshold, detection rate, ROC, and the adaptive attack."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from advlab.attacks import FGSM, PGD
from advlab.attacks.base import Attack
from advlab.data import load_dataset
from advlab.defenses import (
    DETECTORS,
    BinaryDetector,
    BitDepthReduction,
    DetectorAwarePGD,
    FeatureSqueezingDetector,
    MedianSmoothing,
    SqueezeAwarePGD,
    adaptive_attack,
    auc,
    build_detector,
    get_detector,
    plot_roc,
    roc_curve,
)
from advlab.errors import AdvlabError
from advlab.models import ImageClassifier

FPR = 0.05


@pytest.fixture(scope="module")
def clean_splits() -> tuple[torch.Tensor, torch.Tensor]:
    """1,000 images to fit the threshold and 500 to test it, disjoint from mnist_sample.

    The demo set is sorted by class, so the split is a random permutation.
    """
    data = load_dataset("mnist-demo")
    taken = set(load_dataset("mnist-demo", n=256, seed=1).indices.tolist())
    free = np.array([i for i, index in enumerate(data.indices.tolist()) if index not in taken])
    free = np.random.default_rng(0).permutation(free)
    return data.subset(free[:1000]).images, data.subset(free[1000:1500]).images


@pytest.fixture(scope="module")
def detector(
    small_mnist_model: ImageClassifier, clean_splits: tuple[torch.Tensor, torch.Tensor]
) -> FeatureSqueezingDetector:
    return FeatureSqueezingDetector(small_mnist_model, fpr=FPR).fit(clean_splits[0])


def _fooled(attack: Attack, model: ImageClassifier, sample: tuple[torch.Tensor, torch.Tensor]):
    result = attack(model, *sample)
    return result.adversarial[result.success]


def test_default_squeezers_follow_the_paper(small_mnist_model: ImageClassifier) -> None:
    detector = FeatureSqueezingDetector(small_mnist_model)
    bits, median = detector.squeezers
    assert isinstance(bits, BitDepthReduction) and bits.bits == 1  # grayscale: 1 bit
    assert isinstance(median, MedianSmoothing)


def test_scores_are_l1_distances_of_softmax(
    detector: FeatureSqueezingDetector, mnist_sample: tuple[torch.Tensor, torch.Tensor]
) -> None:
    images = mnist_sample[0][:8]
    scores = detector.score(images)
    with torch.no_grad():
        probs = detector.model(images).softmax(1)
        by_hand = torch.stack(
            [
                (probs - detector.model(s(images)).softmax(1)).abs().sum(1)
                for s in detector.squeezers
            ]
        ).amax(0)
    assert torch.allclose(scores, by_hand, atol=1e-6)
    assert float(scores.min()) >= 0 and float(scores.max()) <= 2


def test_false_positive_rate_on_held_out_clean_images(
    detector: FeatureSqueezingDetector, clean_splits: tuple[torch.Tensor, torch.Tensor]
) -> None:
    assert detector.threshold is not None and detector.threshold > 0
    rate = float(detector.detect(clean_splits[1]).float().mean())
    # 500 held-out images: binomial sd ~0.01, plus the threshold's own estimation error.
    assert abs(rate - FPR) < 0.04


@pytest.mark.parametrize(
    "attack", [FGSM(eps=0.3), PGD(eps=0.3, alpha=0.01, steps=20, seed=0)], ids=["fgsm", "pgd"]
)
def test_detects_most_attacks_at_eps_03(
    attack: Attack,
    detector: FeatureSqueezingDetector,
    small_mnist_model: ImageClassifier,
    mnist_sample: tuple[torch.Tensor, torch.Tensor],
    clean_splits: tuple[torch.Tensor, torch.Tensor],
) -> None:
    adversarial = _fooled(attack, small_mnist_model, mnist_sample)
    assert adversarial.shape[0] > 200
    assert float(detector.detect(adversarial).float().mean()) > 0.8
    fpr, tpr, area = detector.roc(clean_splits[1], adversarial)
    assert 0.9 < area <= 1.0
    assert fpr[0] == 0 and tpr[0] == 0 and fpr[-1] == 1 and tpr[-1] == 1
    assert bool((fpr[1:] >= fpr[:-1]).all() and (tpr[1:] >= tpr[:-1]).all())


def _outcome(
    attack: Attack, detector: FeatureSqueezingDetector, images: torch.Tensor, labels: torch.Tensor
) -> tuple[float, float]:
    """(fraction fooled, fraction fooled and not flagged by the detector)."""
    result = attack(detector.model, images, labels)
    flagged = detector.detect(result.adversarial)
    return result.success_rate, float((result.success & ~flagged).float().mean())


def test_squeeze_aware_attack_evades_the_detector_more_often(
    detector: FeatureSqueezingDetector, mnist_sample: tuple[torch.Tensor, torch.Tensor]
) -> None:
    images, labels = mnist_sample[0][:128], mnist_sample[1][:128]
    _, plain = _outcome(PGD(eps=0.3, alpha=0.01, steps=20, seed=0), detector, images, labels)
    fooled, aware = _outcome(SqueezeAwarePGD(detector, eps=0.3, steps=20, seed=0), detector,
                             images, labels)  # fmt: skip
    # Measured on these 128 images: 3% evade after plain PGD, 13% after the aware attack.
    # The 1-bit squeezer caps it: few of these images' binarized copies can be fooled.
    assert fooled > 0.9
    assert aware > plain + 0.06


def test_squeeze_aware_attack_breaks_a_median_only_detector(
    small_mnist_model: ImageClassifier,
    clean_splits: tuple[torch.Tensor, torch.Tensor],
    mnist_sample: tuple[torch.Tensor, torch.Tensor],
) -> None:
    detector = FeatureSqueezingDetector(small_mnist_model, [MedianSmoothing(3)]).fit(
        clean_splits[0]
    )
    images, labels = mnist_sample[0][:64], mnist_sample[1][:64]
    _, plain = _outcome(PGD(eps=0.3, alpha=0.01, steps=20, seed=0), detector, images, labels)
    _, aware = _outcome(SqueezeAwarePGD(detector, eps=0.3, steps=20, seed=0), detector,
                        images, labels)  # fmt: skip
    # Measured (128 images): plain PGD 61% evade, the aware attack 100%.
    assert plain < 0.8
    assert aware > 0.95


def test_roc_curve_by_hand() -> None:
    negatives = torch.tensor([0.1, 0.4, 0.35, 0.8])
    positives = torch.tensor([0.9, 0.4, 0.7])
    fpr, tpr, thresholds = roc_curve(negatives, positives)
    # Thresholds: inf, 0.9, 0.8, 0.7, 0.4 (a tie: one positive, one negative), 0.35, 0.1.
    assert torch.allclose(thresholds[1:], torch.tensor([0.9, 0.8, 0.7, 0.4, 0.35, 0.1]).double())
    assert torch.allclose(fpr, torch.tensor([0, 0, 1, 1, 2, 3, 4]).double() / 4)
    assert torch.allclose(tpr, torch.tensor([0, 1, 1, 2, 3, 3, 3]).double() / 3)
    # AUC = P(pos > neg) + P(tie) / 2 = (9 + 0.5) / 12.
    assert auc(fpr, tpr) == pytest.approx(9.5 / 12)
    assert auc(*roc_curve(torch.zeros(3), torch.ones(3))[:2]) == 1.0
    assert auc(*roc_curve(torch.ones(3), torch.zeros(3))[:2]) == 0.0
    assert auc(*roc_curve(torch.ones(3), torch.ones(5))[:2]) == 0.5


def test_plot_roc_writes_a_figure(tmp_path: Path) -> None:
    fpr, tpr, _ = roc_curve(torch.rand(50), torch.rand(50) + 0.5)
    path = tmp_path / "roc.png"
    figure = plot_roc({"pgd": (fpr, tpr, auc(fpr, tpr))}, path)
    assert isinstance(figure, Figure)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_detector_errors(small_mnist_model: ImageClassifier) -> None:
    detector = FeatureSqueezingDetector(small_mnist_model)
    with pytest.raises(AdvlabError, match="fit"):
        detector.detect(torch.rand(2, 1, 28, 28))
    with pytest.raises(AdvlabError, match="fit"):
        SqueezeAwarePGD(detector)
    with pytest.raises(AdvlabError):
        FeatureSqueezingDetector(small_mnist_model, fpr=0.0)
    with pytest.raises(AdvlabError):
        FeatureSqueezingDetector(small_mnist_model, squeezers=[])
    with pytest.raises(AdvlabError):
        roc_curve(torch.zeros(0), torch.ones(3))


def test_one_registry_of_detectors(small_mnist_model: ImageClassifier, detector) -> None:
    assert list(DETECTORS) == ["feature-squeezing", "binary"]
    # "squeeze", the name `advlab detect` used, still reads as feature squeezing.
    assert get_detector("squeeze") is get_detector("feature-squeezing")
    assert "squeeze" in DETECTORS
    built = build_detector("squeeze", small_mnist_model, 0.1, batch_size=32)
    assert isinstance(built, FeatureSqueezingDetector)
    assert (built.fpr, built.batch_size, built.threshold) == (0.1, 32, None)
    training = [FGSM(eps=0.1)]
    binary = build_detector("binary", small_mnist_model, training_attacks=training, seed=3)
    assert isinstance(binary, BinaryDetector)
    assert (binary.attacks, binary.seed, binary.fpr) == (training, 3, 0.05)
    # The entry's build(model, fpr) and aware(detector, eps, norm, steps, seed).
    entry = get_detector("feature-squeezing")
    assert isinstance(entry.build(small_mnist_model, 0.2), FeatureSqueezingDetector)
    aware = entry.aware(detector, 0.2, "l2", 7, 5)
    assert isinstance(aware, SqueezeAwarePGD)
    assert (aware.eps, aware.norm, aware.steps, aware.seed) == (0.2, "l2", 7, 5)
    assert isinstance(adaptive_attack(detector, 0.1), SqueezeAwarePGD)
    with pytest.raises(AdvlabError, match="unknown detector 'magnet'"):
        build_detector("magnet", small_mnist_model)
    with pytest.raises(AdvlabError, match="attacks a BinaryDetector"):
        DetectorAwarePGD(detector)  # type: ignore[arg-type]


def test_detector_config(detector: FeatureSqueezingDetector) -> None:
    assert detector.config() == {
        "detector": "feature-squeezing",
        "squeezers": ["bits(bits=1)", "median(size=3)"],
        "fpr": FPR,
        "threshold": detector.threshold,
    }


def test_an_interrupted_detection_evaluation_resumes_from_the_store(
    detector: FeatureSqueezingDetector, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from advlab.evaluation import AttackSpec, ResultStore
    from advlab.evaluation import detection as detection_module

    data = load_dataset("mnist-demo", n=24, seed=5)
    original = detection_module._run_one
    calls: list[str] = []
    interrupt_at = 2

    def counted(*args, **kwargs):
        calls.append(args[2])  # the attack key
        if len(calls) == interrupt_at:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    def run(store: ResultStore | None):
        return detection_module.evaluate_detection(
            detector, data, [AttackSpec("fgsm")], [0.1, 0.2], adaptive_steps=3,
            batch_size=16, progress=False, store=store,
        )  # fmt: skip

    def numbers(evaluation) -> dict:
        out = evaluation.to_dict()
        out.pop("seconds")
        for entry in out["results"]:
            entry.pop("seconds")
        return out

    reference = run(None)
    monkeypatch.setattr(detection_module, "_run_one", counted)
    with ResultStore(tmp_path / "store.sqlite") as store:
        with pytest.raises(KeyboardInterrupt):
            run(store)
        (stored,) = store.list_runs()
        assert (stored["status"], stored["units_done"], stored["units_total"]) == (
            "interrupted", 1, 4,
        )  # fmt: skip
        calls.clear()
        interrupt_at = 0
        resumed = run(store)
        assert len(calls) == 3  # the first entry came from the store
        assert numbers(resumed) == numbers(reference)
        assert store.get_run(stored["run_id"])["results"] == [
            entry.to_dict() for entry in resumed.results
        ]
