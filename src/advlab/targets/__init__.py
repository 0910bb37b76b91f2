"""Black-box targets: local models under no_grad, ONNX files and HTTP endpoints."""

from advlab.targets.base import (
    BudgetExceeded,
    LocalTarget,
    QueryBudget,
    Target,
    TargetClassifier,
    as_target,
)
from advlab.targets.http import HttpTarget, QueryLimitReached, TargetRejected, TargetUnavailable
from advlab.targets.onnx import OnnxTarget, export_onnx

__all__ = [
    "BudgetExceeded",
    "HttpTarget",
    "LocalTarget",
    "OnnxTarget",
    "QueryBudget",
    "QueryLimitReached",
    "Target",
    "TargetClassifier",
    "TargetRejected",
    "TargetUnavailable",
    "as_target",
    "export_onnx",
]
