"""``advlab report --format csv|json``: the report's numbers as raw values.

CSV (two files): ``scorecard.csv``, one row per run, and ``results.csv``, one row per
run and table row. JSON: ``report.json`` with each run's scorecard, its full results
(the results file's content) and provenance. Fractions stay fractions, floats exact.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path

from advlab.reports.comparison import ReportRun, detail, provenance, report_environment
from advlab.reports.scorecard import Scorecard
from advlab.reports.template import now
from advlab.results import csv_cell
from advlab.results.base import write_text

SCORECARD_COLUMNS = (
    "run_id", "kind", "model", "dataset", "n", "seed", "norm", "eps", "clean_accuracy",
    "robust_accuracy", "strongest_attack", "strongest_attack_accuracy", "defense",
    "defense_gain", "verdict", "warnings",
)  # fmt: skip


def scorecard_csv(cards: Sequence[Scorecard]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(SCORECARD_COLUMNS)
    for card in cards:
        values = card.to_dict()
        values["warnings"] = "; ".join(card.warnings)
        writer.writerow(csv_cell(values[key]) for key in SCORECARD_COLUMNS)
    return buffer.getvalue()


def results_csv(runs: Sequence[ReportRun]) -> str:
    """Every run's detail table, raw; the columns are the union of the runs' keys."""
    keys: list[str] = ["run_id"]
    for run in runs:
        keys += [k for k in detail(run.results).keys if k not in keys]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(keys)
    for run in runs:
        table = detail(run.results)
        for row in table.rows:
            values = {"run_id": run.card.run_id, **dict(zip(table.keys, row, strict=True))}
            writer.writerow(csv_cell(values.get(key)) for key in keys)
    return buffer.getvalue()


def write_report_csv(runs: Sequence[ReportRun], folder: str | Path) -> list[Path]:
    folder = Path(folder)
    return [
        write_text(folder / "scorecard.csv", scorecard_csv([run.card for run in runs])),
        write_text(folder / "results.csv", results_csv(runs)),
    ]


def report_dict(runs: Sequence[ReportRun]) -> dict[str, object]:
    return {
        "written": now(),
        "environment": dict(report_environment()),
        "thresholds": runs[0].card.to_dict()["thresholds"] if runs else None,
        "runs": [
            {
                "scorecard": run.card.to_dict(),
                "provenance": dict(provenance(run)[:-1]),
                "results": run.results.to_dict(),
            }
            for run in runs
        ],
    }


def write_report_json(runs: Sequence[ReportRun], path: str | Path) -> Path:
    return write_text(path, json.dumps(report_dict(runs), indent=2, default=str))
