"""Defenses side by side: the undefended model and each defense, under plain and adaptive attacks.

::

    from advlab.evaluation import AttackSpec
    from advlab.evaluation.defend import compare_defenses, defense_candidate

    comparison = compare_defenses(
        model, data, [defense_candidate(model, "jpeg:quality=75")],
        [AttackSpec("fgsm"), AttackSpec("pgd")], [0.1, 0.3],
    )
    comparison.write_json("defend.json")

Every row is attacked twice over. The *standard* attack is the attack as configured, run
on the defended model. The *adaptive* attacks know the defense (Athalye, Carlini and
Wagner 2018; Tramèr et al. 2020):

- ``bpda`` / ``eot`` / ``bpda+eot``: for preprocessing that masks or randomizes gradients,
  the attack runs on :func:`~advlab.defenses.adaptive_model` (straight-through gradients,
  gradients averaged over random draws);
- ``logits``: for a defended *model* (defensive distillation, adversarial training), the
  attack runs on the logits divided by their own spread (:class:`RescaledLogits`), so
  that a saturated softmax cannot hide the gradient (Carlini and Wagner 2016);
- ``transfer``: the examples crafted on the undefended model, replayed on the defense;
- ``aware``: for a detector, an attack on model and detector together.

Every example is judged on the real defended model. An image counts as robust under
"adaptive" only if every adaptive attack and the standard one failed on it (the
per-image worst case), and that number is what the relative reduction of the attack
success rate uses. A row whose standard robust accuracy exceeds its adaptive one by
``gap_threshold`` or more is flagged; its gradient-masking checks
(:mod:`advlab.evaluation.masking`) say why.

With a results store, each finished row and each row's checks are stored as they come,
so calling again with the same models, data, attacks and settings (the same run id)
after an interrupt loads them instead of recomputing: the result equals an
uninterrupted run's, timings aside.

Modules: :mod:`.candidates` (the rows going in), :mod:`.rows` (computing one row),
:mod:`.compare` (the resumable comparison), :mod:`.results` (what comes out),
:mod:`.verdicts` (the best defense and the findings in words).
"""

from advlab.defenses import (
    DETECTORS,
    Detector,
    DetectorEntry,
    RescaledLogits,
    get_detector,
    register_detector,
)
from advlab.evaluation.defend.candidates import (
    UNDEFENDED,
    Candidate,
    Kind,
    defense_candidate,
    detector_candidate,
    model_candidate,
    training_seconds,
    undefended_candidate,
)
from advlab.evaluation.defend.compare import compare_defenses
from advlab.evaluation.defend.verdicts import best_defenses, findings
from advlab.results import CellResult, DefenseComparison, RowResult

__all__ = [
    "DETECTORS",
    "UNDEFENDED",
    "Candidate",
    "CellResult",
    "DefenseComparison",
    "Detector",
    "DetectorEntry",
    "Kind",
    "RescaledLogits",
    "RowResult",
    "best_defenses",
    "compare_defenses",
    "defense_candidate",
    "detector_candidate",
    "findings",
    "get_detector",
    "model_candidate",
    "register_detector",
    "training_seconds",
    "undefended_candidate",
]
