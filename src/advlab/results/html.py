"""Rich HTML of a typed result for Jupyter (``_repr_html_``): small tables, stdlib only.

This layer imports no plotting library; figures and full pages are :mod:`advlab.reports`'
job. Every string from a result is escaped. :func:`render` picks the view by the file
the result is the content of (``FILE``), so it needs no import of the classes.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any

_STYLE = "border-collapse:collapse;font-size:12px;margin:4px 0"
_CELL = "border:1px solid #d9dee6;padding:2px 8px;text-align:right"


def pct(value: Any) -> str:
    """A fraction as ``"93.75%"``; none or NaN as ``"n/a"``."""
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    return f"{100 * value:.2f}%" if ok else "n/a"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], caption: str = "") -> str:
    """An HTML table of ``rows`` (any values, shown as text and escaped)."""
    head = "".join(f'<th style="{_CELL}">{html.escape(str(h))}</th>' for h in headers)
    body = "".join(
        "<tr>" + "".join(f'<td style="{_CELL}">{html.escape(str(c))}</td>' for c in row) + "</tr>"
        for row in rows
    )
    title = f"<caption style='text-align:left'>{html.escape(caption)}</caption>" if caption else ""
    return f'<table style="{_STYLE}">{title}<tr>{head}</tr>{body}</table>'


def _title(text: str) -> str:
    return f"<div style='font-weight:600;margin:4px 0'>{html.escape(text)}</div>"


def evaluation_html(result: Any) -> str:
    rows: list[list[Any]] = [["clean", "", "", pct(result.clean_accuracy), ""]]
    rows += [[e.key or e.attack, e.norm, f"{e.eps:g}", pct(e.robust_accuracy),
              pct(e.attack_success_rate)] for e in result.results]  # fmt: skip
    rows += [["worst case", "", f"{eps:g}", pct(acc), ""] for eps, acc in
             sorted(result.worst_case.items())]  # fmt: skip
    title = f"Evaluation {result.run_id}: {result.model} on {result.dataset} (n={result.n})"
    out = _title(title) + table(["Attack", "Norm", "Eps", "Robust acc.", "ASR"], rows)
    if result.defense_comparison is not None:
        out += comparison_html(result.defense_comparison)
    return out


def comparison_html(result: Any) -> str:
    rows = []
    for row in result.rows:
        for eps in result.epsilons:
            plain, adaptive = row.lowest_robust(eps)
            rows.append([row.label, f"{eps:g}", pct(row.clean_accuracy), pct(plain),
                         pct(adaptive), row.checks_summary or ""])  # fmt: skip
    headers = ["Defense", "Eps", "Clean acc.", "Plain robust", "Adaptive robust", "Checks"]
    title = f"Defense comparison {result.run_id}: {result.model} on {result.dataset}"
    findings = "".join(f"<li>{html.escape(f)}</li>" for f in result.findings)
    return _title(title) + table(headers, rows) + (f"<ul>{findings}</ul>" if findings else "")


def transfer_html(result: Any) -> str:
    parts = [_title(f"Transfer matrix on {result.dataset} (n={result.n}): success rate, "
                    "rows = source, columns = target")]  # fmt: skip
    for key, _norm, eps in result.runs():
        matrix = result.matrix(key, eps)
        rows = [[source, *(pct(v) for v in values)]
                for source, values in zip(result.sources, matrix, strict=True)]  # fmt: skip
        parts.append(table(["source \\ target", *result.targets], rows, f"{key} eps={eps:g}"))
    return "".join(parts)


def detection_html(result: Any) -> str:
    rows = [[e.attack, f"{e.eps:g}", "yes" if e.adaptive else "no", pct(e.detection_rate),
             pct(e.evasion_rate), "n/a" if e.auc is None else f"{e.auc:.3f}"]
            for e in result.results]  # fmt: skip
    title = (f"Detection: {result.detector.get('detector', '?')} on {result.model}, false positive "
             f"rate {pct(result.false_positive_rate)}")  # fmt: skip
    headers = ["Attack", "Eps", "Adaptive", "Detected", "Evaded", "AUC"]
    return _title(title) + table(headers, rows)


_VIEWS = {
    "results.json": evaluation_html,
    "defend.json": comparison_html,
    "transfer.json": transfer_html,
    "detection.json": detection_html,
}


def render(result: Any) -> str | None:
    """The HTML view of ``result``, or None for a result without one."""
    view = _VIEWS.get(getattr(result, "FILE", ""))
    return None if view is None else view(result)
