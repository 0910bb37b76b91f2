"""The results store: one SQLite file holding every run, image by image.

An evaluation writes one (attack, eps, batch) unit at a time and commits it in one
transaction, in WAL mode, so Ctrl-C or a killed process loses at most the unit in
flight, and running the same configuration again resumes where it stopped. The file is
treated as untrusted input: JSON and ``np.load(allow_pickle=False)`` only, and anything
unreadable becomes an :class:`AdvlabError` that names the file.

Tables: ``runs`` (one row per run, its configuration and, once finished, its summary),
``units`` (the finished units with their seconds; the clean pass has attack key ""),
``clean`` (per image: label, clean prediction, confidence), ``outcomes`` (per attack,
eps and image: the adversarial prediction, confidence, success, norms, queries) and
``examples`` (an .npz blob of example images per attack and eps). ``parts`` holds the
finished pieces of runs that are not per-image outcomes (the rows of a defense
comparison): JSON, and arrays as safetensors, each also marked done in ``units``.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import sqlite3
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import safetensors.numpy
from safetensors import SafetensorError

from advlab.errors import AdvlabError
from advlab.evaluation.metrics import AttackOutcomes
from advlab.paths import advlab_home

log = logging.getLogger(__name__)

APPLICATION_ID = 0x61646C62  # "adlb" in the SQLite header: marks the file as advlab's
SCHEMA_VERSION = 1
CLEAN_KEY = ""  # the attack key of the clean pass in ``units``
EXAMPLE_ARRAYS = ("clean", "adversarial", "labels", "clean_pred", "clean_conf",
                  "adv_pred", "adv_conf")  # fmt: skip

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, created TEXT NOT NULL, updated TEXT NOT NULL,
    status TEXT NOT NULL, identity TEXT NOT NULL, config TEXT NOT NULL,
    model TEXT, dataset TEXT, split TEXT, n INTEGER, seed INTEGER,
    units_total INTEGER NOT NULL, summary TEXT
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
"""
# Added after schema 1 shipped; a store without it gets it when opened (older advlab
# ignores the table).
_PARTS = """
CREATE TABLE IF NOT EXISTS parts (
    run_id TEXT NOT NULL, name TEXT NOT NULL, data TEXT NOT NULL, arrays BLOB,
    PRIMARY KEY (run_id, name)
) WITHOUT ROWID
"""


def default_store_path() -> Path:
    return advlab_home() / "results.sqlite"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class CleanRows:
    """The clean pass, per image in data set order."""

    labels: np.ndarray  # int64
    pred: np.ndarray  # int64
    confidence: np.ndarray  # float64

    @property
    def correct(self) -> np.ndarray:
        return self.pred == self.labels


@dataclass
class UnitRows:
    """What one finished (attack, eps, batch) unit writes, one entry per image of the batch."""

    positions: np.ndarray
    clean_correct: np.ndarray
    adv_pred: np.ndarray
    confidence: np.ndarray
    success: np.ndarray
    target: np.ndarray | None
    linf: np.ndarray
    l2: np.ndarray
    queries: np.ndarray


