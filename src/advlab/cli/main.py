"""``advlab``: one command per job, each options -> config -> ``advlab.workflows.run_x``
-> printed summary. Everything a command does, the Python API does too."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Annotated

import typer

from advlab import __version__
from advlab.cli import info
from advlab.cli.attack import attack
from advlab.cli.dashboard import dashboard
from advlab.cli.defend import defend
from advlab.cli.detect import detect
from advlab.cli.evaluate import demo, evaluate
from advlab.cli.options import console, err_console
from advlab.cli.report import report
from advlab.cli.train import train
from advlab.cli.transfer import transfer
from advlab.errors import AdvlabError

__all__ = ["app", "console", "main"]

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


COMMANDS: list[Callable[..., None]] = [demo, evaluate, attack, train, transfer, defend, detect,
                                       report, info.serve, info.models, info.datasets,
                                       info.attacks, info.runs, dashboard]  # fmt: skip
for command in COMMANDS:
    app.command()(command)


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
