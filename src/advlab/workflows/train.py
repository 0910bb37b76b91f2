"""``advlab train`` as a call: a seeded, resumable training run (or defensive distillation:
a teacher, then its student), with ``config.yaml`` beside the checkpoints."""

from __future__ import annotations

from dataclasses import dataclass

from advlab.reports.training import write_training_report
from advlab.training import TrainResult, train
from advlab.training.distill import distill
from advlab.workflows.common import prepare_folder, write_config
from advlab.workflows.config import TrainConfig


@dataclass
class TrainOutput:
    result: TrainResult  # the trained model (the student, for distillation)
    teacher: TrainResult | None = None


def run_train(config: TrainConfig, *, progress: bool = True) -> TrainOutput:
    """Train ``config`` into its ``out_dir``; the same config resumes an interrupted run.

    A folder holding another run is refused (by its ``config.yaml`` here, by its saved
    state in the trainer), never overwritten.
    """
    prepare_folder(config, force=None)
    training = config.training()
    if config.distill:
        check_distillation(config)
        write_config(config)
        teacher, student = distill(training, progress, report=write_training_report)
        return TrainOutput(student, teacher)
    write_config(config)
    return TrainOutput(train(training, progress, report=write_training_report))


def check_distillation(config: TrainConfig) -> None:
    from advlab.errors import AdvlabError

    if config.distill_from is not None:
        raise AdvlabError("use either --distill (trains a teacher) or --distill-from TEACHER")
