"""The results store: one SQLite file holding every run, image by image.

An evaluation writes one unit at a time and commits it in one transaction, in WAL mode,
so Ctrl-C or a killed process loses at most the unit in flight, and running the same
configuration again resumes where it stopped. The tables, the schema version and the
migration of older stores: :mod:`~advlab.evaluation.store.schema`; the one blob format
(safetensors): :mod:`~advlab.evaluation.store.blobs`; copying the readable runs out of a
damaged store: :func:`salvage`.
"""

from advlab.evaluation.store.connection import default_store_path
from advlab.evaluation.store.runs import CLEAN_KEY, CleanRows, ResultStore, UnitRows
from advlab.evaluation.store.salvage import SalvageReport, salvage
from advlab.evaluation.store.schema import EXAMPLE_ARRAYS, SCHEMA_VERSION

__all__ = [
    "CLEAN_KEY",
    "EXAMPLE_ARRAYS",
    "SCHEMA_VERSION",
    "CleanRows",
    "ResultStore",
    "SalvageReport",
    "UnitRows",
    "default_store_path",
    "salvage",
]
