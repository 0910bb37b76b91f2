"""``advlab attack``: craft adversarial examples and save them as .npz (and PNGs)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import typer

from advlab.cli import options as opt
from advlab.cli.options import build_config, console
from advlab.workflows.base import AttackChoice, parse_epsilon
from advlab.workflows.config import AttackConfig


@opt.grouped
def attack(
    ctx: typer.Context,
    config_file: opt.ConfigOption = None,
    source: opt.Source = opt.Source(),
    split: opt.Split = "test",
    n: Annotated[int | None, typer.Option(help="Number of images.")] = 100,
    attack: Annotated[
        str, typer.Option("--attack", "-a", help="Attack with options, e.g. pgd:steps=20.")
    ] = "pgd",
    eps: Annotated[str, typer.Option("--eps", "-e", help="Epsilon (0.03 or 8/255).")] = "0.1",
    norm: Annotated[str, typer.Option(help="linf or l2.")] = "linf",
    run: opt.Run = opt.Run(),
    search: opt.Search = opt.Search(),
    out: Annotated[str, typer.Option(help="Output folder for adversarial.npz.")] = "advlab-attack",
    png: Annotated[bool, typer.Option(help="Also write one PNG per adversarial image.")] = False,
    force: opt.Force = False,
    quiet: opt.Quiet = False,
) -> None:
    """Craft adversarial examples and save them as .npz (and optionally PNGs)."""
    from advlab.workflows import run_attack

    values = {
        **asdict(source), "split": split, "n": n, "attack": AttackChoice.parse(attack, norm),
        "eps": parse_epsilon(eps), **asdict(run), **asdict(search), "out": out, "png": png,
    }  # fmt: skip
    config = build_config(ctx, AttackConfig, values, {"attack": ("attack", "norm")})
    output = run_attack(config, progress=not quiet, force=force)
    console.print(
        f"{config.attack.name} eps={config.eps:g}: success rate {output.success_rate:.1%} "
        f"on {output.summary['n']} images -> {output.path}"
    )
