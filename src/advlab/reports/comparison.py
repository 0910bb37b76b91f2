"""What every format of ``advlab report`` shows, computed once: runs, tables, figure.

A :class:`ReportRun` is one run's typed results and scorecard. The scorecard table (one
column per run), each run's detail table and provenance, and the comparison figure are
built here as raw values plus display text, so HTML, PDF, Markdown, LaTeX, CSV and JSON
show the same numbers.
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

import advlab
from advlab.reports.scorecard import Scorecard, Thresholds, read_results, scorecard
from advlab.reports.tables import attack_name, format_eps, format_number, format_percent
from advlab.results import DefenseComparison, Evaluation

#: Okabe & Ito's colour-blind-safe palette (black first), with a marker each.
PALETTE = ("#000000", "#E69F00", "#56B4E9", "#009E73", "#D55E00", "#0072B2", "#CC79A7")
MARKERS = ("o", "s", "^", "D", "v", "P", "X")
#: One column of a two-column paper, in inches.
COLUMN_WIDTH = 3.4


@dataclass(frozen=True)
class ReportRun:
    """One run of the report: its typed results and scorecard."""

    results: Evaluation | DefenseComparison
    card: Scorecard

    @property
    def label(self) -> str:
        return self.card.run_id or self.card.model or "run"


def report_runs(results: Sequence[Any], thresholds: Thresholds | None = None) -> list[ReportRun]:
    """Each result (typed, or a results file's content) with its scorecard."""
    out = []
    for item in results:
        typed = read_results(item)
        out.append(ReportRun(typed, scorecard(typed, thresholds)))
    return out


# -- the scorecard table -------------------------------------------------------------------


def scorecard_table(runs: Sequence[ReportRun]) -> tuple[list[str], list[list[str]]]:
    """Header (``""`` then one per run) and rows (label then one display text per run)."""
    header = ["", *(run.label for run in runs)]
    columns = [run.card.rows() for run in runs]
    rows = [[label, *(column[i][1] for column in columns)]
            for i, (label, _) in enumerate(columns[0])]  # fmt: skip
    return header, rows


# -- one run's detail table ----------------------------------------------------------------


@dataclass(frozen=True)
class Detail:
    """A run's detail table: column headers, raw values per row, and how to show them."""

    headers: list[str]
    keys: list[str]
    rows: list[list[Any]]
    show: list[Callable[[Any], str]]

    def text_rows(self) -> list[list[str]]:
        return [[f(v) for f, v in zip(self.show, row, strict=True)] for row in self.rows]


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def detail(results: Evaluation | DefenseComparison) -> Detail:
    """Evaluation: clean, every attack at every eps, the worst case. Defense comparison:
    per row and eps, clean accuracy and the lowest plain and adaptive robust accuracy."""
    if isinstance(results, Evaluation):
        rows: list[list[Any]] = [["clean", "", 0.0, results.clean_accuracy, None, None, None]]
        for e in results.results:
            rows.append([attack_name(e), e.norm, e.eps, e.robust_accuracy,
                         e.attack_success_rate, e.median_linf, e.median_l2])  # fmt: skip
        norm = results.norms[0] if len(results.norms) == 1 else ""
        for eps, accuracy in sorted(results.worst_case.items()):
            rows.append(["worst case", norm, eps, accuracy, None, None, None])
        return Detail(
            ["Attack", "Norm", "Eps", "Robust acc.", "ASR", "Median Linf", "Median L2"],
            [
                "attack",
                "norm",
                "eps",
                "robust_accuracy",
                "attack_success_rate",
                "median_linf",
                "median_l2",
            ],  # fmt: skip
            rows,
            [
                _text,
                _text,
                lambda v: format_eps(v, norm or "linf"),
                format_percent,
                format_percent,
                format_number,
                format_number,
            ],  # fmt: skip
        )
    rows = []
    for row in results.rows:
        for eps in results.epsilons:
            plain, adaptive = row.lowest_robust(eps)
            rows.append([row.label, eps, row.clean_accuracy, plain, adaptive])
    return Detail(
        ["Defense", "Eps", "Clean acc.", "Plain robust acc.", "Adaptive robust acc."],
        ["label", "eps", "clean_accuracy", "robust_accuracy", "adaptive_robust_accuracy"],
        rows,
        [
            _text,
            lambda v: format_eps(v, results.norm or "linf"),
            format_percent,
            format_percent,
            format_percent,
        ],  # fmt: skip
    )


# -- provenance -----------------------------------------------------------------------------


def provenance(run: ReportRun) -> list[tuple[str, str]]:
    """advlab's version, run id, seed, hardware, run time and the full configuration."""
    results = run.results
    return [
        ("Run id", results.run_id or "n/a"),
        ("advlab version (run)", results.advlab_version or "n/a"),
        ("Model", results.model or "n/a"),
        ("Weights SHA-256", results.weights_sha256 or "n/a"),
        ("Data set", f"{results.dataset} ({results.split}), n={results.n}"),
        ("Seed", str(results.seed)),
        ("Hardware (run)", results.device or "n/a"),
        ("Run time", f"{format_number(results.seconds, '.1f')} s"),
        ("Configuration", json.dumps(results.config, sort_keys=True, default=str)),
    ]


def report_environment() -> list[tuple[str, str]]:
    """Where the report itself was written."""
    return [
        ("advlab version (report)", advlab.__version__),
        ("Report machine", f"{platform.platform()}, {platform.machine()}, "
                           f"{os.cpu_count() or '?'} CPUs, Python {platform.python_version()}"),
    ]  # fmt: skip


# -- the comparison figure ------------------------------------------------------------------


def curves(run: ReportRun) -> list[tuple[str, list[tuple[float, float]]]]:
    """(label, [(eps, robust accuracy)]) lines of a run: its worst case, per defense row."""
    results = run.results
    if isinstance(results, Evaluation):
        points = [(0.0, results.clean_accuracy), *sorted(results.worst_case.items())]
        return [(run.label, points)]
    lines = []
    for row in results.rows:
        points = [(0.0, row.clean_accuracy)]
        for eps in sorted(results.epsilons):
            values = [min(c.robust_accuracy, c.adaptive_robust_accuracy)
                      for c in row.cells if c.eps == eps]  # fmt: skip
            if values:
                points.append((eps, min(values)))
        lines.append((f"{run.label}: {row.label}", points))
    return lines


def comparison_figure(runs: Sequence[ReportRun]) -> Figure:
    """Worst-case robust accuracy against eps, one line per run (and defense), sized for a
    paper's column, in a colour-blind-safe palette with a marker per line."""
    fig = Figure(figsize=(COLUMN_WIDTH, 2.5), dpi=150, layout="constrained")
    plot_comparison(fig.subplots(), runs)
    return fig


def plot_comparison(ax: Axes, runs: Sequence[ReportRun]) -> None:
    """Draw the comparison on ``ax`` (the PDF draws it on its page, as vectors)."""
    lines = [line for run in runs for line in curves(run)]
    for index, (label, points) in enumerate(lines):
        ax.plot([p[0] for p in points], [p[1] for p in points], label=_short(label),
                color=PALETTE[index % len(PALETTE)], marker=MARKERS[index % len(MARKERS)],
                markersize=4, linewidth=1.4)  # fmt: skip
    norms = {run.card.norm for run in runs}
    ax.set_xlabel(f"eps ({norms.pop() or 'mixed norms'})" if len(norms) == 1 else "eps")
    ax.set_ylabel("worst-case robust accuracy")
    ax.set_ylim(-0.02, 1.02)
    ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=0))
    ax.grid(alpha=0.3)
    for item in (ax.xaxis.label, ax.yaxis.label, *ax.get_xticklabels(), *ax.get_yticklabels()):
        item.set_fontsize(8)
    if lines:
        ax.legend(fontsize=7, loc="best", frameon=False)


def _short(label: str, width: int = 28) -> str:
    return label if len(label) <= width else label[: width - 1] + "…"
