"""The layout rules of scripts/check_architecture.py hold: no import cycle, no import
upward through the layers, no module over the line limit."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "check_architecture.py"


def test_architecture_has_no_problems() -> None:
    spec = importlib.util.spec_from_file_location("check_architecture", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.check() == []
