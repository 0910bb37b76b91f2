"""``advlab report --format pdf``: the same content as the HTML page, as an A4 PDF.

Written with matplotlib's PDF backend (already a dependency): no browser, no LaTeX, no
extra package at run time. Fonts are embedded as TrueType, so the text can be searched
and copied (and ``pdftotext`` reads it back). Page 1: the scorecard; page 2: the
comparison figure; then per run its table, provenance and configuration.
"""

from __future__ import annotations

import datetime as dt
import json
import textwrap
from collections.abc import Sequence
from pathlib import Path

import matplotlib
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure

from advlab.reports.comparison import (
    ReportRun,
    detail,
    plot_comparison,
    provenance,
    report_environment,
    scorecard_table,
)

A4 = (8.27, 11.69)


def write_report_pdf(runs: Sequence[ReportRun], path: str | Path, title: str) -> Path:
    """Write the PDF to ``path``; returns it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with matplotlib.rc_context({"pdf.fonttype": 42}):
        created = dt.datetime.now(dt.timezone.utc)
        metadata = {"Title": title, "Creator": "advlab", "CreationDate": created}
        with PdfPages(path, metadata=metadata) as pdf:
            pdf.savefig(_scorecard_page(runs, title))
            pdf.savefig(_figure_page(runs))
            for run in runs:
                pdf.savefig(_run_page(run))
    return path


def write_scorecard_png(runs: Sequence[ReportRun], path: str | Path, title: str) -> Path:
    """The scorecard page alone, cropped, as a PNG (for a slide, a README or an e-mail)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure = _scorecard_page(runs, title)
    figure.savefig(path, format="png", dpi=110, bbox_inches="tight", pad_inches=0.15,
                   metadata={"Software": None})  # fmt: skip
    return path


def _page() -> Figure:
    return Figure(figsize=A4, dpi=100)


def _table(fig: Figure, top: float, header: Sequence[str], rows: Sequence[Sequence[str]],
           first: float = 0.25, font: float = 7, colours: Sequence[str] = ()) -> float:  # fmt: skip
    """Draw a table below ``top`` (page fraction), the first column ``first`` of the width
    and the rest shared; long texts are cut to fit. Returns where the table ends."""
    width, height = 0.88, 0.018 * (len(rows) + 1)
    ax = fig.add_axes((0.06, top - height, width, height))
    ax.axis("off")
    rest = (1 - first) / max(1, len(header) - 1)
    widths = [first] + [rest] * (len(header) - 1)
    chars = [max(6, int(w * width * A4[0] * 72 / (font * 0.62))) for w in widths]
    cut = [[_clip(str(c), n) for c, n in zip(row, chars, strict=True)] for row in rows]
    labels = [_clip(h, n) for h, n in zip(header, chars, strict=True)]
    table = ax.table(cellText=cut, colLabels=labels, colWidths=widths, cellLoc="left",
                     colLoc="left", bbox=[0, 0, 1, 1])  # type: ignore[arg-type]  # fmt: skip
    table.auto_set_font_size(False)
    table.set_fontsize(font)
    for (row, _), cell in table.get_celld().items():
        cell.set_linewidth(0.3)
        if row == 0:
            cell.set_text_props(weight="bold")
    for column, colour in enumerate(colours, start=1):  # the first row's cells (the verdict)
        table[1, column].set_facecolor(colour)
    return top - height


def _scorecard_page(runs: Sequence[ReportRun], title: str) -> Figure:
    fig = _page()
    fig.text(0.06, 0.95, title, fontsize=14, weight="bold")
    fig.text(0.06, 0.925, "Scorecard", fontsize=12)
    header, rows = scorecard_table(runs)
    fill = {"pass": "#d5ecd9", "fail": "#f6d5d1", "n/a": "#eeeeee"}
    end = _table(fig, 0.91, header, rows, colours=[fill[run.card.verdict] for run in runs])
    thresholds = runs[0].card.thresholds
    lines = [
        f"Pass: clean accuracy >= {100 * thresholds.min_clean:g}% and worst-case robust accuracy "
        f">= {100 * thresholds.min_robust:g}% at the eps shown.",
        *(f"{run.label}: {reason}" for run in runs for reason in run.card.reasons),
        *(f"{run.label}: warning: {w}" for run in runs for w in run.card.warnings),
        *(f"{name}: {value}" for name, value in report_environment()),
    ]
    fig.text(0.06, end - 0.02, "\n".join(textwrap.fill(line, 110) for line in lines), fontsize=7,
             va="top")  # fmt: skip
    return fig


def _figure_page(runs: Sequence[ReportRun]) -> Figure:
    fig = _page()
    fig.text(0.06, 0.95, "Robustness against eps", fontsize=12, weight="bold")
    plot_comparison(fig.add_axes((0.14, 0.58, 0.72, 0.33)), runs)
    fig.text(0.1, 0.48, "Figure: worst-case robust accuracy (every attack, adaptive ones "
             "included) against eps; eps 0 is the clean accuracy.", fontsize=8)  # fmt: skip
    return fig


def _run_page(run: ReportRun) -> Figure:
    fig = _page()
    fig.text(0.06, 0.95, f"Run {run.label}", fontsize=12, weight="bold")
    table = detail(run.results)
    end = _table(fig, 0.93, table.headers, table.text_rows()[:40], first=0.2)
    facts = provenance(run)
    text = [f"{name}: {value}" for name, value in facts[:-1]]
    config = json.dumps(run.results.config, sort_keys=True, default=str)
    text.append("Configuration: " + textwrap.shorten(config, 1800))
    fig.text(0.06, end - 0.02, "\n".join(textwrap.fill(t, 120) for t in text),
             fontsize=6.5, va="top", family="monospace")  # fmt: skip
    return fig


def _clip(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
