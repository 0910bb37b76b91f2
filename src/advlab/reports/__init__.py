"""Reports: figures, result tables and the self-contained HTML pages of every run kind.

Reports read the typed results of :mod:`advlab.results` (each public function also takes
the content of the results file and reads it once) and a few kept example images; they
know nothing of models or attacks, so a stored run can be re-reported. One module per
page: :mod:`~advlab.reports.evaluation` (with the :mod:`~advlab.reports.blackbox`
section), :mod:`~advlab.reports.defense`, :mod:`~advlab.reports.transfer`,
:mod:`~advlab.reports.detection` and :mod:`~advlab.reports.training`; the page frame,
escaping and embedded images live in :mod:`~advlab.reports.template`. ``advlab report``
(one or several runs, compared) is :mod:`~advlab.reports.scorecard` (the pass / fail
verdict), :mod:`~advlab.reports.comparison` (what every format shows) and one
``export_*`` module per format.
"""

from advlab.reports.evaluation import write_html_report
from advlab.reports.example import Example, as_example
from advlab.reports.figures import (
    example_grid,
    figure_to_png_bytes,
    per_class_bars,
    robustness_curve,
    save_figure,
)
from advlab.reports.scorecard import Scorecard, Thresholds, scorecard
from advlab.reports.tables import results_table_csv, results_table_markdown

__all__ = [
    "Example",
    "Scorecard",
    "Thresholds",
    "as_example",
    "example_grid",
    "figure_to_png_bytes",
    "per_class_bars",
    "results_table_csv",
    "results_table_markdown",
    "robustness_curve",
    "save_figure",
    "scorecard",
    "write_html_report",
]
