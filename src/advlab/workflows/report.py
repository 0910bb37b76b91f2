"""``advlab report`` as a call: one or several finished runs as a scorecard and a report
in HTML, PDF, Markdown, LaTeX, CSV and JSON.

A run is named by its id in the results store (a unique prefix will do), or by the path
of a results file (results.json, defend.json) or of the folder holding one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from advlab.errors import AdvlabError, check
from advlab.reports.scorecard import DEFAULT_MIN_CLEAN, DEFAULT_MIN_ROBUST
from advlab.workflows.base import RunConfig, epsilon_value

Format = Literal["html", "pdf", "md", "latex", "csv", "json"]
FORMATS: tuple[Format, ...] = ("html", "pdf", "md", "latex", "csv", "json")
RESULT_FILES = ("results.json", "defend.json")


class ReportConfig(RunConfig):
    """Everything ``advlab report`` needs. Thresholds are fractions in [0, 1]; ``eps``
    None judges each run at its largest eps."""

    runs: list[str] = Field(min_length=1)
    formats: list[Format] = Field(default_factory=lambda: list(FORMATS))
    out: str = "advlab-report"
    store: str | None = None
    min_clean: float = Field(default=DEFAULT_MIN_CLEAN, ge=0, le=1)
    min_robust: float = Field(default=DEFAULT_MIN_ROBUST, ge=0, le=1)
    eps: float | None = None
    title: str | None = None

    @field_validator("eps", mode="before")
    @classmethod
    def _eps_text(cls, value: Any) -> Any:
        return None if value is None else epsilon_value(value)

    @field_validator("formats", mode="before")
    @classmethod
    def _one_or_more(cls, values: Any) -> Any:
        values = values if isinstance(values, list) else [values]
        return [v.lower() if isinstance(v, str) else v for v in values] or list(FORMATS)


@dataclass
class ReportOutput:
    """The files written, by format (csv writes two), and each run's scorecard."""

    files: dict[str, list[Path]] = field(default_factory=dict)
    scorecards: list[Any] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(card.passed for card in self.scorecards)


def load_run(name: str, store_path: str | None = None) -> dict[str, Any]:
    """The results file content of the run ``name`` (a store id or prefix, or a path)."""
    path = Path(name).expanduser()
    if path.is_dir():
        found = [path / f for f in RESULT_FILES if (path / f).is_file()]
        check(bool(found), f"{path} holds no {' or '.join(RESULT_FILES)}")
        path = found[0]
    if path.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise AdvlabError(f"cannot read {path}: {error}") from None
        check(isinstance(data, dict), f"{path} is not a results file (a JSON object)")
        return data
    from advlab.evaluation.store import ResultStore

    with ResultStore(store_path) as store:
        return store.get_run(name)


def run_report(config: ReportConfig) -> ReportOutput:
    """Write the report of ``config.runs`` in every format of ``config.formats`` to
    ``config.out``; figures go to ``<out>/figures`` (PDF and SVG), and the PDF format
    adds the scorecard alone as ``scorecard.png``."""
    from advlab.reports.comparison import comparison_figure, report_runs
    from advlab.reports.export_data import write_report_csv, write_report_json
    from advlab.reports.export_html import write_report_html
    from advlab.reports.export_latex import write_report_latex
    from advlab.reports.export_markdown import write_report_markdown
    from advlab.reports.export_pdf import write_report_pdf, write_scorecard_png
    from advlab.reports.figures import save_figure
    from advlab.reports.scorecard import Thresholds

    results = [load_run(name, config.store) for name in config.runs]
    thresholds = Thresholds(config.min_clean, config.min_robust, config.eps)
    runs = report_runs(results, thresholds)
    out = config.folder
    out.mkdir(parents=True, exist_ok=True)
    title = config.title or "advlab report: " + ", ".join(run.label for run in runs)
    output = ReportOutput(scorecards=[run.card for run in runs])
    figures: list[Path] = []
    if {"md", "latex"} & set(config.formats):
        figure = comparison_figure(runs)
        figures = [
            save_figure(figure, out / "figures" / f"robustness{s}") for s in (".pdf", ".svg")
        ]
    writers = {
        "html": lambda: [write_report_html(runs, out / "report.html", title)],
        "pdf": lambda: [write_report_pdf(runs, out / "report.pdf", title),
                        write_scorecard_png(runs, out / "scorecard.png", title)],
        "md": lambda: [write_report_markdown(runs, out / "report.md", title,
                                             "figures/robustness.svg"), *figures],
        "latex": lambda: [write_report_latex(runs, out / "report.tex", title,
                                             "figures/robustness.pdf"), *figures],
        "csv": lambda: write_report_csv(runs, out),
        "json": lambda: [write_report_json(runs, out / "report.json")],
    }  # fmt: skip
    for name in dict.fromkeys(config.formats):
        output.files[name] = writers[name]()
    return output
