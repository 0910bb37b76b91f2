"""The results table as rows of raw values, and as Markdown or CSV text.

One list of rows feeds the HTML report, the Markdown table (CLI, READMEs) and the CSV
(spreadsheets, papers), so the three never disagree. The table opens with the clean
accuracy, lists every attack run, and closes with the per-image worst case over all
attacks at each epsilon.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from advlab.results import Evaluation, csv_cell

MISSING = "n/a"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def format_percent(value: Any, digits: int = 2) -> str:
    """A fraction in [0, 1] as ``"93.75%"``; None, NaN or non-numbers as ``"n/a"``."""
    return f"{100 * value:.{digits}f}%" if _is_number(value) else MISSING


def format_number(value: Any, spec: str = ".4g") -> str:
    return format(value, spec) if _is_number(value) else MISSING


def format_eps(value: Any, norm: str = "linf") -> str:
    """``0.1`` stays ``0.1``; an L-inf ``8/255`` reads ``8/255`` rather than ``0.03137``."""
    if not _is_number(value):
        return MISSING
    short = f"{value:.4g}"
    steps = value * 255
    # Only when 4 digits would lose the value: 0.2 is 51/255 but reads better as 0.2.
    if norm == "linf" and float(short) != value and abs(steps - round(steps)) < 1e-6:
        return f"{round(steps)}/255"
    return short


def format_count(value: Any) -> str:
    if not _is_number(value):
        return MISSING
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def format_bool(value: Any) -> str:
    return MISSING if value is None else ("yes" if value else "no")


@dataclass(frozen=True)
class Column:
    header: str
    key: str
    text: Callable[[Any], str]


COLUMNS: tuple[Column, ...] = (
    Column("Attack", "attack", lambda v: MISSING if v is None else str(v)),
    Column("Norm", "norm", lambda v: "" if v is None else str(v)),
    Column("Eps", "eps", format_number),  # replaced per row by format_eps (needs the norm)
    Column("Targeted", "targeted", format_bool),
    Column("Robust acc.", "robust_accuracy", format_percent),
    Column("ASR", "attack_success_rate", format_percent),
    Column("Mean Linf", "mean_linf", format_number),
    Column("Median Linf", "median_linf", format_number),
    Column("Mean L2", "mean_l2", format_number),
    Column("Median L2", "median_l2", format_number),
    Column("Mean conf.", "mean_confidence", format_percent),
    Column("Queries", "mean_queries", format_count),
    Column("Seconds", "seconds", lambda v: format_number(v, ".2f")),
    Column("Img/s", "images_per_second", lambda v: format_number(v, ".1f")),
)


@dataclass(frozen=True)
class Row:
    """One table row: ``kind`` is "clean", "attack" or "worst"; ``values`` are raw."""

    kind: str
    values: Mapping[str, Any]

    def cells(self) -> list[str]:
        """The row as display text, one string per column (not yet HTML-escaped)."""
        out = []
        for column in COLUMNS:
            value = self.values.get(column.key)
            if column.key == "eps":
                out.append(format_eps(value, str(self.values.get("norm") or "")))
            else:
                out.append(column.text(value))
        return out


class Named(Protocol):
    """A result entry of one attack: an AttackEvaluation, DetectionEntry, CellResult..."""

    attack: str
    key: str
    norm: str


def attack_name(entry: Named | Mapping[str, Any]) -> str:
    """The attack as the table shows it: ``pgd``, or ``pgd[steps=20]`` when configured.

    The evaluation's ``key`` (``pgd-linf[steps=20]``) tells two runs of one attack with
    different options apart; the norm has a column of its own, so it is dropped here.
    (A mapping with the same keys is read too, for callers that hold plain results.)
    """
    if isinstance(entry, Mapping):
        attack, key, norm = str(entry.get("attack")), entry.get("key"), entry.get("norm")
    else:
        attack, key, norm = entry.attack, entry.key, entry.norm
    if not key:
        return attack
    prefix = f"{attack}-{norm}"
    return attack + str(key)[len(prefix) :] if str(key).startswith(prefix) else str(key)


def per_class_values(value: Mapping[str, Any], class_names: Sequence[Any]) -> list[Any]:
    """Per-class accuracies as a list in class order, from a class name -> value mapping.

    The evaluation lists only the classes present in the sample; the others become None.
    A mapping keyed by something else than the class names is taken in its own order.
    """
    names = [str(name) for name in class_names]
    if names and any(name in value for name in names):
        return [value.get(name) for name in names]
    return list(value.values())


def sole_norm(results: Evaluation) -> str | None:
    """The norm every attack used, or None when they differ (or there are none)."""
    norms = results.norms
    return norms[0] if len(norms) == 1 else None


def worst_case_points(results: Evaluation) -> list[tuple[float, float]]:
    """``worst_case`` as (eps, robust accuracy) sorted by eps."""
    return sorted(results.worst_case.items())


def table_rows(results: Evaluation) -> list[Row]:
    """Clean row, one row per attack entry (in the given order), worst-case rows."""
    rows = [
        Row("clean", {"attack": "clean", "eps": 0.0, "robust_accuracy": results.clean_accuracy})
    ]
    for entry in results.results:
        values = {column.key: getattr(entry, column.key) for column in COLUMNS}
        rows.append(Row("attack", {**values, "attack": attack_name(entry)}))
    norm = sole_norm(results)
    for eps, accuracy in worst_case_points(results):
        values = {"attack": "worst case", "norm": norm, "eps": eps, "robust_accuracy": accuracy}
        rows.append(Row("worst", values))
    return rows


def _markdown_cell(text: str) -> str:
    # A pipe would end the cell and a newline the row: untrusted names must not do either.
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").replace("\r", " ")


def results_table_markdown(results: Evaluation | Mapping[str, Any]) -> str:
    """The results table as GitHub-flavoured Markdown, accuracies as percentages."""
    results = Evaluation.coerce(results)
    lines = [
        _markdown_line([column.header for column in COLUMNS]),
        _markdown_line(["---"] + ["---:"] * (len(COLUMNS) - 1)),
    ]
    lines += [
        _markdown_line([_markdown_cell(cell) for cell in row.cells()])
        for row in table_rows(results)
    ]
    return "\n".join(lines) + "\n"


def _markdown_line(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def results_table_csv(results: Evaluation | Mapping[str, Any]) -> str:
    """The results table as CSV with raw values (fractions, not percentages; empty = none).

    The header uses the results.json key names so that a spreadsheet and a script read
    the same columns.
    """
    results = Evaluation.coerce(results)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(column.key for column in COLUMNS)
    for row in table_rows(results):
        writer.writerow(csv_cell(row.values.get(column.key)) for column in COLUMNS)
    return buffer.getvalue()
