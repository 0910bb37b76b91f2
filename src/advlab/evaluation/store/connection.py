"""Opening a results store file safely: refuse what is not one, check it, migrate it.

The file is treated as untrusted input: JSON and safetensors only, and anything
unreadable becomes an :class:`AdvlabError` that names the file and the way out.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

import advlab.evaluation.store.blobs as blobs
import advlab.evaluation.store.schema as schema
from advlab.errors import AdvlabError
from advlab.paths import advlab_home


def default_store_path() -> Path:
    return advlab_home() / "results.sqlite"


class StoreFile:
    """One SQLite connection to a results store, opened, checked and migrated.

    ``StoreFile(":memory:")`` keeps everything in memory (nothing survives the process).
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path).expanduser() if path is not None else default_store_path()
        self._memory = str(path) == ":memory:"
        if not self._memory and self.path.is_file() and self.path.stat().st_size == 0:
            # sqlite would take it for a new store: a truncated store would silently vanish.
            raise AdvlabError(
                f"results store {self.path} is an empty file (0 bytes): a store never is, so it "
                "was probably truncated; move it away (or delete it) to start a new store"
            )
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

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Any:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"

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

    def _corrupt(self, error: object) -> AdvlabError:
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

    def _fetch(self, query: str, *args: object) -> list[Any]:
        """All rows of one read query, SQLite failures as one-line errors."""
        with self._errors():
            return self._conn.execute(query, args).fetchall()

    def _arrays(self, blob: Any, what: str, names: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
        """The arrays of a stored blob (see :mod:`~advlab.evaluation.store.blobs`)."""
        try:
            return blobs.unpack(blob, names)
        except blobs.BLOB_ERRORS as error:
            raise self._corrupt(f"{what}: {error}") from None

    def _json(self, text: Any, run_id: str) -> dict[str, Any]:
        try:
            value = json.loads(text)
        except (TypeError, ValueError) as error:
            raise self._corrupt(f"run {run_id}: {error}") from None
        if not isinstance(value, dict):
            raise self._corrupt(f"run {run_id}: expected a JSON object")
        return value

    def _initialize(self) -> None:
        conn = self._conn
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        if tables and app_id != schema.APPLICATION_ID:
            raise AdvlabError(
                f"{self.path} is an SQLite file but not an advlab results store: "
                "pass another store path"
            )
        if version > schema.SCHEMA_VERSION:
            raise AdvlabError(
                f"results store {self.path} was written by a newer advlab (schema {version}): "
                "upgrade advlab or use another store"
            )
        if tables:
            self._check_integrity()
        # WAL: a reader (advlab runs) never blocks the writer, and a commit is one append.
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        if not tables:
            with self._transaction():
                schema.create(conn)
        elif version < schema.SCHEMA_VERSION or schema.missing_tables(conn):
            with self._transaction():
                schema.migrate(conn, version)

    def _check_integrity(self) -> None:
        """Damaged pages are named now, with the way to save what is still readable."""
        try:
            problems = [str(row[0]) for row in self._conn.execute("PRAGMA integrity_check")]
        except sqlite3.DatabaseError as error:
            problems = [str(error)]
        if problems != ["ok"]:
            problems = [line for text in problems for line in text.splitlines() if line.strip()]
            raise AdvlabError(
                f"results store {self.path} is corrupt (integrity check: "
                f"{'; '.join(problems[:3])}): copy its readable runs into a new store with "
                f"'advlab runs --store {self.path} --salvage NEW_PATH' (Python: "
                "advlab.evaluation.store.salvage), then move it away"
            )
