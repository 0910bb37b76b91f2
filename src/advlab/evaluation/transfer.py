"""Transferability: craft on each source model, score on each target model.

For every (attack, eps, source) the adversarial examples are crafted once, batch by
batch, and every target classifies the same batch before it is dropped: crafting is
the expensive part and is never repeated per target. A cell of the matrix counts the
attack's success over the images that *both* its source and its target classify
correctly, so a target's own mistakes never pass for transfer; on the diagonal (source
= target) that is the white-box success rate.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from advlab.data import ImageDataset
from advlab.errors import AdvlabError, check
from advlab.evaluation.session import (
    check_fits,
    model_device,
    precision_identity,
    predict,
    searched_precision,
    session,
)
from advlab.evaluation.spec import (
    IDENTITY_VERSION,
    AttackSpec,
    check_sweep,
    data_sha256,
    derive_seed,
    run_id_of,
    weights_sha256,
)
from advlab.evaluation.store import ResultStore
from advlab.progress import progress_bar
from advlab.results import CSV_COLUMNS, TransferCell, TransferMatrix

log = logging.getLogger(__name__)

__all__ = ["CSV_COLUMNS", "TransferCell", "TransferMatrix", "transfer_matrix"]


def transfer_matrix(
    sources: Mapping[str, nn.Module],
    targets: Mapping[str, nn.Module] | None,
    attacks: Sequence[AttackSpec],
    epsilons: Sequence[float],
    dataset: ImageDataset,
    *,
    batch_size: int = 128,
    seed: int = 0,
    progress: bool = True,
    run_config: dict[str, Any] | None = None,
    on_update: Callable[[TransferMatrix], None] | None = None,
    store: ResultStore | None = None,
) -> TransferMatrix:
    """Craft every attack at every eps on each source; classify the examples with each target.

    ``sources`` and ``targets`` map a name to a model taking images in [0, 1]; ``targets``
    defaults to ``sources``, and a name in both must be the same model. Attacks run on
    every image, with the seed of each (attack, eps, batch) derived from ``seed`` (the
    same random starts for every source). ``on_update`` receives the partial result after
    each source is done, e.g. to write it to disk as it grows. With a ``store``, each
    source's crafted examples (as every target classified them) are stored as they are
    done, so the same call after an interrupt resumes where it stopped.
    """
    targets = dict(sources) if targets is None else dict(targets)
    sources = dict(sources)
    attacks = list(attacks)
    epsilons = [float(eps) for eps in epsilons]
    check(len(sources) > 0, "give at least one source model to craft on")
    check(len(targets) > 0, "give at least one target model to evaluate on")
    check(len(dataset) > 0, "the data set is empty: give at least one image")
    check_sweep(attacks, epsilons, batch_size)
    models = _union(sources, targets)
    check_fits(models, dataset, "transfer needs models of one data set that share their classes")
    device = model_device(next(iter(models.values())))
    start = time.perf_counter()
    clean = {name: predict(model, dataset, batch_size).numpy() for name, model in models.items()}
    labels = dataset.labels.numpy()
    correct = {name: pred == labels for name, pred in clean.items()}
    result = TransferMatrix(
        dataset=dataset.name, split=dataset.split, n=len(dataset), seed=int(seed),
        batch_size=int(batch_size), device=str(device),
        sources=list(sources), targets=list(targets),
        models={name: {"weights_sha256": weights_sha256(model),
                       "clean_accuracy": float(correct[name].mean()),
                       "input_shape": list(getattr(model, "input_shape", ()) or ()),
                       "num_classes": int(getattr(model, "num_classes", 0) or 0)}
                for name, model in models.items()},
        attacks=[{**spec.to_dict(), "key": spec.key,
                  "config": {str(eps): spec.build(eps, seed).config() for eps in epsilons}}
                 for spec in attacks],
        epsilons=epsilons,
        indices_sha256=hashlib.sha256(
            np.ascontiguousarray(dataset.indices, dtype=np.int64).tobytes()).hexdigest(),
        data_sha256=data_sha256(dataset),
        config=dict(run_config or {}),
    )  # fmt: skip
    precision = searched_precision(next(iter(sources.values())), dataset)
    result.config["precision"] = precision
    identity = _identity(result)
    identity.update(precision_identity(precision))
    run_id = run_id_of(identity)
    units = len(attacks) * len(epsilons) * len(sources)
    total = units * len(dataset)
    with session(store, run_id, identity, result.config, units, "transfer matrix") as run:
        stored = run.store.parts(run_id)
        earlier = run.store.unit_seconds(run_id)  # what the stored crafts took
        if run.resumed:
            log.info("resuming transfer matrix %s: %d of %d crafts stored in %s",
                     run_id, len(stored), units, run.store.path)  # fmt: skip
        with progress_bar(total, "crafting transfer examples", enabled=progress) as advance:
            for spec in attacks:
                for eps in epsilons:
                    for source, model in sources.items():
                        name = f"craft/{spec.key}@{eps!r}/{source}"
                        if name in stored:
                            adv_pred, goal, seconds = _load_craft(stored[name], targets)
                            advance(len(dataset))
                        else:
                            craft_start = time.perf_counter()
                            adv_pred, goal = _craft_and_classify(
                                spec, eps, model, targets, dataset, batch_size, seed, device,
                                advance,
                            )  # fmt: skip
                            seconds = time.perf_counter() - craft_start
                            _store_craft(run.store, run_id, name, adv_pred, goal, seconds)
                        for target in targets:
                            result.cells.append(_cell(
                                spec, eps, source, target, correct, adv_pred[target], goal,
                                labels, seconds,
                            ))  # fmt: skip
                        result.seconds = earlier + time.perf_counter() - start
                        if on_update is not None:
                            on_update(result)
        result.complete = True
        result.seconds = earlier + time.perf_counter() - start
        run.finish(result.to_dict())
    return result


def _identity(result: TransferMatrix) -> dict[str, Any]:
    """What decides the numbers of a transfer matrix (its run id is a hash of it)."""
    return {
        "version": IDENTITY_VERSION, "kind": "transfer",
        "model": ", ".join(result.sources), "dataset": result.dataset, "split": result.split,
        "n": result.n, "seed": result.seed, "batch_size": result.batch_size,
        "indices_sha256": result.indices_sha256, "data_sha256": result.data_sha256,
        "sources": {name: result.models[name]["weights_sha256"] for name in result.sources},
        "targets": {name: result.models[name]["weights_sha256"] for name in result.targets},
        "attacks": [{key: spec[key] for key in ("name", "norm", "params")}
                    for spec in result.attacks],
        "epsilons": result.epsilons,
    }  # fmt: skip


def _store_craft(
    store: ResultStore,
    run_id: str,
    name: str,
    adv_pred: dict[str, np.ndarray],
    goal: np.ndarray | None,
    seconds: float,
) -> None:
    """One source's crafted examples as every target classified them, and the goals."""
    arrays = {f"pred/{target}": pred for target, pred in adv_pred.items()}
    if goal is not None:
        arrays["goal"] = goal
    store.write_part(run_id, name, {"seconds": seconds}, seconds, arrays)


