"""``advlab report --format html``: one self-contained, printable page for one or more runs.

Scorecard first, then the comparison figure, then per run its table (with an attack /
eps picker), provenance and full configuration. Every string from the results is escaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from advlab.reports.comparison import (
    ReportRun,
    comparison_figure,
    detail,
    provenance,
    report_environment,
)
from advlab.reports.html_parts import Picker, scorecard_section
from advlab.reports.template import esc, img, json_details, meta_table, write_page

_TEXT = ' class="text"'


def write_report_html(runs: Sequence[ReportRun], path: str | Path, title: str) -> Path:
    """Write the page to ``path``; returns it."""
    path = Path(path)
    sections = [
        scorecard_section([run.card for run in runs], [run.label for run in runs]),
        '<section id="figure"><h2>Robustness against eps</h2><figure>'
        f"{img(comparison_figure(runs), 'worst-case robust accuracy against eps')}"
        "<figcaption>Worst-case robust accuracy (every attack, adaptive ones included) "
        "against eps; eps 0 is the clean accuracy.</figcaption></figure></section>",
        *(_run_section(run, index) for index, run in enumerate(runs)),
        f'<section id="environment"><h2>Report</h2>{meta_table(report_environment())}</section>',
    ]
    write_page(path, title, sections)
    return path


def _run_section(run: ReportRun, index: int) -> str:
    table = detail(run.results)
    box = f"run-{index}"
    head = "".join(f"<th>{esc(h)}</th>" for h in table.headers)
    texts = table.text_rows()
    at = table.keys.index("eps")
    keys = [("*" if raw[0] in ("clean", "worst case") else text[0], "*" if raw[0] == "clean"
             else text[at]) for raw, text in zip(table.rows, texts, strict=True)]  # fmt: skip
    pick = Picker(box, [a for a, _ in keys if a != "*"], [e for _, e in keys if e != "*"])
    body = []
    for text, (attack, eps) in zip(texts, keys, strict=True):
        cells = "".join(f"<td{_TEXT if i == 0 else ''}>{esc(t)}</td>" for i, t in enumerate(text))
        body.append(f"<tr{pick.attrs(attack, eps)}>{cells}</tr>")
    facts = provenance(run)
    return (
        f'<section id="{box}"><h2>Run {esc(run.label)}</h2>'
        + pick.wrap(f'<div class="scroll"><table><tr>{head}</tr>{"".join(body)}</table></div>')
        + f"<h3>Provenance</h3>{meta_table(facts[:-1])}"
        f"{json_details(run.results.config, 'Full configuration (JSON)')}</section>"
    )
