"""Attacks: configured objects that take ``(model, images, labels)`` and return results.

Importing this package registers every attack by name (``get_attack("pgd")``).
"""

from advlab.attacks.base import ATTACKS, Attack, AttackResult, frozen_eval, get_attack
from advlab.attacks.deepfool import DeepFool
from advlab.attacks.fgsm import FGSM
from advlab.attacks.hopskipjump import HopSkipJump
from advlab.attacks.mim import MIM
from advlab.attacks.pgd import BIM, PGD
from advlab.attacks.simba import SimBA
from advlab.attacks.square import Square
from advlab.attacks.transfer import Transfer, evaluate_transfer

__all__ = [
    "ATTACKS",
    "BIM",
    "FGSM",
    "MIM",
    "PGD",
    "HopSkipJump",
    "SimBA",
    "Square",
    "Transfer",
    "Attack",
    "AttackResult",
    "DeepFool",
    "evaluate_transfer",
    "frozen_eval",
    "get_attack",
]
