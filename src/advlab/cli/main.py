"""``advlab`` commands. Each one maps its options onto the Python API and nothing more."""

from __future__ import annotations

import inspect
import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Column, Table

from advlab import __version__
from advlab.cli.defend import defend
from advlab.cli.detect import detect
from advlab.cli.options import (
    BatchSize,
    ConfigOption,
    Device,
    Quiet,
    Seed,
    console,
    err_console,
)
from advlab.cli.options import (
    pct as _pct,
)
from advlab.cli.transfer import transfer
from advlab.config import AttackChoice, EvaluateConfig, parse_epsilon, validated
from advlab.errors import AdvlabError

app = typer.Typer(
    name="advlab",
    help="Attack, defend and evaluate image classifiers against adversarial examples.\n\n"
    "Images are always in [0, 1] and eps is in the same pixel units (8/255 = 0.0314).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
@app.callback()
def _main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log more.")] = False,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(message)s"
    )


@app.command()
def version() -> None:
    """Print advlab's version."""
    console.print(__version__)


@app.command()
def demo(
    out: Annotated[
        str, typer.Option(help="Folder for results.json and report.html.")
    ] = "advlab-demo",
    n: Annotated[int, typer.Option(help="Number of bundled held-out MNIST images.")] = 300,
    store: Annotated[
        str | None, typer.Option(help="SQLite results store (default ~/.advlab).")
    ] = None,
    quiet: Quiet = False,
) -> None:
    """Offline demo: the bundled MNIST CNN under FGSM, PGD, MIM and DeepFool, eps 0.05..0.3."""
    from advlab.workflows import demo_config, run_evaluation

    config = demo_config(out=out, n=n, store=store)
    _print_run_header(config)
    output = run_evaluation(config, progress=not quiet)
    _print_results(output.results)
    console.print(f"results: {output.results_path}")
    if output.report_path:
        console.print(f"report:  {output.report_path}  (open it in a browser)")


@app.command()
def evaluate(
    config_file: ConfigOption = None,
    model: Annotated[
        str, typer.Option(help="Registry name, torchvision:NAME, module:factory or a file.")
    ] = "mnist-cnn",
    weights: Annotated[
        str | None, typer.Option(help="Weights file (.safetensors, .pt/.pth).")
    ] = None,
    target: Annotated[
        str | None, typer.Option(help="Attack a black box instead: http://HOST:PORT or FILE.onnx.")
    ] = None,
    dataset: Annotated[
        str, typer.Option(help="Data set name (see 'advlab datasets').")
    ] = "mnist-demo",
    data_dir: Annotated[
        str | None, typer.Option(help="Folder holding the data (else ADVLAB_DATA_DIR).")
    ] = None,
    split: Annotated[str, typer.Option(help="train or test.")] = "test",
    n: Annotated[
        int | None, typer.Option(help="Evaluate a seeded random subset of n images.")
    ] = 1000,
    attack: Annotated[
        list[str] | None,
        typer.Option(
            "--attack", "-a", help="Attack, repeatable; options as pgd:steps=20,restarts=2."
        ),
    ] = None,
    eps: Annotated[
        list[str] | None, typer.Option("--eps", "-e", help="Epsilon, repeatable (0.03 or 8/255).")
    ] = None,
    norm: Annotated[str, typer.Option(help="Default norm for the attacks: linf or l2.")] = "linf",
    batch_size: BatchSize = 128,
    seed: Seed = 0,
    device: Device = "auto",
    out: Annotated[
        str, typer.Option(help="Output folder for results.json, config.yaml, report.html.")
    ] = "advlab-results",
    store: Annotated[
        str | None, typer.Option(help="SQLite results store (default ~/.advlab/results.sqlite).")
    ] = None,
    report: Annotated[bool, typer.Option(help="Write report.html.")] = True,
    examples: Annotated[int, typer.Option(help="Example images per attack in the report.")] = 8,
    defense: Annotated[
        str | None,
        typer.Option(help="Defense in front of the model (jpeg:quality=75); adds adaptive runs."),
    ] = None,
    quiet: Quiet = False,
) -> None:
    """Clean and robust accuracy of a model over attacks and an epsilon sweep.

    Results are written batch by batch to the store: rerun the same command after an
    interrupt and it resumes where it stopped.
    """
    from advlab.workflows import run_evaluation

    choices = [AttackChoice.parse(text, norm) for text in (attack or ["pgd"])]
    epsilons = [parse_epsilon(str(text)) for text in (eps or ["0.1", "0.3"])]
    config = validated(
        EvaluateConfig,
        {
            "model": model,
            "weights": weights,
            "target": target,
            "dataset": dataset,
            "data_dir": data_dir,
            "split": split,
            "n": n,
            "seed": seed,
            "attacks": [c.model_dump() for c in choices],
            "epsilons": epsilons,
            "batch_size": batch_size,
            "device": device,
            "out": out,
            "store": store,
            "report": report,
            "examples": examples,
            "defense": defense,
        },
    )
    if not quiet:
        _print_run_header(config)
    output = run_evaluation(config, progress=not quiet)
    if not quiet:
        _print_results(output.results)
        if "defense_comparison" in output.results:
            from advlab.cli.defend import print_comparison

            print_comparison(output.results["defense_comparison"])
    console.print(f"results: {output.results_path}")
    if output.report_path:
        console.print(f"report:  {output.report_path}")


