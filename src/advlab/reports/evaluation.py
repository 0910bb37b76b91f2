"""The self-contained HTML report of one evaluation run.

One file, nothing outside it: figures are embedded as base64 PNG data URIs and the
stylesheet is inline. Every string that comes from the results (model names, class
names, config values, attack names) is treated as untrusted and escaped, since a
results.json can come from anyone.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from advlab.reports.blackbox import blackbox_entries, blackbox_section
from advlab.reports.defense import defense_section
from advlab.reports.example import Example
from advlab.reports.figures import (
    example_grid,
    per_class_bars,
    per_class_series,
    robustness_curve,
    series_label,
)
from advlab.reports.html_parts import Picker, scorecard_section
from advlab.reports.scorecard import scorecard
from advlab.reports.suite import suite_section
from advlab.reports.tables import (
    COLUMNS,
    format_eps,
    format_number,
    format_percent,
    per_class_values,
    sole_norm,
    table_rows,
    worst_case_points,
)
from advlab.reports.template import (
    cards,
    esc,
    img,
    json_details,
    meta_table,
    now,
    report_path,
    run_section,
    write_page,
)
from advlab.results import AttackEvaluation, Evaluation

logger = logging.getLogger(__name__)

SECTIONS = (
    ("scorecard", "Scorecard"),
    ("run", "Run"),
    ("settings", "Settings"),
    ("results", "Results"),
    ("curve", "Robustness curve"),
    ("examples", "Examples"),
    ("per-class", "Per class"),
)


def write_html_report(
    results: Evaluation | Mapping[str, Any],
    examples: Mapping[Any, Example | Mapping[str, Any]] | None,
    path: str | Path,
    *,
    title: str | None = None,
) -> Path:
    """Write the report of ``results`` (an :class:`~advlab.results.Evaluation` or the
    results.json content) and ``examples`` to ``path``.

    ``examples`` maps a key such as ``"pgd/linf/eps=0.1"`` or ``("pgd-linf", 0.1)`` to an
    :class:`Example` (or a mapping with its fields); it may be empty, and None takes the
    examples an :class:`~advlab.results.Evaluation` kept. Per-class accuracies may be
    lists in class order or dicts keyed by class name. Returns the path written.
    """
    results = Evaluation.coerce(results)
    path = report_path(path)
    title = title or f"advlab report: {results.model or '?'} on {results.dataset or '?'}"
    comparison = results.defense_comparison
    text = write_page(
        path,
        title,
        [
            _nav(results),
            scorecard_section([scorecard(results)]),
            _run_section(results),
            _settings_section(results),
            _results_section(results),
            suite_section(results),
            "" if comparison is None else defense_section(comparison),
            blackbox_section(results),
            _curve_section(results),
            _examples_section(
                results.examples if examples is None else examples, results.class_names
            ),
            _per_class_section(results),
        ],
    )
    logger.info("wrote the HTML report %s (%d kB)", path, len(text) // 1024)
    return path


# -- sections -----------------------------------------------------------------------------


def _nav(results: Evaluation) -> str:
    sections = list(SECTIONS)
    if results.suite:
        sections.insert(3, ("suite", "Suite"))
    if blackbox_entries(results):
        sections.insert(3, ("blackbox", "Black-box"))
    links = "".join(f'<a href="#{key}">{esc(name)}</a>' for key, name in sections)
    return f"<nav>{links}</nav>"


def _run_section(results: Evaluation) -> str:
    fields = [
        ("Model", results.model or "n/a"),
        ("Data set", f"{results.dataset} ({results.split})" if results.split else results.dataset),
        ("Images (n)", results.n),
        ("Seed", results.seed),
        ("Device", results.device or "n/a"),
        ("Date", now()),
        ("advlab version", results.advlab_version or "n/a"),
        ("Run id", results.run_id or "n/a"),
        ("Weights SHA-256", results.weights_sha256 or "n/a"),
        ("Total time", _seconds(results.seconds)),
    ]
    return run_section(fields, before=_cards(results))


def _cards(results: Evaluation) -> str:
    items = [("clean accuracy", format_percent(results.clean_accuracy))]
    worst = worst_case_points(results)
    if worst:
        eps, accuracy = worst[-1]
        label = f"worst-case robust accuracy, eps {format_eps(eps, sole_norm(results) or '')}"
        items.append((label, format_percent(accuracy)))
    items.append(("attack runs", str(len(results.results))))
    return cards(items)


def _settings_section(results: Evaluation) -> str:
    config = results.config
    parts = ['<section id="settings"><h2>Settings</h2>']
    if config:
        parts.append(meta_table(_flatten(config)))
    else:
        parts.append('<p class="muted">No run configuration was recorded.</p>')
    attack_rows = [
        (f"{series_label(e)} eps={_eps_entry(e)}", _compact(e.config))
        for e in results.results
        if e.config
    ]
    if attack_rows:
        parts.append("<h3>Attack settings</h3>")
        rows = "".join(
            f'<tr><td class="text">{esc(label)}</td><td class="wrap">{esc(text)}</td></tr>'
            for label, text in attack_rows
        )
        parts.append(
            f'<div class="scroll"><table><tr><th class="text">Run</th>'
            f'<th class="text">Settings</th></tr>{rows}</table></div>'
        )
    if config:
        parts.append(json_details(config))
    parts.append("</section>")
    return "".join(parts)


def _results_section(results: Evaluation) -> str:
    head = "".join(f"<th{_align(c.key)}>{esc(c.header)}</th>" for c in COLUMNS)
    rows = [(row, row.cells()) for row in table_rows(results)]
    keys = [
        (texts[0] if row.kind == "attack" else "*", "*" if row.kind == "clean" else texts[2])
        for row, texts in rows
    ]
    pick = Picker("results", [a for a, _ in keys if a != "*"], [e for _, e in keys if e != "*"])
    body = []
    for (row, texts), (attack, eps) in zip(rows, keys, strict=True):
        cells = "".join(
            f"<td{_align(c.key)}>{esc(text)}</td>" for c, text in zip(COLUMNS, texts, strict=True)
        )
        body.append(f'<tr class="{row.kind}"{pick.attrs(attack, eps)}>{cells}</tr>')
    note = (
        "Robust accuracy: share of all images still classified correctly under attack. "
        "ASR (attack success rate): share of the correctly classified images the attack "
        "fooled. Distances and confidence are over the successful adversarial examples. "
        "The worst case counts an image as broken when any attack broke it at that eps."
    )
    return (
        '<section id="results"><h2>Results</h2>'
        + pick.wrap(f'<div class="scroll"><table><tr>{head}</tr>{"".join(body)}</table></div>')
        + f'<p class="muted">{esc(note)}</p></section>'
    )


def _curve_section(results: Evaluation) -> str:
    image = img(robustness_curve(results), "robust accuracy against eps")
    caption = "Robust accuracy against eps; the thick black line is the per-image worst case."
    return (
        f'<section id="curve"><h2>Robustness curve</h2><figure>{image}'
        f"<figcaption>{esc(caption)}</figcaption></figure></section>"
    )


def _examples_section(
    examples: Mapping[Any, Example | Mapping[str, Any]], class_names: Iterable[Any]
) -> str:
    names = [str(name) for name in class_names]
    parts = ['<section id="examples"><h2>Examples</h2>']
    if not examples:
        parts.append('<p class="muted">No examples were kept for this run.</p>')
    pairs = [_example_pair(key) for key in examples]
    pick = Picker("examples", [a for a, _ in pairs], [e for _, e in pairs if e != "*"])
    items = []
    for (key, example), (attack, eps) in zip(examples.items(), pairs, strict=True):
        figure = example_grid(example, names)
        name = _example_name(key)
        items.append(
            f"<div{pick.attrs(attack, eps)}><h3>{esc(name)}</h3>"
            f"<figure>{img(figure, f'examples of {name}')}</figure></div>"
        )
    if items:
        parts.append(pick.wrap("".join(items)))
    parts.append(
        '<p class="muted">Rows: clean image (true label, prediction, confidence), '
        "adversarial image (prediction, confidence; red when wrong), perturbation amplified "
        "around mid-grey.</p></section>"
    )
    return "".join(parts)


def _per_class_section(results: Evaluation) -> str:
    series = per_class_series(results)
    parts = ['<section id="per-class"><h2>Per class</h2>']
    if not series:
        parts.append('<p class="muted">No per-class accuracies were recorded.</p></section>')
        return "".join(parts)
    parts.append(f"<figure>{img(per_class_bars(results), 'accuracy per class')}</figure>")
    # The table holds every run, not only the largest eps shown in the figure.
    names = results.class_names
    columns = [("clean", per_class_values(results.per_class_clean_accuracy, names))]
    columns += [
        (
            f"{series_label(e)} eps={_eps_entry(e)}",
            per_class_values(e.per_class_robust_accuracy, names),
        )
        for e in results.results
    ]
    count = max(len(values) for _, values in columns)
    head = '<th class="text">Class</th>' + "".join(f"<th>{esc(label)}</th>" for label, _ in columns)
    rows = []
    for index in range(count):
        name = names[index] if index < len(names) else str(index)
        cells = "".join(
            f"<td>{esc(format_percent(values[index] if index < len(values) else None))}</td>"
            for _, values in columns
        )
        rows.append(f'<tr><td class="text">{esc(name)}</td>{cells}</tr>')
    parts.append(f'<div class="scroll"><table><tr>{head}</tr>{"".join(rows)}</table></div>')
    parts.append("</section>")
    return "".join(parts)


# -- helpers ------------------------------------------------------------------------------


def _align(key: str) -> str:
    return ' class="text"' if key in ("attack", "norm", "targeted") else ""


def _flatten(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    """Nested config as ``("attacks[0].name", "pgd")`` pairs, in the order given."""
    if isinstance(value, Mapping) and value:
        pairs: list[tuple[str, str]] = []
        for key, item in value.items():
            pairs += _flatten(item, f"{prefix}.{key}" if prefix else str(key))
        return pairs
    if isinstance(value, (list, tuple)) and any(isinstance(v, Mapping) for v in value):
        pairs = []
        for index, item in enumerate(value):
            pairs += _flatten(item, f"{prefix}[{index}]")
        return pairs
    return [(prefix, value if isinstance(value, str) else json.dumps(value, default=str))]


def _compact(config: Mapping[str, Any]) -> str:
    return ", ".join(
        f"{key}={value if isinstance(value, str) else json.dumps(value, default=str)}"
        for key, value in config.items()
    )


def _example_name(key: Any) -> str:
    # The evaluation keys its examples by (attack key, eps); other callers by a string.
    if isinstance(key, tuple) and len(key) == 2 and isinstance(key[1], (int, float)):
        return f"{key[0]} eps={format_eps(key[1], 'linf' if 'linf' in str(key[0]) else '')}"
    return str(key)


def _example_pair(key: Any) -> tuple[str, str]:
    """(attack, eps) of an example key, for the picker; ``*`` where the key has no eps."""
    if isinstance(key, tuple) and len(key) == 2 and isinstance(key[1], (int, float)):
        return str(key[0]), format_eps(key[1], "linf" if "linf" in str(key[0]) else "")
    return str(key), "*"


def _eps_entry(entry: AttackEvaluation) -> str:
    return format_eps(entry.eps, entry.norm)


def _seconds(value: Any) -> str:
    text = format_number(value, ".1f")
    return text if text == "n/a" else f"{text} s"
