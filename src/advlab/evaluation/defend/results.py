"""What a defense comparison returns: cells, rows and the comparison (defend.json)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import advlab
from advlab.evaluation.defend.candidates import Kind
from advlab.evaluation.masking import Check
from advlab.evaluation.masking import summary as checks_summary


@dataclass
class CellResult:
    """One attack at one eps on one row. Rates are fractions; accuracies are over all
    images, success rates over the images the row classifies correctly (and, with a
    detector, does not flag)."""

    attack: str
    key: str
    norm: str
    eps: float
    robust_accuracy: float
    attack_success_rate: float | None
    adaptive_robust_accuracy: float
    adaptive_attack_success_rate: float | None
    worst_attack: str  # "standard" or the adaptive attack that broke the most images
    variants: dict[str, dict[str, float | None]]
    gap: float
    gap_flagged: bool
    asr_reduction: float | None  # 1 - adaptive ASR / undefended ASR
    detection_rate: float | None = None  # among fooling examples, flagged by the detector
    adaptive_detection_rate: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RowResult:
    label: str
    kind: Kind
    spec: str
    model: str
    clean_accuracy: float
    clean_retention: float | None
    adaptive_attacks: list[str]
    cells: list[CellResult]
    inference_seconds_per_image: float
    inference_slowdown: float | None
    training_seconds: float | None
    checks: list[Check] | None
    false_positive_rate: float | None = None

    def cell(self, attack: str, eps: float) -> CellResult:
        for cell in self.cells:
            if attack in (cell.key, cell.attack) and cell.eps == eps:
                return cell
        raise KeyError(f"no result for {attack} at eps {eps} in row {self.label}")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["cells"] = [cell.to_dict() for cell in self.cells]
        out["checks"] = None if self.checks is None else [c.to_dict() for c in self.checks]
        out["checks_summary"] = None if self.checks is None else checks_summary(self.checks)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RowResult:
        """The row that :meth:`to_dict` wrote (``checks_summary`` is derived, so dropped)."""
        values = {f.name: data[f.name] for f in fields(cls) if f.name in data}
        values["cells"] = [CellResult(**cell) for cell in data["cells"]]
        checks = data.get("checks")
        values["checks"] = None if checks is None else [Check.from_dict(c) for c in checks]
        return cls(**values)


@dataclass
class DefenseComparison:
    """The comparison; :meth:`to_dict` is the content of defend.json."""

    run_id: str
    model: str
    dataset: str
    split: str
    n: int
    seed: int
    attacks: list[dict[str, Any]]
    epsilons: list[float]
    rows: list[RowResult]
    findings: list[str]
    best: dict[str, dict[str, Any] | None]
    config: dict[str, Any]
    weights_sha256: str
    device: str
    seconds: float
    advlab_version: str = advlab.__version__
    # Rows and checks loaded from the store rather than computed; not in to_dict, so a
    # resumed comparison's results equal an uninterrupted one's.
    resumed_rows: int = 0
    resumed_checks: int = 0

    def row(self, label: str) -> RowResult:
        for row in self.rows:
            if row.label == label or row.spec == label:
                return row
        raise KeyError(f"no row '{label}'")

    def to_dict(self) -> dict[str, Any]:
        hidden = ("rows", "resumed_rows", "resumed_checks")
        out = {k: v for k, v in asdict(self).items() if k not in hidden}
        out = {"kind": "defense-comparison", **out, "rows": [r.to_dict() for r in self.rows]}
        out["clean_accuracy"] = self.rows[0].clean_accuracy if self.rows else None
        return out

    def write_json(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2, default=str))
        return path
