"""``advlab transfer``: the transfer matrix of attacks crafted on sources, shown to targets."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from advlab.cli import options as opt
from advlab.cli.options import build_config, console, pct
from advlab.workflows.base import AttackChoice, parse_epsilon
from advlab.workflows.config import TransferConfig

if TYPE_CHECKING:  # the command imports torch and matplotlib only when it runs
    from advlab.evaluation.transfer import TransferCell, TransferMatrix

DEFAULT_ATTACKS = ["fgsm", "pgd", "mim"]


@opt.grouped
def transfer(
    ctx: typer.Context,
    config_file: opt.ConfigOption = None,
    source: Annotated[
        list[str] | None,
        typer.Option("--source", "-s", help="Model to craft on, repeatable (as for evaluate)."),
    ] = None,
    target: Annotated[
        list[str] | None,
        typer.Option("--target", "-t", help="Model to evaluate on, repeatable (default: sources)."),
    ] = None,
    attack: opt.Attacks = None,
    eps: opt.Epsilons = None,
    norm: opt.DefaultNorm = "linf",
    dataset: Annotated[
        str | None, typer.Option(help="Data set (default: the first source's data set).")
    ] = None,
    data_dir: opt.DataDir = None,
    split: opt.Split = "test",
    n: Annotated[int | None, typer.Option(help="Use a seeded random subset of n images.")] = 1000,
    run: opt.Run = opt.Run(),
    search: opt.Search = opt.Search(),
    dest: opt.Destination = opt.Destination(out="advlab-transfer", report=False),
    force: opt.Force = False,
    quiet: opt.Quiet = False,
) -> None:
    """Transferability: craft on each source, evaluate on each target.

    Prints, per attack and eps, the attack success rate from each source (rows) to each
    target (columns), counted over the images both classify correctly; the diagonal is the
    white-box rate. Examples are crafted once per source and reused for every target.
    Writes transfer.json, transfer.csv and heatmaps (and with --report, transfer.html)
    to --out.
    """
    from advlab.reports.tables import format_eps
    from advlab.workflows import run_transfer

    values = {
        "sources": list(source or []), "targets": list(target or []),
        "attacks": [AttackChoice.parse(text, norm) for text in (attack or DEFAULT_ATTACKS)],
        "epsilons": [parse_epsilon(str(text)) for text in eps or []], "dataset": dataset,
        "data_dir": data_dir, "split": split, "n": n, **asdict(run), **asdict(search),
        **asdict(dest),
    }  # fmt: skip
    options = {"sources": "source", "targets": "target", "attacks": ("attack", "norm"),
               "epsilons": "eps"}  # fmt: skip
    config = build_config(ctx, TransferConfig, values, options)
    if not quiet:
        attacks_text = ", ".join(_key(choice) for choice in config.attacks)
        eps_text = ", ".join(format_eps(e, config.attacks[0].norm) for e in config.epsilons)
        text = (
            f"{', '.join(config.sources)} -> {', '.join(config.targets)} on {config.dataset} "
            f"(n={config.n}, seed={config.seed}): {attacks_text} at eps {eps_text}"
        )
        console.print(f"[bold]advlab transfer[/bold] {escape(text)}")
    output = run_transfer(config, progress=not quiet, force=force)
    if not quiet:
        _print_matrices(output.matrix)
    console.print(f"results: {output.results_path} and transfer.csv", markup=False)
    console.print(f"figures: {', '.join(path.name for path in output.figures)}", markup=False)
    if output.report_path:
        console.print(f"report:  {output.report_path}", markup=False)


def _key(choice: AttackChoice) -> str:
    from advlab.evaluation import AttackSpec

    return AttackSpec(name=choice.name, norm=choice.norm, params=dict(choice.params)).key


def _print_matrices(result: TransferMatrix) -> None:
    from advlab.reports.tables import format_eps

    clean = ", ".join(
        f"{name} {pct(info['clean_accuracy'])}" for name, info in result.models.items()
    )
    console.print(f"clean accuracy on {result.n} images: {clean}", markup=False)
    console.print(
        "rows: source (crafted on), columns: target; each cell: attack success rate over the "
        "n images both classify correctly, and the target's accuracy on all transferred examples"
    )
    for key, norm, eps in dict.fromkeys((c.key, c.norm, c.eps) for c in result.cells):
        # Names and keys such as pgd-linf[steps=20] are text, not rich markup.
        table = Table(
            "source \\ target",
            *map(escape, result.targets),
            title=escape(f"{key} eps={format_eps(eps, norm)}"),
        )
        for source in result.sources:
            cells = [_cell_text(result.cell(key, eps, source, t)) for t in result.targets]
            table.add_row(escape(source), *cells)
        console.print(table)


def _cell_text(cell: TransferCell) -> str:
    rate, accuracy = pct(cell.success_rate), pct(cell.target_adversarial_accuracy)
    text = f"{rate} (n={cell.n_both_correct})\nacc {accuracy}"
    return f"[bold]{text}[/bold]" if cell.white_box else text
