"""Starting the dashboard: the ``streamlit run`` command line, and a server for scripts."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from advlab.errors import AdvlabError

APP_FILE = Path(__file__).with_name("app.py")


def streamlit_command(host: str, port: int, store: str | Path) -> list[str]:
    """``python -m streamlit run app.py`` bound to ``host:port``, reading ``store``."""
    return [
        sys.executable, "-m", "streamlit", "run", str(APP_FILE),
        "--server.address", host, "--server.port", str(port), "--server.headless", "true",
        "--browser.gatherUsageStats", "false", "--server.maxUploadSize", "200",
        "--server.fileWatcherType", "none", "--global.developmentMode", "false",
        "--client.toolbarMode", "minimal",
        "--", "--store", str(store),
    ]  # fmt: skip


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def running_dashboard(store: str | Path, timeout: float = 60.0) -> Iterator[str]:
    """Run the dashboard on a free localhost port for the block; yields its URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tempfile.TemporaryFile()  # not a pipe: nothing can fill up and block the server
    process = subprocess.Popen(
        streamlit_command("127.0.0.1", port, store), stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + timeout
        while not _healthy(url):
            if process.poll() is not None:
                log.seek(0)
                output = log.read().decode(errors="replace")
                raise AdvlabError(f"the dashboard stopped at start:\n{output}")
            if time.monotonic() > deadline:
                raise AdvlabError(f"the dashboard did not answer within {timeout:g} s")
            time.sleep(0.3)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False
