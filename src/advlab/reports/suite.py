"""The report section of a suite run (``advlab evaluate --suite``): per eps, which attack
broke how many images at what cost, AutoAttack's sanity lines, the gradient-masking
checks and the warnings. Empty for a run without a suite."""

from __future__ import annotations

from advlab.reports.tables import format_number, format_percent
from advlab.reports.template import esc
from advlab.results import Evaluation


def suite_section(results: Evaluation) -> str:
    if not (results.suite or results.checks or results.warnings):
        return ""
    parts = ['<section id="suite"><h2>Suite</h2>']
    for entry in results.suite:
        rows = "".join(
            f"<tr><td>{esc(name)}</td><td>{count}</td>"
            f"<td>{esc(format_number(entry.mean_queries.get(name), '.0f'))}</td>"
            f"<td>{esc(format_number(entry.seconds.get(name), '.1f'))}</td></tr>"
            for name, count in entry.broken_by.items()
        )
        largest = entry.max_linf if entry.norm == "linf" else entry.max_l2
        parts.append(
            f"<h3>{esc(entry.suite)} suite, {esc(entry.norm)} eps {entry.eps:g}: robust "
            f"accuracy {esc(format_percent(entry.robust_accuracy))}</h3>"
            "<table><tr><th>attack</th><th>broke</th><th>queries per image</th>"
            f"<th>seconds</th></tr>{rows}</table>"
            f'<p class="muted">max {esc(entry.norm)} perturbation {largest:.6g} (eps '
            f"{entry.eps:g}); NaNs {entry.nan}; adversarial min/max {entry.min_pixel:.4g}/"
            f"{entry.max_pixel:.4g}</p>"
        )
    if results.checks:
        rows = "".join(
            f"<tr><td>{esc(c.name)}</td><td>{esc(c.status)}</td><td>{esc(c.explanation)}</td></tr>"
            for c in results.checks
        )
        parts.append(
            "<h3>Gradient-masking checks</h3><table><tr><th>check</th><th>status</th>"
            f"<th>what was seen</th></tr>{rows}</table>"
        )
    warnings = "".join(f"<li>{esc(text)}</li>" for text in results.warnings)
    parts.append(f"<h3>Warnings</h3><ul>{warnings}</ul>" if warnings else "<p>No warnings.</p>")
    parts.append("</section>")
    return "".join(parts)
