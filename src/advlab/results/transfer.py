"""What a transferability run returns: the content of transfer.json and transfer.csv."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypedDict

from advlab import __version__
from advlab.results.base import (
    JsonResult,
    Record,
    build,
    csv_cell,
    find,
    mapping,
    records,
    write_text,
)
from advlab.results.defense import AttackRecord

#: The columns of transfer.csv, in order: one row per (attack, eps, source, target).
CSV_COLUMNS = (
    "attack", "key", "norm", "eps", "targeted", "source", "target", "white_box",
    "n_both_correct", "success_rate", "target_clean_accuracy", "target_adversarial_accuracy",
    "source_clean_accuracy", "craft_seconds",
)  # fmt: skip


class ModelInfo(TypedDict):
    """A source or target model of the run, as transfer.json records it."""

    weights_sha256: str
    clean_accuracy: float
    input_shape: list[int]
    num_classes: int


class TransferAttack(AttackRecord):
    """An attack of the run: its key, and per eps (as text) the attack's ``config()``."""

    key: str
    config: dict[str, dict[str, Any]]


@dataclass
class TransferCell(Record):
    """One (attack, eps, source, target). Rates and accuracies are fractions in [0, 1].

    ``success_rate`` is over the ``n_both_correct`` images that source and target both
    classify correctly (None when there are none); ``target_adversarial_accuracy`` is the
    target's accuracy on all the transferred examples, ``target_clean_accuracy`` on all the
    clean images. ``craft_seconds`` is the source's crafting time, shared by its targets.
    """

    WHAT = "a transfer cell"

    attack: str
    key: str
    norm: str
    eps: float
    targeted: bool
    source: str
    target: str
    white_box: bool
    n_both_correct: int
    success_rate: float | None
    target_clean_accuracy: float
    target_adversarial_accuracy: float
    source_clean_accuracy: float
    craft_seconds: float


@dataclass
class TransferMatrix(JsonResult):
    """The result of a transfer run; :meth:`to_dict` is the transfer.json content.

    ``complete`` is False in the snapshots written while work remains.
    """

    FILE = "transfer.json"

    dataset: str
    split: str
    n: int
    seed: int
    batch_size: int
    device: str
    sources: list[str]
    targets: list[str]
    models: dict[str, ModelInfo]
    attacks: list[TransferAttack]
    epsilons: list[float]
    indices_sha256: str
    data_sha256: str
    cells: list[TransferCell] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    complete: bool = False
    seconds: float = 0.0
    advlab_version: str = __version__

    def cell(self, attack: str, eps: float, source: str, target: str) -> TransferCell:
        """The cell of ``attack`` (its name or key) at ``eps`` from ``source`` to ``target``."""
        pair = [c for c in self.cells if (c.source, c.target) == (source, target)]
        return find(pair, attack, eps, "cell", f" from {source} to {target}")

    def matrix(self, attack: str, eps: float, value: str = "success_rate") -> list[list[Any]]:
        """``value`` of every cell, rows = sources and columns = targets (None if not run)."""
        rows: list[list[Any]] = []
        for source in self.sources:
            row = []
            for target in self.targets:
                try:
                    row.append(getattr(self.cell(attack, eps, source, target), value))
                except KeyError:
                    row.append(None)
            rows.append(row)
        return rows

    def runs(self) -> list[tuple[str, str, float]]:
        """The (attack key, norm, eps) of every matrix, in the order they were run."""
        return list(dict.fromkeys((cell.key, cell.norm, cell.eps) for cell in self.cells))

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["cells"] = [asdict(cell) for cell in self.cells]
        return {"kind": "transfer", **out}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TransferMatrix:
        """The matrix of a transfer.json (``kind`` is derived)."""
        data = mapping(data, "transfer.json")
        cells = [TransferCell.from_dict(c) for c in records(data, "cells", "transfer.json")]
        return build(cls, data, "transfer.json", cells=cells)

    def csv_text(self) -> str:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for cell in self.cells:
            row = asdict(cell)
            writer.writerow({key: csv_cell(row[key]) for key in CSV_COLUMNS})
        return buffer.getvalue()

    def write_csv(self, path: str | Path) -> Path:
        return write_text(path, self.csv_text())
