"""A few clean/adversarial image pairs kept from an evaluation, for the figures.

The evaluation hands these over as :class:`Example` objects or as plain mappings with
the same fields (e.g. read back from disk); :func:`as_example` turns either into an
:class:`Example` of NumPy arrays, so the figure code deals with one type only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any

import numpy as np

from advlab.errors import check
from advlab.results.example import FIELDS, Example, to_numpy

__all__ = ["FIELDS", "Example", "as_example", "to_numpy"]


def as_example(value: Example | Mapping[str, Any]) -> Example:
    """Validate ``value`` and return it as an :class:`Example` of NumPy arrays."""
    if isinstance(value, Example):
        data = {f.name: getattr(value, f.name) for f in fields(Example)}
    else:
        check(
            isinstance(value, Mapping), "an example must be an Example or a mapping of its fields"
        )
        missing = [name for name in FIELDS if name not in value]
        check(
            not missing,
            f"an example lacks the fields {', '.join(missing)}: give all of {', '.join(FIELDS)}",
        )
        data = {name: value[name] for name in FIELDS}
    clean = _images(to_numpy(data["clean"]), "clean")
    adversarial = _images(to_numpy(data["adversarial"]), "adversarial")
    check(
        clean.shape == adversarial.shape,
        f"example images differ in shape: clean {clean.shape}, adversarial {adversarial.shape}",
    )
    arrays: dict[str, Any] = {}
    for name in ("labels", "clean_pred", "clean_conf", "adv_pred", "adv_conf"):
        array = to_numpy(data[name]).reshape(-1)
        check(
            array.shape[0] == clean.shape[0],
            f"example field '{name}' has {array.shape[0]} entries for {clean.shape[0]} images; "
            "give one per image",
        )
        arrays[name] = array
    return Example(
        attack=str(data["attack"]),
        norm=str(data["norm"]),
        eps=float(data["eps"]),
        clean=clean,
        adversarial=adversarial,
        **arrays,
    )


def _images(array: np.ndarray, name: str) -> np.ndarray:
    # (N, H, W) is a batch of grayscale images; give it its channel axis.
    if array.ndim == 3:
        array = array[:, None]
    check(
        array.ndim == 4 and array.shape[1] in (1, 3),
        f"example '{name}' images must have shape (N, 1 or 3, H, W), got {array.shape}",
    )
    return array.astype(np.float32, copy=False)
