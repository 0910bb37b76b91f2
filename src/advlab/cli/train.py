"""``advlab train``: train a registry model, standard, adversarial or distilled."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Annotated, Any

import typer

from advlab.cli import options as opt
from advlab.cli.options import build_config, console, given_options
from advlab.errors import AdvlabError
from advlab.training import TrainResult
from advlab.workflows.base import parse_epsilon, read_yaml
from advlab.workflows.config import TrainConfig


@dataclass(frozen=True)
class Adversarial:
    """The options of adversarial training: ``--adversarial`` sets the method of
    ``TrainConfig.adversarial``, every other one the key of its name."""

    adversarial: Annotated[
        str | None,
        typer.Option(
            help="Adversarial training: fgsm-rs (fast, Wong et al.), pgd (Madry et al.) "
            "or trades (Zhang et al.)."
        ),
    ] = None
    eps: Annotated[
        str | None, typer.Option(help="Adversarial training budget, e.g. 0.3 or 8/255.")
    ] = None
    norm: Annotated[str, typer.Option(help="linf or l2 (adversarial training).")] = "linf"
    alpha: Annotated[
        float | None,
        typer.Option(help="Attack step size (default 1.25*eps for fgsm-rs, 2.5*eps/steps else)."),
    ] = None
    steps: Annotated[int, typer.Option(help="Attack steps for pgd and trades.")] = 10
    beta: Annotated[float, typer.Option(help="TRADES robustness weight.")] = 6.0
    warmup_epochs: Annotated[
        float, typer.Option(help="Epochs over which eps ramps up linearly from 0.")
    ] = 0.0
    val_n: Annotated[
        int, typer.Option(help="Held-out images for the PGD robust accuracy of each epoch.")
    ] = 1000
    val_steps: Annotated[int, typer.Option(help="PGD steps of the robust validation.")] = 10
    val_eps: Annotated[
        str | None, typer.Option(help="Eps of the robust validation (default: --eps).")
    ] = None
    early_stop: Annotated[
        bool, typer.Option(help="Stop when robust accuracy collapses (catastrophic overfitting).")
    ] = True

    def config(self) -> dict[str, Any]:
        """``TrainConfig.adversarial`` as these options give it."""
        values = {**asdict(self), "eps": _epsilon(self.eps), "val_eps": _epsilon(self.val_eps)}
        return {"method": values.pop("adversarial"), **values}


def _epsilon(text: str | None) -> float | None:
    return None if text is None else parse_epsilon(text)


@dataclass(frozen=True)
class Distillation:
    """The options of defensive distillation: a field of ``TrainConfig`` each."""

    distill: Annotated[
        bool,
        typer.Option(
            help="Defensive distillation: train a teacher at --temperature, then the "
            "student on its soft labels."
        ),
    ] = False
    distill_from: Annotated[
        str | None, typer.Option(help="Distill from this teacher (model name or checkpoint).")
    ] = None
    temperature: Annotated[
        float, typer.Option(help="Softmax temperature of the training loss (distillation).")
    ] = 1.0


#: For each key of ``TrainConfig.adversarial``, the option that sets it.
ADVERSARIAL = {
    ("method" if f.name == "adversarial" else f.name): f.name for f in fields(Adversarial)
}


@opt.grouped
def train(
    ctx: typer.Context,
    config_file: opt.ConfigOption = None,
    model: Annotated[str, typer.Option(help="Registry model to train.")] = "mnist-cnn",
    dataset: Annotated[str, typer.Option(help="Training data set.")] = "mnist",
    data_dir: opt.DataDir = None,
    epochs: Annotated[int, typer.Option(help="Number of epochs.")] = 5,
    batch_size: opt.BatchSize = 128,
    lr: Annotated[float, typer.Option(help="Learning rate.")] = 1e-3,
    optimizer: Annotated[str, typer.Option(help="sgd or adam.")] = "adam",
    schedule: Annotated[
        str, typer.Option(help="cosine, step, onecycle, cyclic or constant.")
    ] = "cosine",
    weight_decay: Annotated[float, typer.Option(help="Weight decay.")] = 0.0,
    augment: Annotated[bool, typer.Option(help="Random crops (and flips for RGB).")] = False,
    n_train: Annotated[
        int | None, typer.Option(help="Train on a seeded subset of this size.")
    ] = None,
    exclude: Annotated[
        str | None,
        typer.Option(help="Drop training images that appear in this data set (e.g. mnist-demo)."),
    ] = None,
    arch: Annotated[
        list[str] | None,
        typer.Option(help="Architecture option key=value, repeatable (e.g. width=0.5)."),
    ] = None,
    adv: Adversarial = Adversarial(),
    patience: Annotated[
        int | None, typer.Option(help="Stop after this many epochs without improvement.")
    ] = None,
    pause_after: Annotated[
        int | None,
        typer.Option(help="End this run after epoch N of --epochs' schedule; rerun to go on."),
    ] = None,
    distillation: Distillation = Distillation(),
    init_from: Annotated[
        str | None,
        typer.Option(
            help="Start from these weights (model name or checkpoint of the same "
            "architecture): fine-tuning, e.g. adversarial fine-tuning."
        ),
    ] = None,
    num_threads: Annotated[
        int | None, typer.Option(help="CPU threads for torch (default: torch's choice).")
    ] = None,
    seed: opt.Seed = 0,
    device: opt.Device = "auto",
    out: Annotated[str, typer.Option(help="Checkpoint folder (rerun to resume).")] = "advlab-train",
    name: Annotated[str | None, typer.Option(help="Name stored in the checkpoint.")] = None,
    quiet: opt.Quiet = False,
) -> None:
    """Train a registry model with checkpoints every epoch; rerun the same command to resume.

    Adversarial training is one option away (--adversarial fgsm-rs|pgd|trades --eps E);
    each epoch then also measures PGD robust accuracy on held-out images, keeps the most
    robust checkpoint, and reports catastrophic overfitting. report.html in --out shows
    clean and robust accuracy per epoch. --config takes a training config (the run's
    config.yaml, or a zoo *.train.yaml).
    """
    import yaml

    from advlab.workflows import run_train

    arch_kwargs = {}
    for item in arch or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise AdvlabError(f"--arch '{item}' must look like key=value")
        arch_kwargs[key] = yaml.safe_load(value)
    given = given_options(ctx)
    if config_file is None and "eps" in given and adv.adversarial is None:
        raise AdvlabError("--eps is for adversarial training: add --adversarial fgsm-rs|pgd|trades")
    if adv.adversarial is not None and adv.eps is None and config_file is None:
        raise AdvlabError("--adversarial needs --eps (e.g. --eps 0.3 or --eps 8/255)")
    adversarial_values = adv.config()
    values: dict[str, Any] = {
        "model": model, "arch_kwargs": arch_kwargs, "dataset": dataset, "data_dir": data_dir,
        "epochs": epochs, "batch_size": batch_size, "lr": lr, "optimizer": optimizer,
        "schedule": schedule, "weight_decay": weight_decay, "augment": augment,
        "n_train": n_train, "exclude": exclude, "seed": seed, "device": device,
        "out_dir": out, "name": name, "patience": patience, "num_threads": num_threads,
        "pause_after": pause_after,
        "init_from": init_from, **asdict(distillation),
        "adversarial": adversarial_values if adv.adversarial is not None else None,
    }  # fmt: skip
    if config_file is not None:
        values["adversarial"] = adversarial_values
        chosen = "adversarial" in given or read_yaml(config_file).get("adversarial")
        if given & set(ADVERSARIAL.values()) and not chosen:
            raise AdvlabError("--eps and the attack options are for adversarial training: add "
                              "--adversarial fgsm-rs|pgd|trades")  # fmt: skip
    sources = {"arch_kwargs": "arch", "out_dir": "out", "adversarial": ADVERSARIAL}
    config = build_config(ctx, TrainConfig, values, sources)
    output = run_train(config, progress=not quiet)
    print_training(output.result)


def print_training(result: TrainResult) -> None:
    best = next(r for r in result.history if r["epoch"] == result.best_epoch)
    robust = best.get("val_robust_accuracy")
    summary = f"best epoch {result.best_epoch}: clean val acc {best['val_accuracy']:.2%}"
    if robust is not None:
        summary += f", PGD robust val acc {robust:.2%}"
    console.print(summary)
    if result.stopped:
        console.print(f"[yellow]stopped early:[/yellow] {result.stopped}")
    console.print(f"checkpoint: {result.best_path}")
    console.print(f"training report: {result.out_dir / 'report.html'}")
