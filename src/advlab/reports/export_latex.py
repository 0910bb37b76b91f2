"""``advlab report --format latex``: booktabs tables and the figure, ready for a paper.

``report.tex`` compiles on its own (``pdflatex report.tex``: article, booktabs, graphicx)
and each ``table`` environment pastes into a paper as it is; the figure is
``figures/robustness.pdf``, one column wide.
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
from advlab.results.base import write_text

_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
}  # fmt: skip


def tex(text: str) -> str:
    """``text`` with LaTeX's special characters escaped."""
    return "".join(_SPECIAL.get(char, char) for char in str(text))


def booktabs(header: Sequence[str], rows: Sequence[Sequence[str]], caption: str, label: str) -> str:
    """A ``table`` with a booktabs ``tabular``: first column left, the others right."""
    spec = "l" + "r" * (len(header) - 1)
    lines = [
        r"\begin{table}[t]", r"\centering", r"\small",
        rf"\caption{{{tex(caption)}}}", rf"\label{{{label}}}",
        rf"\begin{{tabular}}{{{spec}}}", r"\toprule",
        " & ".join(tex(h) for h in header) + r" \\", r"\midrule",
        *(" & ".join(tex(c) for c in row) + r" \\" for row in rows),
        r"\bottomrule", r"\end{tabular}", r"\end{table}",
    ]  # fmt: skip
    return "\n".join(lines) + "\n"


def report_latex(runs: Sequence[ReportRun], title: str, figure: str | None) -> str:
    header, rows = scorecard_table(runs)
    parts = [
        r"\documentclass{article}", r"\usepackage[T1]{fontenc}", r"\usepackage{booktabs}",
        r"\usepackage{graphicx}", r"\usepackage[margin=2cm]{geometry}",
        rf"\title{{{tex(title)}}}", r"\date{}", r"\begin{document}", r"\maketitle",
        r"\section*{Scorecard}",
        booktabs(header, rows, "Scorecard", "tab:scorecard"),
    ]  # fmt: skip
    if figure:
        parts += [r"\begin{figure}[t]", r"\centering",
                  rf"\includegraphics[width=\columnwidth]{{{figure}}}",
                  r"\caption{Worst-case robust accuracy against $\epsilon$.}",
                  r"\label{fig:robustness}", r"\end{figure}"]  # fmt: skip
    for index, run in enumerate(runs):
        body = detail(run.results)
        config = json.dumps(run.results.config, indent=1, sort_keys=True, default=str)
        parts += [
            rf"\section*{{Run {tex(run.label)}}}",
            booktabs(body.headers, body.text_rows(), f"Results of run {run.label}",
                     f"tab:run{index}"),
            booktabs(["Field", "Value"], provenance(run)[:-1], f"Provenance of run {run.label}",
                     f"tab:provenance{index}"),
            r"\noindent Full configuration:", r"{\footnotesize\begin{verbatim}",
            config.replace(r"\end{verbatim}", r"\end {verbatim}"), r"\end{verbatim}}",
        ]  # fmt: skip
    env = report_environment()
    parts += [rf"\noindent\footnotesize Written by advlab {tex(env[0][1])} on {tex(env[1][1])}.",
              r"\end{document}"]  # fmt: skip
    return "\n".join(parts) + "\n"


def write_report_latex(
    runs: Sequence[ReportRun], path: str | Path, title: str, figure: str | None
) -> Path:
    return write_text(path, report_latex(runs, title, figure))
