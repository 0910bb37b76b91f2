"""Every advlab command as a Python call: ``run_x(XConfig(...)) -> typed output``.

The command line is a thin layer over these: ``advlab transfer ...`` builds a
:class:`TransferConfig` and calls :func:`run_transfer`, and so can any script. Each run
writes its config to ``<out>/config.yaml``, which ``--config`` (or ``XConfig.from_yaml``)
reads back to repeat it; the same run resumes into its folder, a different one is refused
unless ``force=True``.
"""

from advlab.workflows.attack import AttackOutput, run_attack
from advlab.workflows.base import AttackChoice, parse_epsilon
from advlab.workflows.config import (
    AttackConfig,
    DefendConfig,
    DetectConfig,
    EvaluateConfig,
    TrainConfig,
    TransferConfig,
)
from advlab.workflows.defend import DefendOutput, run_defend
from advlab.workflows.demo import DEMO_ATTACKS, DEMO_EPSILONS, demo_config, run_demo
from advlab.workflows.detect import DetectionOutput, run_detection
from advlab.workflows.evaluate import EvaluationOutput, load_target, run_evaluation
from advlab.workflows.train import TrainOutput, run_train
from advlab.workflows.transfer import TransferOutput, run_transfer

__all__ = [
    "DEMO_ATTACKS",
    "DEMO_EPSILONS",
    "AttackChoice",
    "AttackConfig",
    "AttackOutput",
    "DefendConfig",
    "DefendOutput",
    "DetectConfig",
    "DetectionOutput",
    "EvaluateConfig",
    "EvaluationOutput",
    "TrainConfig",
    "TrainOutput",
    "TransferConfig",
    "TransferOutput",
    "demo_config",
    "load_target",
    "parse_epsilon",
    "run_attack",
    "run_defend",
    "run_demo",
    "run_detection",
    "run_evaluation",
    "run_train",
    "run_transfer",
]
