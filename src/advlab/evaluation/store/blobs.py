"""The one blob format of the results store: named NumPy arrays as safetensors.

safetensors holds plain arrays only (no code, no pickles), so a blob from an untrusted
store can be read safely. Schema 1 stored a sweep's example images as .npz; the
migration (:mod:`advlab.evaluation.store.schema`) reads those with :func:`read_npz`,
without pickles, and rewrites them with :func:`pack`.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Mapping
from typing import Any

import numpy as np
import safetensors.numpy
from safetensors import SafetensorError

#: What a blob that cannot be read raises (the store turns it into an AdvlabError).
BLOB_ERRORS = (SafetensorError, KeyError, OSError, ValueError, TypeError, EOFError,
               zipfile.BadZipFile)  # fmt: skip


def pack(arrays: Mapping[str, np.ndarray]) -> bytes:
    """The arrays as one safetensors blob."""
    return safetensors.numpy.save({name: np.ascontiguousarray(a) for name, a in arrays.items()})


def unpack(blob: Any, names: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """The arrays of a blob written by :func:`pack`; ``names`` must all be present.

    Raises one of :data:`BLOB_ERRORS` for anything else.
    """
    arrays = safetensors.numpy.load(bytes(blob))
    return {name: arrays[name] for name in names} if names else arrays


def read_npz(blob: Any, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The arrays ``names`` of a schema-1 .npz blob (pickles refused)."""
    with np.load(io.BytesIO(bytes(blob)), allow_pickle=False) as archive:
        return {name: archive[name] for name in names}
