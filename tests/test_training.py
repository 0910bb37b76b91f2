"""advlab.training: config validation, the loop, checkpoints, resume, exclusion, the zoo model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from pydantic import ValidationError
from safetensors.torch import load_file
from torch import nn

from advlab.attacks import FGSM, PGD
from advlab.data import load_dataset
from advlab.errors import AdvlabError
from advlab.models import ImageClassifier, load_model
from advlab.reports.training import write_training_report as write_report
from advlab.training import (
    AdversarialStep,
    DistillationStep,
    StandardStep,
    TradesStep,
    TrainConfig,
    evaluate_accuracy,
    load_config,
    make_training_step,
    train,
)
from advlab.training.config import AdversarialTrainingConfig
from advlab.training.data import augment_batch, image_hashes, prepare_data
from advlab.training.schedule import learning_rate


def tiny(out_dir: Path, data_dir: Path, **overrides: Any) -> dict[str, Any]:
    """A config that trains in about a second on 2 cores."""
    config: dict[str, Any] = {
        "model": "mnist-cnn", "arch_kwargs": {"width": 8, "hidden": 32}, "dataset": "mnist",
        "data_dir": str(data_dir), "epochs": 2, "batch_size": 64, "lr": 3e-3,
        "n_train": 1500, "n_val": 1000, "out_dir": str(out_dir), "name": "tiny",
        "num_threads": 1,  # a shared 2-core machine runs tiny models faster on one thread
    }  # fmt: skip
    return {**config, **overrides}


# --- configuration ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("epochs", -1, "'epochs'"),
        ("model", "no-such-net", "unknown model 'no-such-net'"),
        ("dataset", "svhn", "unknown data set 'svhn'"),
        ("optimizer", "rmsprop", "'optimizer'"),
        ("schedule", "linear", "'schedule'"),
        ("val_split", 1.5, "fraction"),
        ("device", "tpu", "'device'"),
        ("epoch", 3, "unknown training option 'epoch'"),
    ],
)
def test_bad_config_values_give_one_line_errors(field: str, value: Any, fragment: str) -> None:
    with pytest.raises(AdvlabError) as caught:
        load_config({field: value})
    message = str(caught.value)
    assert fragment in message
    assert "\n" not in message
    with pytest.raises(ValidationError):  # direct construction: pydantic's own error
        TrainConfig.model_validate({field: value})


def test_config_defaults_and_yaml(tmp_path: Path) -> None:
    file = tmp_path / "run.yaml"
    file.write_text("model: mnist-mlp\noptimizer: sgd\nval_split: 0.1\nepochs: 3\n")
    config = load_config(file)
    assert config.lr == 0.1  # the SGD default
    assert config.name == "mnist-mlp" and config.out_dir == Path("runs/mnist-mlp")
    assert config.val_split == 0.1 and config.dataset_name == "mnist"
    assert load_config({"optimizer": "adam"}).lr == 1e-3
    with pytest.raises(AdvlabError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(AdvlabError, match="pixel units"):
        load_config({"adversarial": {"method": "pgd", "eps": 8}})


def test_distillation_and_adversarial_training_do_not_combine() -> None:
    config = {"adversarial": {"method": "pgd", "eps": 0.3}, "distill_from": "mnist-cnn"}
    with pytest.raises(AdvlabError, match="cannot be combined"):
        load_config(config)


def test_schedules() -> None:
    assert learning_rate("constant", 0.1, 50, 100) == 0.1
    assert learning_rate("cosine", 0.1, 0, 100) == pytest.approx(0.1)
    assert learning_rate("cosine", 0.1, 50, 100) == pytest.approx(0.05)
    assert learning_rate("cosine", 0.1, 100, 100) == pytest.approx(0.0)
    assert [learning_rate("step", 1.0, t, 100) for t in (49, 50, 75)] == pytest.approx(
        [1.0, 0.1, 0.01]
    )
    cyclic = [learning_rate("cyclic", 1.0, t, 100) for t in range(101)]
    assert cyclic[0] == 0.0 and cyclic[40] == pytest.approx(1.0) and cyclic[100] == 0.0
    assert cyclic[20] == pytest.approx(0.5) and cyclic[70] == pytest.approx(0.5)
    onecycle = [learning_rate("onecycle", 1.0, t, 100) for t in range(101)]
    assert onecycle[0] == pytest.approx(0.04) and max(onecycle) == pytest.approx(1.0)
    assert onecycle.index(max(onecycle)) == 30 and onecycle[-1] == pytest.approx(0.0)


# --- steps and augmentation ----------------------------------------------------------------


def test_augmentation_crops_and_flips_reproducibly() -> None:
    pixels = torch.randint(1, 256, (16, 3, 32, 32), dtype=torch.uint8)
    first = augment_batch(pixels, torch.Generator().manual_seed(3))
    again = augment_batch(pixels, torch.Generator().manual_seed(3))
    assert first.dtype == torch.uint8 and first.shape == pixels.shape
    assert torch.equal(first, again)
    assert not torch.equal(first, pixels)
    # Each output is a shifted (maybe mirrored) window of its input.
    for out, src in zip(first, pixels, strict=True):
        window = out[:, 8:24, 8:24]  # always inside the source for shifts of at most 4
        candidates = [src, src.flip(-1)]
        assert any(
            torch.equal(window, c[:, 8 + dy : 24 + dy, 8 + dx : 24 + dx])
            for c in candidates
            for dy in range(-4, 5)
            for dx in range(-4, 5)
        )
    gray = torch.randint(1, 256, (4, 1, 28, 28), dtype=torch.uint8)
    shifted = augment_batch(gray, torch.Generator().manual_seed(0))
    assert shifted.shape == gray.shape and (shifted == 0).any()  # zero padding came in


def test_adversarial_step_crafts_in_eval_mode_and_trains_on_the_result() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
        nn.Linear(4 * 28 * 28, 10),
    )  # fmt: skip
    model = ImageClassifier(net, name="bn", input_shape=(1, 28, 28), num_classes=10)
    model.train()
    images = torch.rand(8, 1, 28, 28)
    labels = torch.randint(0, 10, (8,))
    batchnorm = net[1]
    assert isinstance(batchnorm, nn.BatchNorm2d)
    output = AdversarialStep(PGD(eps=0.1, steps=3))(model, images, labels)
    assert model.training  # given back in train mode
    # The attack's 3 + 1 forward passes ran in eval mode; only the loss pass counts.
    assert int(batchnorm.num_batches_tracked) == 1
    assert all(p.requires_grad for p in model.parameters())
    output.loss.backward()
    assert net[0].weight.grad is not None


def test_adversarial_step_raises_the_loss(small_mnist_model: ImageClassifier) -> None:
    data = load_dataset("mnist-demo", n=128, seed=5)
    clean = StandardStep()(small_mnist_model, data.images, data.labels).loss
    step = make_training_step(AdversarialTrainingConfig(method="fgsm-rs", eps=0.2))
    assert isinstance(step, AdversarialStep) and isinstance(step.attack, FGSM)
    adversarial = step(small_mnist_model, data.images, data.labels).loss
    assert adversarial.item() > clean.item() + 0.5


def test_trades_step_perturbs_within_the_ball_and_adds_a_kl_term(
    small_mnist_model: ImageClassifier,
) -> None:
    data = load_dataset("mnist-demo", n=64, seed=2)
    step = make_training_step(AdversarialTrainingConfig(method="trades", eps=0.2, steps=5))
    assert isinstance(step, TradesStep)
    small_mnist_model.train()
    adversarial = step.perturb(small_mnist_model, data.images)
    assert small_mnist_model.training  # crafted in eval mode, given back in train mode
    assert (adversarial - data.images).abs().max() <= 0.2 + 1e-6
    assert adversarial.min() >= 0 and adversarial.max() <= 1
    output = step(small_mnist_model, data.images, data.labels)
    clean = StandardStep()(small_mnist_model, data.images, data.labels)
    assert torch.allclose(output.logits, clean.logits)  # TRADES reports the clean logits
    assert output.loss.item() > clean.loss.item() + 0.05  # the KL term to x' is positive
    step.set_eps(0.0)
    assert torch.equal(step.perturb(small_mnist_model, data.images), data.images)


def test_eps_warm_up_reaches_the_adversarial_step() -> None:
    step = make_training_step(AdversarialTrainingConfig(method="fgsm-rs", eps=0.3, alpha=0.375))
    assert isinstance(step, AdversarialStep)
    step.set_eps(0.15)
    assert isinstance(step.attack, FGSM) and step.attack.eps == 0.15
    assert step.attack.alpha == pytest.approx(0.1875)  # alpha scales with eps
    step.set_eps(0.0)
    assert step.attack.eps == 0.0


def test_distillation_step_fits_soft_labels_at_temperature(
    small_mnist_model: ImageClassifier,
) -> None:
    data = load_dataset("mnist-demo", n=32, seed=4)
    step = DistillationStep(small_mnist_model, temperature=20.0)
    # A student equal to its teacher sits at the minimum: the teacher's entropy at T.
    output = step(small_mnist_model, data.images, data.labels)
    soft = torch.softmax(small_mnist_model(data.images).detach() / 20.0, dim=1)
    entropy = -(soft * soft.log()).sum(1).mean()
    assert output.loss.item() == pytest.approx(entropy.item(), rel=1e-4)
    assert not any(p.requires_grad for p in step.teacher.parameters())


# --- training runs (need ADVLAB_DATA_DIR for MNIST's training split) ------------------------


def test_adversarial_training_measures_robust_accuracy_and_writes_a_report(
    tmp_path: Path, data_dir: Path
) -> None:
    extra = {
        "adversarial": {"method": "fgsm-rs", "eps": 0.1, "warmup_epochs": 1, "val_n": 200,
                        "val_steps": 5},
        "n_train": 800, "n_val": 300,
    }  # fmt: skip
    result = train(tiny(tmp_path / "r", data_dir, **extra), progress=False, report=write_report)
    first, last = result.history
    assert first["eps"] == pytest.approx(0.1 * (len(range(0, 800, 64)) - 1) / 13, rel=0.2)
    assert last["eps"] == 0.1
    for record in result.history:
        assert 0 <= record["val_robust_accuracy"] < record["val_accuracy"]
    best = json.loads((tmp_path / "r" / "best.json").read_text())
    chosen = max(result.history, key=lambda r: r["val_robust_accuracy"])
    assert best["epoch"] == chosen["epoch"] == result.best_epoch
    assert best["metrics"]["val_robust_accuracy"] == chosen["val_robust_accuracy"]
    report = (tmp_path / "r" / "report.html").read_text()
    assert "robust val acc" in report and f"{last['val_robust_accuracy']:.2%}" in report
    assert "data:image/png;base64," in report


def test_robust_validation_runs_at_val_eps(tmp_path: Path, data_dir: Path) -> None:
    from advlab.training import validation as trainer_module

    seen: list[float] = []

    class RecordingPGD(PGD):
        def __init__(self, eps: float, **kwargs: Any) -> None:
            seen.append(eps)
            super().__init__(eps, **kwargs)

    config = tiny(tmp_path / "v", data_dir, epochs=1, n_train=200, n_val=100,
                  adversarial={"method": "fgsm-rs", "eps": 0.2, "val_eps": 0.05, "val_n": 50,
                               "val_steps": 2})  # fmt: skip
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(trainer_module, "PGD", RecordingPGD)
        train(config, progress=False, report=write_report)
    assert seen == [0.05]
    best = json.loads((tmp_path / "v" / "best.json").read_text())
    assert best["metrics"]["val_robust_attack"].startswith("pgd eps=0.05 steps=2")
    assert "at eps 0.05 (linf)" in (tmp_path / "v" / "report.html").read_text()
    with pytest.raises(AdvlabError, match="pixel units"):
        load_config({"adversarial": {"method": "pgd", "eps": 0.1, "val_eps": 8}})


def test_catastrophic_overfitting_is_reported_and_stops_the_run(
    tmp_path: Path, data_dir: Path
) -> None:
    class Collapse:
        """Training step stand-in whose robust accuracy the fake measure below reports."""

        def __call__(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor):
            return StandardStep()(model, images, labels)

    robust = iter([0.7, 0.75, 0.1, 0.8])
    config = tiny(tmp_path / "co", data_dir, epochs=4, n_train=300, n_val=100,
                  adversarial={"method": "fgsm-rs", "eps": 0.1, "val_n": 50})  # fmt: skip
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            "advlab.training.trainer._Run._robust_accuracy", lambda self, *a: next(robust)
        )
        result = train(config, progress=False, step=Collapse(), report=write_report)
    assert [r["epoch"] for r in result.history] == [1, 2, 3]  # stopped after the collapse
    assert result.history[-1]["catastrophic_overfitting"] == 1.0
    assert result.stopped is not None and "catastrophic overfitting at epoch 3" in result.stopped
    assert result.best_epoch == 2
    assert "Catastrophic overfitting detected" in (tmp_path / "co" / "report.html").read_text()
    again = train(config, progress=False, step=Collapse())  # a rerun only reports
    assert again.epochs_run == 0 and again.stopped == result.stopped


def test_training_learns_and_checkpoints_every_epoch(tmp_path: Path, data_dir: Path) -> None:
    out = tmp_path / "run"
    seen: list[dict[str, Any]] = []

    def after_epoch(record: dict[str, float]) -> None:
        sidecar = json.loads((out / "last.json").read_text())
        history = json.loads((out / "history.json").read_text())
        seen.append({"record": record, "sidecar": sidecar, "history": history})

    result = train(tiny(out, data_dir), progress=False, on_epoch_end=after_epoch)
    assert [item["sidecar"]["epoch"] for item in seen] == [1, 2]
    assert [len(item["history"]) for item in seen] == [1, 2]
    assert result.final_val_accuracy > 0.6  # chance is 0.1
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    sidecar = seen[-1]["sidecar"]
    assert sidecar["architecture"] == "mnist-cnn" and sidecar["name"] == "tiny"
    assert sidecar["arch_kwargs"] == {"width": 8, "hidden": 32}
    assert sidecar["training"]["n_train"] == 1500 and len(sidecar["history"]) == 2
    assert sidecar["data_sizes"] == {"train": 1500, "val": 1000, "excluded": 0}
    assert "test_accuracy" not in sidecar["metrics"]  # validated on a subset only
    assert {"last.safetensors", "best.safetensors", "state.pt"} <= {p.name for p in out.iterdir()}

    model = load_model(str(result.best_path))
    assert model.name == "tiny" and not model.training
    val = load_dataset("mnist", split="test", n=1000, data_dir=data_dir)
    best = json.loads((out / "best.json").read_text())
    assert evaluate_accuracy(model, val, torch.device("cpu")) == best["metrics"]["val_accuracy"]
    assert best["metrics"]["val_accuracy"] == result.best_val_accuracy


def test_resume_matches_an_uninterrupted_run(tmp_path: Path, data_dir: Path) -> None:
    # Augmentation and FGSM-RS draw random numbers: both RNG streams must resume exactly.
    extra = {"augment": True, "adversarial": {"method": "fgsm-rs", "eps": 0.1}, "n_train": 600}
    straight = train(tiny(tmp_path / "a", data_dir, **extra), progress=False)

    def interrupt(record: dict[str, float]) -> None:
        if record["epoch"] == 1:
            raise KeyboardInterrupt

    config = tiny(tmp_path / "b", data_dir, **extra)
    with pytest.raises(KeyboardInterrupt):
        train(config, progress=False, on_epoch_end=interrupt)
    assert json.loads((tmp_path / "b" / "last.json").read_text())["epoch"] == 1
    resumed = train(config, progress=False)
    assert (resumed.resumed_from, resumed.epochs_run) == (1, 1)

    weights_a = load_file(str(straight.last_path))
    weights_b = load_file(str(resumed.last_path))
    assert weights_a.keys() == weights_b.keys()
    assert all(torch.equal(weights_a[key], weights_b[key]) for key in weights_a)
    assert [r["val_accuracy"] for r in resumed.history] == [
        r["val_accuracy"] for r in straight.history
    ]

    # A finished run only reports; a different config in the same folder is refused.
    state = tmp_path / "b" / "state.pt"
    stamp = state.stat().st_mtime_ns
    again = train(config, progress=False)
    assert again.epochs_run == 0 and again.best_val_accuracy == resumed.best_val_accuracy
    assert state.stat().st_mtime_ns == stamp
    with pytest.raises(AdvlabError, match="different 'lr'"):
        train({**config, "lr": 0.01}, progress=False)


def test_pause_after_ends_the_run_there_and_a_rerun_goes_on(tmp_path: Path, data_dir: Path) -> None:
    straight = train(tiny(tmp_path / "a", data_dir, n_train=600), progress=False)
    config = tiny(tmp_path / "b", data_dir, n_train=600)
    paused = train({**config, "pause_after": 1}, progress=False)
    assert (paused.epochs_run, paused.stopped) == (1, None)
    assert json.loads((tmp_path / "b" / "last.json").read_text())["epoch"] == 1
    # The learning rate of epoch 1 followed the whole schedule: going on matches a run
    # that never paused.
    resumed = train(config, progress=False)
    assert (resumed.resumed_from, resumed.epochs_run) == (1, 1)
    weights_a = load_file(str(straight.last_path))
    weights_b = load_file(str(resumed.last_path))
    assert all(torch.equal(weights_a[key], weights_b[key]) for key in weights_a)


def test_init_from_starts_where_the_given_model_ended(tmp_path: Path, data_dir: Path) -> None:
    first = train(tiny(tmp_path / "first", data_dir, epochs=1), progress=False)
    # lr 0: the optimizer never moves the weights, so they must be the starting ones.
    config = tiny(tmp_path / "tuned", data_dir, epochs=1, lr=1e-12, init_from=str(first.best_path))
    tuned = train(config, progress=False)
    start, end = load_file(str(first.best_path)), load_file(str(tuned.last_path))
    weights = [key for key in start if "running" not in key and "num_batches" not in key]
    assert all(torch.allclose(start[key], end[key], atol=1e-6) for key in weights)
    assert tuned.history[0]["val_accuracy"] > 0.6  # a random start would be near 0.1
    assert json.loads((tmp_path / "tuned" / "last.json").read_text())["training"]["init_from"]
    with pytest.raises(AdvlabError, match="do not fit"):
        train(tiny(tmp_path / "bad", data_dir, arch_kwargs={"width": 4, "hidden": 32},
                   init_from=str(first.best_path)), progress=False)  # fmt: skip


@pytest.mark.slow
def test_compiled_training_learns_and_saves_plain_weights(tmp_path: Path, data_dir: Path) -> None:
    def interrupt(record: dict[str, float]) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(tiny(tmp_path / "run", data_dir, compile=True), progress=False,
              on_epoch_end=interrupt)  # fmt: skip
    # Compiling is an execution detail, as the thread count: the run resumes without it.
    result = train(tiny(tmp_path / "run", data_dir, compile=False), progress=False)
    assert (result.resumed_from, result.epochs_run) == (1, 1)
    assert result.final_val_accuracy > 0.6
    weights = load_file(str(result.best_path))
    assert not any("_orig_mod" in key for key in weights)  # loads into the plain network
    assert evaluate_accuracy(load_model(str(result.best_path)), load_dataset(
        "mnist", split="test", n=1000, data_dir=data_dir), torch.device("cpu")
    ) == result.best_val_accuracy  # fmt: skip
    with pytest.raises(AdvlabError, match="standard training only"):
        load_config({"compile": True, "adversarial": {"eps": 0.1}})


def test_exclude_drops_exactly_the_demo_images(data_dir: Path) -> None:
    config = load_config({"dataset": "mnist", "exclude": "mnist-demo", "data_dir": str(data_dir)})
    data = prepare_data(config)
    assert data.excluded == 5000 and len(data.train) == 55000
    demo = set(image_hashes(load_dataset("mnist-demo").pixels))
    assert demo.isdisjoint(image_hashes(data.train.pixels))
    assert len(data.val) == 10000 and data.val.split == "test"


def test_fraction_val_split_is_held_out_of_train(data_dir: Path) -> None:
    config = load_config(
        {"dataset": "mnist", "val_split": 0.1, "n_train": 1000, "data_dir": str(data_dir)}
    )
    data = prepare_data(config)
    assert len(data.val) == 6000 and len(data.train) == 1000
    assert data.val.split == "train"
    assert set(data.val.indices.tolist()).isdisjoint(data.train.indices.tolist())


def test_model_and_data_must_fit(tmp_path: Path, data_dir: Path) -> None:
    config = tiny(tmp_path / "x", data_dir, dataset="cifar10", n_train=10)
    with pytest.raises(AdvlabError, match="takes"):
        train(config, progress=False)
    assert not (tmp_path / "x").exists()


# --- the bundled demo model -------------------------------------------------------------------


def test_bundled_mnist_cnn_loads_and_is_accurate() -> None:
    zoo = Path(__file__).parents[1] / "src" / "advlab" / "zoo"
    if not (zoo / "mnist-cnn.safetensors").is_file():
        pytest.fail("the bundled zoo/mnist-cnn.safetensors is missing")
    sidecar = json.loads((zoo / "mnist-cnn.json").read_text())
    assert sidecar["architecture"] == "mnist-cnn" and sidecar["name"] == "mnist-cnn"
    assert sidecar["metrics"]["test_accuracy"] >= 0.985
    assert (zoo / "mnist-cnn.safetensors").stat().st_size < 2_000_000
    model = load_model("mnist-cnn")  # the registry attaches the bundled weights
    data = load_dataset("mnist-demo", n=1000, seed=0)
    assert evaluate_accuracy(model, data, torch.device("cpu")) >= 0.98


def test_bundled_distilled_model_is_robust_only_to_cross_entropy_attacks() -> None:
    model = load_model("mnist-cnn-distilled")
    data = load_dataset("mnist-demo", n=200, seed=3)
    assert evaluate_accuracy(model, data, torch.device("cpu")) >= 0.95
    images, labels = data.images, data.labels
    plain = PGD(eps=0.3, steps=10, seed=0)(model, images, labels)
    margin = PGD(eps=0.3, steps=10, loss="margin", seed=0)(model, images, labels)
    # Apparent robustness: the saturated softmax hides the gradient from cross-entropy.
    assert plain.success_rate < 0.2
    assert margin.success_rate > 0.9


def test_bundled_mnist_mlp_is_a_second_accurate_architecture() -> None:
    model = load_model("mnist-mlp")
    assert not any(isinstance(m, nn.Conv2d) for m in model.modules())
    data = load_dataset("mnist-demo", n=1000, seed=0)
    assert evaluate_accuracy(model, data, torch.device("cpu")) >= 0.97


def test_bundled_robust_model_resists_pgd_where_the_standard_one_falls() -> None:
    data = load_dataset("mnist-demo", n=200, seed=5)
    attack = PGD(eps=0.1, steps=20, seed=0)
    robust = load_model("mnist-cnn-robust-0.1")
    standard = load_model("mnist-cnn")
    assert evaluate_accuracy(robust, data, torch.device("cpu")) >= 0.98
    robust_rate = attack(robust, data.images, data.labels).success_rate
    standard_rate = attack(standard, data.images, data.labels).success_rate
    assert robust_rate < 0.08 and standard_rate > 0.2


def test_a_config_field_added_later_at_its_default_does_not_block_a_resume() -> None:
    from advlab.training.checkpoints import config_differs as _differs

    saved = {"adversarial": {"method": "pgd", "eps": 0.3}, "epochs": 12}
    assert not _differs(saved, {"adversarial": {"method": "pgd", "eps": 0.3, "val_eps": None},
                                "epochs": 12})  # fmt: skip
    assert _differs(saved, {"adversarial": {"method": "pgd", "eps": 0.3, "val_eps": 0.1},
                            "epochs": 12})  # fmt: skip
    assert _differs(saved, {"adversarial": {"method": "pgd", "eps": 0.2}, "epochs": 12})


def test_config_files_read_eps_as_the_command_line_does() -> None:
    config = AdversarialTrainingConfig(method="pgd", eps="8/255", val_eps="4/255", alpha="2/255")
    assert config.eps == 8 / 255 and config.validation_eps == 4 / 255
    assert config.alpha == 2 / 255
    with pytest.raises(ValueError, match="use a number like 0.03 or 8/255"):
        AdversarialTrainingConfig(eps="8/2x")
