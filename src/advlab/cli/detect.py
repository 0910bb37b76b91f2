"""``advlab detect``: fit an adversarial-example detector and measure what it catches."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Column, Table

from advlab.cli import options as opt
from advlab.cli.options import build_config, console, pct
from advlab.workflows.base import AttackChoice, parse_epsilon
from advlab.workflows.config import DetectConfig


@opt.grouped
def detect(
    ctx: typer.Context,
    config_file: opt.ConfigOption = None,
    source: opt.Source = opt.Source(dataset="mnist"),
    detector: Annotated[
        str, typer.Option(help="squeeze (feature squeezing) or binary (trained on features).")
    ] = "squeeze",
    attack: Annotated[
        list[str] | None,
        typer.Option("--attack", "-a", help="Attack, repeatable; options as pgd:steps=20."),
    ] = None,
    eps: opt.Epsilons = None,
    norm: opt.DefaultNorm = "linf",
    fpr: Annotated[float, typer.Option(help="Target false positive rate on clean images.")] = 0.05,
    n: Annotated[int, typer.Option(help="Test images: attacked, and clean for the FPR.")] = 500,
    n_fit: Annotated[int, typer.Option(help="Clean images the detector is fitted on.")] = 2000,
    fit_split: Annotated[
        str, typer.Option(help="Split to fit on: train, or test (disjoint from the n images).")
    ] = "train",
    train_attack: Annotated[
        str, typer.Option(help="binary: attack crafting its training examples, at every --eps.")
    ] = "pgd:steps=20",
    adaptive: Annotated[
        bool, typer.Option(help="Also run the attack on model and detector together.")
    ] = True,
    adaptive_steps: Annotated[int, typer.Option(help="Steps of the adaptive attack.")] = 40,
    run: opt.Run = opt.Run(),
    search: opt.Search = opt.Search(),
    dest: opt.Destination = opt.Destination(out="advlab-detect", report=False),
    force: opt.Force = False,
    quiet: opt.Quiet = False,
) -> None:
    """Detection rate, false positive rate and ROC AUC of a detector, per attack and eps.

    Writes detection.json (and with --report, report.html) to --out.
    """
    from advlab.workflows import run_detection

    values = {
        **asdict(source), "detector": detector, "fpr": fpr,
        "attacks": [AttackChoice.parse(text, norm) for text in (attack or ["fgsm", "pgd"])],
        "epsilons": [parse_epsilon(str(text)) for text in (eps or ["0.1", "0.3"])],
        "n": n, "n_fit": n_fit, "fit_split": fit_split,
        "train_attack": AttackChoice.parse(train_attack, norm), "adaptive": adaptive,
        "adaptive_steps": adaptive_steps, **asdict(run), **asdict(search), **asdict(dest),
    }  # fmt: skip
    options = {"attacks": ("attack", "norm"), "epsilons": "eps",
               "train_attack": ("train_attack", "norm")}  # fmt: skip
    config = build_config(ctx, DetectConfig, values, options)
    if not quiet:
        console.print(
            f"[bold]advlab[/bold] {config.detector} detector on {config.model}, {config.dataset} "
            f"(n={config.n}, fit on {config.n_fit} {config.fit_split} images, seed={config.seed}),"
            f" target FPR {config.fpr:g}"
        )
    output = run_detection(config, progress=not quiet, force=force)
    if not quiet:
        _print_detection(output.results)
    console.print(f"results: {output.results_path}")
    if output.report_path:
        console.print(f"report:  {output.report_path}")


def _print_detection(results: dict[str, Any]) -> None:
    from advlab.reports.detection import summary_rows

    console.print(
        f"false positive rate: {pct(results['false_positive_rate'])} on {results['n']} "
        f"held-out clean images (target {pct(results['fpr_target'])}); clean accuracy "
        f"{pct(results['clean_accuracy'])}"
    )
    table = Table(
        Column("attack", no_wrap=True, min_width=10),
        "eps",
        "attack success",
        "detection rate",
        "adaptive detection rate",
        "AUC",
        title="detection (rates over the fooled examples)",
    )
    for row in summary_rows(results):
        table.add_row(
            escape(row["attack"]),  # "pgd[steps=20]" is not rich markup
            f"{row['eps']:g}",
            pct(row["attack_success_rate"]),
            pct(row["detection_rate"]),
            pct(row["adaptive_detection_rate"]),
            "-" if row["auc"] is None else f"{row['auc']:.3f}",
        )
    console.print(table)
