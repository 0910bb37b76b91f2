"""Matplotlib figures of an evaluation: robustness curve, example grids, per-class bars.

Figures are built as bare :class:`matplotlib.figure.Figure` objects, never through
``pyplot``: nothing is registered globally, no display is needed, nothing leaks when a
figure is dropped, and rendering goes through Agg. They are small (dpi 100) because
they end up embedded in a single HTML file.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from advlab.errors import check
from advlab.reports.example import Example, as_example
from advlab.reports.tables import (
    attack_name,
    format_eps,
    per_class_values,
    sole_norm,
    worst_case_points,
)
from advlab.results import AttackEvaluation, Evaluation

DPI = 100
FIGURE_SUFFIXES = (".png", ".pdf", ".svg")
_WRONG = "#c0392b"
_RIGHT = "#1e8449"
_FONT = 7


def _figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) else None


def series_label(entry: AttackEvaluation) -> str:
    """``"pgd (linf)"``, with ``", targeted"`` for targeted runs."""
    label = f"{attack_name(entry)} ({entry.norm}"
    return label + (", targeted)" if entry.targeted else ")")


# -- robustness curve ---------------------------------------------------------------------


def robustness_curve(results: Evaluation | Mapping[str, Any]) -> Figure:
    """Robust accuracy against eps: one line per attack and norm, the worst case thick.

    Every line starts at the clean accuracy at eps 0. Attacks under different norms get
    one panel per norm, since their epsilons are not on the same scale.
    """
    results = Evaluation.coerce(results)
    entries = results.results
    norms = results.norms or ["linf"]
    fig = _figure(4.2 * len(norms) + 0.6, 3.2)
    axes = fig.subplots(1, len(norms), sharey=True, squeeze=False)[0]
    clean = _number(results.clean_accuracy)
    for ax, norm in zip(axes, norms, strict=True):
        _curve_panel(ax, results, [e for e in entries if e.norm == norm], norm, clean)
    axes[0].set_ylabel("robust accuracy")
    if not entries:
        axes[0].text(
            0.5, 0.5, "no attack results", ha="center", va="center", transform=axes[0].transAxes
        )
    fig.suptitle(f"{results.model or '?'} on {results.dataset or '?'}", fontsize=9)
    return fig


def _curve_panel(
    ax: Axes,
    results: Evaluation,
    entries: list[AttackEvaluation],
    norm: str,
    clean: float | None,
) -> None:
    lines: dict[str, list[tuple[float, float]]] = {}
    for entry in entries:
        eps, accuracy = _number(entry.eps), _number(entry.robust_accuracy)
        if eps is not None and accuracy is not None:
            lines.setdefault(series_label(entry), []).append((eps, accuracy))
    for label, points in lines.items():
        _plot(ax, points, clean, label=label, marker="o", markersize=3, linewidth=1.2)
    worst = _worst_points(results, norm)
    if worst:
        _plot(ax, worst, clean, label="worst case", color="black", linewidth=3, alpha=0.8)
    if clean is not None:
        ax.axhline(clean, color="grey", linestyle=":", linewidth=1, label="clean")
    ax.set_xlabel(f"eps ({norm})")
    ax.set_ylim(-0.02, 1.02)
    ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0))
    ax.grid(alpha=0.3)
    if lines or worst:
        ax.legend(fontsize=_FONT, loc="best")


def _plot(ax: Axes, points: list[tuple[float, float]], clean: float | None, **style: Any) -> None:
    points = sorted(points)
    if clean is not None and points[0][0] > 0:
        points = [(0.0, clean), *points]
    ax.plot([p[0] for p in points], [p[1] for p in points], **style)


def _worst_points(results: Evaluation, norm: str) -> list[tuple[float, float]]:
    """The worst-case points that belong to the panel of ``norm``.

    ``worst_case`` is keyed by eps only; with several norms an eps goes to the one norm
    that ran it, and is left out when more than one did (it would be ambiguous).
    """
    points = [(eps, _number(acc)) for eps, acc in worst_case_points(results)]
    known = [(eps, acc) for eps, acc in points if acc is not None]
    if sole_norm(results) is not None or not results.results:
        return known
    ran: dict[float, set[str]] = {}
    for entry in results.results:
        eps = _number(entry.eps)
        if eps is not None:
            ran.setdefault(eps, set()).add(entry.norm)
    return [(eps, acc) for eps, acc in known if ran.get(eps) == {norm}]


# -- example grid -------------------------------------------------------------------------


def example_grid(
    example: Example | Mapping[str, Any],
    class_names: Sequence[str] | None = None,
    *,
    amplify: float | None = None,
    max_images: int = 8,
) -> Figure:
    """Clean, adversarial and amplified-perturbation rows, one column per image.

    Titles give the true label, the prediction and its confidence (red when wrong).
    The perturbation is shown as ``0.5 + amplify * (adversarial - clean)``; by default
    ``amplify`` stretches the largest change shown to the full grey range.
    """
    ex = as_example(example)
    count = min(len(ex), max_images)
    check(count > 0, f"example '{ex.attack}' holds no images: keep at least one per attack")
    check(amplify is None or amplify > 0, f"amplify must be > 0, got {amplify}")
    names = list(class_names or [])
    clean, adversarial = ex.clean[:count], ex.adversarial[:count]
    delta = adversarial - clean
    largest = float(np.abs(delta).max())
    factor = float(amplify) if amplify is not None else (0.5 / largest if largest > 0 else 1.0)
    shown = np.clip(0.5 + factor * delta, 0.0, 1.0)

    fig = _figure(1.25 * count + 0.5, 4.4)
    axes = fig.subplots(3, count, squeeze=False)
    for i in range(count):
        label = int(ex.labels[i])
        clean_pred, adv_pred = int(ex.clean_pred[i]), int(ex.adv_pred[i])
        _image(axes[0, i], clean[i])
        axes[0, i].set_title(
            f"true {_name(names, label)}\npred {_name(names, clean_pred)} "
            f"{_percent(ex.clean_conf[i])}",
            fontsize=_FONT,
            color=_RIGHT if clean_pred == label else _WRONG,
        )
        _image(axes[1, i], adversarial[i])
        axes[1, i].set_title(
            f"pred {_name(names, adv_pred)} {_percent(ex.adv_conf[i])}",
            fontsize=_FONT,
            color=_RIGHT if adv_pred == label else _WRONG,
        )
        _image(axes[2, i], shown[i])
        size = np.abs(delta[i]).max() if ex.norm == "linf" else np.sqrt((delta[i] ** 2).sum())
        axes[2, i].set_title(f"{ex.norm} {size:.3g}", fontsize=_FONT)
    axes[0, 0].set_ylabel("clean", fontsize=_FONT + 1)
    axes[1, 0].set_ylabel("adversarial", fontsize=_FONT + 1)
    axes[2, 0].set_ylabel(f"perturbation x{factor:.3g}", fontsize=_FONT + 1)
    fig.suptitle(f"{ex.attack} ({ex.norm}, eps={format_eps(ex.eps, ex.norm)})", fontsize=9)
    return fig


def _image(ax: Axes, image: np.ndarray) -> None:
    if image.shape[0] == 1:
        ax.imshow(image[0], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    else:
        ax.imshow(np.clip(image.transpose(1, 2, 0), 0.0, 1.0), interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def _name(names: Sequence[str], index: int, width: int = 12) -> str:
    name = str(names[index]) if 0 <= index < len(names) else str(index)
    return name if len(name) <= width else name[: width - 1] + "…"


def _percent(value: Any) -> str:
    number = _number(value)
    return "" if number is None else f"{100 * number:.0f}%"


# -- per-class bars -----------------------------------------------------------------------


def per_class_series(results: Evaluation) -> list[tuple[str, list[Any]]]:
    """Clean accuracy per class, then per attack and norm its run at the largest eps."""
    names = results.class_names
    series: list[tuple[str, list[Any]]] = []
    clean = per_class_values(results.per_class_clean_accuracy, names)
    if clean:
        series.append(("clean", clean))
    largest: dict[str, AttackEvaluation] = {}
    for entry in results.results:
        eps = _number(entry.eps)
        if not entry.per_class_robust_accuracy or eps is None:
            continue
        key = series_label(entry)
        if key not in largest or eps > (_number(largest[key].eps) or 0.0):
            largest[key] = entry
    for key, entry in largest.items():
        values = per_class_values(entry.per_class_robust_accuracy, names)
        series.append((f"{key} eps={format_eps(_number(entry.eps), entry.norm)}", values))
    return series


def per_class_bars(results: Evaluation | Mapping[str, Any], *, max_classes: int = 30) -> Figure:
    """Grouped bars of accuracy per class: clean, and each attack at its largest eps.

    With more than ``max_classes`` classes only those with the lowest accuracy under
    the last attack are shown (the title says so).
    """
    results = Evaluation.coerce(results)
    series = per_class_series(results)
    count = max((len(values) for _, values in series), default=0)
    names = list(results.class_names)
    names += [str(i) for i in range(len(names), count)]
    classes = list(range(count))
    title = "accuracy per class"
    if count > max_classes:
        last = series[-1][1]
        classes = sorted(classes, key=lambda c: _sort_key(last, c))
        classes = sorted(classes[:max_classes])
        title += f" (the {max_classes} classes with the lowest accuracy)"
    fig = _figure(min(12.0, 1.6 + 0.32 * len(classes) * max(1, len(series)) ** 0.5), 3.0)
    ax = fig.subplots()
    width = 0.8 / max(1, len(series))
    positions = np.arange(len(classes))
    for k, (label, values) in enumerate(series):
        heights = [_number(values[c]) if c < len(values) else None for c in classes]
        ax.bar(
            positions + (k - (len(series) - 1) / 2) * width,
            [np.nan if h is None else h for h in heights],
            width,
            label=label,
        )
    ax.set_xticks(positions)
    long_names = any(len(names[c]) > 3 for c in classes)
    ax.set_xticklabels(
        [_name(names, c, 14) for c in classes],
        fontsize=_FONT,
        rotation=45 if long_names else 0,
        ha="right" if long_names else "center",
    )
    ax.set_ylim(0, 1.02)
    ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0))
    ax.set_title(title, fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    if series:
        # Beside the axes: inside, it would hide the bars of the last classes.
        ax.legend(fontsize=_FONT, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    else:
        ax.text(0.5, 0.5, "no per-class results", ha="center", va="center", transform=ax.transAxes)
    return fig


def _sort_key(values: Sequence[Any], index: int) -> float:
    # Classes without a value sort last, so they never crowd out measured ones.
    number = _number(values[index]) if index < len(values) else None
    return 2.0 if number is None else number


# -- output -------------------------------------------------------------------------------


def figure_to_png_bytes(fig: Figure, dpi: int = DPI) -> bytes:
    """The figure as PNG bytes (no 'Software' metadata, so the bytes carry no URL)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    return buffer.getvalue()


def save_figure(fig: Figure, path: str | Path, dpi: int = DPI) -> Path:
    """Write the figure as PNG, PDF or SVG, chosen by the file suffix; return the path."""
    path = Path(path).expanduser()
    suffix = path.suffix.lower()
    check(
        suffix in FIGURE_SUFFIXES,
        f"cannot save a figure as '{path.name}': use a {', '.join(FIGURE_SUFFIXES)} file name",
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {"Software": None} if suffix == ".png" else None
    fig.savefig(path, format=suffix[1:], dpi=dpi, metadata=metadata)
    return path