@app.command("attack")
def attack_command(
    config_file: ConfigOption = None,
    model: Annotated[str, typer.Option(help="Model to attack.")] = "mnist-cnn",
    weights: Annotated[str | None, typer.Option(help="Weights file.")] = None,
    dataset: Annotated[str, typer.Option(help="Data set name.")] = "mnist-demo",
    data_dir: Annotated[str | None, typer.Option(help="Folder holding the data.")] = None,
    split: Annotated[str, typer.Option(help="train or test.")] = "test",
    n: Annotated[int | None, typer.Option(help="Number of images.")] = 100,
    attack: Annotated[
        str, typer.Option("--attack", "-a", help="Attack with options, e.g. pgd:steps=20.")
    ] = "pgd",
    eps: Annotated[str, typer.Option("--eps", "-e", help="Epsilon (0.03 or 8/255).")] = "0.1",
    norm: Annotated[str, typer.Option(help="linf or l2.")] = "linf",
    batch_size: BatchSize = 128,
    seed: Seed = 0,
    device: Device = "auto",
    out: Annotated[str, typer.Option(help="Output folder for adversarial.npz.")] = "advlab-attack",
    png: Annotated[bool, typer.Option(help="Also write one PNG per adversarial image.")] = False,
    quiet: Quiet = False,
) -> None:
    """Craft adversarial examples and save them as .npz (and optionally PNGs)."""
    from advlab.config import AttackChoice as Choice
    from advlab.data import load_dataset
    from advlab.models import load_model, resolve_device
    from advlab.workflows import run_attack

    choice = Choice.parse(attack, norm)
    epsilon = parse_epsilon(eps)
    net = load_model(model, weights=weights, device=resolve_device(device))
    data = load_dataset(dataset, split, n, data_dir, seed=seed)
    summary = run_attack(
        net,
        data,
        choice,
        epsilon,
        batch_size=batch_size,
        seed=seed,
        out_dir=Path(out),
        png=png,
        progress=not quiet,
    )
    console.print(
        f"{choice.name} eps={epsilon:g}: success rate {summary['success_rate']:.1%} "
        f"on {summary['n']} images -> {summary['file']}"
    )


