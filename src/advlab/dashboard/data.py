"""What the dashboard reads from the results store, as typed results.

Every finished run's summary is read through :mod:`advlab.results` (its kind told by
its content), never through ad-hoc dict lookups in the pages; per-image rows (the
clean pass and each attack's outcomes) come from the store itself.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from advlab.errors import AdvlabError
from advlab.evaluation.metrics import AttackOutcomes
from advlab.evaluation.store import CleanRows, ResultStore
from advlab.results import (
    DefenseComparison,
    DetectionEvaluation,
    Evaluation,
    TrainingSummary,
    TransferMatrix,
)

Kind = Literal["evaluate", "defend", "transfer", "detect", "train", "unknown"]
Result = Evaluation | DefenseComparison | TransferMatrix | DetectionEvaluation | TrainingSummary
KINDS: tuple[Kind, ...] = ("evaluate", "defend", "transfer", "detect", "train")


def kind_of(summary: Mapping[str, Any]) -> Kind:
    """Which job wrote a run's summary (results.json, defend.json, ...)."""
    kind = summary.get("kind")
    if kind == "transfer":
        return "transfer"
    if kind == "defense-comparison":
        return "defend"
    if "detector" in summary:
        return "detect"
    if "worst_case" in summary and "results" in summary:
        return "evaluate"
    if "architecture" in summary and "history" in summary:
        return "train"
    return "unknown"


def read_result(summary: Mapping[str, Any]) -> Result | None:
    """The typed result of a run's summary (None for a kind advlab does not know)."""
    readers: dict[Kind, Any] = {
        "evaluate": Evaluation, "defend": DefenseComparison, "transfer": TransferMatrix,
        "detect": DetectionEvaluation, "train": TrainingSummary,
    }  # fmt: skip
    reader = readers.get(kind_of(summary))
    return None if reader is None else reader.from_dict(summary)


@dataclass(frozen=True)
class StoredRun:
    """One run of the store as the runs table lists it."""

    run_id: str
    kind: Kind
    status: str
    created: str
    model: str
    dataset: str
    n: int
    attacks: tuple[str, ...]
    epsilons: tuple[float, ...]
    clean_accuracy: float | None

    def row(self) -> dict[str, Any]:
        """The run as one row of a table."""
        return {
            "run": self.run_id, "kind": self.kind, "status": self.status,
            "created": self.created, "model": self.model, "dataset": self.dataset, "n": self.n,
            "attacks": ", ".join(self.attacks), "eps": ", ".join(f"{e:g}" for e in self.epsilons),
            "clean accuracy": self.clean_accuracy,
        }  # fmt: skip


