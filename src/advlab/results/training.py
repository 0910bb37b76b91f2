"""What a training run writes: history.json, and the summary beside each checkpoint.

Every epoch appends a :class:`TrainingEpoch` to history.json; ``last.json`` and
``best.json`` (the sidecars of the two checkpoints) hold a :class:`TrainingSummary`:
the model's description, the epoch's metrics, the history so far and the training
configuration.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, TypedDict

from advlab.results.base import JsonResult, build, mapping


class _EpochCore(TypedDict):
    epoch: int
    train_loss: float
    train_accuracy: float
    val_accuracy: float
    lr: float
    seconds: float


class TrainingEpoch(_EpochCore, total=False):
    """One finished epoch. ``eps`` (the attack budget at the epoch's end) and
    ``val_robust_accuracy`` (PGD on held-out images) are there for adversarial
    training only; ``catastrophic_overfitting`` is 1.0 on the epoch where robust
    accuracy collapsed."""

    eps: float
    val_robust_accuracy: float
    catastrophic_overfitting: float


class _Metrics(TypedDict):
    val_accuracy: float
    train_accuracy: float
    train_loss: float


class TrainingMetrics(_Metrics, total=False):
    """The checkpoint's epoch in numbers; ``test_accuracy`` when validated on the whole
    test split, the robust ones for adversarial training (``val_robust_attack`` says how
    they were measured)."""

    val_robust_accuracy: float
    val_robust_attack: str
    test_accuracy: float


def history_from_list(data: Sequence[Mapping[str, Any]]) -> list[TrainingEpoch]:
    """history.json's records, checked to be records of epochs."""
    out: list[TrainingEpoch] = []
    for record in data:
        record = mapping(record, "an epoch of history.json")
        missing = [key for key in _EpochCore.__annotations__ if key not in record]
        if missing:
            raise ValueError(f"an epoch of history.json lacks {', '.join(missing)}")
        out.append(TrainingEpoch(**record))  # type: ignore[typeddict-item]
    return out


@dataclass
class TrainingSummary(JsonResult):
    """The sidecar of a trained checkpoint (``last.json``, ``best.json``).

    ``training`` is the run's full configuration (``TrainConfig`` as JSON);
    ``format_version`` and ``sha256`` belong to the checkpoint format and are kept as
    read (None where missing).
    """

    FILE = "last.json"

    name: str
    architecture: str
    arch_kwargs: dict[str, Any]
    input_shape: list[int]
    num_classes: int
    mean: list[float]
    std: list[float]
    class_names: list[str]
    dataset: str
    data_sizes: dict[str, int]
    epoch: int
    metrics: TrainingMetrics
    history: list[TrainingEpoch]
    training: dict[str, Any]
    format_version: int | None = None
    sha256: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        version, sha = out.pop("format_version"), out.pop("sha256")
        head = {} if version is None else {"format_version": version}
        return {**head, **out, **({} if sha is None else {"sha256": sha})}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainingSummary:
        data = mapping(data, "a checkpoint summary")
        history = history_from_list(data.get("history") or [])
        return build(cls, data, "a checkpoint summary", history=history)
