"""The detection part of a report: summary rows, a ROC figure and an HTML section.

Like the rest of :mod:`advlab.reports` it reads only plain results (the content of
detection.json), so a stored run can be re-reported. :func:`detection_section` returns
one ``<section>`` that any advlab HTML page can include; :func:`write_detection_report`
writes it as a page of its own.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypedDict

from matplotlib.figure import Figure

from advlab.reports.tables import attack_name, format_count, format_eps, format_percent
from advlab.reports.template import cards, esc, img, report_path, run_facts, write_run_page
from advlab.results import DetectionEntry, DetectionEvaluation

logger = logging.getLogger(__name__)
Results = DetectionEvaluation | Mapping[str, Any]

#: (header, field, format) of the full per-entry table.
ENTRY_COLUMNS: tuple[tuple[str, str, Any], ...] = (
    ("Attacked", "attacked", format_count),
    ("Fooled", "fooled", format_count),
    ("ASR", "attack_success_rate", format_percent),
    ("Detected (fooled)", "detection_rate", format_percent),
    ("Detected (all)", "detection_rate_all", format_percent),
    ("Fooled and missed", "evasion_rate", format_percent),
    ("AUC", "auc", lambda v: _number(v, ".3f")),
    ("AUC (all)", "auc_all", lambda v: _number(v, ".3f")),
    ("Seconds", "seconds", lambda v: _number(v, ".1f")),
)


class SummaryRow(TypedDict):
    """A non-adaptive attack at one eps, with the adaptive attack's rates at that eps."""

    attack: str
    norm: str
    eps: float
    attack_success_rate: float | None
    detection_rate: float | None
    detection_rate_all: float | None
    adaptive_detection_rate: float | None
    adaptive_evasion_rate: float | None
    auc: float | None


def summary_rows(results: Results) -> list[SummaryRow]:
    """One row per non-adaptive (attack, eps), with the adaptive detection rate at that eps
    (None where no adaptive attack ran)."""
    entries = DetectionEvaluation.coerce(results).results
    adaptive = {e.eps: e for e in entries if e.adaptive}
    rows = []
    for entry in entries:
        if entry.adaptive:
            continue
        aware = adaptive.get(entry.eps)
        rows.append(
            SummaryRow(
                attack=attack_name(entry),
                norm=entry.norm,
                eps=entry.eps,
                attack_success_rate=entry.attack_success_rate,
                detection_rate=entry.detection_rate,
                detection_rate_all=entry.detection_rate_all,
                adaptive_detection_rate=None if aware is None else aware.detection_rate,
                adaptive_evasion_rate=None if aware is None else aware.evasion_rate,
                auc=entry.auc,
            )
        )
    return rows


def roc_figure(results: Results) -> Figure:
    """ROC curves (clean vs fooled adversarial): one panel per attack, one line per eps."""
    results = DetectionEvaluation.coerce(results)
    panels: dict[str, list[DetectionEntry]] = {}
    for entry in results.results:
        if entry.roc.get("fpr"):
            panels.setdefault(attack_name(entry), []).append(entry)
    count = max(1, len(panels))
    figure = Figure(figsize=(3.0 * count + 0.4, 3.2), dpi=100, layout="constrained")
    axes = figure.subplots(1, count, sharey=True, squeeze=False)[0]
    for ax, (name, entries) in zip(axes, panels.items(), strict=False):
        for entry in sorted(entries, key=lambda e: e.eps):
            eps = format_eps(entry.eps, entry.norm)
            ax.plot(entry.roc["fpr"], entry.roc["tpr"], linewidth=1.2,
                    label=f"eps {eps} (AUC {_number(entry.auc, '.3f')})")  # fmt: skip
        ax.set_title(name, fontsize=9)
        ax.legend(loc="lower right", fontsize=7)
    target = results.fpr_target
    for ax in axes:
        ax.plot([0, 1], [0, 1], color="0.7", linestyle="--", linewidth=0.8)
        if isinstance(target, (int, float)):
            ax.axvline(float(target), color="grey", linestyle=":", linewidth=1)
        ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="false positive rate")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("true positive rate")
    if not panels:
        axes[0].text(0.5, 0.5, "no ROC curves", ha="center", va="center",
                     transform=axes[0].transAxes)  # fmt: skip
    detector = results.detector.get("detector", "?")
    figure.suptitle(f"{detector} detector on {results.model or '?'}", fontsize=9)
    return figure


