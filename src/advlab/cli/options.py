"""Options, consoles and the config-building step shared by every ``advlab`` command."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from advlab.workflows.base import RunConfig, read_yaml

console = Console()
err_console = Console(stderr=True)

R = TypeVar("R", bound=RunConfig)

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="YAML config, e.g. the config.yaml of an earlier run (options given win).",
    ),
]
Device = Annotated[str, typer.Option(help="cpu, cuda, cuda:N or auto.")]
Seed = Annotated[int, typer.Option(help="Random seed (data subset, random starts).")]
Store = Annotated[
    str | None, typer.Option(help="SQLite results store (default ~/.advlab/results.sqlite).")
]
BatchSize = Annotated[int, typer.Option(help="Images per batch.")]
Weights = Annotated[str | None, typer.Option(help="Weights file (.safetensors, .pt/.pth).")]
DataDir = Annotated[
    str | None, typer.Option(help="Folder holding the data (else ADVLAB_DATA_DIR).")
]
Split = Annotated[str, typer.Option(help="train or test.")]
Dataset = Annotated[str, typer.Option(help="Data set name.")]
DefaultNorm = Annotated[str, typer.Option(help="Default norm for the attacks: linf or l2.")]
Epsilons = Annotated[
    list[str] | None, typer.Option("--eps", "-e", help="Epsilon, repeatable (0.03 or 8/255).")
]
#: For the commands whose default attacks are fgsm, pgd and mim.
Attacks = Annotated[
    list[str] | None,
    typer.Option("--attack", "-a", help="Attack, repeatable (default fgsm, pgd, mim)."),
]
Report = Annotated[bool, typer.Option(help="Write report.html.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or tables.")]
Force = Annotated[
    bool, typer.Option("--force", help="Overwrite the results of a different run in --out.")
]

#: For a config field, the option(s) that set it: a name, several, or (for a nested
#: config) one option per key. A field not listed is set by the option of its name.
Options = Mapping[str, Any]


def given_options(ctx: typer.Context) -> set[str]:
    """The options given on the command line (not left at their defaults)."""
    # By name: typer carries its own copy of click, whose ParameterSource is another enum.
    sources = {name: ctx.get_parameter_source(name) for name in ctx.params}
    return {name for name, source in sources.items() if source and source.name != "DEFAULT"}


def build_config(
    ctx: typer.Context, config_type: type[R], values: dict[str, Any], options: Options | None = None
) -> R:
    """The command's config from its options' ``values``; with ``--config FILE``, the file's
    values, of which only the options given on the command line change any."""
    path = ctx.params.get("config_file")
    if path is None:
        return config_type.from_mapping(values)
    given, options = given_options(ctx), options or {}
    merged = config_type.canonical(read_yaml(path))
    for field, value in values.items():
        source = options.get(field, field)
        if isinstance(source, Mapping):  # a nested config: only the keys given
            nested = value if isinstance(value, dict) else {}
            keys = {key: nested[key] for key, option in source.items() if option in given}
            if keys:
                base = merged.get(field)
                merged[field] = {**(base if isinstance(base, dict) else {}), **keys}
        elif given & ({source} if isinstance(source, str) else set(source)):
            merged[field] = value
    return config_type.from_mapping(merged)


def pct(value: Any) -> str:
    return "-" if value is None else f"{100 * float(value):.1f}%"
