"""What a defense comparison returns: the content of defend.json, and its masking checks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, TypedDict

from advlab import __version__
from advlab.results.base import Record, RunResult, build, find, mapping, records

Kind = Literal["undefended", "preprocess", "model", "detector"]
Status = Literal["pass", "warn"]


class AttackRecord(TypedDict):
    """An attack as a run's record names it: registry name, norm and its options."""

    name: str
    norm: str
    params: dict[str, Any]


class VariantResult(TypedDict):
    """One adaptive attack (bpda, eot, logits, transfer, aware) of a cell, judged on the
    defended row; ``detection_rate`` is None without a detector."""

    robust_accuracy: float
    attack_success_rate: float | None
    detection_rate: float | None


class BestDefense(TypedDict):
    """The defense that lowered the attack success rate most at one eps."""

    label: str
    min_asr_reduction: float
    clean_retention: float
    attacks: list[str]


@dataclass(frozen=True)
class Check:
    """One gradient-masking check: ``status`` is "pass" or "warn"; ``numbers`` are the
    rates it compared."""

    name: str
    status: Status
    numbers: dict[str, float] = field(default_factory=dict)
    explanation: str = ""

    @property
    def passed(self) -> bool:
        return self.status == "pass"

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Check:
        """The check that :meth:`to_dict` wrote (e.g. a stored one, to resume a comparison)."""
        status = data["status"]
        if status not in ("pass", "warn"):
            raise ValueError(f"unknown check status {status!r}")
        numbers = dict(data.get("numbers") or {})  # as stored: JSON keeps ints and floats apart
        return cls(str(data["name"]), status, numbers, str(data.get("explanation", "")))


def checks_summary(checks: Sequence[Check]) -> str:
    """``"3 pass, 2 warn (white-box, unbounded)"``."""
    warned = [c.name for c in checks if not c.passed]
    text = f"{len(checks) - len(warned)} pass, {len(warned)} warn"
    return f"{text} ({', '.join(warned)})" if warned else text


@dataclass
class CellResult(Record):
    """One attack at one eps on one row. Rates are fractions; accuracies are over all
    images, success rates over the images the row classifies correctly (and, with a
    detector, does not flag)."""

    WHAT = "a defense comparison cell"

    attack: str
    key: str
    norm: str
    eps: float
    robust_accuracy: float
    attack_success_rate: float | None
    adaptive_robust_accuracy: float
    adaptive_attack_success_rate: float | None
    worst_attack: str  # "standard" or the adaptive attack that broke the most images
    variants: dict[str, VariantResult]
    gap: float
    gap_flagged: bool
    asr_reduction: float | None  # 1 - adaptive ASR / undefended ASR
    detection_rate: float | None = None  # among fooling examples, flagged by the detector
    adaptive_detection_rate: float | None = None


@dataclass
class RowResult:
    """One row of the comparison: the undefended model or one defense."""

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
        return find(self.cells, attack, eps, where=f" in row {self.label}")

    def lowest_robust(self, eps: float) -> tuple[float | None, float | None]:
        """The lowest robust accuracy over the attacks at ``eps``: under the plain
        attacks and under the adaptive ones (None where the row has no cell at ``eps``)."""
        cells = [c for c in self.cells if c.eps == eps]
        plain = min((c.robust_accuracy for c in cells), default=None)
        return plain, min((c.adaptive_robust_accuracy for c in cells), default=None)

    @property
    def checks_summary(self) -> str | None:
        return None if self.checks is None else checks_summary(self.checks)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["cells"] = [cell.to_dict() for cell in self.cells]
        out["checks"] = None if self.checks is None else [c.to_dict() for c in self.checks]
        out["checks_summary"] = self.checks_summary
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RowResult:
        """The row that :meth:`to_dict` wrote (``checks_summary`` is derived, so dropped)."""
        data = mapping(data, "a defense comparison row")
        checks = data.get("checks")
        return build(
            cls,
            data,
            "a defense comparison row",
            cells=[CellResult.from_dict(c) for c in records(data, "cells", "a row")],
            checks=None if checks is None else [Check.from_dict(c) for c in checks],
        )


@dataclass
class DefenseComparison(RunResult):
    """The comparison; :meth:`to_dict` is the content of defend.json.

    ``best`` maps ``repr(eps)`` to the best defense at that eps (None: no defense kept
    enough clean accuracy and lowered the success rate of every attack).
    """

    FILE = "defend.json"

    attacks: list[AttackRecord]
    epsilons: list[float]
    rows: list[RowResult]
    findings: list[str]
    best: dict[str, BestDefense | None]
    config: dict[str, Any]
    weights_sha256: str
    device: str
    seconds: float
    advlab_version: str = __version__
    # Rows and checks loaded from the store rather than computed; not in to_dict, so a
    # resumed comparison's results equal an uninterrupted one's.
    resumed_rows: int = 0
    resumed_checks: int = 0

    def row(self, label: str) -> RowResult:
        for row in self.rows:
            if row.label == label or row.spec == label:
                return row
        raise KeyError(f"no row '{label}'")

    @property
    def clean_accuracy(self) -> float | None:
        """The undefended model's clean accuracy (the first row's)."""
        return self.rows[0].clean_accuracy if self.rows else None

    @property
    def norm(self) -> str:
        """The norm every attack used, or "" when they differ."""
        norms = {str(attack.get("norm")) for attack in self.attacks}
        return norms.pop() if len(norms) == 1 else ""

    @property
    def attack_keys(self) -> list[tuple[str, str]]:
        """(attack key, attack name) of the cells, in the order they were run."""
        seen: dict[str, str] = {}
        for row in self.rows:
            for cell in row.cells:
                seen.setdefault(cell.key, cell.attack)
        return list(seen.items())

    def to_dict(self) -> dict[str, Any]:
        hidden = ("rows", "resumed_rows", "resumed_checks")
        out = {k: v for k, v in asdict(self).items() if k not in hidden}
        out = {"kind": "defense-comparison", **out, "rows": [r.to_dict() for r in self.rows]}
        out["clean_accuracy"] = self.clean_accuracy
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DefenseComparison:
        """The comparison of a defend.json (``kind`` and ``clean_accuracy`` are derived)."""
        data = mapping(data, "defend.json")
        return build(
            cls,
            data,
            "defend.json",
            rows=[RowResult.from_dict(row) for row in records(data, "rows", "defend.json")],
        )
