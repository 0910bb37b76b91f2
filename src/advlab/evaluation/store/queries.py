"""The answers a black-box target gave to a unit still in progress.

A unit against a remote endpoint may fail after it has paid for thousands of queries.
Each answer is committed as it arrives; the unit's next attempt, drawing the same
random numbers, asks the same questions in the same order and is answered from here
until it reaches the point where the first attempt stopped, so no query is paid twice.
The answers are deleted with the unit's commit (:meth:`ResultStore.write_unit`).
"""

from __future__ import annotations

import numpy as np

import advlab.evaluation.store.blobs as blobs
from advlab.evaluation.store.connection import StoreFile


class QueryLog(StoreFile):
    """Reading and writing the ``queries`` table (a part of :class:`ResultStore`)."""

    def stored_answers(
        self, run_id: str, attack_key: str, eps: float, offset: int
    ) -> list[tuple[str, np.ndarray]]:
        """(digest of the question, answer) of every query of the unit so far, in order."""
        rows = self._fetch(
            "SELECT seq, digest, answer FROM queries WHERE run_id = ? AND attack_key = ? "
            "AND eps = ? AND batch_offset = ? ORDER BY seq",
            run_id, attack_key, eps, offset,
        )  # fmt: skip
        answers: list[tuple[str, np.ndarray]] = []
        for seq, digest, blob in rows:
            if seq != len(answers):
                break  # a gap: only the unbroken beginning can be replayed
            answers.append((str(digest), self._arrays(blob, "stored query answers")["answer"]))
        return answers

    def write_answer(
        self,
        run_id: str,
        attack_key: str,
        eps: float,
        offset: int,
        seq: int,
        digest: str,
        answer: np.ndarray,
    ) -> None:
        """Store query ``seq`` of the unit (committed at once)."""
        with self._transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO queries VALUES (?, ?, ?, ?, ?, ?, ?)",
                (run_id, attack_key, eps, offset, seq, digest, blobs.pack({"answer": answer})),
            )
