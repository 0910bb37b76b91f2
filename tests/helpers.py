"""Helpers shared by test modules (fixtures live in conftest.py)."""

from __future__ import annotations

import signal

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


def default_sigint() -> None:
    """``preexec_fn`` for a child that a test interrupts with SIGINT: a shell that starts
    the tests in the background ignores SIGINT, children inherit that, and Python then
    installs no KeyboardInterrupt handler; restore the default so Ctrl-C is what it is."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
