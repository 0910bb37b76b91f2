"""Every notebook in notebooks/ runs top to bottom, offline, in a fresh kernel."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("ipywidgets")

NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))
#: Notebooks that read a data set from ADVLAB_DATA_DIR (the others use bundled data).
NEEDS_DATA = {"02_transferability.ipynb"}


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 3


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path: Path, tmp_path: Path, monkeypatch):
    if path.name in NEEDS_DATA:
        data = os.environ.get("ADVLAB_DATA_DIR")
        if not data or not Path(data).is_dir():
            pytest.skip("ADVLAB_DATA_DIR is not set to the shared data folder")
    # The kernel inherits the environment: its own advlab home, no display, few threads.
    monkeypatch.setenv("ADVLAB_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "1"))
    book = nbformat.read(path, as_version=4)
    start = time.monotonic()
    client = nbclient.NotebookClient(
        book, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    seconds = time.monotonic() - start
    errors = [
        o for c in book.cells for o in c.get("outputs", []) if o.get("output_type") == "error"
    ]
    assert not errors
    assert seconds < 60, f"{path.name} took {seconds:.0f} s"
    # Rich results render as HTML (the typed results' and AttackResult's _repr_html_).
    html = [o for c in book.cells for o in c.get("outputs", []) if "text/html" in o.get("data", {})]
    assert html
