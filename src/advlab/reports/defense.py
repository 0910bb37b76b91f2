"""The defense comparison (defend.json) as HTML: findings, tables, a figure, the checks.

:func:`defense_section` is one ``<section id="defenses">``; the evaluation report embeds
it when results.json holds a ``defense_comparison``, and :func:`write_defense_report`
makes a self-contained page of it. Like the rest of ``advlab.reports`` it reads plain
results only and escapes every string in them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from advlab.errors import check
from advlab.reports.figures import DPI
from advlab.reports.html_parts import scorecard_section
from advlab.reports.scorecard import scorecard
from advlab.reports.tables import format_eps, format_percent
from advlab.reports.template import esc, img, report_path, run_facts, write_run_page
from advlab.results import CellResult, DefenseComparison, RowResult

_FONT = 8
_FLAG = ' style="background:#fbeeed;font-weight:600"'
_WARN = ' style="background:#fbeeed"'
_PASS = ' style="background:#eef6ee"'
CHECK_NAMES = ("iterative", "white-box", "eps-sweep", "unbounded", "more-effort")


def attack_columns(results: DefenseComparison | Mapping[str, Any]) -> list[tuple[str, str]]:
    """The (attack key, attack name) of the comparison, in the order they were run."""
    return DefenseComparison.coerce(results).attack_keys


def cell_of(row: RowResult, key: str, eps: float) -> CellResult | None:
    """The cell of attack ``key`` at ``eps`` in ``row``, if it was run."""
    return next((c for c in row.cells if c.key == key and c.eps == eps), None)


def comparison_bars(results: DefenseComparison | Mapping[str, Any], eps: float) -> Figure:
    """Per row, the lowest robust accuracy over the attacks at ``eps``: plain (light) and
    adaptive (dark) side by side. A tall light bar over a short dark one is a masked
    gradient."""
    results = DefenseComparison.coerce(results)
    rows = results.rows
    check(bool(rows), "the defense comparison holds no rows")
    plain, adaptive = [], []
    for row in rows:
        lowest = row.lowest_robust(eps)
        plain.append(np.nan if lowest[0] is None else lowest[0])
        adaptive.append(np.nan if lowest[1] is None else lowest[1])
    fig = Figure(figsize=(1.6 + 0.9 * len(rows), 2.6), dpi=DPI, layout="constrained")
    ax = fig.subplots()
    x = np.arange(len(rows))
    ax.bar(x - 0.2, plain, 0.4, label="plain attacks", color="#9bb7e0")
    ax.bar(x + 0.2, adaptive, 0.4, label="adaptive (worst case)", color="#2f5fa7")
    for i, (p, a) in enumerate(zip(plain, adaptive, strict=True)):
        for offset, value in ((-0.2, p), (0.2, a)):
            if np.isfinite(value):
                ax.text(i + offset, value + 0.02, f"{100 * value:.0f}", ha="center", fontsize=6)
    ax.set_xticks(x)
    ax.set_xticklabels([_short(r.label) for r in rows], fontsize=_FONT, rotation=15)
    ax.set_ylim(0, 1.12)
    ax.set_ylabel("robust accuracy (lowest over attacks)", fontsize=_FONT)
    ax.tick_params(axis="y", labelsize=_FONT)
    ax.set_title(f"eps={format_eps(eps, results.norm)}: plain vs adaptive attacks", fontsize=9)
    ax.legend(fontsize=_FONT, loc="upper right")
    return fig


def defense_section(results: DefenseComparison | Mapping[str, Any]) -> str:
    """``<section id="defenses">``: findings, overview, robustness per eps, masking checks."""
    results = DefenseComparison.coerce(results)
    parts = ['<section id="defenses"><h2>Defense comparison</h2>']
    if results.findings:
        items = "".join(f"<li>{esc(text)}</li>" for text in results.findings)
        parts.append(f"<ul>{items}</ul>")
    parts.append(_overview_table(results))
    for eps in results.epsilons:
        parts.append(f"<h3>Robust accuracy at eps {esc(format_eps(eps, results.norm))}</h3>")
        parts.append(_eps_table(results, eps))
        parts.append(f"<figure>{img(comparison_bars(results, eps), f'eps {eps:g}')}</figure>")
    parts.append(_checks_table(results))
    note = (
        "Plain: the attack as configured, run on the defended model. Adaptive: the same "
        "attack made to know the defense (bpda: straight-through gradients through "
        "non-differentiable preprocessing; eot: gradients averaged over random draws; "
        "logits: cross-entropy on rescaled logits, which a saturated softmax cannot hide; "
        "transfer: examples crafted on the undefended model; aware: an attack on model and "
        "detector together), each judged on the real defended model; an image counts as "
        "robust only if every attack failed on it. Robust accuracy is over all images; the "
        "attack success rate (ASR) over the images the row classifies correctly. ASR cut: "
        "1 - adaptive ASR / undefended ASR. Flagged cells (!): the plain number exceeds the "
        f"adaptive one by {_gap(results)} or more. With a detector, a flagged image counts "
        "as defended, a flagged clean image as lost. Retention: clean accuracy relative to "
        "the undefended model. Slowdown: inference time per image relative to it."
    )
    parts.append(f'<p class="muted">{esc(note)}</p></section>')
    return "".join(parts)


def write_defense_report(
    results: DefenseComparison | Mapping[str, Any], path: str | Path, *, title: str | None = None
) -> Path:
    """A self-contained HTML page of ``results`` (a :class:`~advlab.results.DefenseComparison`
    or the defend.json content) at ``path``."""
    results = DefenseComparison.coerce(results)
    path = report_path(path)
    title = (
        title or f"advlab defense comparison: {results.model or '?'} on {results.dataset or '?'}"
    )
    fields = [
        *run_facts(results, "Model (undefended)"),
        ("Run id", results.run_id),
        ("Weights SHA-256", results.weights_sha256),
        ("Total time", f"{results.seconds or 0.0:.1f} s"),
        ("advlab version", results.advlab_version),
    ]
    card = scorecard_section([scorecard(results)]) if results.rows else ""
    write_run_page(path, title, fields, [defense_section(results)], results.config, [card])
    return path


# -- tables -------------------------------------------------------------------------------


def _overview_table(results: DefenseComparison) -> str:
    rows = results.rows
    detectors = any(r.false_positive_rate is not None for r in rows)
    head = ["Defense", "Kind", "Clean accuracy", "Retention"]
    head += ["False positives"] if detectors else []
    head += ["Inference / image", "Slowdown", "Training time", "Adaptive attacks", "Checks"]
    body = []
    for row in rows:
        cells = [
            (row.label, True),
            (row.kind, True),
            (format_percent(row.clean_accuracy), False),
            (format_percent(row.clean_retention), False),
        ]
        if detectors:
            cells.append((format_percent(row.false_positive_rate), False))
        cells += [
            (_ms(row.inference_seconds_per_image), False),
            (_times(row.inference_slowdown), False),
            (_training(row), False),
            (", ".join(row.adaptive_attacks) or "none", True),
            (row.checks_summary or "not run", True),
        ]
        tds = "".join(
            f'<td class="text">{esc(text)}</td>' if is_text else f"<td>{esc(text)}</td>"
            for text, is_text in cells
        )
        body.append(f"<tr>{tds}</tr>")
    header = "".join(f'<th class="text">{esc(h)}</th>' for h in head)
    return f'<div class="scroll"><table><tr>{header}</tr>{"".join(body)}</table></div>'


def _eps_table(results: DefenseComparison, eps: float) -> str:
    columns = results.attack_keys
    rows = results.rows
    detectors = any(r.kind == "detector" for r in rows)
    sub = ["plain", "adaptive", "ASR cut"] + (["detected"] if detectors else [])
    top = "".join(f'<th colspan="{len(sub)}">{esc(name)}</th>' for _, name in columns)
    second = "".join(f"<th>{esc(s)}</th>" for _ in columns for s in sub)
    body = []
    for row in rows:
        cells = [f'<td class="text">{esc(row.label)}</td>']
        for key, _ in columns:
            cell = cell_of(row, key, eps)
            if cell is None:
                cells += ["<td>n/a</td>"] * len(sub)
                continue
            flagged = cell.gap_flagged
            adaptive = format_percent(cell.adaptive_robust_accuracy, 1)
            worst = cell.worst_attack
            if worst and worst != "standard":
                adaptive += f" ({worst})"
            cells.append(f"<td>{esc(format_percent(cell.robust_accuracy, 1))}</td>")
            cells.append(f"<td{_FLAG if flagged else ''}>{esc(adaptive)}{' !' if flagged else ''}"
                         "</td>")  # fmt: skip
            undefended = row.kind == "undefended"
            reduction = "-" if undefended else format_percent(cell.asr_reduction, 1)
            cells.append(f"<td>{esc(reduction)}</td>")
            if detectors:
                detected = cell.detection_rate
                aware = cell.adaptive_detection_rate
                text = "-" if detected is None else format_percent(detected, 1)
                if aware is not None:
                    text += f" / {format_percent(aware, 1)}"
                cells.append(f"<td>{esc(text)}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    return (
        f'<div class="scroll"><table><tr><th class="text" rowspan="2">Defense</th>{top}</tr>'
        f"<tr>{second}</tr>{''.join(body)}</table></div>"
    )


def _checks_table(results: DefenseComparison) -> str:
    rows = [r for r in results.rows if r.checks is not None]
    if not rows:
        return '<p class="muted">The gradient-masking checks were not run.</p>'
    head = "".join(f"<th>{esc(name)}</th>" for name in CHECK_NAMES)
    body = []
    for row in rows:
        by_name = {c.name: c for c in row.checks or []}
        cells = [f'<td class="text">{esc(row.label)}</td>']
        for name in CHECK_NAMES:
            found = by_name.get(name)
            if found is None:
                cells.append("<td>n/a</td>")
                continue
            numbers = ", ".join(f"{k} {_number(v)}" for k, v in found.numbers.items())
            style = _PASS if found.passed else _WARN
            cells.append(
                f'<td class="wrap"{style} title="{esc(found.explanation)}">'
                f"<b>{esc(found.status)}</b><br>{esc(numbers)}</td>"
            )
        body.append(f"<tr>{''.join(cells)}</tr>")
    explain = (
        "iterative: one-step FGSM must not beat PGD. white-box: black-box Square must not "
        "beat PGD. eps-sweep: robust accuracy under PGD without random start must fall to "
        "about 0 as eps doubles. unbounded: PGD with eps covering the whole image box must "
        "fool every image. more-effort: twice the steps and 2 restarts must add little. "
        "Each runs the plain attacks; a warn means the plain numbers of that row are not "
        "to be trusted (Athalye, Carlini and Wagner 2018; Carlini et al. 2019)."
    )
    return (
        '<h3>Gradient-masking checks</h3><div class="scroll"><table>'
        f'<tr><th class="text">Defense</th>{head}</tr>{"".join(body)}</table></div>'
        f'<p class="muted">{esc(explain)}</p>'
    )


# -- helpers ------------------------------------------------------------------------------


def _gap(results: DefenseComparison) -> str:
    value = results.config.get("gap_threshold")
    return format_percent(value, 0) if isinstance(value, (int, float)) else "the threshold"


def _number(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    return f"{value:.3g}"


def _ms(seconds: Any) -> str:
    return "n/a" if not isinstance(seconds, (int, float)) else f"{1000 * seconds:.3f} ms"


def _times(value: Any) -> str:
    return "n/a" if not isinstance(value, (int, float)) else f"{value:.2f}x"


def _training(row: RowResult) -> str:
    seconds = row.training_seconds
    if row.kind in ("preprocess", "detector"):
        return "none (no training)"
    return "unknown" if not isinstance(seconds, (int, float)) else f"{seconds:.0f} s"


def _short(name: str, width: int = 22) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"
