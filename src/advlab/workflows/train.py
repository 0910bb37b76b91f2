"""``advlab train`` as a call: a seeded, resumable training run (or defensive distillation:
a teacher, then its student), with ``config.yaml`` beside the checkpoints."""

from __future__ import annotations

from dataclasses import dataclass

from advlab.errors import check
from advlab.reports.training import write_training_report
from advlab.training import TrainResult, train
from advlab.training.distill import distill
from advlab.workflows.common import prepare_folder, write_config
from advlab.workflows.config import TrainConfig
from advlab.workflows.distributed import distributed, on_main


@dataclass
class TrainOutput:
    result: TrainResult  # the trained model (the student, for distillation)
    teacher: TrainResult | None = None


def run_train(config: TrainConfig, *, progress: bool = True) -> TrainOutput:
    """Train ``config`` into its ``out_dir``; the same config resumes an interrupted run.

    A folder holding another run is refused (by its ``config.yaml`` here, by its saved
    state in the trainer), never overwritten. Under ``torchrun`` every rank calls this and
    the trainer runs DistributedDataParallel; rank 0 writes (see docs/distributed.md).
    """
    with distributed() as ranks:
        check(ranks.world == 1 or not config.distill,
              "defensive distillation runs in one process: start it without torchrun")  # fmt: skip
        on_main(lambda: _prepare(config))
        training = config.training()
        progress = progress and ranks.main
        if config.distill:
            teacher, student = distill(training, progress, report=write_training_report)
            return TrainOutput(student, teacher)
        return TrainOutput(train(training, progress, report=write_training_report))


def _prepare(config: TrainConfig) -> None:
    prepare_folder(config, force=None)
    if config.distill:
        check_distillation(config)
    write_config(config)


def check_distillation(config: TrainConfig) -> None:
    from advlab.errors import AdvlabError

    if config.distill_from is not None:
        raise AdvlabError("use either --distill (trains a teacher) or --distill-from TEACHER")
