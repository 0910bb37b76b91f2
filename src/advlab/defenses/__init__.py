"""Defenses: every defended model is still an ImageClassifier that any attack accepts.

- :mod:`~advlab.defenses.preprocess`: JPEG, bit depth, median, noise, resize-pad, in front
  of a model (:func:`defend`, :class:`DefendedClassifier`);
- :mod:`~advlab.defenses.randomized`: dropout and noise kept on at inference;
- :mod:`~advlab.defenses.adaptive`: BPDA and EOT surrogates and :func:`evaluate_adaptive`,
  so that no defense looks stronger than it is;
- :mod:`~advlab.defenses.detection`: feature-squeezing detection, ROC, an adaptive attack;
- :mod:`~advlab.defenses.binary_detector`: a detector trained on the model's features, and
  the attack on model and detector together;
- :mod:`~advlab.defenses.registry`: names for the CLI (``"jpeg:quality=75+bits:bits=4"``).
"""

from advlab.defenses.adaptive import (
    EOT,
    AdaptiveResult,
    StraightThrough,
    accuracy,
    adaptive_model,
    bpda,
    eot,
    evaluate_adaptive,
)
from advlab.defenses.binary_detector import BinaryDetector, DetectorAwarePGD
from advlab.defenses.detection import (
    FeatureSqueezingDetector,
    SqueezeAwarePGD,
    auc,
    default_squeezers,
    plot_roc,
    roc_curve,
)
from advlab.defenses.preprocess import (
    BitDepthReduction,
    Compose,
    DefendedClassifier,
    DefenseLayer,
    GaussianNoise,
    JpegCompression,
    MedianSmoothing,
    RandomResizePad,
    defend,
    is_differentiable,
    is_randomized,
)
from advlab.defenses.randomized import AlwaysDropout, NoiseLayer, RandomizedDropout, RandomizedNoise
from advlab.defenses.registry import (
    DEFENSES,
    DefenseEntry,
    apply_defense,
    get_defense,
    parse_defense,
    registered_defenses,
)

__all__ = [
    "DEFENSES",
    "EOT",
    "AdaptiveResult",
    "AlwaysDropout",
    "BinaryDetector",
    "BitDepthReduction",
    "Compose",
    "DefendedClassifier",
    "DefenseEntry",
    "DefenseLayer",
    "DetectorAwarePGD",
    "FeatureSqueezingDetector",
    "GaussianNoise",
    "JpegCompression",
    "MedianSmoothing",
    "NoiseLayer",
    "RandomResizePad",
    "RandomizedDropout",
    "RandomizedNoise",
    "SqueezeAwarePGD",
    "StraightThrough",
    "accuracy",
    "adaptive_model",
    "apply_defense",
    "auc",
    "bpda",
    "default_squeezers",
    "defend",
    "eot",
    "evaluate_adaptive",
    "get_defense",
    "is_differentiable",
    "is_randomized",
    "parse_defense",
    "plot_roc",
    "registered_defenses",
    "roc_curve",
]
