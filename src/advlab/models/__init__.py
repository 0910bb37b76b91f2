"""Models: every model takes images in [0, 1] and normalizes them itself."""

from advlab.models.checkpoint import load_state_dict, save_checkpoint
from advlab.models.classifier import ImageClassifier, Normalize
from advlab.models.entry import ModelEntry
from advlab.models.loading import build_model, load_model, resolve_device
from advlab.models.registry import get_entry, registered_models

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
