"""``report.html`` of a training run: clean and robust accuracy per epoch, in one file.

Rewritten after every epoch, so an interrupted or still-running run always has a
current report beside its checkpoints.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from advlab.reports.template import esc, img, write_page
from advlab.results import TrainingEpoch, history_from_list

if TYPE_CHECKING:  # only its attributes are read: no import of training at run time
    from advlab.training.config import TrainConfig

REPORT_FILE = "report.html"

_COLUMNS = (
    ("epoch", "epoch", "{:.0f}"),
    ("eps", "eps", "{:.4g}"),
    ("lr", "lr", "{:.3g}"),
    ("train_loss", "train loss", "{:.4f}"),
    ("train_accuracy", "train acc", "{:.2%}"),
    ("val_accuracy", "clean val acc", "{:.2%}"),
    ("val_robust_accuracy", "robust val acc", "{:.2%}"),
    ("seconds", "seconds", "{:.0f}"),
)


def accuracy_figure(history: Sequence[TrainingEpoch]) -> Figure:
    """Train, clean validation and robust validation accuracy against the epoch."""
    fig = Figure(figsize=(6.0, 3.2), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    epochs = [record["epoch"] for record in history]
    ax.plot(epochs, [r["train_accuracy"] for r in history], "o-", label="train (on its inputs)")
    ax.plot(epochs, [r["val_accuracy"] for r in history], "s-", label="clean validation")
    robust = [(r["epoch"], r["val_robust_accuracy"]) for r in history if "val_robust_accuracy" in r]
    if robust:
        ax.plot(*zip(*robust, strict=True), "^-", label="robust validation (PGD)")
    for record in history:
        if record.get("catastrophic_overfitting"):
            ax.axvline(record["epoch"], color="#c0392b", linestyle="--", linewidth=1)
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy")
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def write_training_report(
    out_dir: Path,
    config: TrainConfig,
    history: Sequence[TrainingEpoch | Mapping[str, Any]],
    stopped: str | None,
) -> Path:
    """Write ``out_dir/report.html`` for a training run with ``history`` (history.json's
    records) so far; ``stopped`` says why it ended early, if it did."""
    records = history_from_list(history)
    columns = [c for c in _COLUMNS if any(c[0] in record for record in records)]
    head = "".join(f"<th>{esc(title)}</th>" for _, title, _ in columns)
    rows = []
    for record in records:
        style = ' class="worst"' if record.get("catastrophic_overfitting") else ""
        cells = "".join(
            f"<td>{esc(fmt.format(record[key])) if key in record else ''}</td>"  # type: ignore[literal-required]
            for key, _, fmt in columns
        )
        rows.append(f"<tr{style}>{cells}</tr>")
    notes = []
    if stopped:
        notes.append(f"<p><strong>Stopped early:</strong> {esc(stopped)}</p>")
    if any(record.get("catastrophic_overfitting") for record in records):
        notes.append(
            '<p style="color:#c0392b"><strong>Catastrophic overfitting detected</strong> '
            "(highlighted rows): robust accuracy collapsed while training went on. The best "
            "checkpoint is the most robust epoch before it.</p>"
        )
    adversarial = config.adversarial
    if adversarial is not None:
        notes.append(
            f"<p class='muted'>Robust validation: PGD-{adversarial.val_steps} at eps "
            f"{adversarial.validation_eps:g} ({adversarial.norm}) on {adversarial.val_n} "
            "held-out images, the same random starts every epoch.</p>"
        )
    settings = esc(json.dumps(config.model_dump(mode="json"), indent=2, default=str))
    figure = img(accuracy_figure(records), "accuracy per epoch")
    sections = [
        f"<p class='muted'>{esc(config.model)} on {esc(config.dataset_name)}, "
        f"{len(records)} of {config.epochs} epochs</p>{''.join(notes)}",
        f"<h2>Accuracy per epoch</h2><figure>{figure}</figure>"
        f"<div class='scroll'><table><tr>{head}</tr>{''.join(rows)}</table></div>",
        f"<h2>Configuration</h2><pre>{settings}</pre>",
    ]
    path = out_dir / REPORT_FILE
    write_page(path, f"Training run {config.run_name}", sections)
    return path
