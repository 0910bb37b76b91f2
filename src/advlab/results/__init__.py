"""Typed results: the one schema of every run's output.

Each run kind has one top-level class whose ``to_dict`` / ``to_json`` is exactly the
file advlab writes and whose ``from_dict`` / ``from_json`` reads it back (files written
by earlier versions included): :class:`Evaluation` (results.json),
:class:`DefenseComparison` (defend.json), :class:`TransferMatrix` (transfer.json),
:class:`DetectionEvaluation` (detection.json) and :class:`TrainingSummary` (a trained
checkpoint's sidecar, with its history.json records as :class:`TrainingEpoch`).
Reports, the store, the CLI tables and the dashboard read results through these.

Records that are lists of results are dataclasses; the small fixed mappings inside
them (a variant's rates, a model's description, a ROC curve) are TypedDicts: typed,
and still the plain dicts that JSON reads and writes.
"""

from advlab.results.base import JsonResult, RunResult, csv_cell
from advlab.results.defense import (
    AttackRecord,
    BestDefense,
    CellResult,
    Check,
    DefenseComparison,
    Kind,
    RowResult,
    Status,
    VariantResult,
    checks_summary,
)
from advlab.results.detection import (
    DetectionEntry,
    DetectionEvaluation,
    DetectorInfo,
    FitData,
    RocCurve,
)
from advlab.results.evaluation import (
    TIMING_FIELDS,
    AttackEvaluation,
    AttackExamples,
    Evaluation,
    PerClass,
    SuiteEvaluation,
    per_class_dict,
    without_timings,
)
from advlab.results.example import Example
from advlab.results.training import (
    TrainingEpoch,
    TrainingMetrics,
    TrainingSummary,
    history_from_list,
)
from advlab.results.transfer import (
    CSV_COLUMNS,
    ModelInfo,
    TransferAttack,
    TransferCell,
    TransferMatrix,
)

__all__ = [
    "CSV_COLUMNS",
    "SuiteEvaluation",
    "TIMING_FIELDS",
    "AttackEvaluation",
    "AttackExamples",
    "AttackRecord",
    "BestDefense",
    "CellResult",
    "Check",
    "DefenseComparison",
    "DetectionEntry",
    "DetectionEvaluation",
    "DetectorInfo",
    "Evaluation",
    "Example",
    "FitData",
    "JsonResult",
    "Kind",
    "ModelInfo",
    "PerClass",
    "RocCurve",
    "RunResult",
    "RowResult",
    "Status",
    "TrainingEpoch",
    "TrainingMetrics",
    "TrainingSummary",
    "TransferAttack",
    "TransferCell",
    "TransferMatrix",
    "VariantResult",
    "checks_summary",
    "csv_cell",
    "history_from_list",
    "per_class_dict",
    "without_timings",
]
