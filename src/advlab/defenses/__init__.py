"""Defenses: every defended model is still an ImageClassifier that any attack accepts.

- :mod:`~advlab.defenses.base`: the defended model (:func:`defend`,
  :class:`DefendedClassifier`) and the flags of the layers it adds;
- :mod:`~advlab.defenses.preprocess`: JPEG, bit depth, median, noise, resize-pad;
- :mod:`~advlab.defenses.randomized`: dropout and noise kept on at inference;
- :mod:`~advlab.defenses.adaptive`: BPDA and EOT surrogates, :class:`RescaledLogits` and
  :func:`evaluate_adaptive`, so that no defense looks stronger than it is;
- :mod:`~advlab.defenses.detectors`: feature squeezing, a detector trained on the model's
  features, ROC curves, and the attacks on model and detector together;
- :mod:`~advlab.defenses.registry`: names for the CLI (``"jpeg:quality=75+bits:bits=4"``,
  ``"feature-squeezing"``, ``"binary"``).
"""

from advlab.defenses.adaptive import (
    EOT,
    AdaptiveResult,
    RescaledLogits,
    StraightThrough,
    accuracy,
    adaptive_model,
    bpda,
    eot,
    evaluate_adaptive,
)
from advlab.defenses.base import (
    Compose,
    DefendedClassifier,
    DefenseLayer,
    defend,
    describe,
    is_differentiable,
    is_randomized,
)
from advlab.defenses.detectors import (
    BinaryDetector,
    Detector,
    DetectorAwareAttack,
    DetectorAwarePGD,
    FeatureSqueezingDetector,
    SqueezeAwarePGD,
    auc,
    default_squeezers,
    plot_roc,
    roc_curve,
)
from advlab.defenses.preprocess import (
    BitDepthReduction,
    GaussianNoise,
    JpegCompression,
    MedianSmoothing,
    RandomResizePad,
)
from advlab.defenses.randomized import AlwaysDropout, NoiseLayer, RandomizedDropout, RandomizedNoise
from advlab.defenses.registry import (
    DEFENSES,
    DETECTORS,
    DefenseEntry,
    DetectorEntry,
    adaptive_attack,
    apply_defense,
    build_detector,
    get_defense,
    get_detector,
    parse_defense,
    register_defense,
    register_detector,
    registered_defenses,
)

__all__ = [
    "DEFENSES",
    "DETECTORS",
    "EOT",
    "AdaptiveResult",
    "AlwaysDropout",
    "BinaryDetector",
    "BitDepthReduction",
    "Compose",
    "DefendedClassifier",
    "DefenseEntry",
    "DefenseLayer",
    "Detector",
    "DetectorAwareAttack",
    "DetectorAwarePGD",
    "DetectorEntry",
    "FeatureSqueezingDetector",
    "GaussianNoise",
    "JpegCompression",
    "MedianSmoothing",
    "NoiseLayer",
    "RandomResizePad",
    "RandomizedDropout",
    "RandomizedNoise",
    "RescaledLogits",
    "SqueezeAwarePGD",
    "StraightThrough",
    "accuracy",
    "adaptive_attack",
    "adaptive_model",
    "apply_defense",
    "auc",
    "bpda",
    "build_detector",
    "default_squeezers",
    "defend",
    "describe",
    "eot",
    "evaluate_adaptive",
    "get_defense",
    "get_detector",
    "is_differentiable",
    "is_randomized",
    "parse_defense",
    "plot_roc",
    "register_defense",
    "register_detector",
    "registered_defenses",
    "roc_curve",
]
