"""``advlab transfer``: the transfer matrix of attacks crafted on sources, shown to targets."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from advlab.cli.options import BatchSize, ConfigOption, Device, Quiet, Seed, console
from advlab.config import AttackChoice, parse_epsilon
from advlab.errors import AdvlabError, check

if TYPE_CHECKING:  # the command imports torch and matplotlib only when it runs
    from advlab.evaluation.transfer import TransferCell, TransferMatrix

DEFAULT_ATTACKS = ["fgsm", "pgd", "mim"]


def transfer(
    config_file: ConfigOption = None,
    source: Annotated[
        list[str] | None,
        typer.Option("--source", "-s", help="Model to craft on, repeatable (as for evaluate)."),
    ] = None,
    target: Annotated[
        list[str] | None,
        typer.Option("--target", "-t", help="Model to evaluate on, repeatable (default: sources)."),
    ] = None,
    attack: Annotated[
        list[str] | None,
        typer.Option("--attack", "-a", help="Attack, repeatable (default fgsm, pgd, mim)."),
    ] = None,
    eps: Annotated[
        list[str] | None, typer.Option("--eps", "-e", help="Epsilon, repeatable (0.03 or 8/255).")
    ] = None,
    norm: Annotated[str, typer.Option(help="Default norm for the attacks: linf or l2.")] = "linf",
    dataset: Annotated[
        str | None, typer.Option(help="Data set (default: the first source's data set).")
    ] = None,
    data_dir: Annotated[
        str | None, typer.Option(help="Folder holding the data (else ADVLAB_DATA_DIR).")
    ] = None,
    split: Annotated[str, typer.Option(help="train or test.")] = "test",
    n: Annotated[int | None, typer.Option(help="Use a seeded random subset of n images.")] = 1000,
    batch_size: BatchSize = 128,
    seed: Seed = 0,
    device: Device = "auto",
    out: Annotated[
        str, typer.Option(help="Output folder for transfer.json, transfer.csv and heatmaps.")
    ] = "advlab-transfer",
    report: Annotated[bool, typer.Option(help="Also write transfer.html.")] = False,
    quiet: Quiet = False,
) -> None:
    """Transferability: craft on each source, evaluate on each target.

    Prints, per attack and eps, the attack success rate from each source (rows) to each
    target (columns), counted over the images both classify correctly; the diagonal is the
    white-box rate. Examples are crafted once per source and reused for every target.
    """
    from advlab.data import load_dataset
    from advlab.evaluation import AttackSpec
    from advlab.evaluation.transfer import transfer_matrix
    from advlab.models import resolve_device
    from advlab.reports.tables import format_eps
    from advlab.reports.transfer import save_transfer_heatmaps, write_transfer_report

    check(bool(source), "give at least one --source model to craft the examples on")
    check(bool(eps), "give at least one --eps, e.g. --eps 8/255 on CIFAR-10 or --eps 0.3 on MNIST")
    assert source is not None and eps is not None
    choices = [AttackChoice.parse(text, norm) for text in (attack or DEFAULT_ATTACKS)]
    specs = [AttackSpec(name=c.name, norm=c.norm, params=dict(c.params)) for c in choices]
    epsilons = [parse_epsilon(str(text)) for text in eps]
    target_specs = list(target or source)
    for role, specs_given in (("--source", source), ("--target", target_specs)):
        twice = sorted({spec for spec in specs_given if specs_given.count(spec) > 1})
        check(not twice, f"{role} {', '.join(twice)} is listed twice: give each model once")
    dataset = dataset or _default_dataset(source[0])
    run_device = resolve_device(device)
    models = _load_models([*source, *target_specs], run_device)
    data = load_dataset(dataset, split, n, data_dir, seed=seed)
    config: dict[str, Any] = {
        "sources": list(source), "targets": target_specs,
        "attacks": [c.model_dump() for c in choices], "epsilons": epsilons, "dataset": dataset,
        "data_dir": data_dir, "split": split, "n": n, "seed": seed, "batch_size": batch_size,
        "device": device, "out": out, "report": report,
    }  # fmt: skip
    out_dir = Path(out).expanduser()
    if not quiet:
        attacks_text = ", ".join(spec.key for spec in specs)
        eps_text = ", ".join(format_eps(e, norm) for e in epsilons)
        text = (
            f"{', '.join(source)} -> {', '.join(target_specs)} on {dataset} (n={len(data)}, "
            f"seed={seed}): {attacks_text} at eps {eps_text}"
        )
        console.print(f"[bold]advlab transfer[/bold] {escape(text)}")

    def save(partial: TransferMatrix) -> None:
        partial.write_json(out_dir / "transfer.json")
        partial.write_csv(out_dir / "transfer.csv")

    result = transfer_matrix(
        {spec: models[spec] for spec in source},
        {spec: models[spec] for spec in target_specs},
        specs,
        epsilons,
        data,
        batch_size=batch_size,
        seed=seed,
        progress=not quiet,
        run_config=config,
        on_update=save,
    )
    save(result)
    results = result.to_dict()
    figures = save_transfer_heatmaps(results, out_dir)
    if not quiet:
        _print_matrices(result)
    console.print(f"results: {out_dir / 'transfer.json'} and transfer.csv", markup=False)
    console.print(f"figures: {', '.join(path.name for path in figures)}", markup=False)
    if report:
        page = write_transfer_report(results, out_dir / "transfer.html")
        console.print(f"report:  {page}", markup=False)


def _default_dataset(spec: str) -> str:
    from advlab.models import get_entry

    try:
        return get_entry(spec).dataset
    except AdvlabError:
        raise AdvlabError(
            f"model '{spec}' is not in the registry, so its data set is unknown: pass --dataset"
        ) from None


def _load_models(specs: list[str], device: Any) -> dict[str, Any]:
    """Each model once, by the text that named it (a source may also be a target)."""
    from advlab.models import load_model

    models: dict[str, Any] = {}
    for spec in specs:
        if spec not in models:
            models[spec] = load_model(spec, device=device)
    return models


def _print_matrices(result: TransferMatrix) -> None:
    from advlab.reports.tables import format_eps

    clean = ", ".join(
        f"{name} {_pct(info['clean_accuracy'])}" for name, info in result.models.items()
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
    rate, accuracy = _pct(cell.success_rate), _pct(cell.target_adversarial_accuracy)
    text = f"{rate} (n={cell.n_both_correct})\nacc {accuracy}"
    return f"[bold]{text}[/bold]" if cell.white_box else text


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"