def detection_section(results: Results) -> str:
    """The ``<section id="detection">`` of a report: cards, tables, ROC figure, notes."""
    results = DetectionEvaluation.coerce(results)
    detector = results.detector
    card_html = cards([
        ("detector", str(detector.get("detector", "n/a"))),
        ("target false positive rate", format_percent(results.fpr_target)),
        (f"false positive rate on {results.n} held-out clean images",
         format_percent(results.false_positive_rate)),
        ("clean accuracy", format_percent(results.clean_accuracy)),
    ])  # fmt: skip
    summary_head = "".join(
        f"<th{cls}>{esc(text)}</th>"
        for text, cls in (("Attack", ' class="text"'), ("Eps", ""), ("ASR", ""),
                          ("Detected", ""), ("Detected, adaptive", ""), ("AUC", ""))
    )  # fmt: skip
    summary_body = "".join(
        f'<tr><td class="text">{esc(row["attack"])}</td>'
        f"<td>{esc(format_eps(row['eps'], row['norm']))}</td>"
        f"<td>{esc(format_percent(row['attack_success_rate']))}</td>"
        f"<td>{esc(format_percent(row['detection_rate']))}</td>"
        f"<td>{esc(format_percent(row['adaptive_detection_rate']))}</td>"
        f"<td>{esc(_number(row['auc'], '.3f'))}</td></tr>"
        for row in summary_rows(results)
    )
    entry_head = '<th class="text">Attack</th><th class="text">Norm</th><th>Eps</th>' + "".join(
        f"<th>{esc(header)}</th>" for header, _, _ in ENTRY_COLUMNS
    )
    entry_body = "".join(
        f'<tr><td class="text">{esc(attack_name(e))}</td><td class="text">{esc(e.norm)}'
        f"</td><td>{esc(format_eps(e.eps, e.norm))}</td>"
        + "".join(f"<td>{esc(text(getattr(e, name)))}</td>" for _, name, text in ENTRY_COLUMNS)
        + "</tr>"
        for e in results.results
    )
    image = img(roc_figure(results), "ROC curves")
    threshold = detector.get("threshold")
    note = (
        f"Threshold {_number(threshold, '.4g')}, set on {_fit_text(results)} for the target "
        "false positive rate. Attacks run on the correctly classified images. ASR: share of "
        "them the attack fooled. Detected (fooled): share of the fooled ones the detector "
        "flags; (all): of all attacked. 'Detected, adaptive' is the rate against an attack "
        "on model and detector together at the same eps. AUC separates the clean images "
        "from the fooled adversarial ones (dotted line: the target false positive rate)."
    )
    return (
        f'<section id="detection"><h2>Detection</h2>{card_html}'
        f'<div class="scroll"><table><tr>{summary_head}</tr>{summary_body}</table></div>'
        f'<h3>Every run</h3><div class="scroll"><table><tr>{entry_head}</tr>{entry_body}'
        f"</table></div><figure>{image}"
        f"<figcaption>ROC of telling clean images from fooled adversarial examples."
        f'</figcaption></figure><p class="muted">{esc(note)}</p></section>'
    )


def write_detection_report(results: Results, path: str | Path, *, title: str | None = None) -> Path:
    """Write a self-contained HTML page of ``results`` (a
    :class:`~advlab.results.DetectionEvaluation` or the detection.json content) to ``path``."""
    results = DetectionEvaluation.coerce(results)
    path = report_path(path)
    title = title or f"advlab detection report: {results.model or '?'} on {results.dataset or '?'}"
    fields = [
        *run_facts(results),
        ("Detector", results.detector.get("description", "n/a")),
        ("advlab version", results.advlab_version),
        ("Weights SHA-256", results.weights_sha256 or "n/a"),
    ]
    config = {"config": results.config, "detector": results.detector, "fit": results.fit}
    text = write_run_page(path, title, fields, [detection_section(results)], config)
    logger.info("wrote the detection report %s (%d kB)", path, len(text) // 1024)
    return path


def _fit_text(results: DetectionEvaluation) -> str:
    fit = results.fit
    if not fit:
        return "clean images kept apart from the evaluation"
    return f"{fit.get('n', '?')} clean {fit.get('dataset', '?')} {fit.get('split', '?')} images"


def _number(value: Any, spec: str) -> str:
    return format(value, spec) if isinstance(value, (int, float)) and value == value else "n/a"
