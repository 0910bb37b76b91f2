"""Feature-squeezing detection (Xu et al. 2018), its ROC, and an attack that adapts to it.

The detector compares the model's softmax on an image with its softmax on "squeezed"
copies (fewer bits per pixel, a median filter). Natural images barely change under
squeezing; adversarial perturbations, tuned to the exact pixels, often do. The score is
the largest L1 distance over the squeezers; an image is flagged when its score exceeds a
threshold chosen on clean images for a target false-positive rate.

:class:`SqueezeAwarePGD` attacks model and detector together (see its docstring), so
that the detection rate is measured against an attacker who knows the detector.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import nn

from advlab.attacks.norms import Norm, direction, project, random_start
from advlab.defenses.adaptive import straight_through
from advlab.defenses.detector_base import DetectorAwareAttack, ThresholdDetector, goal_margin

# Re-exported: they were defined here, and advlab.defenses.detection.roc_curve is public.
from advlab.defenses.detector_base import auc as auc
from advlab.defenses.detector_base import roc_curve as roc_curve
from advlab.defenses.preprocess import BitDepthReduction, MedianSmoothing, describe
from advlab.errors import check
from advlab.models.classifier import ImageClassifier
from advlab.models.context import frozen_eval


def default_squeezers(model: ImageClassifier) -> list[nn.Module]:
    """Xu et al.'s choice: 1-bit depth for grayscale, 5-bit for color, and a median filter.

    The paper uses a 2x2 median; advlab's filter is centred, so it uses 3x3.
    """
    bits = 1 if model.input_shape[0] == 1 else 5
    return [BitDepthReduction(bits), MedianSmoothing(3)]


class FeatureSqueezingDetector(ThresholdDetector):
    """Flags inputs whose prediction moves when the input is squeezed.

    ``score(x) = max_i || softmax(model(x)) - softmax(model(squeezer_i(x))) ||_1``, in [0, 2].
    :meth:`fit` sets the threshold at the ``1 - fpr`` quantile of clean scores, so about a
    fraction ``fpr`` of clean images is flagged.
    """

    def __init__(
        self,
        model: ImageClassifier,
        squeezers: Sequence[nn.Module] | None = None,
        fpr: float = 0.05,
        *,
        batch_size: int = 256,
    ) -> None:
        super().__init__(model, fpr, batch_size)
        self.squeezers = list(squeezers) if squeezers is not None else default_squeezers(model)
        check(len(self.squeezers) > 0, "feature squeezing needs at least one squeezer")

    def __repr__(self) -> str:
        squeezers = ", ".join(describe(s) for s in self.squeezers)
        return (
            f"FeatureSqueezingDetector([{squeezers}], fpr={self.fpr}, threshold={self.threshold})"
        )

    # -- scores -----------------------------------------------------------------------
    def logits(
        self, images: torch.Tensor, bpda: bool = False
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The model's logits on ``images`` and on each squeezed copy; differentiable.

        With ``bpda=True`` the squeezers pass gradients straight through (for attacks).
        """
        squeezers = [straight_through(s) if bpda else s for s in self.squeezers]
        return self.model(images), [self.model(squeeze(images)) for squeeze in squeezers]

    def distances(self, images: torch.Tensor) -> torch.Tensor:
        """Per-image L1 distance for each squeezer, shape (N, squeezers)."""
        return _l1_distances(*self.logits(images))

    def score(self, images: torch.Tensor) -> torch.Tensor:
        """The detection score of each image (on the CPU), computed in batches."""
        parts = []
        with frozen_eval(self.model), torch.no_grad():
            for start in range(0, images.shape[0], self.batch_size):
                batch = images[start : start + self.batch_size].to(self.model.device)
                parts.append(self.distances(batch).amax(dim=1).cpu())
        return torch.cat(parts) if parts else torch.zeros(0)

    # -- threshold (detect and roc: see ThresholdDetector) --------------------------
    def fit(self, clean_images: torch.Tensor) -> FeatureSqueezingDetector:
        """Set the threshold from clean images (use images the detector is not tested on)."""
        check(clean_images.shape[0] >= 2, "fit the detector on at least 2 clean images")
        self._set_threshold(self.score(clean_images))
        return self


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


