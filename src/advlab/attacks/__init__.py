"""Attacks: configured objects that take ``(model, images, labels)`` and return results.

Importing this package registers every attack by name (``get_attack("pgd")``). The
white-box attacks are hooks of one gradient loop (:mod:`advlab.attacks.gradient`), the
norm-specific math lives on ball objects (:mod:`advlab.attacks.norms`), the black-box
attacks are in :mod:`advlab.attacks.blackbox`. A :class:`Cascade` runs several attacks as
one per-image worst case; :func:`suite` builds the presets ("standard", "fast", "quick").
Inside :func:`search_precision` ("bfloat16") attacks search in bfloat16 with float32
verdicts (:mod:`advlab.attacks.precision`); inside :func:`compiled_search` they search
on ``torch.compile`` of the model.
"""

from advlab.attacks.apgd import APGD, APGDT
from advlab.attacks.base import ATTACKS, Attack, AttackResult, frozen_eval, get_attack
from advlab.attacks.blackbox import HopSkipJump, SimBA, Square, Transfer, evaluate_transfer
from advlab.attacks.cascade import SUITES, Cascade, CascadeResult, suite
from advlab.attacks.deepfool import DeepFool
from advlab.attacks.fab import FABT
from advlab.attacks.fgsm import FGSM
from advlab.attacks.mim import MIM
from advlab.attacks.pgd import BIM, PGD
from advlab.attacks.precision import search_precision
from advlab.attacks.search import compiled_search

__all__ = [
    "APGD",
    "APGDT",
    "ATTACKS",
    "SUITES",
    "BIM",
    "FABT",
    "FGSM",
    "MIM",
    "PGD",
    "HopSkipJump",
    "SimBA",
    "Square",
    "Transfer",
    "Attack",
    "AttackResult",
    "Cascade",
    "CascadeResult",
    "DeepFool",
    "evaluate_transfer",
    "frozen_eval",
    "get_attack",
    "search_precision",
    "compiled_search",
    "suite",
]
