"""Options, consoles and the config-building step shared by every ``advlab`` command."""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Annotated, Any, TypeVar, get_type_hints

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
AttackBatchSize = Annotated[
    str, typer.Option(help="Images per batch, or auto: what the device's free memory holds.")
]
Weights = Annotated[str | None, typer.Option(help="Weights file (.safetensors, .pt/.pth).")]
DataDir = Annotated[
    str | None, typer.Option(help="Folder holding the data (else ADVLAB_DATA_DIR).")
]
Split = Annotated[str, typer.Option(help="train or test.")]
Dataset = Annotated[str, typer.Option(help="Data set name (see 'advlab datasets').")]
#: A model spec, as ``advlab.models.load_model`` takes it.
Model = Annotated[
    str, typer.Option(help="Registry name, torchvision:NAME, module:factory or a file.")
]
DefaultNorm = Annotated[str, typer.Option(help="Default norm for the attacks: linf or l2.")]
Epsilons = Annotated[
    list[str] | None, typer.Option("--eps", "-e", help="Epsilon, repeatable (0.03 or 8/255).")
]
#: For the commands whose default attacks are fgsm, pgd and mim.
Attacks = Annotated[
    list[str] | None,
    typer.Option("--attack", "-a", help="Attack, repeatable (default fgsm, pgd, mim)."),
]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or tables.")]
Force = Annotated[
    bool, typer.Option("--force", help="Overwrite the results of a different run in --out.")
]


@dataclass(frozen=True)
class Source:
    """``--model``, ``--weights``, ``--dataset``, ``--data-dir``: what a command runs on."""

    model: Model = "mnist-cnn"
    weights: Weights = None
    dataset: Dataset = "mnist-demo"
    data_dir: DataDir = None


@dataclass(frozen=True)
class Run:
    """``--batch-size``, ``--seed``, ``--device``: how a command runs."""

    batch_size: AttackBatchSize = "128"
    seed: Seed = 0
    device: Device = "auto"


@dataclass(frozen=True)
class Search:
    """``--precision``, ``--compile``: what the attacks search on (docs/suite.md)."""

    precision: Annotated[
        str,
        typer.Option(help="Search in float32, bfloat16 (float32 verdicts) or auto: docs/suite.md."),
    ] = "float32"
    compile: Annotated[
        bool, typer.Option("--compile", help="Search on torch.compile of the model (long runs).")
    ] = False


@dataclass(frozen=True)
class Destination:
    """``--out``, ``--store``, ``--report``: where a command's results go."""

    out: Annotated[
        str, typer.Option(help="Output folder for the results, config.yaml and the HTML report.")
    ] = "advlab-results"
    store: Store = None
    report: Annotated[bool, typer.Option(help="Write the HTML report.")] = True


F = TypeVar("F", bound=Callable[..., None])


def grouped(command: F) -> F:
    """``command`` with each parameter typed as an option group (a dataclass of options,
    such as :class:`Source`, :class:`Run`, :class:`Destination`) spread out into the
    group's options, in its place and with the defaults of the parameter's default;
    ``command`` receives the group. Typer reads the signature, so the options show in
    ``--help`` and parse as any other."""
    signature = inspect.signature(command, eval_str=True)
    parameters = signature.parameters.values()
    groups = {p.name: p for p in parameters if dataclasses.is_dataclass(p.annotation)}
    params: list[inspect.Parameter] = []
    for param in signature.parameters.values():
        if param.name not in groups:
            params.append(param)
            continue
        hints = get_type_hints(param.annotation, include_extras=True)
        params += [
            inspect.Parameter(name, param.kind, annotation=hints[name], default=default)
            for name, default in asdict(param.default).items()
        ]

    @functools.wraps(command)
    def spread(**values: Any) -> None:
        for name, param in groups.items():
            group = param.annotation
            values[name] = group(**{f.name: values.pop(f.name) for f in fields(group)})
        command(**values)

    spread.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    spread.__annotations__ = {p.name: p.annotation for p in params}
    return spread  # type: ignore[return-value]


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