class DashboardData:
    """The store at ``path``, read for the dashboard (typed results, per-image rows)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._runs: tuple[tuple[float, ...], list[StoredRun]] | None = None
        self._results: dict[str, Result | None] = {}  # finished runs do not change

    def _version(self) -> tuple[float, ...]:
        """When the store (and its write-ahead log) last changed."""
        files = (self.path, self.path.with_name(self.path.name + "-wal"))
        return tuple(f.stat().st_mtime_ns if f.exists() else 0.0 for f in files)

    def _store(self) -> ResultStore:
        if not self.path.exists():
            raise AdvlabError(f"no results store at {self.path}: run an evaluation first")
        return ResultStore(self.path)

    def runs(self) -> list[StoredRun]:
        """Every stored run, newest first; the kind is read from finished runs' summaries.
        Read again only when the store changed."""
        version = self._version()
        if self._runs is None or self._runs[0] != version:
            self._runs = (version, self._read_runs())
        return list(self._runs[1])

    def _read_runs(self) -> list[StoredRun]:
        with self._store() as store:
            listed = store.list_runs()
            summaries: dict[str, dict[str, Any]] = {}
            for row in listed:
                if row["status"] == "finished":
                    with contextlib.suppress(AdvlabError):  # damaged: listed as unknown
                        summaries[str(row["run_id"])] = store.get_run(str(row["run_id"]))
        out = []
        for row in listed:
            run_id = str(row["run_id"])
            summary = summaries.get(run_id)
            kind: Kind = "unknown" if summary is None else kind_of(summary)
            try:
                result = None if summary is None else read_result(summary)
            except AdvlabError:  # a damaged summary: listed, but not readable
                result, kind = None, "unknown"
            if result is not None:
                self._results[run_id] = result
            clean = getattr(result, "clean_accuracy", None)
            out.append(
                StoredRun(
                    run_id=run_id,
                    kind=kind,
                    status=str(row["status"]),
                    created=str(row["created"]),
                    model=str(row.get("model") or getattr(result, "model", "") or ""),
                    dataset=str(row.get("dataset") or getattr(result, "dataset", "") or ""),
                    n=int(row.get("n") or 0),
                    attacks=tuple(row.get("attacks") or ()),
                    epsilons=tuple(float(e) for e in row.get("epsilons") or ()),
                    clean_accuracy=clean if isinstance(clean, int | float) else None,
                )
            )
        return out

    def result(self, run_id: str) -> Result | None:
        """A finished run's typed result (a unique id prefix will do)."""
        if run_id not in self._results:
            with self._store() as store:
                self._results[run_id] = read_result(store.get_run(run_id))
        return self._results[run_id]

    def clean(self, run_id: str, n: int) -> CleanRows:
        """The clean pass of an evaluation, per image."""
        with self._store() as store:
            return store.clean_rows(run_id, n)

    def outcomes(self, run_id: str, key: str, eps: float, n: int) -> AttackOutcomes:
        """One attack's per-image outcomes at ``eps`` in an evaluation."""
        with self._store() as store:
            return store.attack_rows(run_id, key, eps, n)

    def examples(self, run_id: str) -> dict[tuple[str, float], dict[str, np.ndarray]]:
        """The example images an evaluation stored, by (attack key, eps)."""
        with self._store() as store:
            return store.examples(run_id)


def confusion(labels_from: np.ndarray, labels_to: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts of (clean prediction, adversarial prediction) pairs, a (k, k) int matrix."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (labels_from.astype(np.int64), labels_to.astype(np.int64)), 1)
    return matrix


def filter_runs(
    runs: list[StoredRun],
    kinds: Sequence[str] | None = None,
    text: str = "",
    finished_only: bool = False,
) -> list[StoredRun]:
    """The runs of the given kinds whose id, model, data set or attacks contain ``text``."""
    needle = text.strip().lower()
    out = []
    for run in runs:
        if kinds and run.kind not in kinds:
            continue
        if finished_only and run.status != "finished":
            continue
        haystack = " ".join([run.run_id, run.model, run.dataset, *run.attacks]).lower()
        if needle and needle not in haystack:
            continue
        out.append(run)
    return out


def robust_curves(evaluation: Evaluation, label: str = "") -> list[dict[str, Any]]:
    """Long-form rows (run, attack, eps, robust accuracy) for each attack and the worst case;
    ``run`` is ``label`` (to overlay several runs)."""
    rows = [
        {"run": label, "attack": entry.key, "eps": entry.eps,
         "robust accuracy": entry.robust_accuracy}
        for entry in evaluation.results
    ]  # fmt: skip
    rows += [
        {"run": label, "attack": "worst case", "eps": eps, "robust accuracy": value}
        for eps, value in sorted(evaluation.worst_case.items())
    ]
    return rows


def roc_rows(evaluation: DetectionEvaluation, label: str = "") -> list[dict[str, Any]]:
    """Long-form ROC points (series, false and true positive rate) of every entry."""
    prefix = f"{label}: " if label else ""
    return [
        {"series": f"{prefix}{e.key} @ {e.eps:g}" + (" (adaptive)" if e.adaptive else ""),
         "false positive rate": fpr, "true positive rate": tpr}
        for e in evaluation.results
        for fpr, tpr in zip(e.roc.get("fpr", []), e.roc.get("tpr", []), strict=False)
    ]  # fmt: skip
