"""The results store's runs: what an evaluation writes, unit by unit, and reads back."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np

import advlab.evaluation.store.blobs as blobs
from advlab.errors import AdvlabError
from advlab.evaluation.metrics import AttackOutcomes
from advlab.evaluation.store.queries import QueryLog
from advlab.evaluation.store.schema import EXAMPLE_ARRAYS

CLEAN_KEY = ""  # the attack key of the clean pass in ``units``


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


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True  # someone else's process, or a pid we cannot ask about: assume alive
    return True


class ResultStore(QueryLog):
    """Runs and their per-image outcomes in one SQLite file (default ``~/.advlab/results.sqlite``).

    An evaluation writes one unit at a time and commits it in one transaction, in WAL
    mode, so Ctrl-C or a killed process loses at most the unit in flight, and running the
    same configuration again resumes where it stopped. ``ResultStore(":memory:")`` keeps
    everything in memory (nothing survives the process).
    """

    # -- writing (used by the evaluation sessions) -------------------------------------
    def start_run(
        self,
        run_id: str,
        identity: dict[str, Any],
        config: dict[str, Any],
        units_total: int,
    ) -> bool:
        """Create the run or mark an existing one running again; True if it already existed.

        The run records this process, so that a run whose process is gone (killed) is
        listed as "interrupted", not "running" forever.
        """
        now, owner = _now(), (os.getpid(), socket.gethostname())
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
                    "UPDATE runs SET status = 'running', updated = ?, config = ?, pid = ?, "
                    "host = ? WHERE run_id = ?",
                    (now, config_text, *owner, run_id),
                )
                return True
            conn.execute(
                "INSERT INTO runs (run_id, created, updated, status, identity, config, model, "
                "dataset, split, n, seed, units_total, pid, host) VALUES (?, ?, ?, 'running', ?, "
                "?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, now, now, json.dumps(identity, sort_keys=True), config_text,
                 identity.get("model"), identity.get("dataset"), identity.get("split"),
                 identity.get("n"), identity.get("seed"), units_total, *owner),
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
        blob = blobs.pack({name: examples[name] for name in EXAMPLE_ARRAYS}) if examples else None
        with self._transaction() as conn:
            placeholders = ", ".join("?" * 12)
            conn.executemany(f"INSERT OR REPLACE INTO outcomes VALUES ({placeholders})", values)
            if blob is not None:
                conn.execute(
                    "INSERT OR REPLACE INTO examples VALUES (?, ?, ?, ?)",
                    (run_id, attack_key, eps, blob),
                )
            conn.execute(
                "DELETE FROM queries WHERE run_id = ? AND attack_key = ? AND eps = ? "
                "AND batch_offset = ?",
                (run_id, attack_key, eps, offset),
            )  # the unit is done: its answers will not be asked for again
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
        blob = blobs.pack(arrays) if arrays else None
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

    def mark_orphans(self) -> list[str]:
        """Mark "interrupted" every run of this machine still "running" whose process is
        gone (killed with SIGKILL, or the machine went down); returns their ids."""
        rows = self._fetch(
            "SELECT run_id, pid FROM runs WHERE status = 'running' AND pid IS NOT NULL "
            "AND host = ?",
            socket.gethostname(),
        )
        gone = [run_id for run_id, pid in rows if not process_alive(int(pid))]
        if gone:
            with self._transaction() as conn:
                conn.executemany(
                    "UPDATE runs SET status = 'interrupted' WHERE run_id = ? "
                    "AND status = 'running'",
                    [(run_id,) for run_id in gone],
                )
        return gone

    def _mark_orphans_quietly(self) -> None:
        # Best effort: a read-only or busy store is still listed, with the statuses it has.
        with contextlib.suppress(AdvlabError):
            self.mark_orphans()

    # -- reading ------------------------------------------------------------------------
    def done_units(self, run_id: str) -> set[tuple[str, float, int]]:
        """The (attack key, eps, batch offset) units already stored; the clean pass has key ""."""
        rows = self._fetch(
            "SELECT attack_key, eps, batch_offset FROM units WHERE run_id = ?", run_id
        )
        return {(str(key), float(eps), int(offset)) for key, eps, offset in rows}

    def unit_seconds(self, run_id: str, attack_key: str | None = None, eps: float = 0.0) -> float:
        """Seconds spent on one attack at one eps, or on the whole run (``attack_key=None``)."""
        query = "SELECT sum(seconds) FROM units WHERE run_id = ?"
        args: tuple[object, ...] = (run_id,)
        if attack_key is not None:
            query += " AND attack_key = ? AND eps = ?"
            args = (run_id, attack_key, eps)
        return float(self._fetch(query, *args)[0][0] or 0.0)

    def clean_rows(self, run_id: str, n: int) -> CleanRows:
        rows = self._fetch(
            "SELECT position, label, pred, confidence FROM clean WHERE run_id = ? "
            "ORDER BY position",
            run_id,
        )
        position, labels, pred, confidence = self._columns(
            rows, n, (np.int64, np.int64, np.int64, np.float64), f"the clean pass of run {run_id}"
        )
        return CleanRows(labels, pred, confidence)

    def attack_rows(self, run_id: str, attack_key: str, eps: float, n: int) -> AttackOutcomes:
        rows = self._fetch(
            "SELECT position, clean_correct, adv_pred, confidence, success, linf, l2, queries "
            "FROM outcomes WHERE run_id = ? AND attack_key = ? AND eps = ? ORDER BY position",
            run_id, attack_key, eps,
        )  # fmt: skip
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
        rows = self._fetch("SELECT attack_key, eps, data FROM examples WHERE run_id = ?", run_id)
        return {(str(key), float(eps)): self._arrays(blob, "example images", EXAMPLE_ARRAYS)
                for key, eps, blob in rows}  # fmt: skip

    def parts(self, run_id: str) -> dict[str, tuple[dict[str, Any], dict[str, np.ndarray]]]:
        """The stored pieces of a run by name: their data and arrays (see :meth:`write_part`)."""
        rows = self._fetch("SELECT name, data, arrays FROM parts WHERE run_id = ?", run_id)
        return {
            str(name): (
                self._json(text, run_id),
                self._arrays(blob, f"run {run_id}, {name}") if blob is not None else {},
            )
            for name, text, blob in rows
        }

    def list_runs(self) -> list[dict[str, Any]]:
        """Every run, newest first, with its headline numbers once finished (``advlab runs``)."""
        self._mark_orphans_quietly()
        rows = self._fetch(
            "SELECT run_id, created, updated, status, model, dataset, split, n, seed, "
            "units_total, summary, identity, "
            "(SELECT count(*) FROM units WHERE units.run_id = runs.run_id) "
            "FROM runs ORDER BY created DESC, rowid DESC"
        )
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
        self._mark_orphans_quietly()
        rows = self._fetch(
            "SELECT run_id, status, summary, units_total, "
            "(SELECT count(*) FROM units WHERE units.run_id = runs.run_id) "
            "FROM runs WHERE run_id LIKE ? || '%' ESCAPE '\\'",
            run_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_"),
        )
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


def _attack_label(attack: Any) -> str:
    if not isinstance(attack, dict):
        return str(attack)
    return f"{attack.get('name')}-{attack.get('norm')}"
