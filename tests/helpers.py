"""Helpers shared by test modules (fixtures live in conftest.py)."""

from __future__ import annotations

import importlib.util
import signal
import socket
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

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


FIXTURES = Path(__file__).resolve().parent / "fixtures"


def fixture_module(name: str) -> ModuleType:
    """A script of tests/fixtures (e.g. the one that recorded a reference), imported."""
    spec = importlib.util.spec_from_file_location(name, FIXTURES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def assert_matches_reference(
    name: str, got: dict[str, Any], expected: dict[str, Any], exact: tuple[str, ...]
) -> None:
    """Every recorded output hashes the same; the ``exact`` keys (configs) compare as values."""
    assert sorted(got) == sorted(expected)
    for key, value in expected.items():
        if key in exact:
            assert got[key] == value, f"{name}: {key} changed"
        else:
            assert got[key]["sha256"] == value["sha256"], (
                f"{name}.{key}: got sum {got[key].get('sum')}, recorded {value.get('sum')}"
            )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
