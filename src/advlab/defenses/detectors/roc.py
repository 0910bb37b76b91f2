"""ROC curves of a detection score: the curve, its area, and a figure."""

from __future__ import annotations

from pathlib import Path

import torch
from matplotlib.figure import Figure

from advlab.errors import check


def roc_curve(
    negatives: torch.Tensor, positives: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """ROC of the rule "positive if score >= t" over every distinct score ``t``.

    Returns ``(fpr, tpr, thresholds)``, starting at (0, 0) with threshold +inf and
    ending at (1, 1). Tied scores form one point, as in scikit-learn.
    """
    check(
        negatives.numel() > 0 and positives.numel() > 0,
        "a ROC curve needs at least one clean and one adversarial score",
    )
    scores = torch.cat([negatives.flatten(), positives.flatten()]).double().cpu()
    truth = torch.cat([torch.zeros(negatives.numel()), torch.ones(positives.numel())]).double()
    order = torch.argsort(scores, descending=True, stable=True)
    scores, truth = scores[order], truth[order]
    # The last position of each run of equal scores: where a threshold can sit.
    ends = torch.cat(
        [(scores[1:] != scores[:-1]).nonzero().squeeze(1), torch.tensor([scores.numel() - 1])]
    )
    tp = torch.cumsum(truth, 0)[ends]
    fp = torch.cumsum(1 - truth, 0)[ends]
    zero = torch.zeros(1, dtype=torch.float64)
    tpr = torch.cat([zero, tp / positives.numel()])
    fpr = torch.cat([zero, fp / negatives.numel()])
    thresholds = torch.cat([torch.tensor([float("inf")], dtype=torch.float64), scores[ends]])
    return fpr, tpr, thresholds


def auc(fpr: torch.Tensor, tpr: torch.Tensor) -> float:
    """Area under a ROC curve by the trapezoidal rule."""
    return float(torch.trapezoid(tpr, fpr))


def plot_roc(
    curves: dict[str, tuple[torch.Tensor, torch.Tensor, float]],
    path: str | Path | None = None,
    *,
    title: str = "Feature squeezing: ROC",
) -> Figure:
    """A ROC figure, one line per ``{label: (fpr, tpr, auc)}``; saved to ``path`` if given."""
    figure = Figure(figsize=(4, 4), dpi=100, layout="constrained")
    axes = figure.subplots()
    for label, (fpr, tpr, area) in curves.items():
        axes.plot(fpr.numpy(), tpr.numpy(), label=f"{label} (AUC {area:.3f})")
    axes.plot([0, 1], [0, 1], color="0.7", linestyle="--", linewidth=0.8)
    axes.set(
        xlim=(0, 1),
        ylim=(0, 1.01),
        xlabel="false positive rate",
        ylabel="true positive rate",
        title=title,
    )
    axes.legend(loc="lower right", fontsize=7)
    if path is not None:
        figure.savefig(path)
    return figure
