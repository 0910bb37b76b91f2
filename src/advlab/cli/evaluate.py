"""``advlab evaluate`` and ``advlab demo``: robust accuracy over attacks and an eps sweep."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Column, Table

from advlab.cli import options as opt
from advlab.cli.options import build_config, console, pct
from advlab.workflows.base import AttackChoice, parse_epsilon
from advlab.workflows.config import EvaluateConfig


def demo(
    out: Annotated[
        str, typer.Option(help="Folder for results.json and report.html.")
    ] = "advlab-demo",
    n: Annotated[int, typer.Option(help="Number of bundled held-out MNIST images.")] = 300,
    store: opt.Store = None,
    force: opt.Force = False,
    quiet: opt.Quiet = False,
) -> None:
    """Offline demo: the bundled MNIST CNN under FGSM, PGD, MIM and DeepFool, eps 0.05..0.3."""
    from advlab.workflows import demo_config, run_evaluation

    config = demo_config(out=out, n=n, store=store)
    print_run_header(config)
    output = run_evaluation(config, progress=not quiet, force=force)
    print_results(output.results)
    console.print(f"results: {output.results_path}")
    if output.report_path:
        console.print(f"report:  {output.report_path}  (open it in a browser)")


@opt.grouped
def evaluate(
    ctx: typer.Context,
    config_file: opt.ConfigOption = None,
    model: opt.Model = "mnist-cnn",
    weights: opt.Weights = None,
    target: Annotated[
        str | None, typer.Option(help="Attack a black box instead: http://HOST:PORT or FILE.onnx.")
    ] = None,
    target_timeout: Annotated[
        float, typer.Option(help="Deadline in seconds of each whole request to an http target.")
    ] = 10.0,
    target_retries: Annotated[
        int, typer.Option(help="Retries of a request that failed (connection error, 5xx).")
    ] = 2,
    target_total_timeout: Annotated[
        float | None, typer.Option(help="Deadline in seconds of all requests of the run.")
    ] = None,
    dataset: opt.Dataset = "mnist-demo",
    data_dir: opt.DataDir = None,
    split: opt.Split = "test",
    n: Annotated[
        int | None,
        typer.Option("--n", "-n", help="Evaluate a seeded random subset of n images."),
    ] = 1000,
    attack: Annotated[
        list[str] | None,
        typer.Option(
            "--attack", "-a", help="Attack, repeatable; options as pgd:steps=20,restarts=2."
        ),
    ] = None,
    eps: opt.Epsilons = None,
    norm: opt.DefaultNorm = "linf",
    run: opt.Run = opt.Run(),
    dest: opt.Destination = opt.Destination(),
    examples: Annotated[int, typer.Option(help="Example images per attack in the report.")] = 8,
    defense: Annotated[
        str | None,
        typer.Option(help="Defense in front of the model (jpeg:quality=75); adds adaptive runs."),
    ] = None,
    suite: Annotated[
        str | None,
        typer.Option(help="Preset cascade standard, fast or quick (docs/suite.md), in --norm."),
    ] = None,
    search: opt.Search = opt.Search(),
    force: opt.Force = False,
    quiet: opt.Quiet = False,
) -> None:
    """Clean and robust accuracy of a model over attacks and an epsilon sweep.

    Writes results.json, config.yaml and report.html to --out. Results are written batch
    by batch to the store: rerun the same command (or --config OUT/config.yaml) after an
    interrupt and it resumes where it stopped. --suite runs a preset cascade (alone,
    unless --attack is given too). Under torchrun the images are shared out to the
    processes (docs/distributed.md).
    """
    from advlab.workflows import run_evaluation
    from advlab.workflows.distributed import is_main

    main = is_main()
    quiet = quiet or not main

    values: dict[str, Any] = {
        "model": model, "weights": weights, "target": target, "dataset": dataset,
        "data_dir": data_dir, "split": split, "n": n, **asdict(run),
        "attacks": [AttackChoice.parse(text, norm)
                    for text in (attack or ([] if suite else ["pgd"]))],
        "epsilons": [parse_epsilon(str(text)) for text in (eps or ["0.1", "0.3"])],
        **asdict(dest), "examples": examples, "defense": defense,
        "target_timeout": target_timeout, "target_retries": target_retries,
        "target_total_timeout": target_total_timeout, "suite": suite, "suite_norm": norm,
        **asdict(search),
    }  # fmt: skip
    config = build_config(
        ctx, EvaluateConfig, values, {"attacks": ("attack", "norm"), "suite_norm": "norm"}
    )
    if not quiet:
        print_run_header(config)
    output = run_evaluation(config, progress=not quiet, force=force)
    if not quiet:
        print_results(output.results)
        if "defense_comparison" in output.results:
            from advlab.cli.defend import print_comparison

            print_comparison(output.results["defense_comparison"])
    if main:
        console.print(f"results: {output.results_path}")
    if output.report_path:
        console.print(f"report:  {output.report_path}")


def print_run_header(config: EvaluateConfig) -> None:
    names = ", ".join(a.name + (f"({a.norm})" if a.norm != "linf" else "") for a in config.attacks)
    if config.suite:
        names = ", ".join(filter(None, [names, f"the {config.suite} suite ({config.suite_norm})"]))
    console.print(
        f"[bold]advlab[/bold] {config.model} on {config.dataset} (n={config.n}, "
        f"seed={config.seed}): {names} at eps {', '.join(f'{e:g}' for e in config.epsilons)}"
        + (f", searching in {config.precision}" if config.precision != "float32" else "")
    )


def _num(value: Any, digits: int = 3) -> str:
    return "-" if value is None else f"{float(value):.{digits}f}"


def print_results(results: dict[str, Any]) -> None:
    from advlab.reports.tables import attack_name

    console.print(f"clean accuracy: {pct(results['clean_accuracy'])} on {results['n']} images")
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
            pct(row["robust_accuracy"]),
            pct(row["attack_success_rate"]),
            _num(row.get("mean_linf")),
            _num(row.get("mean_l2")),
            pct(row.get("mean_confidence")),
            _num(row.get("mean_queries" if queried else "images_per_second"), 0),
        )
    for eps, accuracy in results["worst_case"].items():
        table.add_row(
            "[bold]worst-case[/bold]", "", f"{float(eps):g}", pct(accuracy), "", "", "", "", ""
        )
    console.print(table)
    if results.get("suite"):
        print_suite(results)


def print_suite(results: dict[str, Any]) -> None:
    """Per eps: the suite's robust accuracy, which attack broke how many images at what
    cost; then AutoAttack's sanity lines, the gradient-masking checks and the warnings."""
    for entry in results["suite"]:
        table = Table("attack", "broke", "queries/img", "seconds",
                      title=f"{entry['suite']} suite, {entry['norm']} eps {entry['eps']:g}: "
                            f"robust accuracy {pct(entry['robust_accuracy'])}")  # fmt: skip
        for name, count in entry["broken_by"].items():
            mean = entry["mean_queries"].get(name)
            seconds = entry["seconds"].get(name)
            table.add_row(name, str(count), _num(mean, 0), _num(seconds, 1))
        console.print(table)
        console.print(
            f"max {entry['norm']} perturbation: "
            f"{entry['max_linf'] if entry['norm'] == 'linf' else entry['max_l2']:.6g} "
            f"(eps {entry['eps']:g}); NaNs: {entry['nan']}; adversarial min/max: "
            f"{entry['min_pixel']:.4g}/{entry['max_pixel']:.4g}"
        )
    for check in results.get("checks", []):
        mark = "[green]pass[/green]" if check["status"] == "pass" else "[yellow]warn[/yellow]"
        console.print(f"check {check['name']}: {mark} ({escape(check['explanation'])})")
    for text in results.get("warnings", []):
        console.print(f"[yellow]warning:[/yellow] {escape(text)}")
