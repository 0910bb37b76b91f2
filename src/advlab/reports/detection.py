"""The detection part of a report: summary rows, a ROC figure and an HTML section.

Like the rest of :mod:`advlab.reports` it reads only plain results (the content of
detection.json), so a stored run can be re-reported. :func:`detection_section` returns
one ``<section>`` that any advlab HTML page can include; :func:`write_detection_report`
writes it as a page of its own.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from advlab.reports.html import _img
from advlab.reports.tables import attack_name, format_count, format_eps, format_percent
from advlab.reports.template import esc, meta_table, report_path, write_page

logger = logging.getLogger(__name__)

#: (header, key, format) of the full per-entry table.
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


def summary_rows(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per non-adaptive (attack, eps), with the adaptive detection rate at that eps.

    Keys: attack, norm, eps, attack_success_rate, detection_rate, detection_rate_all,
    adaptive_detection_rate, adaptive_evasion_rate, auc (raw values, None where missing).
    """
    entries = list(results.get("results") or [])
    adaptive = {float(e["eps"]): e for e in entries if e.get("adaptive")}
    rows = []
    for entry in entries:
        if entry.get("adaptive"):
            continue
        aware = adaptive.get(float(entry["eps"]), {})
        rows.append(
            {
                "attack": attack_name(entry),
                "norm": entry.get("norm"),
                "eps": entry.get("eps"),
                "attack_success_rate": entry.get("attack_success_rate"),
                "detection_rate": entry.get("detection_rate"),
                "detection_rate_all": entry.get("detection_rate_all"),
                "adaptive_detection_rate": aware.get("detection_rate"),
                "adaptive_evasion_rate": aware.get("evasion_rate"),
                "auc": entry.get("auc"),
            }
        )
    return rows


def roc_figure(results: Mapping[str, Any]) -> Figure:
    """ROC curves (clean vs fooled adversarial): one panel per attack, one line per eps."""
    panels: dict[str, list[Mapping[str, Any]]] = {}
    for entry in results.get("results") or []:
        if (entry.get("roc") or {}).get("fpr"):
            panels.setdefault(attack_name(entry), []).append(entry)
    count = max(1, len(panels))
    figure = Figure(figsize=(3.0 * count + 0.4, 3.2), dpi=100, layout="constrained")
    axes = figure.subplots(1, count, sharey=True, squeeze=False)[0]
    for ax, (name, entries) in zip(axes, panels.items(), strict=False):
        for entry in sorted(entries, key=lambda e: float(e.get("eps") or 0)):
            eps = format_eps(entry.get("eps"), str(entry.get("norm") or ""))
            ax.plot(entry["roc"]["fpr"], entry["roc"]["tpr"], linewidth=1.2,
                    label=f"eps {eps} (AUC {float(entry['auc']):.3f})")  # fmt: skip
        ax.set_title(name, fontsize=9)
        ax.legend(loc="lower right", fontsize=7)
    target = results.get("fpr_target")
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
    detector = (results.get("detector") or {}).get("detector", "?")
    figure.suptitle(f"{detector} detector on {results.get('model', '?')}", fontsize=9)
    return figure


def detection_section(results: Mapping[str, Any]) -> str:
    """The ``<section id="detection">`` of a report: cards, tables, ROC figure, notes."""
    detector = results.get("detector") or {}
    cards = [
        ("detector", str(detector.get("detector", "n/a"))),
        ("target false positive rate", format_percent(results.get("fpr_target"))),
        (
            f"false positive rate on {results.get('n', '?')} held-out clean images",
            format_percent(results.get("false_positive_rate")),
        ),
        ("clean accuracy", format_percent(results.get("clean_accuracy"))),
    ]
    card_html = "".join(
        f'<div class="card"><div class="value">{esc(value)}</div>'
        f'<div class="label">{esc(label)}</div></div>'
        for label, value in cards
    )
    summary_head = "".join(
        f"<th{cls}>{esc(text)}</th>"
        for text, cls in (("Attack", ' class="text"'), ("Eps", ""), ("ASR", ""),
                          ("Detected", ""), ("Detected, adaptive", ""), ("AUC", ""))
    )  # fmt: skip
    summary_body = "".join(
        f'<tr><td class="text">{esc(row["attack"])}</td>'
        f"<td>{esc(format_eps(row['eps'], str(row['norm'] or '')))}</td>"
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
        f'<tr><td class="text">{esc(attack_name(e))}</td><td class="text">{esc(e.get("norm"))}'
        f"</td><td>{esc(format_eps(e.get('eps'), str(e.get('norm') or '')))}</td>"
        + "".join(f"<td>{esc(text(e.get(key)))}</td>" for _, key, text in ENTRY_COLUMNS)
        + "</tr>"
        for e in results.get("results") or []
    )
    image = _img(roc_figure(results), "ROC curves")
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
        f'<section id="detection"><h2>Detection</h2><div class="cards">{card_html}</div>'
        f'<div class="scroll"><table><tr>{summary_head}</tr>{summary_body}</table></div>'
        f'<h3>Every run</h3><div class="scroll"><table><tr>{entry_head}</tr>{entry_body}'
        f"</table></div><figure>{image}"
        f"<figcaption>ROC of telling clean images from fooled adversarial examples."
        f'</figcaption></figure><p class="muted">{esc(note)}</p></section>'
    )


def write_detection_report(
    results: Mapping[str, Any], path: str | Path, *, title: str | None = None
) -> Path:
    """Write a self-contained HTML page of ``results`` (detection.json content) to ``path``."""
    path = report_path(results, path, "detection.json")
    title = title or (
        f"advlab detection report: {results.get('model', '?')} on {results.get('dataset', '?')}"
    )
    fields = [
        ("Model", results.get("model", "n/a")),
        ("Data set", f"{results.get('dataset', 'n/a')} ({results.get('split', 'n/a')})"),
        ("Images (n)", results.get("n", "n/a")),
        ("Seed", results.get("seed", "n/a")),
        ("Device", results.get("device", "n/a")),
        ("Detector", (results.get("detector") or {}).get("description", "n/a")),
        ("advlab version", results.get("advlab_version", "n/a")),
        ("Weights SHA-256", results.get("weights_sha256") or "n/a"),
    ]
    config = {"config": results.get("config"), "detector": results.get("detector"),
              "fit": results.get("fit")}  # fmt: skip
    text = write_page(
        path,
        title,
        [
            f'<section id="run"><h2>Run</h2>{meta_table(fields)}</section>',
            detection_section(results),
            '<section id="settings"><h2>Settings</h2><details><summary>Configuration as JSON'
            f"</summary><pre>{esc(json.dumps(config, indent=2, default=str))}</pre></details>"
            "</section>",
        ],
    )
    logger.info("wrote the detection report %s (%d kB)", path, len(text) // 1024)
    return path


def _fit_text(results: Mapping[str, Any]) -> str:
    fit = results.get("fit") or {}
    if not fit:
        return "clean images kept apart from the evaluation"
    return f"{fit.get('n', '?')} clean {fit.get('dataset', '?')} {fit.get('split', '?')} images"


def _number(value: Any, spec: str) -> str:
    return format(value, spec) if isinstance(value, (int, float)) and value == value else "n/a"
