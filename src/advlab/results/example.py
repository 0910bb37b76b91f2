"""A few clean/adversarial image pairs: what an evaluation keeps and the figures show."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np


@dataclass
class Example:
    """``N`` clean images, their adversarial versions and the model's answers on both.

    ``clean`` and ``adversarial`` are (N, C, H, W) in [0, 1], as torch tensors or NumPy
    arrays; the other arrays hold one entry per image (confidences in [0, 1]). An
    evaluation keeps the first images of its first batch for each (attack, eps), as CPU
    tensors, with the attack's ``key``; images the model got wrong were not attacked:
    there adversarial equals clean. (Arrays are typed Any: this layer does not import
    torch.) The fields also read by name, ``example["clean"]``, as when they were dicts.
    """

    attack: str
    norm: str
    eps: float
    clean: Any
    adversarial: Any
    labels: Any
    clean_pred: Any
    clean_conf: Any
    adv_pred: Any
    adv_conf: Any
    key: str = ""

    def __len__(self) -> int:
        return int(to_numpy(self.labels).reshape(-1).shape[0])

    def __getitem__(self, name: str) -> Any:
        if name not in FIELDS + ("key",):
            raise KeyError(name)
        return getattr(self, name)


#: The fields an example needs (``key`` is optional).
FIELDS = tuple(f.name for f in fields(Example) if f.name != "key")


def to_numpy(value: Any) -> np.ndarray:
    """A torch tensor (any device) or array-like as a NumPy array."""
    if hasattr(value, "detach"):  # torch.Tensor, without importing torch here
        value = value.detach().cpu().numpy()
    return np.asarray(value)
