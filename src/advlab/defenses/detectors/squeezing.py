"""Feature-squeezing detection (Xu et al. 2018).

The detector compares the model's softmax on an image with its softmax on "squeezed"
copies (fewer bits per pixel, a median filter). Natural images barely change under
squeezing; adversarial perturbations, tuned to the exact pixels, often do. The score is
the largest L1 distance over the squeezers; an image is flagged when its score exceeds a
threshold chosen on clean images for a target false-positive rate.
:class:`~advlab.defenses.detectors.aware.SqueezeAwarePGD` attacks model and detector together.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from advlab.defenses.adaptive import straight_through
from advlab.defenses.base import describe
from advlab.defenses.detectors.base import Detector
from advlab.defenses.preprocess import BitDepthReduction, MedianSmoothing
from advlab.errors import check
from advlab.models.classifier import ImageClassifier


def default_squeezers(model: ImageClassifier) -> list[nn.Module]:
    """Xu et al.'s choice: 1-bit depth for grayscale, 5-bit for color, and a median filter.

    The paper uses a 2x2 median; advlab's filter is centred, so it uses 3x3.
    """
    bits = 1 if model.input_shape[0] == 1 else 5
    return [BitDepthReduction(bits), MedianSmoothing(3)]


class FeatureSqueezingDetector(Detector):
    """Flags inputs whose prediction moves when the input is squeezed.

    ``score(x) = max_i || softmax(model(x)) - softmax(model(squeezer_i(x))) ||_1``, in [0, 2].
    :meth:`fit` sets the threshold at the ``1 - fpr`` quantile of clean scores, so about a
    fraction ``fpr`` of clean images is flagged.
    """

    name = "feature-squeezing"

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

    def config(self) -> dict[str, Any]:
        return {"detector": self.name, "squeezers": [describe(s) for s in self.squeezers],
                "fpr": self.fpr, "threshold": self.threshold}  # fmt: skip

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
        return l1_distances(*self.logits(images))

    def _score_batch(self, images: torch.Tensor) -> torch.Tensor:
        return self.distances(images).amax(dim=1)

    def fit(self, clean_images: torch.Tensor) -> FeatureSqueezingDetector:
        """Set the threshold from clean images (use images the detector is not tested on)."""
        check(clean_images.shape[0] >= 2, "fit the detector on at least 2 clean images")
        self._set_threshold(self.score(clean_images))
        return self


def l1_distances(logits: torch.Tensor, squeezed: Sequence[torch.Tensor]) -> torch.Tensor:
    """(N, squeezers): L1 distance between the softmax of the original and each squeezed."""
    probs = logits.softmax(dim=1)
    return torch.stack([(probs - z.softmax(dim=1)).abs().sum(dim=1) for z in squeezed], dim=1)
