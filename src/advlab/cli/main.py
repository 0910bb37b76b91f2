"""``advlab`` commands. Each one maps its options onto the Python API and nothing more."""

from __future__ import annotations

import inspect
import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Column, Table

from advlab import __version__
from advlab.config import AttackChoice, EvaluateConfig, load_yaml, parse_epsilon, validated
from advlab.errors import AdvlabError

app = typer.Typer(
    name="advlab",
    help="Attack, defend and evaluate image classifiers against adversarial examples.\n\n"
    "Images are always in [0, 1] and eps is in the same pixel units (8/255 = 0.0314).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console()
err_console = Console(stderr=True)


def _load_config(ctx: typer.Context, path: Path | None) -> Path | None:
    """``--config FILE.yaml`` sets defaults for every other option of the command."""
    if path is not None:
        values = load_yaml(path)
        ctx.default_map = {**(ctx.default_map or {}), **values}
    return path


ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="YAML file of option: value pairs (command line wins).",
        callback=_load_config,
        is_eager=True,
    ),
]
Device = Annotated[str, typer.Option(help="cpu, cuda, cuda:N or auto.")]
Seed = Annotated[int, typer.Option(help="Random seed (data subset, random starts).")]
BatchSize = Annotated[int, typer.Option(help="Images per batch.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or tables.")]


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
        },
    )
    if not quiet:
        _print_run_header(config)
    output = run_evaluation(config, progress=not quiet)
    if not quiet:
        _print_results(output.results)
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
    schedule: Annotated[str, typer.Option(help="cosine, step, onecycle or constant.")] = "cosine",
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
    seed: Seed = 0,
    device: Device = "auto",
    out: Annotated[str, typer.Option(help="Checkpoint folder (rerun to resume).")] = "advlab-train",
    name: Annotated[str | None, typer.Option(help="Name stored in the checkpoint.")] = None,
    quiet: Quiet = False,
) -> None:
    """Train a registry model with checkpoints every epoch; rerun the same command to resume."""
    import yaml

    from advlab.training import TrainConfig
    from advlab.training import train as run_training

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
    config = validated(TrainConfig, values)
    result = run_training(config, progress=not quiet)
    console.print(f"checkpoint: {getattr(result, 'best_path', out)}")


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


def _pct(value: Any) -> str:
    return "-" if value is None else f"{100 * float(value):.1f}%"


def _num(value: Any, digits: int = 3) -> str:
    return "-" if value is None else f"{float(value):.{digits}f}"


def _print_results(results: dict[str, Any]) -> None:
    console.print(f"clean accuracy: {_pct(results['clean_accuracy'])} on {results['n']} images")
    table = Table(
        Column("attack", no_wrap=True, min_width=10),
        "norm",
        "eps",
        "robust acc",
        "success rate",
        "mean Linf",
        "mean L2",
        "confidence",
        "img/s",
        title="robustness",
    )
    for row in results["results"]:
        table.add_row(
            row["attack"],
            row["norm"],
            f"{row['eps']:g}",
            _pct(row["robust_accuracy"]),
            _pct(row["attack_success_rate"]),
            _num(row.get("mean_linf")),
            _num(row.get("mean_l2")),
            _pct(row.get("mean_confidence")),
            _num(row.get("images_per_second"), 0),
        )
    for eps, accuracy in results["worst_case"].items():
        table.add_row(
            "[bold]worst-case[/bold]", "", f"{float(eps):g}", _pct(accuracy), "", "", "", "", ""
        )
    console.print(table)


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
