"""Preprocessing and randomized defenses, and the adaptive attacks (BPDA, EOT) that test them."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from advlab.attacks import PGD, frozen_eval, get_attack
from advlab.attacks.norms import perturbation_norms
from advlab.defenses import (
    EOT,
    BitDepthReduction,
    Compose,
    DefendedClassifier,
    GaussianNoise,
    JpegCompression,
    MedianSmoothing,
    RandomizedDropout,
    RandomizedNoise,
    RandomResizePad,
    StraightThrough,
    accuracy,
    adaptive_model,
    apply_defense,
    bpda,
    defend,
    eot,
    evaluate_adaptive,
    get_defense,
    parse_defense,
    registered_defenses,
)
from advlab.errors import AdvlabError
from advlab.models import ImageClassifier

N_ATTACK = 128  # images per attack comparison: enough for a stable gap, fast on 2 cores

PREPROCESSORS = [
    JpegCompression(75),
    JpegCompression(10),
    BitDepthReduction(1),
    BitDepthReduction(4),
    MedianSmoothing(3),
    MedianSmoothing(5),
    GaussianNoise(0.3),
    RandomResizePad(0.7, 1.0),
    Compose(GaussianNoise(0.05), MedianSmoothing(3), JpegCompression(50)),
]


def _input_grad(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    x = images.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(F.cross_entropy(model(x), labels), x)
    return grad


# -- preprocessing ------------------------------------------------------------------------
@pytest.mark.parametrize("layer", PREPROCESSORS, ids=lambda layer: repr(layer).split("(")[0])
@pytest.mark.parametrize("channels", [1, 3])
def test_preprocessing_keeps_shape_dtype_and_range(layer: torch.nn.Module, channels: int) -> None:
    torch.manual_seed(0)
    images = torch.rand(6, channels, 28, 28)
    images[0] = 0.0
    images[1] = 1.0
    out = layer(images)
    assert out.shape == images.shape and out.dtype == images.dtype
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_jpeg_is_a_real_jpeg_round_trip(mnist_sample: tuple[torch.Tensor, torch.Tensor]) -> None:
    from torchvision.io import decode_jpeg, encode_jpeg

    images = mnist_sample[0][:4]
    colour = torch.rand(2, 3, 16, 16)
    for batch in (images, colour):
        out = JpegCompression(quality=30)(batch)
        assert float((out - batch).abs().max()) > 0.1  # it changes the image
        # Independent reference: torchvision's own libjpeg round trip at the same quality.
        pixels = list((batch * 255).round().to(torch.uint8))
        reference = torch.stack(decode_jpeg(encode_jpeg(pixels, quality=30))).float() / 255
        assert float((reference - out).abs().max()) <= 1.5 / 255
    # Higher quality stays closer to the original.
    error = [float((JpegCompression(q)(images) - images).abs().mean()) for q in (10, 50, 95)]
    assert error[0] > error[1] > error[2]


def test_bit_depth_quantizes_to_the_grid() -> None:
    images = torch.rand(4, 3, 8, 8)
    for bits in (1, 3, 8):
        out = BitDepthReduction(bits)(images)
        levels = 2**bits - 1
        assert torch.allclose(out * levels, (out * levels).round(), atol=1e-5)
        assert len(torch.unique(out)) <= levels + 1
        assert float((out - images).abs().max()) <= 0.5 / levels + 1e-6
    assert set(BitDepthReduction(1)(images).unique().tolist()) <= {0.0, 1.0}


def test_median_filter_matches_a_direct_median() -> None:
    images = torch.rand(2, 1, 6, 7)
    out = MedianSmoothing(3)(images)
    padded = F.pad(images, (1, 1, 1, 1), mode="reflect")
    assert torch.equal(out[0, 0, 2, 3], padded[0, 0, 2:5, 3:6].median())
    salt = torch.zeros(1, 1, 9, 9)
    salt[0, 0, 4, 4] = 1.0  # a single bright pixel: removed
    assert float(MedianSmoothing(3)(salt).max()) == 0.0


def test_jpeg_and_bits_change_the_models_numbers(
    small_mnist_model: ImageClassifier, mnist_sample: tuple[torch.Tensor, torch.Tensor]
) -> None:
    images, labels = mnist_sample[0][:64], mnist_sample[1][:64]
    with torch.no_grad():
        clean = small_mnist_model(images)
        for layer in (JpegCompression(20), BitDepthReduction(1)):
            defended = defend(small_mnist_model, layer)
            logits = defended(images)
            assert float((logits - clean).abs().max()) > 0.1
            assert torch.equal(logits, small_mnist_model(layer(images)))
            # The defense keeps the model useful on clean images.
            assert accuracy(defended, images, labels) > 0.8


# -- the defended model is still a model --------------------------------------------------
def test_defended_classifier_is_an_image_classifier(small_mnist_model: ImageClassifier) -> None:
    defended = defend(small_mnist_model, JpegCompression(75), BitDepthReduction(4))
    assert isinstance(defended, ImageClassifier)
    for attribute in ("input_shape", "num_classes", "class_names", "mean", "std"):
        assert getattr(defended, attribute) == getattr(small_mnist_model, attribute)
    assert defended.name == "mnist-cnn+jpeg(quality=75)+bits(bits=4)"
    assert defended.net is small_mnist_model.net  # shared, not copied
    assert not defended.differentiable and not defended.randomized
    # Wrapping again chains the preprocessing; the new step runs first.
    again = defend(defended, MedianSmoothing(3))
    steps = again.preprocess.steps
    assert [type(s) for s in steps] == [MedianSmoothing, JpegCompression, BitDepthReduction]
    images = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        expected = small_mnist_model(BitDepthReduction(4)(JpegCompression(75)(images)))
        assert torch.equal(defended(images), expected)
    with pytest.raises(AdvlabError, match="ImageClassifier"):
        defend(torch.nn.Linear(2, 2), BitDepthReduction(4))  # type: ignore[arg-type]


def test_randomized_defenses_stay_random_in_eval_and_leave_the_model_alone(
    small_mnist_model: ImageClassifier,
) -> None:
    model = small_mnist_model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    structure = repr(model)
    images = torch.rand(8, 1, 28, 28)
    for defended in (
        RandomizedDropout(model, p=0.3),
        RandomizedDropout(model, p=0.3, where="input"),
        RandomizedNoise(model, sigma=0.5),
        defend(model, GaussianNoise(0.2)),
        defend(model, RandomResizePad(0.6, 0.9)),
    ):
        assert defended.randomized and defended.differentiable
        with frozen_eval(defended), torch.no_grad():  # eval mode, as attacks run it
            assert not torch.equal(defended(images), defended(images))
        # The wrapped model's weights are shared, not copied.
        assert {p.data_ptr() for p in defended.parameters()} == {
            p.data_ptr() for p in model.parameters()
        }
    assert repr(model) == structure
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    with torch.no_grad():
        assert torch.equal(model(images), model(images))
    with pytest.raises(AdvlabError, match="position"):
        RandomizedDropout(model, where="middle")  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["fgsm", "pgd", "bim", "mim", "deepfool"])
def test_every_white_box_attack_runs_on_defended_models(
    name: str, small_mnist_model: ImageClassifier, mnist_sample: tuple[torch.Tensor, torch.Tensor]
) -> None:
    images, labels = mnist_sample[0][:16], mnist_sample[1][:16]
    defended = apply_defense(
        small_mnist_model,
        "resize-pad:min_scale=0.9+noise:sigma=0.05+median+bits:bits=5+jpeg:quality=90"
        "+randomized-dropout:p=0.1",
    )
    kwargs: dict[str, int] = {"steps": 3} if name != "fgsm" else {}
    if name == "deepfool":
        kwargs["num_candidates"] = 3
    attack = get_attack(name)(eps=0.2, norm="linf", **kwargs)
    for target in (defended, adaptive_model(defended, samples=2)):
        result = attack(target, images, labels)
        assert result.adversarial.shape == images.shape
        assert float(perturbation_norms(result.adversarial, images)["linf"].max()) <= 0.2 + 1e-6
        assert float(result.adversarial.min()) >= 0 and float(result.adversarial.max()) <= 1
    assert all(p.requires_grad for p in small_mnist_model.parameters())
    assert not small_mnist_model.training


# -- BPDA ---------------------------------------------------------------------------------
@pytest.mark.parametrize("layer", [BitDepthReduction(1), JpegCompression(75)])
def test_non_differentiable_defenses_mask_gradients_and_bpda_restores_them(
    layer: torch.nn.Module,
    small_mnist_model: ImageClassifier,
    mnist_sample: tuple[torch.Tensor, torch.Tensor],
) -> None:
    images, labels = mnist_sample[0][:16], mnist_sample[1][:16]
    defended = defend(small_mnist_model, layer)
    assert float(_input_grad(defended, images, labels).abs().sum()) == 0.0
    surrogate = bpda(defended)
    assert isinstance(surrogate.preprocess, StraightThrough) and surrogate.differentiable
    with torch.no_grad():
        assert torch.equal(surrogate(images), defended(images))  # same forward
    grad = _input_grad(surrogate, images, labels)
    # Straight through: the model's gradient at the preprocessed input.
    expected = _input_grad(small_mnist_model, layer(images), labels)
    assert float(grad.abs().sum()) > 0 and torch.allclose(grad, expected)


@pytest.mark.parametrize(
    ("layer", "n", "min_gap"),
    [(BitDepthReduction(1), N_ATTACK, 0.15), (JpegCompression(75), 64, 0.6)],
    ids=["bits1", "jpeg75"],
)
def test_bpda_breaks_what_plain_pgd_cannot(
    layer: torch.nn.Module,
    n: int,
    min_gap: float,
    small_mnist_model: ImageClassifier,
    mnist_sample: tuple[torch.Tensor, torch.Tensor],
) -> None:
    images, labels = mnist_sample[0][:n], mnist_sample[1][:n]
    defended = defend(small_mnist_model, layer)
    attack = PGD(eps=0.3, steps=15, seed=0)
    plain = evaluate_adaptive(attack, defended, images, labels, surrogate=defended)
    adaptive = evaluate_adaptive(attack, defended, images, labels)
    plain_acc, adaptive_acc = 1 - plain.success_rate, 1 - adaptive.success_rate
    # Masked gradients: plain PGD barely moves the defended model's accuracy...
    assert plain_acc > accuracy(defended, images, labels) - 0.05
    # ... BPDA brings it down substantially (measured: bits=1 0.95 -> 0.71, JPEG 0.94 -> 0).
    assert adaptive_acc < plain_acc - min_gap
    # Success is judged on the real defense, not on the surrogate.
    with torch.no_grad():
        fooled = defended(adaptive.adversarial).argmax(1) != labels
    assert torch.equal(adaptive.success, fooled)
    assert adaptive.surrogate_success is not None


# -- EOT ----------------------------------------------------------------------------------
def test_eot_averages_draws_and_shrinks_gradient_variance(
    small_mnist_model: ImageClassifier, mnist_sample: tuple[torch.Tensor, torch.Tensor]
) -> None:
    images, labels = mnist_sample[0][:32], mnist_sample[1][:32]
    defended = defend(small_mnist_model, GaussianNoise(0.3))
    surrogate = eot(defended, samples=16)
    assert isinstance(surrogate, EOT) and surrogate.input_shape == defended.input_shape
    torch.manual_seed(0)
    with torch.no_grad():
        draws = [defended(images) for _ in range(16)]
        torch.manual_seed(0)
        assert torch.allclose(surrogate(images), torch.stack(draws).mean(0), atol=1e-5)

    def spread(model: torch.nn.Module) -> float:
        grads = torch.stack([_input_grad(model, images, labels) for _ in range(8)])
        return float(grads.var(dim=0).sum())

    one, sixteen = spread(eot(defended, samples=1)), spread(surrogate)
    assert sixteen < one / 4  # 1 / 16 in expectation


def test_eot_pgd_beats_plain_pgd_on_a_noise_defense(
    small_mnist_model: ImageClassifier, mnist_sample: tuple[torch.Tensor, torch.Tensor]
) -> None:
    images, labels = mnist_sample[0][:N_ATTACK], mnist_sample[1][:N_ATTACK]
    defended = defend(small_mnist_model, GaussianNoise(0.3))
    assert isinstance(adaptive_model(defended), EOT)
    attack = PGD(eps=0.15, steps=5, seed=0)
    plain = attack(defended, images, labels).adversarial
    adaptive = evaluate_adaptive(attack, defended, images, labels, samples=16).adversarial
    torch.manual_seed(1)
    plain_acc = accuracy(defended, plain, labels, draws=16)
    adaptive_acc = accuracy(defended, adaptive, labels, draws=16)
    assert adaptive_acc < plain_acc - 0.05


def test_adaptive_model_follows_the_flags(small_mnist_model: ImageClassifier) -> None:
    model = small_mnist_model
    assert adaptive_model(model) is model
    median = defend(model, MedianSmoothing(3))
    assert adaptive_model(median) is median
    both = adaptive_model(defend(model, GaussianNoise(0.1), BitDepthReduction(3)), samples=4)
    assert isinstance(both, EOT) and both.samples == 4
    assert both.differentiable
    assert [type(s) for s in both.preprocess.steps] == [GaussianNoise, StraightThrough]
    with pytest.raises(AdvlabError, match="before eot"):
        bpda(eot(defend(model, BitDepthReduction(3))))


# -- registry and bad parameters ----------------------------------------------------------
def test_registry_parses_and_chains_in_order(small_mnist_model: ImageClassifier) -> None:
    names = {entry.name for entry in registered_defenses()}
    assert {"jpeg", "bits", "median", "noise", "resize-pad", "randomized-dropout"} <= names
    parsed = parse_defense("jpeg:quality=60+bits:bits=3")
    assert [(e.name, p) for e, p in parsed] == [("jpeg", {"quality": 60}), ("bits", {"bits": 3})]
    defended = apply_defense(small_mnist_model, "jpeg:quality=60+bits:bits=3")
    assert isinstance(defended, DefendedClassifier)
    assert [type(s) for s in defended.preprocess.steps] == [JpegCompression, BitDepthReduction]
    dropout = apply_defense(small_mnist_model, ["randomized-dropout:p=0.2", "noise:sigma=0.1"])
    assert dropout.randomized and "randomized-dropout(p=0.2" in dropout.name
    assert get_defense("resize_pad").parameters() == {"min_scale": 0.8, "max_scale": 1.0}


@pytest.mark.parametrize(
    "spec",
    ["nope", "jpeg:quality", "jpeg:q=5", "jpeg:quality=high", "bits:bits=2.5", "jpeg+", ""],
)
def test_registry_rejects_bad_specs(spec: str, small_mnist_model: ImageClassifier) -> None:
    with pytest.raises(AdvlabError):
        apply_defense(small_mnist_model, spec)


@pytest.mark.parametrize(
    "make",
    [
        lambda: JpegCompression(0),
        lambda: JpegCompression(101),
        lambda: JpegCompression(75.5),  # type: ignore[arg-type]
        lambda: BitDepthReduction(0),
        lambda: BitDepthReduction(9),
        lambda: MedianSmoothing(2),
        lambda: MedianSmoothing(0),
        lambda: GaussianNoise(-0.1),
        lambda: RandomResizePad(0.0, 1.0),
        lambda: RandomResizePad(0.9, 0.8),
        lambda: RandomResizePad(0.5, 1.5),
    ],
)
def test_bad_parameters_raise_advlab_error(make: object) -> None:
    with pytest.raises(AdvlabError):
        make()  # type: ignore[operator]


def test_bad_model_level_parameters_raise(small_mnist_model: ImageClassifier) -> None:
    for make in (
        lambda: RandomizedDropout(small_mnist_model, p=1.0),
        lambda: RandomizedNoise(small_mnist_model, sigma=-1.0),
        lambda: eot(small_mnist_model, samples=0),
        lambda: apply_defense(small_mnist_model, "median:size=4"),
    ):
        with pytest.raises(AdvlabError):
            make()
