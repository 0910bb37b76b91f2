"""Learning-rate schedules as pure functions of the step number.

No scheduler object holds state: the rate at step ``t`` of ``total`` is computed afresh,
so a resumed run gets exactly the rates of an uninterrupted one.
"""

from __future__ import annotations

import math

ONECYCLE_WARMUP = 0.3  # fraction of the steps spent rising to the peak (as torch's OneCycleLR)


def learning_rate(schedule: str, base: float, step: int, total: int) -> float:
    """The rate for optimizer step ``step`` (0-based) of ``total``."""
    progress = min(step / max(total, 1), 1.0)
    if schedule == "constant":
        return base
    if schedule == "cosine":
        return base * 0.5 * (1.0 + math.cos(math.pi * progress))
    if schedule == "step":
        # x0.1 at 50% and again at 75% of training (the CIFAR ResNet recipe).
        return base * (0.1 ** int(progress >= 0.5)) * (0.1 ** int(progress >= 0.75))
    if schedule == "cyclic":
        # Triangular: 0 -> base over the first 2/5, back to 0 by the end (Wong et al. 2020).
        peak = 0.4
        return base * (progress / peak if progress < peak else (1.0 - progress) / (1.0 - peak))
    if schedule == "onecycle":
        if progress < ONECYCLE_WARMUP:
            start = base / 25
            return start + (base - start) * progress / ONECYCLE_WARMUP
        rest = (progress - ONECYCLE_WARMUP) / (1.0 - ONECYCLE_WARMUP)
        return base * 0.5 * (1.0 + math.cos(math.pi * rest))
    raise ValueError(f"unknown schedule {schedule!r}")
