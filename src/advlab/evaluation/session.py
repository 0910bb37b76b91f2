"""What every evaluation job shares: the fit check, batched prediction, seeding, and the
resumable run in the results store.

A job (the sweep, the defense comparison, the transfer matrix, the detection
evaluation) checks that its models read its data (:func:`check_fits`), predicts in
batches with the model left as it was found (:func:`predict`, :func:`predict_top`),
seeds each unit of work from the run seed and the unit's name
(:func:`~advlab.evaluation.spec.derive_seed`, :func:`seeded`), and, when it is
resumable, runs inside a :func:`session`: the run is recorded in the store under its
id, finished units are skipped on the next call, Ctrl-C marks it "interrupted" and any
other failure "failed" (a SIGKILLed run is found "interrupted" by the store, which
records the process), and the summary is stored when it finishes.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from advlab.attacks import Attack
from advlab.attacks.fold import folded
from advlab.attacks.precision import check_precision, current_precision, resolve
from advlab.data import ImageDataset
from advlab.errors import AdvlabError, check
from advlab.evaluation.ranks import Ranks
from advlab.evaluation.store import ResultStore
from advlab.models.context import frozen_eval

log = logging.getLogger(__name__)

MATCHING = "pick a matching model and data set"


# -- models and data ---------------------------------------------------------------------
def model_device(model: nn.Module) -> torch.device:
    """Where ``model`` runs: its ``device``, else its parameters', else the CPU."""
    device = getattr(model, "device", None)
    if isinstance(device, torch.device):
        return device
    for tensor in model.parameters():
        return tensor.device
    return torch.device("cpu")


def check_fits(
    models: Mapping[str, nn.Module], dataset: ImageDataset, hint: str = MATCHING
) -> None:
    """Every model reads the data set's images and knows its labels, and all models share
    their classes; ``hint`` ends the error (what to do). One-line errors, before any work."""
    for name, model in models.items():
        shape = tuple(getattr(model, "input_shape", ()) or ())
        if shape and all(shape):
            check(shape == dataset.image_shape,
                  f"model '{name}' expects images of shape {shape} but data set "
                  f"'{dataset.name}' has {dataset.image_shape}: {hint}")  # fmt: skip
    counts = {name: int(getattr(model, "num_classes", 0) or 0) for name, model in models.items()}
    known = {name: count for name, count in counts.items() if count}
    described = ", ".join(f"'{name}' {count}" for name, count in known.items())
    check(len(set(known.values())) <= 1,
          f"the models have different numbers of classes ({described}): {hint}")  # fmt: skip
    top = int(dataset.labels.max()) if len(dataset) else -1
    for name, count in known.items():
        check(top < count,
              f"data set '{dataset.name}' has label {top} but model '{name}' has only {count} "
              f"classes: {MATCHING}")  # fmt: skip


def check_fit(model: nn.Module, dataset: ImageDataset) -> None:
    """:func:`check_fits` for one model, named by its ``name``."""
    check_fits({str(getattr(model, "name", type(model).__name__)): model}, dataset)


# -- prediction and attacks, in batches ---------------------------------------------------
# -- how the attacks search ---------------------------------------------------------------
def run_precision(precision: str, model: nn.Module, dataset: ImageDataset) -> str:
    """What ``precision`` means for a job on ``model``: "float32" or "bfloat16".

    "auto" times the model's search copy on the first images both ways
    (:func:`advlab.attacks.precision.resolve`), on rank 0 under torchrun: every rank
    must search alike.
    """
    check_precision(precision)
    if precision != "auto":
        return precision
    ranks = Ranks.current()
    resolved = None
    if ranks.main:
        _, images, _ = next(dataset.batches(min(64, len(dataset)), start=0))
        images = images.to(model_device(model))
        with frozen_eval(model):  # as attacks run it: no batch-norm statistics updated
            resolved = resolve(precision, images.device, folded(model, images), images)
        log.info("--precision auto: searching %s in %s", type(model).__name__, resolved)
    return ranks.broadcast(resolved) or "float32"


def precision_identity(precision: str) -> dict[str, str]:
    """The precision's part of a run's identity: nothing for float32, so that float32 runs
    keep the identity (and the stored rows) they had before there was a choice."""
    return {} if precision == "float32" else {"precision": precision}


