"""Black-box attacks: they query a :class:`advlab.targets.Target` under a per-image budget.

Score-based (Square, SimBA), decision-based (HopSkipJump) and transfer attacks; all share
:class:`BlackBoxAttack` and the framework's ``__call__``.
"""

from advlab.attacks.blackbox.base import BlackBoxAttack
from advlab.attacks.blackbox.hopskipjump import HopSkipJump
from advlab.attacks.blackbox.simba import SimBA
from advlab.attacks.blackbox.square import Square
from advlab.attacks.blackbox.transfer import SurrogateEnsemble, Transfer, evaluate_transfer

__all__ = [
    "BlackBoxAttack",
    "HopSkipJump",
    "SimBA",
    "Square",
    "SurrogateEnsemble",
    "Transfer",
    "evaluate_transfer",
]
