"""``advlab report``: one or several finished runs as a scorecard and a report."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from advlab.cli.options import Store, console
from advlab.reports.scorecard import DEFAULT_MIN_CLEAN, DEFAULT_MIN_ROBUST
from advlab.workflows.report import FORMATS, ReportConfig, run_report


def report(
    run: Annotated[
        list[str],
        typer.Argument(
            help="Run ids from the store (a unique prefix will do), or paths of "
            "results files (results.json, defend.json) or their folders."
        ),
    ],
    format: Annotated[
        list[str] | None,
        typer.Option(
            "--format", "-f", help=f"Format, repeatable: {', '.join(FORMATS)} (default: all six)."
        ),
    ] = None,
    out: Annotated[str, typer.Option(help="Folder to write the report to.")] = "advlab-report",
    store: Store = None,
    min_clean: Annotated[
        float, typer.Option(help="Clean accuracy a run needs to pass (a fraction).")
    ] = DEFAULT_MIN_CLEAN,
    min_robust: Annotated[
        float,
        typer.Option(help="Worst-case robust accuracy at --eps a run needs to pass (a fraction)."),
    ] = DEFAULT_MIN_ROBUST,
    eps: Annotated[
        str | None,
        typer.Option(help="Eps to judge at (0.03 or 8/255; default: each run's largest)."),
    ] = None,
    title: Annotated[str | None, typer.Option(help="Title of the report.")] = None,
) -> None:
    """Scorecard (pass / fail against --min-clean and --min-robust at --eps) and report
    of runs in HTML, PDF, Markdown, LaTeX, CSV and JSON; several runs are compared.

    Exits 0 whether the runs pass or fail; the verdicts are printed and in every format.
    """  # fmt: skip
    config = ReportConfig.from_mapping(
        {"runs": run, "formats": format or list(FORMATS), "out": out, "store": store,
         "min_clean": min_clean, "min_robust": min_robust, "eps": eps, "title": title}
    )  # fmt: skip
    output = run_report(config)
    table = Table("run", "verdict", "clean", "robust", "eps", "strongest attack")
    for card in output.scorecards:
        colour = {"pass": "green", "fail": "red"}.get(card.verdict, "yellow")
        row = dict(card.rows())
        table.add_row(escape(card.run_id), f"[{colour}]{card.verdict}[/{colour}]",
                      row["Clean accuracy"], row["Robust accuracy (worst case)"], row["Eps"],
                      escape(row["Strongest attack"]))  # fmt: skip
    console.print(table)
    for name, paths in output.files.items():
        console.print(f"{name}: {', '.join(escape(str(p)) for p in paths)}", highlight=False)
