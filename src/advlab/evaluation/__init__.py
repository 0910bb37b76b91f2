"""Robustness evaluation: attacks x epsilons over a data set, resumable from SQLite.

::

    from advlab.evaluation import AttackSpec, ResultStore, evaluate

    result = evaluate(model, data, [AttackSpec("fgsm"), AttackSpec("pgd", params={"steps": 20})],
                      [2 / 255, 8 / 255], store=ResultStore())
    result.write_json("results.json")
"""

from advlab.evaluation.metrics import AttackOutcomes
from advlab.evaluation.spec import AttackSpec, derive_seed
from advlab.evaluation.store import ResultStore, default_store_path
from advlab.evaluation.sweep import BatchDone, evaluate
from advlab.results import (
    AttackEvaluation,
    AttackExamples,
    Evaluation,
    without_timings,
)

__all__ = [
    "AttackEvaluation",
    "AttackExamples",
    "AttackOutcomes",
    "AttackSpec",
    "BatchDone",
    "Evaluation",
    "ResultStore",
    "default_store_path",
    "derive_seed",
    "evaluate",
    "without_timings",
]
