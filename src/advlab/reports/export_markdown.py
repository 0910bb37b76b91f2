"""``advlab report --format md``: Markdown (GitHub flavour) to paste into a README or issue.

Scorecard table, the comparison figure (``figures/robustness.svg`` beside the file), each
run's table, provenance and full configuration.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from advlab.reports.comparison import (
    ReportRun,
    detail,
    provenance,
    report_environment,
    scorecard_table,
)
from advlab.reports.template import now
from advlab.results.base import write_text


def cell(text: str) -> str:
    """Text safe inside a Markdown table cell (untrusted names cannot end a cell or row)."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").replace("\r", " ")


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(cell(h) for h in header) + " |",
             "|" + "|".join([" --- "] + [" ---: "] * (len(header) - 1)) + "|"]  # fmt: skip
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def report_markdown(runs: Sequence[ReportRun], title: str, figure: str | None) -> str:
    header, rows = scorecard_table(runs)
    parts = [f"# {cell(title)}\n", "## Scorecard\n", table(header, rows)]
    if figure:
        parts.append(f"\n![Worst-case robust accuracy against eps]({figure})\n")
    for run in runs:
        facts = provenance(run)
        body = detail(run.results)
        parts += [f"\n## Run {cell(run.label)}\n", table(body.headers, body.text_rows()),
                  "\n### Provenance\n", table(["Field", "Value"], facts[:-1]),
                  "\nFull configuration:\n\n```json\n"
                  + json.dumps(run.results.config, indent=2, sort_keys=True, default=str)
                  .replace("```", "` ` `") + "\n```\n"]  # fmt: skip
    env = report_environment()
    parts.append(f"\n---\nWritten on {now()} by advlab {env[0][1]} ({cell(env[1][1])}).\n")
    return "".join(parts)


def write_report_markdown(
    runs: Sequence[ReportRun], path: str | Path, title: str, figure: str | None
) -> Path:
    return write_text(path, report_markdown(runs, title, figure))
