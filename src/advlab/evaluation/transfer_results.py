"""What a transfer matrix returns: its cells, transfer.json and transfer.csv."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import advlab

#: The columns of transfer.csv, in order: one row per (attack, eps, source, target).
CSV_COLUMNS = (
    "attack", "key", "norm", "eps", "targeted", "source", "target", "white_box",
    "n_both_correct", "success_rate", "target_clean_accuracy", "target_adversarial_accuracy",
    "source_clean_accuracy", "craft_seconds",
)  # fmt: skip


@dataclass
class TransferCell:
    """One (attack, eps, source, target). Rates and accuracies are fractions in [0, 1].

    ``success_rate`` is over the ``n_both_correct`` images that source and target both
    classify correctly (None when there are none); ``target_adversarial_accuracy`` is the
    target's accuracy on all the transferred examples, ``target_clean_accuracy`` on all the
    clean images. ``craft_seconds`` is the source's crafting time, shared by its targets.
    """

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
class TransferMatrix:
    """The result of :func:`transfer_matrix`; :meth:`to_dict` is the transfer.json content.

    ``complete`` is False in the snapshots passed to ``on_update`` while work remains.
    """

    dataset: str
    split: str
    n: int
    seed: int
    batch_size: int
    device: str
    sources: list[str]
    targets: list[str]
    models: dict[str, dict[str, Any]]
    attacks: list[dict[str, Any]]
    epsilons: list[float]
    indices_sha256: str
    data_sha256: str
    cells: list[TransferCell] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    complete: bool = False
    seconds: float = 0.0
    advlab_version: str = advlab.__version__

    def cell(self, attack: str, eps: float, source: str, target: str) -> TransferCell:
        """The cell of ``attack`` (its name or key) at ``eps`` from ``source`` to ``target``."""
        for entry in self.cells:
            if (attack in (entry.key, entry.attack) and entry.eps == eps
                    and (entry.source, entry.target) == (source, target)):  # fmt: skip
                return entry
        raise KeyError(f"no cell for {attack} at eps {eps} from {source} to {target}")

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

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["cells"] = [asdict(cell) for cell in self.cells]
        return {"kind": "transfer", **out}

    def write_json(self, path: str | Path) -> Path:
        return _write_text(path, json.dumps(self.to_dict(), indent=2, default=str))

    def csv_text(self) -> str:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for cell in self.cells:
            row = asdict(cell)
            writer.writerow({key: _csv_value(row[key]) for key in CSV_COLUMNS})
        return buffer.getvalue()

    def write_csv(self, path: str | Path) -> Path:
        return _write_text(path, self.csv_text())


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)  # reads back as the same float
    text = str(value)
    # A model name such as "=cmd" would run as a spreadsheet formula (CSV injection).
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def _write_text(path: str | Path, text: str) -> Path:
    """Write through a temporary file, so a reader never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return path