def _load_craft(
    part: tuple[dict[str, Any], dict[str, np.ndarray]], targets: Mapping[str, nn.Module]
) -> tuple[dict[str, np.ndarray], np.ndarray | None, float]:
    data, arrays = part
    try:
        adv_pred = {target: arrays[f"pred/{target}"] for target in targets}
        return adv_pred, arrays.get("goal"), float(data["seconds"])
    except (KeyError, TypeError, ValueError) as error:
        raise AdvlabError(
            f"the results store holds an unreadable transfer craft ({error!r}): move the store "
            "away or pass another one"
        ) from None


# -- the work -----------------------------------------------------------------------------


def _craft_and_classify(
    spec: AttackSpec,
    eps: float,
    source: nn.Module,
    targets: Mapping[str, nn.Module],
    dataset: ImageDataset,
    batch_size: int,
    seed: int,
    device: torch.device,
    advance: Callable[[int], None],
) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """Every target's prediction on the examples crafted on ``source``, and the attack's
    target classes (None when untargeted). Each batch is crafted once and then dropped."""
    predictions: dict[str, list[np.ndarray]] = {name: [] for name in targets}
    goals: list[np.ndarray] = []
    for offset, images, labels in dataset.batches(batch_size):
        attack = spec.build(eps, derive_seed(seed, spec.key, eps, offset))
        result = attack(source, images.to(device), labels.to(device))
        for name, target in targets.items():
            predictions[name].append(predict(target, result.adversarial, batch_size).numpy())
        if result.targets is not None:
            goals.append(result.targets.cpu().numpy().astype(np.int64))
        advance(int(labels.shape[0]))
    merged = {name: np.concatenate(parts) for name, parts in predictions.items()}
    return merged, (np.concatenate(goals) if goals else None)


def _cell(
    spec: AttackSpec,
    eps: float,
    source: str,
    target: str,
    correct: Mapping[str, np.ndarray],
    adv_pred: np.ndarray,
    goal: np.ndarray | None,
    labels: np.ndarray,
    seconds: float,
) -> TransferCell:
    both = correct[source] & correct[target]
    fooled = adv_pred != labels if goal is None else adv_pred == goal
    count = int(both.sum())
    return TransferCell(
        attack=spec.to_dict()["name"], key=spec.key, norm=spec.norm, eps=eps,
        targeted=goal is not None, source=source, target=target, white_box=source == target,
        n_both_correct=count,
        success_rate=float(fooled[both].mean()) if count else None,
        target_clean_accuracy=float(correct[target].mean()),
        target_adversarial_accuracy=float((adv_pred == labels).mean()),
        source_clean_accuracy=float(correct[source].mean()),
        craft_seconds=seconds,
    )  # fmt: skip


# -- checks -------------------------------------------------------------------------------


def _union(sources: dict[str, nn.Module], targets: dict[str, nn.Module]) -> dict[str, nn.Module]:
    """Every model once, sources first; a name must mean one model."""
    models = dict(sources)
    for name, model in targets.items():
        check(models.setdefault(name, model) is model,
              f"the name '{name}' is given to two different models: name each model "
              "once")  # fmt: skip
    return models
