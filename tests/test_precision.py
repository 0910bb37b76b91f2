"""bfloat16 search with float32 verdicts: the same predictions, a bfloat16 gradient."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from helpers import run_cli
from torch import nn

import advlab.attacks.precision as precision
from advlab.attacks import PGD, Square, search_precision
from advlab.attacks.gradient import margin_loss
from advlab.attacks.precision import BFloat16Search, resolve
from advlab.attacks.search import search_model
from advlab.data import load_dataset
from advlab.errors import AdvlabError
from advlab.evaluation import AttackSpec, evaluate
from advlab.models import load_model


@pytest.fixture(scope="module")
def model() -> nn.Module:
    return load_model("mnist-cnn", device="cpu").eval()


@pytest.fixture(scope="module")
def sample() -> tuple[torch.Tensor, torch.Tensor]:
    data = load_dataset("mnist-demo", n=64, seed=3)
    return data.images, data.labels


def _on_the_boundary(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Points between each image and an adversarial example of it, bisected to where the
    float32 prediction changes: the top two logits there are ~1e-5 apart."""
    adversarial = PGD(eps=0.3, alpha=0.05, steps=20)(model, images, labels).adversarial
    with torch.no_grad():
        broken = model(adversarial).argmax(1) != labels
    x0, x1 = images[broken], adversarial[broken]
    low, high = torch.zeros(len(x0), 1, 1, 1), torch.ones(len(x0), 1, 1, 1)
    with torch.no_grad():
        for _ in range(30):
            middle = (low + high) / 2
            same = model(x0 + middle * (x1 - x0)).argmax(1) == labels[broken]
            low = torch.where(same[:, None, None, None], middle, low)
            high = torch.where(same[:, None, None, None], high, middle)
    return torch.cat([x0 + low * (x1 - x0), x0 + high * (x1 - x0)])


def test_predictions_are_the_float32_ones_even_on_the_decision_boundary(model, sample) -> None:
    points = _on_the_boundary(model, *sample)
    assert len(points) >= 40
    assert not isinstance(search_model(model, points[:8]), BFloat16Search)  # float32: off
    with search_precision("bfloat16"):
        search = search_model(model, points[:8])
    assert isinstance(search, BFloat16Search)
    with torch.no_grad():
        exact = model(points)
        got = search(points)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            raw = search.net(points).float()
    assert torch.equal(got.argmax(1), exact.argmax(1))
    # Without the float32 rows, bfloat16 alone gets some of these points wrong.
    assert (raw.argmax(1) != exact.argmax(1)).any()
    far = ~precision.near_boundary(exact, search.band.gap)
    assert not far.all()  # the bisected points are all near it ...
    clean = model(sample[0]).detach()
    assert precision.near_boundary(clean, search.band.gap).float().mean() < 0.2  # ... clean
    # images rarely: the band is a few times the first batch's error, at least MIN_GAP.
    assert precision.MIN_GAP <= search.band.gap < 0.1


def test_the_band_widens_to_the_errors_seen_near_the_boundary(model, sample) -> None:
    images, labels = sample
    ends = _on_the_boundary(model, images, labels)
    # Points at all distances from the boundary: shares of the way to the bisected ones.
    points = torch.cat([w * ends for w in torch.linspace(0.5, 1.0, 8).tolist()])

    class Skewed(nn.Module):  # errs by 8% of the logit range on class 0, never on class 1
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            logits = model(x)
            span = logits.amax(1, keepdim=True) - logits.amin(1, keepdim=True)
            return logits + 0.08 * span * F.one_hot(torch.zeros_like(logits[:, 0]).long(), 10)

    with torch.no_grad():
        exact = model(points).argmax(1)
        fixed = BFloat16Search(Skewed(), model, precision.Band(0.0))
        fixed.band.widen = lambda error: None  # type: ignore[method-assign]
        assert (fixed(points).argmax(1) != exact).any()  # a narrow band lets flips through
        search = BFloat16Search(Skewed(), model, precision.Band(0.0))
        assert search.band.gap == precision.MIN_GAP
        search(points)  # sees the error on the rows it recomputes, and widens
        assert search.band.gap >= precision.MARGIN * 0.07
        assert torch.equal(search(points).argmax(1), exact)


def test_the_gradient_is_bfloat16s_and_points_the_same_way(model, sample) -> None:
    images, labels = sample
    with search_precision("bfloat16"):
        search = search_model(model, images)
    grads = []
    for net in (model, search):
        x = images.clone().requires_grad_(True)
        # The margin: cross-entropy's gradient on a saturated softmax is float32 noise too.
        margin_loss(net(x), labels, targeted=False).sum().backward()
        grads.append(x.grad.flatten(1))
    cosine = F.cosine_similarity(grads[0], grads[1], dim=1)
    assert cosine.min() > 0.9 and not torch.equal(grads[0], grads[1])


