"""``advlab runs``: interrupted runs are shown as resumable, ``--salvage`` copies every
readable run of a damaged store into a new one."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import run_cli

from advlab.evaluation.store import ResultStore

EVALUATE = ["evaluate", "--n", "8", "--batch-size", "4", "-a", "fgsm", "--device", "cpu",
            "--no-report", "--quiet"]  # fmt: skip


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    from advlab.cli.options import console

    monkeypatch.setattr(console, "_width", 250)  # rows on one line each


def _evaluate(tmp_path: Path, store: Path, capsys: pytest.CaptureFixture[str], eps: str) -> str:
    out = tmp_path / f"run-{eps}"
    code, _, err = run_cli([*EVALUATE, "-e", eps, "--store", str(store), "--out", str(out)], capsys)
    assert code == 0, err
    return str(json.loads((out / "results.json").read_text())["run_id"])


def test_an_interrupted_run_is_listed_as_resumable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "results.sqlite"
    run_id = _evaluate(tmp_path, store, capsys, "0.1")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a process that ended without finishing the run, as after kill -9
    with sqlite3.connect(store) as conn:
        conn.execute("UPDATE runs SET status = 'running', summary = NULL, pid = ?", (gone.pid,))
    code, out, err = run_cli(["runs", "--store", str(store)], capsys)
    assert code == 0, err
    line = next(line for line in out.splitlines() if run_id[:12] in line)
    assert "interrupted (4/4 units, resumable: rerun its command)" in line


def _damage_run(path: Path, run_id: str) -> None:
    """Zero the overflow pages that hold ``run_id``'s long summary."""
    with ResultStore(path) as store:
        store.start_run(run_id, {"model": "m", "run": run_id}, {}, units_total=1)
        store.finish_run(run_id, {"note": "Z" * 40000})  # about ten overflow pages
    with sqlite3.connect(path) as conn:  # everything into the main file, none left in the WAL
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data, page = bytearray(path.read_bytes()), 4096
    for start in range(page, len(data), page):
        if data[start + 4 : start + page] == b"Z" * (page - 4):
            data[start : start + page] = bytes(page)
    path.write_bytes(bytes(data))


def test_salvage_copies_every_readable_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "results.sqlite"
    good = [_evaluate(tmp_path, store, capsys, eps) for eps in ("0.1", "0.2")]
    with ResultStore(store) as intact:
        before = {run_id: intact.get_run(run_id) for run_id in good}
    _damage_run(store, "damaged")

    code, _, err = run_cli(["runs", "--store", str(store)], capsys)
    assert code == 2 and "corrupt" in err  # the damaged store is refused, in one line
    saved = tmp_path / "saved.sqlite"
    code, out, err = run_cli(["runs", "--store", str(store), "--salvage", str(saved)], capsys)
    assert code == 0, err
    assert "salvaged 2 run(s)" in out and "left out damaged run damaged" in out
    with ResultStore(saved) as copy:
        assert {row["run_id"] for row in copy.list_runs()} == set(good)
        assert {run_id: copy.get_run(run_id) for run_id in good} == before
    code, _, err = run_cli(["runs", "--store", str(store), "--salvage", str(saved)], capsys)
    assert code == 2 and "exists" in err  # never into an existing file
