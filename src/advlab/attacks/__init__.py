"""Attacks: configured objects that take ``(model, images, labels)`` and return results.

Importing this package registers every attack by name (``get_attack("pgd")``).
"""

from advlab.attacks.base import ATTACKS, Attack, AttackResult, frozen_eval, get_attack
from advlab.attacks.fgsm import FGSM
from advlab.attacks.pgd import BIM, PGD

__all__ = ["ATTACKS", "BIM", "FGSM", "PGD", "Attack", "AttackResult", "frozen_eval", "get_attack"]