@app.command()
def train(
    config_file: ConfigOption = None,
    model: Annotated[str, typer.Option(help="Registry model to train.")] = "mnist-cnn",
    dataset: Annotated[str, typer.Option(help="Training data set.")] = "mnist",
    data_dir: Annotated[str | None, typer.Option(help="Folder holding the data.")] = None,
    epochs: Annotated[int, typer.Option(help="Number of epochs.")] = 5,
    batch_size: BatchSize = 128,
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
    adversarial: Annotated[
        str | None,
        typer.Option(help="Adversarial training: fgsm-rs (fast, Wong et al.), pgd (Madry et al.) "
                     "or trades (Zhang et al.)."),
    ] = None,
    eps: Annotated[
        str | None, typer.Option(help="Adversarial training budget, e.g. 0.3 or 8/255.")
    ] = None,
    norm: Annotated[str, typer.Option(help="linf or l2 (adversarial training).")] = "linf",
    alpha: Annotated[
        float | None,
        typer.Option(help="Attack step size (default 1.25*eps for fgsm-rs, 2.5*eps/steps else)."),
    ] = None,
    steps: Annotated[int, typer.Option(help="Attack steps for pgd and trades.")] = 10,
    beta: Annotated[float, typer.Option(help="TRADES robustness weight.")] = 6.0,
    warmup_epochs: Annotated[
        float, typer.Option(help="Epochs over which eps ramps up linearly from 0.")
    ] = 0.0,
    val_n: Annotated[
        int, typer.Option(help="Held-out images for the PGD robust accuracy of each epoch.")
    ] = 1000,
    val_steps: Annotated[int, typer.Option(help="PGD steps of the robust validation.")] = 10,
    val_eps: Annotated[
        str | None, typer.Option(help="Eps of the robust validation (default: --eps).")
    ] = None,
    early_stop: Annotated[
        bool, typer.Option(help="Stop when robust accuracy collapses (catastrophic overfitting).")
    ] = True,
    patience: Annotated[
        int | None, typer.Option(help="Stop after this many epochs without improvement.")
    ] = None,
    distill: Annotated[
        bool,
        typer.Option(help="Defensive distillation: train a teacher at --temperature, then the "
                     "student on its soft labels."),
    ] = False,
    distill_from: Annotated[
        str | None, typer.Option(help="Distill from this teacher (model name or checkpoint).")
    ] = None,
    temperature: Annotated[
        float, typer.Option(help="Softmax temperature of the training loss (distillation).")
    ] = 1.0,
    init_from: Annotated[
        str | None,
        typer.Option(help="Start from these weights (model name or checkpoint of the same "
                     "architecture): fine-tuning, e.g. adversarial fine-tuning."),
    ] = None,
    num_threads: Annotated[
        int | None, typer.Option(help="CPU threads for torch (default: torch's choice).")
    ] = None,
    seed: Seed = 0,
    device: Device = "auto",
    out: Annotated[str, typer.Option(help="Checkpoint folder (rerun to resume).")] = "advlab-train",
    name: Annotated[str | None, typer.Option(help="Name stored in the checkpoint.")] = None,
    quiet: Quiet = False,
) -> None:
    """Train a registry model with checkpoints every epoch; rerun the same command to resume.

    Adversarial training is one option away (--adversarial fgsm-rs|pgd|trades --eps E);
    each epoch then also measures PGD robust accuracy on held-out images, keeps the most
    robust checkpoint, and reports catastrophic overfitting. report.html in --out shows
    clean and robust accuracy per epoch.
    """
    import yaml

    from advlab.training import TrainConfig
    from advlab.training import train as run_training
    from advlab.training.distill import distill as run_distillation

    arch_kwargs = {}
    for item in arch or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise AdvlabError(f"--arch '{item}' must look like key=value")
        arch_kwargs[key] = yaml.safe_load(value)
    values: dict[str, Any] = {
        "model": model,
        "arch_kwargs": arch_kwargs,
        "dataset": dataset,
        "data_dir": data_dir,
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "optimizer": optimizer,
        "schedule": schedule,
        "weight_decay": weight_decay,
        "augment": augment,
        "n_train": n_train,
        "exclude": exclude,
        "seed": seed,
        "device": device,
        "out_dir": out,
    }
    if name:
        values["name"] = name
    if adversarial is not None:
        if eps is None:
            raise AdvlabError("--adversarial needs --eps (e.g. --eps 0.3 or --eps 8/255)")
        values["adversarial"] = {
            "method": adversarial, "eps": parse_epsilon(eps), "norm": norm, "alpha": alpha,
            "steps": steps, "beta": beta, "warmup_epochs": warmup_epochs, "val_n": val_n,
            "val_steps": val_steps, "early_stop": early_stop,
            "val_eps": None if val_eps is None else parse_epsilon(val_eps),
        }  # fmt: skip
    elif eps is not None:
        raise AdvlabError("--eps is for adversarial training: add --adversarial fgsm-rs|pgd|trades")
    values.update(temperature=temperature, patience=patience, num_threads=num_threads)
    if distill_from is not None:
        values["distill_from"] = distill_from
    if init_from is not None:
        values["init_from"] = init_from
    config = validated(TrainConfig, values)
    if distill:
        if distill_from is not None:
            raise AdvlabError("use either --distill (trains a teacher) or --distill-from TEACHER")
        _, result = run_distillation(config, progress=not quiet)
    else:
        result = run_training(config, progress=not quiet)
    _print_training(result)


