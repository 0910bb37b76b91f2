"""advlab: attack, defend and evaluate image classifiers against adversarial examples.

Every model advlab hands to an attack takes images in [0, 1] and carries its own
normalization as its first layer, so epsilon is always in [0, 1] pixel units.
"""

from advlab.errors import AdvlabError

__version__ = "0.1.0"
__all__ = ["AdvlabError", "__version__"]
