"""What every detector has in common: a score per image and a threshold on it.

The threshold is set on clean images for a target false-positive rate; decisions and
the ROC follow from the score alone. A detector implements :meth:`Detector.fit` and the
score of one batch; batching, devices, decisions and its configuration are written once here.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar

import torch

from advlab.attacks.base import Attack
from advlab.defenses.detectors.roc import auc, roc_curve
from advlab.errors import check
from advlab.models.classifier import ImageClassifier
from advlab.models.context import frozen_eval


class Detector(ABC):
    """Flags an image when its :meth:`score` exceeds ``threshold``.

    Subclasses set ``name`` (their registry name), implement :meth:`_score_batch` and
    :meth:`fit`, and set the threshold in ``fit`` with :meth:`_set_threshold`, from the
    scores of clean images.
    """

    name: ClassVar[str] = ""
    #: Whether the detector trains on adversarial examples; :meth:`create` then hands
    #: its constructor the ``attacks`` to train on and the ``seed``.
    trains: ClassVar[bool] = False

    def __init__(self, model: ImageClassifier, fpr: float, batch_size: int) -> None:
        check(0 < fpr < 1, f"the detector's false positive rate must be in (0, 1), got {fpr}")
        check(batch_size >= 1, f"batch_size must be >= 1, got {batch_size}")
        self.model = model
        self.fpr = float(fpr)
        self.batch_size = batch_size
        self.threshold: float | None = None

    @classmethod
    def create(
        cls,
        model: ImageClassifier,
        fpr: float = 0.05,
        *,
        training_attacks: Sequence[Attack] | None = None,
        batch_size: int = 256,
        seed: int = 0,
    ) -> Detector:
        """The unfitted detector from the options every detector is given by name
        (``training_attacks`` and ``seed`` are for detectors that train)."""
        training = {"attacks": training_attacks, "seed": seed} if cls.trains else {}
        return cls(model, fpr=fpr, batch_size=batch_size, **training)

    @abstractmethod
    def fit(self, clean_images: torch.Tensor) -> Detector:
        """Set the threshold from clean images (use images the detector is not tested on)."""

    @abstractmethod
    def _score_batch(self, images: torch.Tensor) -> torch.Tensor:
        """The scores of one batch on the model's device (called without gradients)."""

    def score(self, images: torch.Tensor) -> torch.Tensor:
        """The detection score of each image (on the CPU), computed in batches: higher,
        more likely adversarial."""
        return self._map_batches(self._score_batch, images)

    def _batches(self, *tensors: torch.Tensor) -> Iterator[tuple[torch.Tensor, ...]]:
        """Slices of ``batch_size`` rows of each tensor, on the model's device."""
        device = self.model.device
        for start in range(0, tensors[0].shape[0], self.batch_size):
            yield tuple(t[start : start + self.batch_size].to(device) for t in tensors)

    def _map_batches(
        self, fn: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor
    ) -> torch.Tensor:
        """``fn`` of each batch (model in eval mode, no gradients), joined on the CPU."""
        with frozen_eval(self.model), torch.no_grad():
            parts = [fn(batch).cpu() for (batch,) in self._batches(images)]
        return torch.cat(parts) if parts else torch.zeros(0)

    def detect(self, images: torch.Tensor) -> torch.Tensor:
        """True where an image is flagged as adversarial (score above the threshold)."""
        threshold = self.threshold
        check(
            threshold is not None, "the detector has no threshold yet: call fit(clean_images) first"
        )
        assert threshold is not None
        return self.score(images) > threshold

    def roc(
        self, clean: torch.Tensor, adversarial: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, float]:
        """``(fpr, tpr, auc)`` of telling ``adversarial`` from ``clean`` by the score."""
        fpr, tpr, _ = roc_curve(self.score(clean), self.score(adversarial))
        return fpr, tpr, auc(fpr, tpr)

    def config(self) -> dict[str, Any]:
        """The detector's full configuration, threshold included, as plain JSON data."""
        return {"detector": self.name or type(self).__name__, "fpr": self.fpr,
                "threshold": self.threshold}  # fmt: skip

    def _set_threshold(self, clean_scores: torch.Tensor) -> None:
        """The ``1 - fpr`` quantile of clean scores: about ``fpr`` of clean images flagged."""
        self.threshold = float(torch.quantile(clean_scores.double(), 1 - self.fpr))
