"""Old import path of feature squeezing; the code lives in :mod:`advlab.defenses.detectors`.

Kept until evaluation/ imports the new names (``from advlab.defenses import ...``).
"""

from advlab.defenses.detectors import (
    FeatureSqueezingDetector,
    SqueezeAwarePGD,
    auc,
    default_squeezers,
    plot_roc,
    roc_curve,
)

__all__ = [
    "FeatureSqueezingDetector",
    "SqueezeAwarePGD",
    "auc",
    "default_squeezers",
    "plot_roc",
    "roc_curve",
]