def searched_precision(model: nn.Module, dataset: ImageDataset) -> str:
    """The precision attacks called now on ``model`` search in (inside
    :func:`advlab.attacks.search_precision`): part of a job's identity where not float32."""
    return run_precision(current_precision(), model, dataset)


def _image_batches(images: torch.Tensor | ImageDataset, batch_size: int) -> Iterator[torch.Tensor]:
    if isinstance(images, ImageDataset):
        yield from (batch for _, batch, _ in images.batches(batch_size))
    else:
        yield from (images[s : s + batch_size] for s in range(0, images.shape[0], batch_size))


def predict(
    model: nn.Module, images: torch.Tensor | ImageDataset, batch_size: int = 256
) -> torch.Tensor:
    """Top-1 predictions (int64, on the CPU), in batches, the model left as it was found.

    ``images`` is a tensor or a whole data set (read batch by batch, never all at once).
    """
    device = model_device(model)
    with frozen_eval(model), torch.no_grad():
        parts = [model(batch.to(device)).argmax(dim=1).cpu()
                 for batch in _image_batches(images, batch_size)]  # fmt: skip
    return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.int64)


def predict_top(model: nn.Module, images: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Predicted class and its softmax probability, per image (one batch, as NumPy)."""
    with torch.no_grad(), frozen_eval(model):
        logits = model(images).float()
    check(bool(torch.isfinite(logits).all()),
          f"model '{getattr(model, 'name', '?')}' returned NaN or infinite logits: check its "
          "weights and that it takes images in [0, 1]")  # fmt: skip
    confidence, prediction = torch.softmax(logits, dim=1).max(dim=1)
    return prediction.cpu().numpy().astype(np.int64), confidence.cpu().numpy().astype(np.float64)


def run_attack(
    attack: Attack,
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    batch_size: int = 256,
) -> torch.Tensor:
    """The adversarial examples ``attack`` crafts on ``model``, in batches, on the CPU."""
    device = model_device(model)
    parts = [
        attack(model, images[s : s + batch_size].to(device), labels[s : s + batch_size].to(device))
        .adversarial.detach()
        .cpu()
        for s in range(0, images.shape[0], batch_size)
    ]
    return torch.cat(parts) if parts else images.clone()


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed torch's CPU and CUDA generators for the block and restore them after."""
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


# -- the resumable run ---------------------------------------------------------------------
@dataclass
class Session:
    """One run in a results store: ``resumed`` if it was there before, ``done`` its
    finished units (attack key, eps, batch offset) when the session began."""

    store: ResultStore
    run_id: str
    resumed: bool
    done: set[tuple[str, float, int]] = field(default_factory=set)
    finished: bool = False

    def finish(self, summary: dict[str, Any]) -> None:
        self.store.finish_run(self.run_id, summary)
        self.finished = True


@contextlib.contextmanager
def session(
    store: ResultStore | None,
    run_id: str,
    identity: dict[str, Any],
    config: dict[str, Any],
    units_total: int,
    what: str = "run",
) -> Iterator[Session]:
    """Record run ``run_id`` in ``store`` (None: an in-memory store for this call only)
    and yield its :class:`Session`; an exception leaves the run "interrupted" (Ctrl-C)
    or "failed" and propagates. ``what`` names the run in the message after Ctrl-C."""
    with contextlib.ExitStack() as stack:
        if store is None:  # nothing to resume from: the rows live for this call only
            store = stack.enter_context(ResultStore(":memory:"))
        resumed = store.start_run(run_id, identity, config, units_total)
        current = Session(store, run_id, resumed, store.done_units(run_id))
        try:
            yield current
        except BaseException as error:
            if current.finished:  # e.g. Ctrl-C while tidying up: the run itself is done
                raise
            if not isinstance(error, KeyboardInterrupt):
                _mark(store, run_id, "failed")
                raise
            _mark(store, run_id, "interrupted")
            log.warning("interrupted: %s %s is saved in %s; run the same %s again to resume it",
                        what, run_id, store.path, what)  # fmt: skip
            raise


def _mark(store: ResultStore, run_id: str, status: str) -> None:
    # Never let a failing store hide the error that stopped the run.
    with contextlib.suppress(AdvlabError):
        store.set_status(run_id, status)
