"""Copy every readable run of a damaged results store into a new one.

A store with damaged pages is refused when opened (its integrity check fails), which
locks every run out, including the many whose rows are intact. :func:`salvage` reads the
damaged file table by table and run by run, without the check, and copies each run whose
rows can all be read into a new store; a run with any unreadable row is left out and
named, so that a salvaged run is always complete.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import advlab.evaluation.store.blobs as blobs
from advlab.errors import AdvlabError
from advlab.evaluation.store.runs import ResultStore
from advlab.evaluation.store.schema import EXAMPLE_ARRAYS, TABLES

log = logging.getLogger(__name__)


@dataclass
class SalvageReport:
    """What :func:`salvage` copied (run ids) and left out (run id -> why)."""

    source: Path
    destination: Path
    copied: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


def salvage(source: str | Path, destination: str | Path) -> SalvageReport:
    """Copy every readable run of the store ``source`` into the new store ``destination``.

    ``source`` is only read. ``destination`` must not exist yet. Runs of an older schema
    are converted on the way (their example images rewritten as safetensors).
    """
    source, destination = Path(source).expanduser(), Path(destination).expanduser()
    if not source.is_file():
        raise AdvlabError(f"no results store at {source}: give the path of the damaged store")
    if destination.exists():
        raise AdvlabError(f"{destination} exists: salvage into a new file")
    report = SalvageReport(source, destination)
    try:
        damaged = sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as error:
        raise AdvlabError(f"cannot open {source} to salvage it ({error})") from None
    try:
        try:
            run_ids = [str(row[0]) for row in damaged.execute("SELECT run_id FROM runs")]
        except sqlite3.DatabaseError as error:
            raise AdvlabError(
                f"the list of runs in {source} is unreadable ({error}): nothing to salvage"
            ) from None
        with ResultStore(destination) as store:
            for run_id in run_ids:
                try:
                    rows = _read_run(damaged, run_id)
                except (sqlite3.DatabaseError, *blobs.BLOB_ERRORS) as error:
                    report.skipped[run_id] = str(error) or type(error).__name__
                    log.warning("salvage: run %s is damaged (%s): left out", run_id, error)
                    continue
                _write_run(store, rows)
                report.copied.append(run_id)
    finally:
        damaged.close()
    return report


def _read_run(conn: sqlite3.Connection, run_id: str) -> dict[str, tuple[list[str], list[Any]]]:
    """Every row of ``run_id``, per table: (column names, rows)."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    present = {str(row[0]) for row in conn.execute("SELECT name FROM sqlite_master")}
    out = {}
    for table in TABLES:
        if table not in present:
            continue
        cursor = conn.execute(f"SELECT * FROM {table} WHERE run_id = ?", (run_id,))  # noqa: S608
        rows = [list(row) for row in cursor.fetchall()]
        names = [column[0] for column in cursor.description]
        if table == "examples" and version < 2:
            index = names.index("data")
            for row in rows:
                row[index] = blobs.pack(blobs.read_npz(row[index], EXAMPLE_ARRAYS))
        out[table] = (names, rows)
    if not out.get("runs", ([], []))[1]:
        raise sqlite3.DatabaseError("its row in runs is gone")
    return out


def _write_run(store: ResultStore, tables: dict[str, tuple[list[str], list[Any]]]) -> None:
    """The rows of one run, in one transaction."""
    with store._transaction() as conn:
        for table, (names, rows) in tables.items():
            if rows:
                columns, marks = ", ".join(names), ", ".join("?" * len(names))
                conn.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks})", rows)
