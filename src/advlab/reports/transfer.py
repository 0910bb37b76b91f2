"""Figures and HTML of a transfer matrix (the content of transfer.json).

A heatmap per (attack, eps) with sources as rows and targets as columns, and an HTML
section that :func:`write_transfer_report` turns into a self-contained page. Like the
rest of ``advlab.reports`` it reads plain results only, and escapes every string in
them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from advlab.errors import check
from advlab.reports.figures import DPI, save_figure
from advlab.reports.tables import format_eps, format_percent
from advlab.reports.template import esc, img, json_details, report_path, run_section, write_page
from advlab.results import TransferCell, TransferMatrix

_FONT = 8
Results = TransferMatrix | Mapping[str, Any]


def transfer_runs(results: Results) -> list[tuple[str, str, float]]:
    """The (attack key, norm, eps) of every matrix, in the order they were run."""
    return TransferMatrix.coerce(results).runs()


def transfer_grid(
    results: Results, key: str, eps: float
) -> tuple[list[str], list[str], list[list[TransferCell | None]]]:
    """Sources, targets and the cells of one (attack key, eps) as rows x columns."""
    results = TransferMatrix.coerce(results)
    found = {(c.source, c.target): c for c in results.cells if c.key == key and c.eps == eps}
    grid = [[found.get((s, t)) for t in results.targets] for s in results.sources]
    return list(results.sources), list(results.targets), grid


def transfer_heatmap(results: Results, key: str, eps: float) -> Figure:
    """Attack success rate from each source (rows) to each target (columns).

    Each cell reads the rate and, below it, the number of images both models classify
    correctly that it is counted over; the diagonal (white box) is framed.
    """
    results = TransferMatrix.coerce(results)
    sources, targets, grid = transfer_grid(results, key, eps)
    check(bool(sources and targets), "the transfer results hold no sources or targets")
    rates = np.array([[_rate(cell) for cell in row] for row in grid], dtype=np.float64).reshape(
        len(sources), len(targets)
    )
    fig = Figure(
        figsize=(1.6 + 1.15 * len(targets), 1.3 + 0.75 * len(sources)),
        dpi=DPI,
        layout="constrained",
    )
    ax = fig.subplots()
    image = ax.imshow(np.ma.masked_invalid(rates), cmap="Reds", vmin=0.0, vmax=1.0)
    for i, row in enumerate(grid):
        for j, cell in enumerate(row):
            rate = rates[i, j]
            text = "n/a" if cell is None or np.isnan(rate) else f"{100 * rate:.1f}%"
            if cell is not None:
                text += f"\nn={cell.n_both_correct}"
            ax.text(j, i, text, ha="center", va="center", fontsize=_FONT,
                    color="white" if rate > 0.6 else "black")  # fmt: skip
            if sources[i] == targets[j]:
                ax.add_patch(_frame(j, i))
    ax.set_xticks(range(len(targets)))
    ax.set_xticklabels([_short(name) for name in targets], fontsize=_FONT, rotation=20, ha="right")
    ax.set_yticks(range(len(sources)))
    ax.set_yticklabels([_short(name) for name in sources], fontsize=_FONT)
    ax.set_xlabel("target (evaluated on)", fontsize=_FONT + 1)
    ax.set_ylabel("source (crafted on)", fontsize=_FONT + 1)
    colorbar = fig.colorbar(image, ax=ax, fraction=0.08)
    colorbar.ax.tick_params(labelsize=_FONT)
    norm = _norm_of(results, key)
    ax.set_title(f"{key} eps={format_eps(eps, norm)}: attack success rate", fontsize=9)
    return fig


def save_transfer_heatmaps(results: Results, folder: str | Path) -> list[Path]:
    """One PNG heatmap per (attack, eps) in ``folder``; returns the paths written."""
    results = TransferMatrix.coerce(results)
    paths = []
    for key, norm, eps in results.runs():
        name = f"transfer-{_slug(key)}-eps{_slug(format_eps(eps, norm))}.png"
        paths.append(save_figure(transfer_heatmap(results, key, eps), Path(folder) / name))
    return paths


def transfer_section(results: Results) -> str:
    """An HTML ``<section id="transfer">``: models, then per (attack, eps) a heatmap and a
    table of success rates and the targets' accuracy under the transferred examples."""
    results = TransferMatrix.coerce(results)
    parts = ['<section id="transfer"><h2>Transferability</h2>', _models_table(results)]
    runs = results.runs()
    if not runs:
        parts.append('<p class="muted">No transfer results were recorded.</p>')
    for key, norm, eps in runs:
        title = f"{key} eps={format_eps(eps, norm)}"
        parts.append(f"<h3>{esc(title)}</h3>")
        parts.append(f"<figure>{img(transfer_heatmap(results, key, eps), title)}</figure>")
        parts.append(_matrix_table(results, key, eps))
    note = (
        "Rows: the model the examples were crafted on; columns: the model they were shown "
        "to. Success rate: share of the images that both models classify correctly whose "
        "crafted example the target gets wrong (n = that count); the diagonal is the "
        "white-box rate. Accuracy: the target's accuracy on all transferred examples. "
        "Each source's examples are crafted once and shown to every target."
    )
    parts.append(f'<p class="muted">{esc(note)}</p></section>')
    return "".join(parts)