def test_white_and_black_box_attacks_stay_in_bounds_and_are_judged_in_float32(
    model, sample
) -> None:
    images, labels = sample
    for attack in (PGD(eps=0.1, steps=10, seed=0), Square(eps=0.1, max_queries=50, seed=0)):
        with search_precision("float32"):
            reference = attack(model, images, labels)
        with search_precision("bfloat16"):
            result = attack(model, images, labels)
        adversarial = result.adversarial
        assert (adversarial - images).abs().amax() <= 0.1 + 1e-6
        assert 0 <= adversarial.min() <= adversarial.max() <= 1
        with torch.no_grad():
            judged = model(result.adversarial).argmax(1) != labels
        assert torch.equal(result.success.cpu(), judged)
        # Another search, as strong: within two of 64 images of float32's.
        assert abs(int(result.success.sum()) - int(reference.success.sum())) <= 2


def test_models_bfloat16_cannot_serve_are_searched_in_float32(model, sample, monkeypatch) -> None:
    images = sample[0][:8]

    class Pair(nn.Module):  # a classifier and a detector's score: not plain logits
        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return model(x), x.flatten(1).mean(1)

    with search_precision("bfloat16"):
        assert search_model(Pair().eval(), images) is not None
        assert not isinstance(search_model(Pair().eval(), images), BFloat16Search)
        monkeypatch.setattr(precision, "CHECK", 0.0)  # no model is that exact in bfloat16
        precision._checked.clear()
        assert not isinstance(search_model(model, images), BFloat16Search)
    assert resolve("float32", torch.device("cpu")) == "float32"
    assert resolve("auto", torch.device("cpu")) in ("float32", "bfloat16")
    with pytest.raises(AdvlabError, match="unknown precision 'fp8'"):
        with search_precision("fp8"):
            pass


def test_a_bfloat16_evaluation_is_its_own_run_with_the_same_numbers_to_an_image(
    model, tmp_path
) -> None:
    data = load_dataset("mnist-demo", n=64, seed=5)
    spec = [AttackSpec("pgd", params={"steps": 10})]
    runs = {p: evaluate(model, data, spec, [0.1], batch_size=32, progress=False, precision=p,
                        checks=False, examples=0) for p in ("float32", "bfloat16")}  # fmt: skip
    assert runs["float32"].run_id != runs["bfloat16"].run_id
    assert runs["bfloat16"].config["precision"] == "bfloat16"
    accuracy = {p: run.worst_case[0.1] for p, run in runs.items()}
    assert abs(accuracy["float32"] - accuracy["bfloat16"]) <= 2 / 64


def test_the_cli_names_a_bad_precision_in_one_line(capsys, tmp_path) -> None:
    code, out, err = run_cli(["evaluate", "--precision", "fp8", "--out", str(tmp_path)], capsys)
    assert code != 0 and "precision" in err and "Traceback" not in err


def test_auto_searches_in_bfloat16_only_where_the_model_runs_faster_in_it(
    model, sample, monkeypatch
) -> None:
    images, cpu = sample[0][:16], torch.device("cpu")
    monkeypatch.setattr(precision, "fast_bfloat16", lambda device: True)
    monkeypatch.setattr(precision, "_timed", type(precision._timed)())
    monkeypatch.setattr(precision, "WORTH", 0.0)  # no pass is that fast: float32
    assert resolve("auto", cpu, model, images) == "float32"
    monkeypatch.setattr(precision, "WORTH", 1e9)
    assert resolve("auto", cpu, model, images) == "float32"  # timed once per weights
    monkeypatch.setattr(precision, "_timed", type(precision._timed)())
    assert resolve("auto", cpu, model, images) == "bfloat16"
    assert resolve("auto", cpu) == "bfloat16"  # no model to time: the device decides
    monkeypatch.setattr(precision, "fast_bfloat16", lambda device: False)
    assert resolve("auto", cpu, model, images) == "float32"


def test_an_auto_evaluation_records_the_precision_it_searched_in(model, monkeypatch) -> None:
    data = load_dataset("mnist-demo", n=16, seed=5)
    monkeypatch.setattr(precision, "fast_bfloat16", lambda device: True)
    spec = [AttackSpec("fgsm")]
    for worth, expected in ((0.0, "float32"), (1e9, "bfloat16")):
        monkeypatch.setattr(precision, "WORTH", worth)
        monkeypatch.setattr(precision, "_timed", type(precision._timed)())
        run = evaluate(model, data, spec, [0.1], batch_size=16, progress=False, precision="auto",
                       checks=False, examples=0)  # fmt: skip
        assert run.config["precision"] == expected
