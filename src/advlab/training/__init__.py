"""Training: ``train(TrainConfig)`` writes resumable, seeded advlab checkpoints.

Adversarial training is one option (``TrainConfig.adversarial``): the loop calls a
training step ``step(model, images, labels) -> StepOutput``, standard or adversarial.
"""

from advlab.training.config import AdversarialTrainingConfig, TrainConfig, load_config
from advlab.training.steps import (
    AdversarialStep,
    DistillationStep,
    StandardStep,
    StepOutput,
    TradesStep,
    TrainingStep,
    make_training_step,
)
from advlab.training.trainer import TrainResult, evaluate_accuracy, train

__all__ = [
    "AdversarialStep",
    "AdversarialTrainingConfig",
    "DistillationStep",
    "StandardStep",
    "StepOutput",
    "TrainConfig",
    "TradesStep",
    "TrainResult",
    "TrainingStep",
    "evaluate_accuracy",
    "load_config",
    "make_training_step",
    "train",
]
