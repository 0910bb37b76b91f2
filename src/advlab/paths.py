"""Where advlab reads data and writes its state."""

from __future__ import annotations

import os
from pathlib import Path

DATA_DIR_ENV = "ADVLAB_DATA_DIR"
HOME_ENV = "ADVLAB_HOME"


def data_dir() -> Path | None:
    """The directory named by ``ADVLAB_DATA_DIR``, or None when it is unset."""
    value = os.environ.get(DATA_DIR_ENV)
    return Path(value).expanduser() if value else None


def advlab_home() -> Path:
    """advlab's own state (results store, download cache): ``ADVLAB_HOME`` or ~/.advlab."""
    value = os.environ.get(HOME_ENV)
    return Path(value).expanduser() if value else Path.home() / ".advlab"


def cache_dir() -> Path:
    return advlab_home() / "cache"