def write_transfer_report(results: Results, path: str | Path, *, title: str | None = None) -> Path:
    """A self-contained HTML page of ``results`` (a :class:`~advlab.results.TransferMatrix`
    or the transfer.json content) at ``path``."""
    results = TransferMatrix.coerce(results)
    path = report_path(path, "transfer.html")
    title = title or f"advlab transfer report on {results.dataset or '?'}"
    fields = [
        ("Data set", f"{results.dataset} ({results.split})"),
        ("Images (n)", results.n),
        ("Seed", results.seed),
        ("Batch size", results.batch_size),
        ("Device", results.device),
        ("Complete", "yes" if results.complete else "no (partial results)"),
        ("Total time", f"{results.seconds or 0.0:.1f} s"),
        ("advlab version", results.advlab_version),
    ]
    attack_rows = "".join(
        f'<tr><td class="text">{esc(a["key"])}</td>'
        f'<td class="wrap">{esc(json.dumps(a["config"], default=str))}</td></tr>'
        for a in results.attacks
    )
    write_page(path, title, [
        run_section(fields),
        transfer_section(results),
        '<section id="settings"><h2>Settings</h2><div class="scroll"><table>'
        '<tr><th class="text">Attack</th><th class="text">Configuration per eps</th></tr>'
        f"{attack_rows}</table></div>{json_details(results.config, 'Run configuration as JSON')}"
        "</section>",
    ])  # fmt: skip
    return path


# -- helpers ------------------------------------------------------------------------------


def _models_table(results: TransferMatrix) -> str:
    roles: dict[str, list[str]] = {name: [] for name in results.models}
    for role, names in (("source", results.sources), ("target", results.targets)):
        for name in names:
            roles.setdefault(name, []).append(role)
    rows = "".join(
        f'<tr><td class="text">{esc(name)}</td><td class="text">{esc(", ".join(roles[name]))}'
        f"</td><td>{esc(format_percent(info['clean_accuracy']))}</td>"
        f'<td class="wrap">{esc(info["weights_sha256"])}</td></tr>'
        for name, info in results.models.items()
    )
    return (
        '<div class="scroll"><table><tr><th class="text">Model</th><th class="text">Role</th>'
        f'<th>Clean accuracy</th><th class="text">Weights SHA-256</th></tr>{rows}</table></div>'
    )


def _matrix_table(results: TransferMatrix, key: str, eps: float) -> str:
    sources, targets, grid = transfer_grid(results, key, eps)
    head = '<th class="text">source \\ target</th>' + "".join(
        f"<th>{esc(name)}</th>" for name in targets
    )
    rows = []
    for source, row in zip(sources, grid, strict=True):
        cells = "".join(_matrix_cell(cell) for cell in row)
        rows.append(f'<tr><td class="text">{esc(source)}</td>{cells}</tr>')
    return f'<div class="scroll"><table><tr>{head}</tr>{"".join(rows)}</table></div>'


def _matrix_cell(cell: TransferCell | None) -> str:
    if cell is None:
        return "<td>n/a</td>"
    text = (
        f"{format_percent(cell.success_rate, 1)} (n={cell.n_both_correct}), "
        f"acc. {format_percent(cell.target_adversarial_accuracy, 1)}"
    )
    style = ' style="font-weight:600"' if cell.white_box else ""
    return f"<td{style}>{esc(text)}</td>"


def _rate(cell: TransferCell | None) -> float:
    value = None if cell is None else cell.success_rate
    return float(value) if isinstance(value, (int, float)) else float("nan")


def _frame(x: int, y: int) -> Any:
    from matplotlib.patches import Rectangle

    return Rectangle((x - 0.5, y - 0.5), 1, 1, fill=False, edgecolor="black", linewidth=1.5)


def _norm_of(results: TransferMatrix, key: str) -> str:
    return next((cell.norm for cell in results.cells if cell.key == key), "")


def _short(name: str, width: int = 22) -> str:
    return name if len(name) <= width else "…" + name[-(width - 1) :]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", text).strip("_") or "run"
