"""What every job does before its work: load the data (saying so when ``n`` is more than
there is), check the model fits it, and make sure the results folder may be written."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from torch import nn

from advlab.data import ImageDataset, load_dataset
from advlab.errors import AdvlabError
from advlab.workflows.base import RunConfig

log = logging.getLogger(__name__)

CONFIG_FILE = "config.yaml"
DEFAULT_BATCH_SIZE = 128


@dataclass
class RunOutput:
    """What a run wrote: its results (the JSON file's content), that file and the report."""

    results: dict[str, Any]
    results_path: Path
    report_path: Path | None


def load_data(
    dataset: str,
    split: str,
    n: int | None,
    data_dir: str | None,
    *,
    seed: int,
    option: str = "--n",
) -> ImageDataset:
    """``load_dataset``, saying in one line when ``n`` asks for more images than there are."""
    data = load_dataset(dataset, split, n, data_dir, seed=seed)
    note_fewer(data, n, option)
    return data


@contextmanager
def searching(config: Any, model: nn.Module, data: ImageDataset) -> Iterator[str]:
    """Attacks called inside search as ``config.precision`` and ``config.compile`` say
    (``--precision``, ``--compile``); yields the precision "auto" resolved to."""
    from advlab.attacks import compiled_search, search_precision
    from advlab.evaluation.session import run_precision

    precision = run_precision(config.precision, model, data)
    with search_precision(precision), compiled_search(config.compile):
        yield precision


def resolve_batch_size(batch_size: int | str, models: list[Any], n: int) -> int:
    """``batch_size``, or for "auto" the largest that every model's attacks fit in memory
    (the first process's choice under torchrun, so that every rank batches alike)."""
    if batch_size != "auto":
        return int(batch_size)
    from advlab.evaluation.batch_size import auto_batch_size
    from advlab.evaluation.ranks import Ranks
    from advlab.evaluation.session import model_device

    shapes: list[Any] = [getattr(m, "input_shape", None) for m in models]
    local = [(m, tuple(shape)) for m, shape in zip(models, shapes, strict=True)
             if isinstance(m, nn.Module) and shape]  # fmt: skip
    if not local:  # a black box: nothing to measure here
        log.info("batch size auto: a query-only target, using %d", DEFAULT_BATCH_SIZE)
        return min(DEFAULT_BATCH_SIZE, n)
    sizes = [auto_batch_size(m, shape, model_device(m), n) for m, shape in local]
    return int(Ranks.current().broadcast(min(sizes)))


def note_fewer(data: ImageDataset, n: int | None, option: str = "--n") -> None:
    if n is not None and len(data) < n:
        log.warning(
            "%s %d is more than the %d %s images of %s: using all %d",
            option, n, len(data), data.split, data.name, len(data),
        )  # fmt: skip


def prepare_folder(
    config: RunConfig, *, force: bool | None = False, results: tuple[str, ...] = ()
) -> Path:
    """Check, before any work, that ``config``'s results folder can take this run.

    Refused in one line: a folder that is a file, one that cannot be written, and one that
    holds the results of a *different* run (another ``config.yaml``, or any of the
    ``results`` files without one), unless ``force``. The same run may resume into it.
    ``force=None``: the job offers no overwriting (training refuses another run's folder).
    """
    folder = config.folder
    if folder.exists() and not folder.is_dir():
        raise AdvlabError(f"--out {folder} is a file, not a folder: give a folder")
    _check_writable(folder)
    if force or not folder.is_dir():
        return folder
    saved = folder / CONFIG_FILE
    if saved.is_file():
        difference = _difference(config, saved)
        if difference:
            raise AdvlabError(
                f"{folder} holds the results of a different run ({difference}): use another "
                + ("--out" if force is None else "--out, or --force to overwrite them")
            )
        return folder
    found = [name for name in results if (folder / name).exists()]
    if found:
        raise AdvlabError(
            f"{folder} holds results of another run ({found[0]}, no {CONFIG_FILE}): use "
            + ("another --out" if force is None else "another --out, or --force to overwrite them")
        )
    return folder


def write_config(config: RunConfig) -> Path:
    """``config.yaml`` in the results folder: what ``--config`` reads to repeat the run."""
    folder = config.folder
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / CONFIG_FILE
    path.write_text(config.to_yaml())
    return path


def _check_writable(folder: Path) -> None:
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".advlab-write-test-"):
            pass
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise AdvlabError(
            f"cannot write to --out {folder} ({reason}): give a writable folder"
        ) from None


def _difference(config: RunConfig, saved: Path) -> str | None:
    """How the run saved in ``saved`` differs from ``config``; None if it is the same run."""
    try:
        values = yaml.safe_load(saved.read_text())
        other = type(config).from_mapping(values)
    except (OSError, yaml.YAMLError, AdvlabError, AttributeError, TypeError):
        return f"its {CONFIG_FILE} is not a {type(config).__name__}"
    mine, theirs = config.identity(), other.identity()
    for key in sorted(set(mine) | set(theirs)):
        if mine.get(key) != theirs.get(key):
            return f"'{key}' was {theirs.get(key)!r}, now {mine.get(key)!r}"
    return None
