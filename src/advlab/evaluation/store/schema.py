"""The tables of the results store, its schema version, and the migration of older stores.

Schema 2 (this version): ``runs`` (one row per run: its configuration, the process that
runs it, and once finished its summary), ``units`` (the finished units with their
seconds; the clean pass has attack key ""), ``clean`` (per image: label, clean
prediction, confidence), ``outcomes`` (per attack, eps and image), ``examples`` (a
sweep's example images per attack and eps), ``parts`` (the finished pieces of runs
that are not per-image outcomes, e.g. the rows of a defense comparison: JSON and
arrays) and ``queries`` (the answers a black-box target gave to a unit still in
progress, so that its queries are never paid twice). Every array blob is safetensors
(:mod:`advlab.evaluation.store.blobs`).

Schema 1 stored example images as .npz, had no ``pid``/``host`` in ``runs``, and got
``parts`` only in later releases, and no ``queries``; :func:`migrate` upgrades such a
store in one transaction when it is opened.
"""

from __future__ import annotations

import logging
import sqlite3

import advlab.evaluation.store.blobs as blobs

log = logging.getLogger(__name__)

APPLICATION_ID = 0x61646C62  # "adlb" in the SQLite header: marks the file as advlab's
SCHEMA_VERSION = 2
EXAMPLE_ARRAYS = ("clean", "adversarial", "labels", "clean_pred", "clean_conf",
                  "adv_pred", "adv_conf")  # fmt: skip

_TABLES = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, created TEXT NOT NULL, updated TEXT NOT NULL,
    status TEXT NOT NULL, identity TEXT NOT NULL, config TEXT NOT NULL,
    model TEXT, dataset TEXT, split TEXT, n INTEGER, seed INTEGER,
    units_total INTEGER NOT NULL, summary TEXT, pid INTEGER, host TEXT
);
CREATE TABLE IF NOT EXISTS units (
    run_id TEXT NOT NULL, attack_key TEXT NOT NULL, eps REAL NOT NULL,
    batch_offset INTEGER NOT NULL, size INTEGER NOT NULL, seconds REAL NOT NULL,
    finished TEXT NOT NULL,
    PRIMARY KEY (run_id, attack_key, eps, batch_offset)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS clean (
    run_id TEXT NOT NULL, position INTEGER NOT NULL, label INTEGER NOT NULL,
    pred INTEGER NOT NULL, confidence REAL NOT NULL,
    PRIMARY KEY (run_id, position)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS outcomes (
    run_id TEXT NOT NULL, attack_key TEXT NOT NULL, eps REAL NOT NULL,
    position INTEGER NOT NULL, clean_correct INTEGER NOT NULL, adv_pred INTEGER NOT NULL,
    confidence REAL NOT NULL, success INTEGER NOT NULL, target INTEGER,
    linf REAL NOT NULL, l2 REAL NOT NULL, queries INTEGER NOT NULL,
    PRIMARY KEY (run_id, attack_key, eps, position)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS examples (
    run_id TEXT NOT NULL, attack_key TEXT NOT NULL, eps REAL NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (run_id, attack_key, eps)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS parts (
    run_id TEXT NOT NULL, name TEXT NOT NULL, data TEXT NOT NULL, arrays BLOB,
    PRIMARY KEY (run_id, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS queries (
    run_id TEXT NOT NULL, attack_key TEXT NOT NULL, eps REAL NOT NULL,
    batch_offset INTEGER NOT NULL, seq INTEGER NOT NULL, digest TEXT NOT NULL,
    answer BLOB NOT NULL,
    PRIMARY KEY (run_id, attack_key, eps, batch_offset, seq)
) WITHOUT ROWID
"""
#: The tables in the order a copy must fill them (``runs`` first).
TABLES = ("runs", "units", "clean", "outcomes", "examples", "parts", "queries")


def create(conn: sqlite3.Connection) -> None:
    """The tables of the current schema, in an open transaction."""
    for statement in filter(str.strip, _TABLES.split(";")):
        conn.execute(statement)
    conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")


def missing_tables(conn: sqlite3.Connection) -> bool:
    """Whether a table of the current schema is missing (e.g. ``parts`` of an early store)."""
    present = {str(row[0]) for row in conn.execute("SELECT name FROM sqlite_master")}
    return not present.issuperset(TABLES)


def migrate(conn: sqlite3.Connection, version: int) -> None:
    """Upgrade a store of schema ``version`` to the current one, in an open transaction."""
    if version < 2:
        _migrate_1_to_2(conn)
    for statement in filter(str.strip, _TABLES.split(";")):
        conn.execute(statement)  # CREATE TABLE IF NOT EXISTS: whatever is missing
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")


def _migrate_1_to_2(conn: sqlite3.Connection) -> None:
    """runs.pid and runs.host, and example blobs from .npz to safetensors (the new tables
    are created by :func:`migrate`)."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(runs)")}
    for column, kind in (("pid", "INTEGER"), ("host", "TEXT")):
        if column not in columns:
            conn.execute(f"ALTER TABLE runs ADD COLUMN {column} {kind}")
    rows = conn.execute("SELECT run_id, attack_key, eps, data FROM examples").fetchall()
    for run_id, key, eps, blob in rows:
        where = (run_id, key, eps)
        try:
            arrays = blobs.read_npz(blob, EXAMPLE_ARRAYS)
        except blobs.BLOB_ERRORS as error:
            # Only pictures for the report: the numbers of the run stay whole without them.
            log.warning("results store migration: dropping the unreadable example images of "
                        "run %s, %s at eps %g (%s)", run_id, key, eps, error)  # fmt: skip
            conn.execute("DELETE FROM examples WHERE run_id = ? AND attack_key = ? AND eps = ?",
                         where)  # fmt: skip
            continue
        conn.execute(
            "UPDATE examples SET data = ? WHERE run_id = ? AND attack_key = ? AND eps = ?",
            (blobs.pack(arrays), *where),
        )
    log.info("results store migrated from schema 1 to 2 (%d example blobs rewritten)", len(rows))