class SqueezeAwarePGD(DetectorAwareAttack):
    """L-inf/L2 PGD against model *and* feature-squeezing detector together.

    Each step ascends, per image::

        sum over views v in {x, squeezer_1(x), ...} of min(margin_c(v), kappa)
            - penalty * relu(score(x) - threshold / 2)    [once all views are in class c]

    where ``margin_c = z_c - max_{j != c} z_j`` for one class ``c`` shared by all views
    (the target, or for an untargeted attack the wrong class the views' softmaxes favour
    together at that step) and the squeezers are differentiated with BPDA
    (straight-through). Pushing the original and the squeezed copies into the *same* wrong
    class is what keeps the score low; once they are all there, the hinge penalty pulls the
    score under the threshold (earlier it would only pull the image back to its true
    class, where the views agree too). The forward pass is exact, so every step checks
    "fooled and undetected" on the real detector and keeps, per image, the last iterate
    that is both (else the last one that fools the model, else the final iterate).

    ``result.success`` (from the base class) only says the model was fooled: check
    ``detector.detect(result.adversarial)`` for evasion.
    """

    name = "squeeze-aware-pgd"
    detector: FeatureSqueezingDetector

    def __init__(
        self,
        detector: FeatureSqueezingDetector,
        eps: float = 0.3,
        alpha: float | None = None,
        steps: int = 40,
        norm: Norm = "linf",
        *,
        penalty: float = 10.0,
        kappa: float = 5.0,
        random_start: bool = True,
        target: str | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__(detector, eps, alpha, steps, norm, penalty=penalty, kappa=kappa,
                         random_start=random_start, target=target, seed=seed)  # fmt: skip
        check(penalty >= 0 and kappa > 0, "penalty must be >= 0 and kappa > 0")

    def _run(
        self, model: nn.Module, images: torch.Tensor, goal: torch.Tensor, targeted: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        assert self.eps is not None and self.detector.threshold is not None
        self._check_own_model(model)
        threshold = self.detector.threshold
        alpha = self._step_size()
        x = random_start(images, self.eps, self.norm) if self.random_start else images.clone()
        best = x.clone()
        found = torch.zeros(images.shape[0], dtype=torch.bool, device=images.device)
        hit = torch.zeros_like(found)  # fooled at some step, maybe detected
        for step in range(self.steps + 1):
            x = x.detach().requires_grad_(step < self.steps)
            logits, squeezed = self.detector.logits(x, bpda=True)
            score = _l1_distances(logits, squeezed).amax(dim=1)
            with torch.no_grad():
                # The forward is exact (BPDA changes only gradients): a real verdict.
                fooled = goal_margin(logits, goal, targeted) > 0
                evades = fooled & (score <= threshold)
                # Keep the last evading iterate; failing that, the last fooling one.
                update = evades | (fooled & ~found)
                best[update] = x[update]
                found |= evades
                hit |= fooled
            if step == self.steps:
                break
            # One class for every view (the goal, or the wrong class the views favour
            # together): views fooled into different classes would disagree.
            common = goal if targeted else _common_wrong_class([logits, *squeezed], goal)
            margins = torch.stack([goal_margin(z, common, True) for z in [logits, *squeezed]])
            # The penalty only once every view is in the common class: earlier, it would
            # pull the image back to its true class (where the views agree, too).
            agree = (margins > 0).all(dim=0).detach()
            hinge = F.relu(score - threshold / 2) * agree
            objective = margins.clamp(max=self.kappa).sum(0) - self.penalty * hinge
            (grad,) = torch.autograd.grad(objective.sum(), x)
            x = project(
                x.detach() + alpha * direction(grad, self.norm), images, self.eps, self.norm
            )
        best[~hit] = x.detach()[~hit]
        queries = self.steps * (1 + len(self.detector.squeezers))
        return best, torch.full((images.shape[0],), queries, dtype=torch.int64)


def _l1_distances(logits: torch.Tensor, squeezed: Sequence[torch.Tensor]) -> torch.Tensor:
    """(N, squeezers): L1 distance between the softmax of the original and each squeezed."""
    probs = logits.softmax(dim=1)
    return torch.stack([(probs - z.softmax(dim=1)).abs().sum(dim=1) for z in squeezed], dim=1)


def _common_wrong_class(views: Sequence[torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
    """The class other than ``labels`` with the highest softmax summed over the views."""
    with torch.no_grad():
        total = torch.stack([z.softmax(dim=1) for z in views]).sum(0)
        return total.scatter(1, labels[:, None], -1.0).argmax(dim=1)
