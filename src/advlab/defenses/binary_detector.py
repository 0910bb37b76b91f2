"""Old import path of the binary detector; the code lives in :mod:`advlab.defenses.detectors`.

Kept until evaluation/ imports the new names (``from advlab.defenses import ...``).
"""

from advlab.defenses.detectors import BinaryDetector, DetectorAwarePGD, feature_layer

__all__ = ["BinaryDetector", "DetectorAwarePGD", "feature_layer"]