class ResultStore:
    """Runs and their per-image outcomes in one SQLite file (default ``~/.advlab/results.sqlite``).

    ``ResultStore(":memory:")`` keeps everything in memory (nothing survives the process).
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path).expanduser() if path is not None else default_store_path()
        self._memory = str(path) == ":memory:"
        try:
            if not self._memory:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(
                ":memory:" if self._memory else str(self.path), timeout=30, isolation_level=None
            )
        except (OSError, sqlite3.Error) as error:
            raise AdvlabError(
                f"cannot open results store {self.path} ({error}): pass a writable file path"
            ) from None
        try:
            with self._errors():
                self._initialize()
        except AdvlabError:
            self._conn.close()
            raise

    # -- housekeeping -------------------------------------------------------------------
    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ResultStore({str(self.path)!r})"

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """Any SQLite failure becomes one line that names the file and the fix."""
        try:
            yield
        except sqlite3.OperationalError as error:
            if "locked" in str(error) or "busy" in str(error):
                raise AdvlabError(
                    f"results store {self.path} is locked by another process ({error}): wait for "
                    "it to finish or use another store"
                ) from None
            raise self._corrupt(error) from None
        except sqlite3.DatabaseError as error:
            raise self._corrupt(error) from None

    def _corrupt(self, error: Exception) -> AdvlabError:
        return AdvlabError(
            f"results store {self.path} is corrupt or not an advlab results file ({error}): "
            "move it away or pass another store path"
        )

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One committed transaction; an exception (Ctrl-C included) rolls it back."""
        with self._errors():
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _initialize(self) -> None:
        conn = self._conn
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        if tables and app_id != APPLICATION_ID:
            raise AdvlabError(
                f"{self.path} is an SQLite file but not an advlab results store: "
                "pass another store path"
            )
        if version > SCHEMA_VERSION:
            raise AdvlabError(
                f"results store {self.path} was written by a newer advlab (schema {version}): "
                "upgrade advlab or use another store"
            )
        # WAL: a reader (advlab runs) never blocks the writer, and a commit is one append.
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        if not tables:
            with self._transaction():
                for statement in filter(str.strip, _SCHEMA.split(";")):
                    conn.execute(statement)
                conn.execute(_PARTS)
                conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
                conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        elif not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'parts'").fetchone():
            with self._transaction():
                conn.execute(_PARTS)

    # -- writing (used by evaluate) -----------------------------------------------------
    def start_run(
        self,
        run_id: str,
        identity: dict[str, Any],
        config: dict[str, Any],
        units_total: int,
    ) -> bool:
        """Create the run or mark an existing one running again; True if it already existed."""
        now = _now()
        config_text = json.dumps(config, sort_keys=True, default=str)
        with self._transaction() as conn:
            row = conn.execute("SELECT identity FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            if row is not None:
                if self._json(row[0], run_id) != identity:
                    raise AdvlabError(
                        f"run {run_id} in {self.path} has another configuration under the same "
                        "id: the store is corrupt; move it away or use another store"
                    )
                conn.execute(
                    "UPDATE runs SET status = 'running', updated = ?, config = ? WHERE run_id = ?",
                    (now, config_text, run_id),
                )
                return True
            conn.execute(
                "INSERT INTO runs (run_id, created, updated, status, identity, config, model, "
                "dataset, split, n, seed, units_total) VALUES (?, ?, ?, 'running', ?, ?, ?, ?, ?, "
                "?, ?, ?)",
                (run_id, now, now, json.dumps(identity, sort_keys=True), config_text,
                 identity.get("model"), identity.get("dataset"), identity.get("split"),
                 identity.get("n"), identity.get("seed"), units_total),
            )  # fmt: skip
        return False

    def set_status(self, run_id: str, status: str) -> None:
        with self._transaction() as conn:
            conn.execute(
                "UPDATE runs SET status = ?, updated = ? WHERE run_id = ?", (status, _now(), run_id)
            )

    def finish_run(self, run_id: str, summary: dict[str, Any]) -> None:
        with self._transaction() as conn:
            conn.execute(
                "UPDATE runs SET status = 'finished', updated = ?, summary = ? WHERE run_id = ?",
                (_now(), json.dumps(summary, default=str), run_id),
            )

    def write_clean(
        self,
        run_id: str,
        offset: int,
        labels: np.ndarray,
        pred: np.ndarray,
        confidence: np.ndarray,
        seconds: float,
    ) -> None:
        """Store one batch of the clean pass and mark it done, in one transaction."""
        rows = [
            (run_id, offset + i, int(labels[i]), int(pred[i]), float(confidence[i]))
            for i in range(len(labels))
        ]
        with self._transaction() as conn:
            conn.executemany("INSERT OR REPLACE INTO clean VALUES (?, ?, ?, ?, ?)", rows)
            self._mark_done(conn, run_id, CLEAN_KEY, 0.0, offset, len(rows), seconds)

    def write_unit(
        self,
        run_id: str,
        attack_key: str,
        eps: float,
        offset: int,
        rows: UnitRows,
        seconds: float,
        examples: dict[str, np.ndarray] | None = None,
    ) -> None:
        """Store one (attack, eps, batch) unit, its examples if any, and mark it done."""
        target = rows.target
        values = [
            (run_id, attack_key, eps, int(rows.positions[i]), int(rows.clean_correct[i]),
             int(rows.adv_pred[i]), float(rows.confidence[i]), int(rows.success[i]),
             None if target is None or target[i] < 0 else int(target[i]),
             float(rows.linf[i]), float(rows.l2[i]), int(rows.queries[i]))
            for i in range(len(rows.positions))
        ]  # fmt: skip
        blob = _pack(examples) if examples else None
        with self._transaction() as conn:
            placeholders = ", ".join("?" * 12)
            conn.executemany(f"INSERT OR REPLACE INTO outcomes VALUES ({placeholders})", values)
            if blob is not None:
                conn.execute(
                    "INSERT OR REPLACE INTO examples VALUES (?, ?, ?, ?)",
                    (run_id, attack_key, eps, blob),
                )
            self._mark_done(conn, run_id, attack_key, eps, offset, len(values), seconds)

    def write_part(
        self,
        run_id: str,
        name: str,
        data: dict[str, Any],
        seconds: float,
        arrays: dict[str, np.ndarray] | None = None,
    ) -> None:
        """Store one finished piece of a run (JSON ``data``, ``arrays`` as safetensors) and
        mark it done as unit ``name``, in one transaction."""
        text = json.dumps(data)
        blob = safetensors.numpy.save(arrays) if arrays else None
        with self._transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO parts VALUES (?, ?, ?, ?)", (run_id, name, text, blob)
            )
            self._mark_done(conn, run_id, name, 0.0, 0, 1, seconds)

    def drop_part_arrays(self, run_id: str) -> None:
        """Free the arrays of a run's parts (kept only while the run may be resumed)."""
        with self._transaction() as conn:
            conn.execute("UPDATE parts SET arrays = NULL WHERE run_id = ?", (run_id,))

    @staticmethod
    def _mark_done(
        conn: sqlite3.Connection,
        run_id: str,
        attack_key: str,
        eps: float,
        offset: int,
        size: int,
        seconds: float,
    ) -> None:
        conn.execute(
            "INSERT OR REPLACE INTO units VALUES (?, ?, ?, ?, ?, ?, ?)",
            (run_id, attack_key, eps, offset, size, seconds, _now()),
        )
        conn.execute("UPDATE runs SET updated = ? WHERE run_id = ?", (_now(), run_id))

    # -- reading ------------------------------------------------------------------------
    def done_units(self, run_id: str) -> set[tuple[str, float, int]]:
        """The (attack key, eps, batch offset) units already stored; the clean pass has key ""."""
        with self._errors():
            rows = self._conn.execute(
                "SELECT attack_key, eps, batch_offset FROM units WHERE run_id = ?", (run_id,)
            ).fetchall()
        return {(str(key), float(eps), int(offset)) for key, eps, offset in rows}

    def unit_seconds(self, run_id: str, attack_key: str | None = None, eps: float = 0.0) -> float:
        """Seconds spent on one attack at one eps, or on the whole run (``attack_key=None``)."""
        query, args = "SELECT sum(seconds) FROM units WHERE run_id = ?", [run_id]
        if attack_key is not None:
            query, args = query + " AND attack_key = ? AND eps = ?", [run_id, attack_key, eps]
        with self._errors():
            row = self._conn.execute(query, args).fetchone()
        return float(row[0] or 0.0)

    def clean_rows(self, run_id: str, n: int) -> CleanRows:
        with self._errors():
            rows = self._conn.execute(
                "SELECT position, label, pred, confidence FROM clean WHERE run_id = ? "
                "ORDER BY position",
                (run_id,),
            ).fetchall()
        position, labels, pred, confidence = self._columns(
            rows, n, (np.int64, np.int64, np.int64, np.float64), f"the clean pass of run {run_id}"
        )
        return CleanRows(labels, pred, confidence)

    def attack_rows(self, run_id: str, attack_key: str, eps: float, n: int) -> AttackOutcomes:
        with self._errors():
            rows = self._conn.execute(
                "SELECT position, clean_correct, adv_pred, confidence, success, linf, l2, queries "
                "FROM outcomes WHERE run_id = ? AND attack_key = ? AND eps = ? ORDER BY position",
                (run_id, attack_key, eps),
            ).fetchall()
        types = (np.int64, np.bool_, np.int64, np.float64,
                 np.bool_, np.float64, np.float64, np.int64)  # fmt: skip
        columns = self._columns(rows, n, types, f"{attack_key} at eps {eps} in run {run_id}")
        return AttackOutcomes(*columns[1:])

    def _columns(
        self, rows: list[tuple[Any, ...]], n: int, types: Sequence[Any], what: str
    ) -> list[np.ndarray]:
        """Rows as typed columns, checked to cover positions 0..n-1 exactly once."""
        # Columns in SELECT order; an empty result still gives one (empty) array per column.
        raw = list(zip(*rows, strict=True)) if rows else [() for _ in types]
        try:
            columns = [np.asarray(col, dtype=kind) for col, kind in zip(raw, types, strict=True)]
        except (TypeError, ValueError) as error:
            raise self._corrupt(error) from None
        if len(rows) != n or not np.array_equal(columns[0], np.arange(n)):
            raise AdvlabError(
                f"results store {self.path} holds {len(rows)} of {n} images for {what}: the run "
                "is incomplete or the store corrupt; run the evaluation again"
            )
        return columns

    def examples(self, run_id: str) -> dict[tuple[str, float], dict[str, np.ndarray]]:
        """The stored example images of a run, keyed by (attack key, eps)."""
        with self._errors():
            rows = self._conn.execute(
                "SELECT attack_key, eps, data FROM examples WHERE run_id = ?", (run_id,)
            ).fetchall()
        return {(str(key), float(eps)): self._unpack(blob) for key, eps, blob in rows}

    def parts(self, run_id: str) -> dict[str, tuple[dict[str, Any], dict[str, np.ndarray]]]:
        """The stored pieces of a run by name: their data and arrays (see :meth:`write_part`)."""
        with self._errors():
            rows = self._conn.execute(
                "SELECT name, data, arrays FROM parts WHERE run_id = ?", (run_id,)
            ).fetchall()
        out = {}
        for name, text, blob in rows:
            try:
                arrays = safetensors.numpy.load(bytes(blob)) if blob is not None else {}
            except (SafetensorError, TypeError, ValueError) as error:
                raise self._corrupt(f"run {run_id}, {name}: {error}") from None
            out[str(name)] = (self._json(text, run_id), arrays)
        return out

    def list_runs(self) -> list[dict[str, Any]]:
        """Every run, newest first, with its headline numbers once finished (``advlab runs``)."""
        with self._errors():
            rows = self._conn.execute(
                "SELECT run_id, created, updated, status, model, dataset, split, n, seed, "
                "units_total, summary, identity, "
                "(SELECT count(*) FROM units WHERE units.run_id = runs.run_id) "
                "FROM runs ORDER BY created DESC, rowid DESC"
            ).fetchall()
        runs = []
        for row in rows:
            run_id, created, updated, status, model, dataset, split, n, seed, total = row[:10]
            summary = self._json(row[10], run_id) if row[10] is not None else {}
            identity = self._json(row[11], run_id)
            runs.append({
                "run_id": run_id, "created": created, "updated": updated, "status": status,
                "model": model, "dataset": dataset, "split": split, "n": n, "seed": seed,
                "attacks": [_attack_label(a) for a in identity.get("attacks") or []],
                "epsilons": identity.get("epsilons"),
                "clean_accuracy": summary.get("clean_accuracy"),
                "worst_case": summary.get("worst_case"),
                "units_done": row[12], "units_total": total,
            })  # fmt: skip
        return runs

    def get_run(self, run_id: str) -> dict[str, Any]:
        """A finished run's results (the results.json content); a unique id prefix will do."""
        with self._errors():
            rows = self._conn.execute(
                "SELECT run_id, status, summary, units_total, "
                "(SELECT count(*) FROM units WHERE units.run_id = runs.run_id) "
                "FROM runs WHERE run_id LIKE ? || '%' ESCAPE '\\'",
                (run_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_"),),
            ).fetchall()
        exact = [row for row in rows if row[0] == run_id]
        rows = exact or rows
        if not rows:
            raise AdvlabError(f"no run '{run_id}' in {self.path}: list the runs with 'advlab runs'")
        if len(rows) > 1:
            raise AdvlabError(
                f"run id '{run_id}' is ambiguous in {self.path}: give more characters"
            )
        full_id, status, summary, total, done = rows[0]
        if summary is None:
            raise AdvlabError(
                f"run {full_id} is {status} ({done} of {total} units stored): run the same "
                "evaluation again to finish it"
            )
        return self._json(summary, full_id)

    def _json(self, text: Any, run_id: str) -> dict[str, Any]:
        try:
            value = json.loads(text)
        except (TypeError, ValueError) as error:
            raise self._corrupt(f"run {run_id}: {error}") from None
        if not isinstance(value, dict):
            raise self._corrupt(f"run {run_id}: expected a JSON object")
        return value

    def _unpack(self, blob: Any) -> dict[str, np.ndarray]:
        try:
            with np.load(io.BytesIO(bytes(blob)), allow_pickle=False) as archive:
                arrays = {name: archive[name] for name in EXAMPLE_ARRAYS}
        except (KeyError, OSError, ValueError, TypeError, EOFError, zipfile.BadZipFile) as error:
            raise self._corrupt(f"example images: {error}") from None
        return arrays


def _pack(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **{name: arrays[name] for name in EXAMPLE_ARRAYS})
    return buffer.getvalue()


def _attack_label(attack: Any) -> str:
    if not isinstance(attack, dict):
        return str(attack)
    return f"{attack.get('name')}-{attack.get('norm')}"
