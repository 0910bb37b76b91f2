"""Helpers shared by test modules (fixtures live in conftest.py)."""

from __future__ import annotations

from advlab.cli.main import main


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    """Run ``advlab ARGS`` in-process: its exit code and what it printed to stdout and stderr."""
    try:
        main(args)
        code = 0
    except SystemExit as done:
        code = int(done.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err
