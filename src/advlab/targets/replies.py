"""Checking what an HTTP endpoint answers: JSON objects, /info, scores and labels.

An endpoint is trusted for nothing: every reply is parsed into a fixed shape or refused
with :class:`TargetUnavailable` naming the endpoint. Scores must be what ``/info`` says
they are: probabilities (each row in [0, 1], summing to 1) unless ``/info`` declares
``"scores": "logits"``, in which case the client applies the softmax.
"""

from __future__ import annotations

import json
from typing import Any, Literal

import numpy as np
import torch

from advlab.errors import AdvlabError

ScoreKind = Literal["probabilities", "logits"]

#: The most classes an endpoint may declare (ImageNet-21k has 21,843).
MAX_CLASSES = 100_000
#: Bytes allowed per score or label in a JSON reply, and for the wrapper around them.
BYTES_PER_NUMBER = 32
REPLY_OVERHEAD = 64 * 1024
#: /info holds the class names: room for MAX_CLASSES names of about 60 characters.
MAX_INFO_BYTES = 8 * 1024 * 1024
_SUM_TOLERANCE = 1e-3
_RANGE_TOLERANCE = 1e-5


class TargetUnavailable(AdvlabError):
    """The endpoint is down, too slow, or answered with something that is not a valid reply."""


def reply_limit(count: int, num_classes: int, kind: str) -> int:
    """The most bytes a valid reply for ``count`` images can need."""
    numbers = count * (num_classes if kind == "scores" else 1)
    return REPLY_OVERHEAD + BYTES_PER_NUMBER * numbers


def parse_object(raw: bytes, url: str) -> dict[str, Any]:
    """The JSON object in ``raw``, or :class:`TargetUnavailable`."""
    try:
        reply = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        reply = None
    if not isinstance(reply, dict):
        raise TargetUnavailable(
            f"{url} answered with something that is not a JSON object "
            f"({raw[:60]!r}): check that the URL points at an advlab server"
        )
    return reply


def check_info(info: dict[str, Any], url: str) -> dict[str, Any]:
    """``info`` if it describes a classifier advlab can query, else TargetUnavailable."""
    shape = info.get("input_shape")
    classes = info.get("num_classes")
    valid = (
        isinstance(shape, list)
        and len(shape) == 3
        and all(type(v) is int and 0 < v <= 65536 for v in shape)
        and type(classes) is int
        and classes > 0
        and info.get("output") in ("scores", "labels")
        and type(info.get("queries")) is int
        and info.get("scores", "probabilities") in ("probabilities", "logits")
        and "name" in info
    )
    if not valid:
        raise TargetUnavailable(
            f"{url} did not describe a model (expected name, input_shape, "
            "num_classes, output, queries): is this an advlab server?"
        )
    if int(classes) > MAX_CLASSES:  # type: ignore[arg-type]
        raise TargetUnavailable(
            f"{url} declares {classes} classes, more than advlab handles ({MAX_CLASSES}): "
            "check the server"
        )
    return info


def class_names(info: dict[str, Any], num_classes: int) -> list[str]:
    names = info.get("class_names")
    if isinstance(names, list) and len(names) == num_classes:
        return [str(name)[:200] for name in names]
    return [str(i) for i in range(num_classes)]


def _invalid(url: str, kind: str, count: int, num_classes: int) -> TargetUnavailable:
    return TargetUnavailable(
        f"{url} answered without valid {kind} for {count} images "
        f"and {num_classes} classes: check that the server is an advlab server"
    )


def parse_scores(
    reply: dict[str, Any], count: int, num_classes: int, url: str, declared: ScoreKind
) -> torch.Tensor:
    """(count, num_classes) probabilities from ``reply["scores"]``, checked."""
    try:
        values = np.asarray(reply["scores"], dtype=np.float32)
    except (KeyError, TypeError, ValueError, OverflowError):
        raise _invalid(url, "scores", count, num_classes) from None
    if values.shape != (count, num_classes) or not bool(np.isfinite(values).all()):
        raise _invalid(url, "scores", count, num_classes)
    scores = torch.from_numpy(values)
    if declared == "logits":
        return torch.softmax(scores, dim=1)
    if count and not _are_probabilities(values):
        sums = values.sum(axis=1)
        raise TargetUnavailable(
            f"{url} returned scores that are not probabilities (values "
            f"{values.min():.3g}..{values.max():.3g}, row sums {sums.min():.3g}.."
            f'{sums.max():.3g}): serve softmax outputs, or declare "scores": "logits" '
            "in /info"
        )
    return scores


def _are_probabilities(values: np.ndarray) -> bool:
    in_range = values.min() >= -_RANGE_TOLERANCE and values.max() <= 1 + _RANGE_TOLERANCE
    sums = values.sum(axis=1, dtype=np.float64)
    return bool(in_range and np.abs(sums - 1.0).max() <= _SUM_TOLERANCE)


def parse_labels(reply: dict[str, Any], count: int, num_classes: int, url: str) -> torch.Tensor:
    """(count,) int64 labels in [0, num_classes) from ``reply["labels"]``, checked."""
    try:
        labels = np.asarray(reply["labels"])
    except (KeyError, TypeError, ValueError, OverflowError):
        raise _invalid(url, "labels", count, num_classes) from None
    if labels.shape != (count,) or labels.dtype.kind not in "iu":
        raise _invalid(url, "labels", count, num_classes)
    if count and (labels.min() < 0 or labels.max() >= num_classes):
        raise _invalid(url, "labels", count, num_classes)
    return torch.from_numpy(labels.astype(np.int64))
