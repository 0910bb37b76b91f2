"""Options and consoles shared by every ``advlab`` command module."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from advlab.config import load_yaml

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


def pct(value: Any) -> str:
    return "-" if value is None else f"{100 * float(value):.1f}%"
