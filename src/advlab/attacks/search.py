"""The model an attack searches on, and the model that judges it.

An attack's steps may run on a faster stand-in for the user's model: its batch norms
folded (:mod:`advlab.attacks.fold`), in bfloat16 with float32 predictions
(:mod:`advlab.attacks.precision`). Success is always judged on the model itself.
"""

from __future__ import annotations

import torch
from torch import nn

from advlab.attacks.fold import folded
from advlab.attacks.precision import bfloat16_search, current_precision, resolve


def search_model(model: nn.Module, images: torch.Tensor, fold: bool = True) -> nn.Module:
    """The stand-in for ``model`` that ``images`` are attacked on (``model`` if none is safe)."""
    search = folded(model, images) if fold else model
    if resolve(current_precision(), images.device) == "bfloat16":
        search = bfloat16_search(search, model, images)
    return search
