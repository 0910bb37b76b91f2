"""Models: every model takes images in [0, 1] and normalizes them itself."""

from advlab.models.checkpoint import load_state_dict, save_checkpoint
from advlab.models.classifier import ImageClassifier, Normalize
from advlab.models.registry import (
    ModelEntry,
    build_model,
    get_entry,
    load_model,
    registered_models,
    resolve_device,
)

__all__ = [
    "ImageClassifier",
    "ModelEntry",
    "Normalize",
    "build_model",
    "get_entry",
    "load_model",
    "load_state_dict",
    "registered_models",
    "resolve_device",
    "save_checkpoint",
]
