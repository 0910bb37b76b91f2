"""Detectors of adversarial examples, and the attacks that know them.

- :mod:`~advlab.defenses.detectors.base`: :class:`Detector`, a score and a threshold;
- :mod:`~advlab.defenses.detectors.roc`: ROC curve, AUC and a figure;
- :mod:`~advlab.defenses.detectors.squeezing`: feature squeezing (Xu et al. 2018);
- :mod:`~advlab.defenses.detectors.binary`: a classifier trained on the model's features;
- :mod:`~advlab.defenses.detectors.aware`: PGD on model and detector together.
"""

from advlab.defenses.detectors.aware import DetectorAwareAttack, DetectorAwarePGD, SqueezeAwarePGD
from advlab.defenses.detectors.base import Detector
from advlab.defenses.detectors.binary import BinaryDetector, feature_layer
from advlab.defenses.detectors.roc import auc, plot_roc, roc_curve
from advlab.defenses.detectors.squeezing import FeatureSqueezingDetector, default_squeezers

__all__ = [
    "BinaryDetector",
    "Detector",
    "DetectorAwareAttack",
    "DetectorAwarePGD",
    "FeatureSqueezingDetector",
    "SqueezeAwarePGD",
    "auc",
    "default_squeezers",
    "feature_layer",
    "plot_roc",
    "roc_curve",
]
