"""``advlab defend``: the undefended model and each defense side by side."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Column, Table

from advlab.cli import options as opt
from advlab.cli.options import build_config, console, pct
from advlab.reports.tables import attack_name
from advlab.workflows.base import AttackChoice, parse_epsilon
from advlab.workflows.config import DefendConfig

DEFAULT_ATTACKS = ["fgsm", "pgd", "mim"]


@opt.grouped
def defend(
    ctx: typer.Context,
    config_file: opt.ConfigOption = None,
    model: Annotated[str, typer.Option(help="The undefended model (as for evaluate).")] = (
        "mnist-cnn"
    ),
    weights: opt.Weights = None,
    defense: Annotated[
        list[str] | None,
        typer.Option(
            "--defense",
            "-d",
            help="Preprocessing defense, repeatable: jpeg:quality=75, bits:bits=1.",
        ),
    ] = None,
    defended_model: Annotated[
        list[str] | None,
        typer.Option(help="A model trained as a defense (distilled, adversarially trained)."),
    ] = None,
    detector: Annotated[
        list[str] | None, typer.Option(help="A detector in front of --model: feature-squeezing.")
    ] = None,
    detector_fpr: Annotated[
        float, typer.Option(help="Detector false-positive rate on clean images.")
    ] = 0.05,
    detector_fit_n: Annotated[
        int, typer.Option(help="Clean images (not attacked) to fit the detector on.")
    ] = 500,
    attack: opt.Attacks = None,
    eps: opt.Epsilons = None,
    norm: opt.DefaultNorm = "linf",
    dataset: opt.Dataset = "mnist-demo",
    data_dir: opt.DataDir = None,
    split: opt.Split = "test",
    n: Annotated[int | None, typer.Option(help="Seeded random subset of n images.")] = 200,
    eot_samples: Annotated[int, typer.Option(help="Random draws per EOT gradient.")] = 10,
    gap: Annotated[
        float, typer.Option(help="Flag plain-minus-adaptive robust accuracy at or above this.")
    ] = 0.1,
    checks: Annotated[bool, typer.Option(help="Run the gradient-masking checks.")] = True,
    check_n: Annotated[int, typer.Option(help="Images for the gradient-masking checks.")] = 100,
    check_eps: Annotated[
        str | None, typer.Option(help="Eps of the checks (default: the largest --eps).")
    ] = None,
    run: opt.Run = opt.Run(),
    search: opt.Search = opt.Search(),
    dest: opt.Destination = opt.Destination(out="advlab-defend"),
    force: opt.Force = False,
    quiet: opt.Quiet = False,
) -> None:
    """Compare defenses: clean accuracy, robust accuracy under plain and adaptive attacks.

    Each defense is attacked as configured and with attacks that know it (BPDA for
    non-differentiable preprocessing, EOT for random defenses, an attack on the logits
    for defended models, transfer from the undefended model, a detector-aware attack),
    with the gap flagged; gradient-masking checks run for each. Writes defend.json and
    report.html and records the comparison in the results store, row by row: after an
    interrupt, the same command resumes it.
    """
    from advlab.workflows import run_defend

    values = {
        "model": model, "weights": weights, "dataset": dataset, "data_dir": data_dir,
        "split": split, "n": n, "defenses": list(defense or []),
        "defended_models": list(defended_model or []), "detectors": list(detector or []),
        "detector_fpr": detector_fpr, "detector_fit_n": detector_fit_n,
        "attacks": [AttackChoice.parse(text, norm) for text in (attack or DEFAULT_ATTACKS)],
        "epsilons": [parse_epsilon(str(text)) for text in (eps or ["0.1", "0.3"])],
        "eot_samples": eot_samples, "gap_threshold": gap, "checks": checks,
        "check_n": check_n, "check_eps": None if check_eps is None else parse_epsilon(check_eps),
        **asdict(run), **asdict(search), **asdict(dest),
    }  # fmt: skip
    options = {"defenses": "defense", "defended_models": "defended_model",
               "detectors": "detector", "attacks": ("attack", "norm"), "epsilons": "eps",
               "gap_threshold": "gap"}  # fmt: skip
    config = build_config(ctx, DefendConfig, values, options)
    if not quiet:
        rows = [*config.defenses, *config.defended_models, *config.detectors]
        text = (
            f"{config.model} vs {', '.join(rows)} on {config.dataset} (n={config.n}, "
            f"seed={config.seed}): {', '.join(c.name for c in config.attacks)} at eps "
            f"{', '.join(f'{e:g}' for e in config.epsilons)}"
        )
        console.print(f"[bold]advlab defend[/bold] {escape(text)}")
    output = run_defend(config, progress=not quiet, force=force)
    if output.resumed_rows or output.resumed_checks:
        results = output.results["rows"]
        checked = sum(row.get("checks") is not None for row in results)
        console.print(
            f"resumed run {output.results['run_id']}: {output.resumed_rows} of {len(results)} rows "
            f"and {output.resumed_checks} of {checked} checks were already done",
            markup=False,
        )
    if not quiet:
        print_comparison(output.results)
    console.print(f"results: {output.results_path}", markup=False)
    if output.report_path:
        console.print(f"report:  {output.report_path}", markup=False)


def print_comparison(results: Mapping[str, Any]) -> None:
    """The comparison as tables (overview, then one per eps) and its findings."""
    rows = list(results.get("rows") or [])
    # Everything fits 80 columns: row names are never cut (a very long one folds onto a
    # second line), headers are short and the captions spell them out.
    overview = Table(
        _name_column(rows),
        *(Column(name, min_width=6) for name in ("clean", "kept", "slower", "train")),
        Column("checks", overflow="fold"),
        title="defenses",
        caption="clean: clean accuracy; kept: clean accuracy relative to the undefended "
        "model; slower: inference time per image relative to it; train: training time; "
        "checks: the gradient-masking checks",
    )
    for row in rows:
        training = row.get("training_seconds")
        overview.add_row(
            escape(str(row["label"])),
            pct(row.get("clean_accuracy")),
            pct(row.get("clean_retention")),
            "-" if row.get("inference_slowdown") is None else f"{row['inference_slowdown']:.2f}x",
            "none" if row.get("kind") in ("preprocess", "detector")
            else ("-" if training is None else f"{training:.0f} s"),
            escape(str(row.get("checks_summary") or "-")),
        )  # fmt: skip
    console.print(overview)
    headers = _attack_headers(rows)
    epsilons = list(results.get("epsilons") or [])
    for eps in epsilons:
        table = Table(
            _name_column(rows),
            *(Column(escape(header), overflow="fold") for header in headers.values()),
            title=f"robust accuracy at eps {eps:g}: plain -> adaptive (ASR cut)",
            # One caption, under the last table, explains them all.
            caption=_eps_caption(results, headers) if eps == epsilons[-1] else None,
        )
        for row in rows:
            cells = []
            for key in headers:
                cell = next(
                    (c for c in row.get("cells") or [] if c["key"] == key and c["eps"] == eps),
                    None,
                )
                cells.append("-" if cell is None else _cell_text(cell, row.get("kind")))
            table.add_row(escape(str(row["label"])), *cells)
        console.print(table)
    for text in results.get("findings") or []:
        console.print(f"- {text}", markup=False, highlight=False)


def _name_column(rows: list[Mapping[str, Any]]) -> Column:
    """The row names at their full width, up to a third of the console (26 of 80 columns)
    so that the numbers keep room beside them. A fixed width: Rich never shrinks it, and a
    longer name folds onto a second line rather than losing its end."""
    longest = max((len(str(row["label"])) for row in rows), default=7)
    return Column("defense", overflow="fold", width=min(max(longest, 7), console.width // 3))


def _attack_headers(rows: list[Mapping[str, Any]]) -> dict[str, str]:
    """Attack key -> header: the attack's name (``pgd``) where it names one key alone,
    else with its options (``pgd[steps=40]``), else the whole key (``pgd-l2[steps=40]``)."""
    cells = {c["key"]: c for row in rows for c in row.get("cells") or []}
    names = {key: (str(c.get("attack")), attack_name(c), str(key)) for key, c in cells.items()}

    def unique(name: str) -> bool:
        return sum(name in options for options in names.values()) == 1

    return {key: next((n for n in options if unique(n)), key) for key, options in names.items()}


def _eps_caption(results: Mapping[str, Any], headers: Mapping[str, str]) -> str:
    gap = (results.get("config") or {}).get("gap_threshold")
    text = (
        "plain -> adaptive: robust accuracy under the attack as configured, then under it "
        "and its adaptive variants together (in brackets: the strongest variant, where not "
        "the attack itself); cut: 1 - adaptive / undefended attack success rate; !: plain "
        "exceeds adaptive by "
        + ("the threshold" if gap is None else f"{100 * float(gap):.0f}%")
        + " or more"
    )
    shortened = [f"{header}: {key}" for key, header in headers.items() if header != key]
    return escape(text + ("; " + ", ".join(shortened) if shortened else ""))


def _cell_text(cell: Mapping[str, Any], kind: Any) -> str:
    text = f"{pct(cell.get('robust_accuracy'))} -> {pct(cell.get('adaptive_robust_accuracy'))}"
    worst = cell.get("worst_attack")
    if worst and worst != "standard":
        text += f" ({escape(str(worst))})"
    if kind != "undefended":
        text += f" cut {pct(cell.get('asr_reduction'))}"
    return f"[red]{text} ![/red]" if cell.get("gap_flagged") else text
