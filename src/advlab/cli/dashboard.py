"""``advlab dashboard``: start the Streamlit app over a results store."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Annotated

import typer

from advlab.errors import AdvlabError


def dashboard(
    host: Annotated[str, typer.Option(help="Address to bind (127.0.0.1: this machine only).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8501,
    store: Annotated[
        Path | None, typer.Option(help="Results store to read (default ~/.advlab/results.sqlite).")
    ] = None,
) -> None:
    """Browse, compare and explore stored runs, and attack images in a playground."""
    try:
        import streamlit  # noqa: F401
    except ImportError:
        raise AdvlabError(
            "the dashboard needs Streamlit: pip install 'advlab[dashboard]'"
        ) from None
    from advlab.dashboard import streamlit_command
    from advlab.evaluation.store import default_store_path

    command = streamlit_command(host, port, store or default_store_path())
    if os.name == "posix":  # Streamlit takes this process's place: a signal stops the server
        os.execv(command[0], command)
        return
    raise typer.Exit(subprocess.call(command))