def _print_training(result: Any) -> None:
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


@app.command()
def serve(
    model: Annotated[str, typer.Option(help="Model to serve (as for evaluate).")] = "mnist-cnn",
    weights: Annotated[str | None, typer.Option(help="Weights file.")] = None,
    host: Annotated[str, typer.Option(help="Address to bind; 0.0.0.0 exposes it.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    labels_only: Annotated[
        bool, typer.Option("--labels-only", help="Answer with top-1 labels, never scores.")
    ] = False,
    max_batch: Annotated[int, typer.Option(help="Largest batch one request may carry.")] = 256,
    device: Device = "auto",
) -> None:
    """Serve a model as an HTTP endpoint (POST /predict, GET /info) for black-box attacks."""
    from advlab.models import resolve_device
    from advlab.serve import run_server

    run_server(
        model,
        weights,
        host=host,
        port=port,
        output="labels" if labels_only else "scores",
        device=str(resolve_device(device)),
        max_batch=max_batch,
        ready=lambda url: console.print(f"serving {model} at {url} (Ctrl-C to stop)"),
    )


@app.command()
def models() -> None:
    """List the registry's models."""
    from advlab.models import registered_models

    table = Table("name", "input", "classes", "data", "weights", "description", expand=True)
    for entry in registered_models():
        if entry.weights is None:
            source = "torchvision" if entry.dataset == "imagenet" else "-"
        else:
            source = "bundled" if entry.weights.bundled else "data dir / download"
            if entry.weights.accuracy:
                source += f" ({entry.weights.accuracy:.2%})"
        shape = "x".join(map(str, entry.input_shape))
        table.add_row(
            entry.name, shape, str(entry.num_classes), entry.dataset, source, entry.description
        )
    console.print(table)
    console.print("Also: torchvision:NAME, package.module:factory, file.safetensors, TorchScript.")


@app.command()
def datasets() -> None:
    """List the data sets advlab can load."""
    from advlab.data import DATASETS

    table = Table("name", "image", "classes", "description")
    for info in DATASETS.values():
        table.add_row(
            info.name,
            "x".join(map(str, info.image_shape)),
            str(info.num_classes or "-"),
            info.description,
        )
    console.print(table)
    console.print("Lookup: --data-dir, then ADVLAB_DATA_DIR, then a download into ~/.advlab/cache.")


@app.command()
def attacks() -> None:
    """List the attacks and their parameters."""
    from advlab.attacks import ATTACKS

    table = Table("name", "parameters (defaults)", "description")
    for name, cls in sorted(ATTACKS.items()):
        params = inspect.signature(cls.__init__).parameters.values()
        shown = ", ".join(f"{p.name}={_fmt(p.default)}" for p in params if p.name != "self")
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        table.add_row(name, shown, doc)
    console.print(table)
    console.print(
        "Pass options as --attack pgd:steps=20,restarts=2 (eps and norm have their own flags)."
    )


@app.command()
def runs(
    run_id: Annotated[str | None, typer.Argument(help="Show one run's results as JSON.")] = None,
    store: Annotated[str | None, typer.Option(help="SQLite results store.")] = None,
) -> None:
    """List the runs in the results store, or print one run's results."""
    from advlab.evaluation import ResultStore

    results_store = ResultStore(store) if store else ResultStore()
    if run_id:
        console.print_json(json.dumps(results_store.get_run(run_id), default=str))
        return
    table = Table("created", "status", "model", "dataset", "n", "clean acc", "worst case")
    table.columns.insert(0, Column("run id", no_wrap=True, min_width=12))
    for row in results_store.list_runs():
        worst = row.get("worst_case") or {}
        worst_text = ", ".join(f"{float(eps):g}: {_pct(acc)}" for eps, acc in worst.items())
        table.add_row(
            str(row["run_id"])[:12],
            str(row.get("created", ""))[:19],
            str(row.get("status", "")),
            str(row.get("model", "")),
            str(row.get("dataset", "")),
            str(row.get("n", "")),
            _pct(row.get("clean_accuracy")),
            worst_text,
        )
    console.print(table)


def _fmt(value: Any) -> str:
    return "-" if value is inspect.Parameter.empty else repr(value)


def _print_run_header(config: EvaluateConfig) -> None:
    names = ", ".join(a.name + (f"({a.norm})" if a.norm != "linf" else "") for a in config.attacks)
    console.print(
        f"[bold]advlab[/bold] {config.model} on {config.dataset} (n={config.n}, "
        f"seed={config.seed}): {names} at eps {', '.join(f'{e:g}' for e in config.epsilons)}"
    )


def _num(value: Any, digits: int = 3) -> str:
    return "-" if value is None else f"{float(value):.{digits}f}"


def _print_results(results: dict[str, Any]) -> None:
    console.print(f"clean accuracy: {_pct(results['clean_accuracy'])} on {results['n']} images")
    # Numbers never get cut; a long attack name (pgd[loss="margin",steps=40]) folds instead.
    # Short headers, so that all of it fits 80 columns (Linf, L2: mean perturbation norms).
    # With a query-based attack in the run, its queries matter more than the throughput.
    queried = any("max_queries" in (row.get("config") or {}) for row in results["results"])
    last = "query" if queried else "img/s"  # five letters: the table fits 80 columns
    numbers = {"norm": 4, "eps": 4, "robust": 6, "success": 6, "Linf": 5, "L2": 5,
               "conf.": 6, last: 5}  # fmt: skip
    table = Table(
        Column("attack", overflow="fold", min_width=10),
        *(Column(name, min_width=width) for name, width in numbers.items()),
        title="robustness",
        caption="robust: robust accuracy; success: attack success rate on the images the "
        "model gets right; Linf, L2: mean perturbation; conf.: mean confidence of the "
        "adversarial prediction" + ("; query: mean queries per attacked image" if queried else ""),
    )
    from rich.markup import escape

    from advlab.reports.tables import attack_name

    # Options in the name (pgd[loss="margin",steps=40]) only where they tell runs apart.
    keys_per_attack: dict[tuple[str, str], set[str]] = {}
    for row in results["results"]:
        keys_per_attack.setdefault((row["attack"], row["norm"]), set()).add(str(row.get("key")))
    for row in results["results"]:
        ambiguous = len(keys_per_attack[(row["attack"], row["norm"])]) > 1
        table.add_row(
            escape(attack_name(row) if ambiguous else row["attack"]),
            row["norm"],
            f"{row['eps']:g}",
            _pct(row["robust_accuracy"]),
            _pct(row["attack_success_rate"]),
            _num(row.get("mean_linf")),
            _num(row.get("mean_l2")),
            _pct(row.get("mean_confidence")),
            _num(row.get("mean_queries" if queried else "images_per_second"), 0),
        )
    for eps, accuracy in results["worst_case"].items():
        table.add_row(
            "[bold]worst-case[/bold]", "", f"{float(eps):g}", _pct(accuracy), "", "", "", "", ""
        )
    console.print(table)


# Commands that live in their own modules.
app.command()(transfer)
app.command()(defend)
app.command()(detect)


def main(argv: list[str] | None = None) -> None:
    """Entry point: a user's mistake prints one line and exits 2, without a traceback.

    Typer handles usage errors (exit 2) and Ctrl-C (exit 1) itself; evaluation results
    are stored batch by batch, so rerunning an interrupted command resumes it.
    """
    try:
        app(args=argv)
    except AdvlabError as error:
        err_console.print(f"[red]error:[/red] {error}", highlight=False, soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
