"""Defensive distillation in one call: a teacher at temperature T, then its student.

Papernot et al. 2016 train the teacher with softmax temperature T, label the training
set with its softmax at T, and train the student (same architecture) on those soft
labels at T. Deployed at temperature 1, the student's logits are about T times larger
than usual and its softmax saturates: cross-entropy gradients vanish, so gradient
attacks on the softmax look defeated while attacks on the logits are not.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from advlab.errors import AdvlabError
from advlab.training.config import TrainConfig, load_config
from advlab.training.trainer import ReportWriter, TrainResult, train

TEACHER_DIR = "teacher"


def distill(
    config: TrainConfig | Mapping[str, Any] | str | Path,
    progress: bool = True,
    report: ReportWriter | None = None,
) -> tuple[TrainResult, TrainResult]:
    """Train the teacher into ``out_dir/teacher``, then the student into ``out_dir``.

    Both runs checkpoint and resume like :func:`~advlab.training.train`; rerunning the
    call after an interruption continues whichever of the two was unfinished.
    """
    config = load_config(config)
    if config.temperature <= 1:
        raise AdvlabError(
            f"defensive distillation needs a temperature above 1, got {config.temperature}: "
            "use e.g. --temperature 100"
        )
    if config.adversarial is not None:
        raise AdvlabError("distillation and adversarial training cannot be combined: pick one")
    teacher_config = config.model_copy(update={
        "out_dir": config.run_dir / TEACHER_DIR, "name": f"{config.run_name}-teacher",
        "distill_from": None,
    })  # fmt: skip
    teacher = train(teacher_config, progress, report=report)
    student_config = config.model_copy(update={"distill_from": str(teacher.best_path)})
    student = train(student_config, progress, report=report)
    return teacher, student
