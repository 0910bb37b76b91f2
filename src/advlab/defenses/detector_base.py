"""What every detector, and every attack on a model and its detector, has in common.

A detector is a score per image and a threshold on it, set on clean images for a target
false-positive rate; its decisions and ROC follow from the score alone. The attacks that
know a detector (PGD on model and detector together) take the same arguments and need a
fitted detector. Both detectors (feature squeezing, the trained binary one) and both such
attacks differ only in the score and the objective, so the rest is written once here.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import nn

from advlab.attacks.base import Attack
from advlab.attacks.norms import Norm
from advlab.errors import check
from advlab.models.classifier import ImageClassifier


class ThresholdDetector(ABC):
    """Flags an image when its :meth:`score` exceeds ``threshold``.

    Subclasses implement :meth:`score` and set the threshold in their ``fit`` with
    :meth:`_set_threshold`, from the scores of clean images.
    """

    def __init__(self, model: ImageClassifier, fpr: float, batch_size: int) -> None:
        check(0 < fpr < 1, f"the detector's false positive rate must be in (0, 1), got {fpr}")
        check(batch_size >= 1, f"batch_size must be >= 1, got {batch_size}")
        self.model = model
        self.fpr = float(fpr)
        self.batch_size = batch_size
        self.threshold: float | None = None

    @abstractmethod
    def score(self, images: torch.Tensor) -> torch.Tensor:
        """The detection score of each image (on the CPU): higher, more likely adversarial."""

    def detect(self, images: torch.Tensor) -> torch.Tensor:
        """True where an image is flagged as adversarial (score above the threshold)."""
        check(
            self.threshold is not None,
            "the detector has no threshold yet: call fit(clean_images) first",
        )
        return self.score(images) > self.threshold

    def roc(
        self, clean: torch.Tensor, adversarial: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, float]:
        """``(fpr, tpr, auc)`` of telling ``adversarial`` from ``clean`` by the score."""
        fpr, tpr, _ = roc_curve(self.score(clean), self.score(adversarial))
        return fpr, tpr, auc(fpr, tpr)

    def _set_threshold(self, clean_scores: torch.Tensor) -> None:
        """The ``1 - fpr`` quantile of clean scores: about ``fpr`` of clean images flagged."""
        self.threshold = float(torch.quantile(clean_scores.double(), 1 - self.fpr))


class DetectorAwareAttack(Attack):
    """The arguments and checks shared by PGD attacks on a model and its detector.

    Subclasses keep their own ``__init__`` (its signature is the attack's ``config()``)
    and pass the shared arguments on; they implement ``_run``.
    """

    def __init__(
        self,
        detector: ThresholdDetector,
        eps: float,
        alpha: float | None,
        steps: int,
        norm: Norm,
        *,
        penalty: float,
        kappa: float,
        random_start: bool,
        target: str | None,
        seed: int | None,
    ) -> None:
        super().__init__(eps, norm, target=target, seed=seed)
        check(
            detector.threshold is not None,
            "fit the detector before attacking it: detector.fit(clean_images)",
        )
        check(steps >= 1, f"steps must be >= 1, got {steps}")
        check(alpha is None or alpha > 0, f"alpha must be > 0, got {alpha}")
        self.detector = detector
        self.alpha = alpha
        self.steps = int(steps)
        self.penalty = float(penalty)
        self.kappa = float(kappa)
        self.random_start = random_start

    def _step_size(self) -> float:
        """The step size: ``alpha``, or 2.5 eps / steps (Madry et al.'s rule)."""
        assert self.eps is not None
        return self.alpha if self.alpha is not None else 2.5 * self.eps / self.steps

    def _check_own_model(self, model: nn.Module) -> None:
        check(
            model is self.detector.model,
            f"{type(self).__name__} must attack the detector's own model: pass detector.model",
        )


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


def goal_margin(logits: torch.Tensor, goal: torch.Tensor, targeted: bool) -> torch.Tensor:
    """How far the goal is reached, > 0 when it is: other-minus-true (untargeted) logits."""
    goal_logit = logits.gather(1, goal[:, None]).squeeze(1)
    others = logits.scatter(1, goal[:, None], -float("inf")).amax(dim=1)
    return goal_logit - others if targeted else others - goal_logit
