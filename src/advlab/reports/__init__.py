"""Reports: figures, result tables and the self-contained HTML report of an evaluation.

Reports read the plain results (the content of results.json) and a few kept example
images; they know nothing of models or attacks, so a stored run can be re-reported.
"""

from advlab.reports.example import Example, as_example
from advlab.reports.figures import (
    example_grid,
    figure_to_png_bytes,
    per_class_bars,
    robustness_curve,
    save_figure,
)
from advlab.reports.html import write_html_report
from advlab.reports.tables import results_table_csv, results_table_markdown

__all__ = [
    "Example",
    "as_example",
    "example_grid",
    "figure_to_png_bytes",
    "per_class_bars",
    "results_table_csv",
    "results_table_markdown",
    "robustness_curve",
    "save_figure",
    "write_html_report",
]
