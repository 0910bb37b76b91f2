"""A training run's files: what every epoch writes, starting from given weights, and
whether a folder's saved run is the one being resumed."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from advlab.errors import AdvlabError
from advlab.models import ImageClassifier, get_entry, load_model, save_checkpoint
from advlab.training.config import RESUME_FREE_FIELDS, TrainConfig
from advlab.training.state import rng_states, save_state, write_history
from advlab.training.validation import EpochRecord, selection_score

log = logging.getLogger(__name__)

LAST, BEST = "last.safetensors", "best.safetensors"


def save_epoch(
    config: TrainConfig,
    model: ImageClassifier,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    device: torch.device,
    history: list[EpochRecord],
    sizes: dict[str, int],
    stopped: str | None = None,
) -> None:
    """last (and best) checkpoint, history.json and the resumable state."""
    out_dir, record = config.run_dir, history[-1]
    metadata = checkpoint_metadata(config, model, record, history, sizes)
    save_checkpoint(model.net, out_dir / LAST, metadata)
    if max(history, key=selection_score) is record:  # the first epoch of the best wins ties
        save_checkpoint(model.net, out_dir / BEST, metadata)
    write_history(out_dir, history)
    save_state(out_dir, {
        "epoch": int(record["epoch"]),
        "model": {key: value.detach().cpu() for key, value in model.net.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "scheduler": {"name": config.schedule, "epoch": int(record["epoch"])},
        "rng": rng_states(generator, device),
        "history": history,
        "sizes": sizes,
        "config": config.identity(),
        "stopped": stopped or "",
    })  # fmt: skip


def checkpoint_metadata(
    config: TrainConfig,
    model: ImageClassifier,
    record: EpochRecord,
    history: list[EpochRecord],
    sizes: dict[str, int],
) -> dict[str, Any]:
    """The JSON sidecar of a checkpoint: architecture, normalization, metrics, config."""
    metrics: dict[str, Any] = {
        "val_accuracy": record["val_accuracy"],
        "train_accuracy": record["train_accuracy"],
        "train_loss": record["train_loss"],
    }
    if "val_robust_accuracy" in record and config.adversarial is not None:
        metrics["val_robust_accuracy"] = record["val_robust_accuracy"]
        metrics["val_robust_attack"] = (
            f"pgd eps={config.adversarial.validation_eps} steps={config.adversarial.val_steps} "
            f"on {config.adversarial.val_n} held-out images"
        )
    if config.val_split == "test" and config.n_val is None:
        metrics["test_accuracy"] = record["val_accuracy"]  # the whole test split
    return {
        "name": config.run_name,
        "architecture": config.model,
        "arch_kwargs": {**get_entry(config.model).arch_kwargs, **config.arch_kwargs},
        "input_shape": list(model.input_shape),
        "num_classes": model.num_classes,
        "mean": list(model.mean),
        "std": list(model.std),
        "class_names": list(model.class_names),
        "dataset": config.dataset_name,
        "data_sizes": sizes,
        "epoch": int(record["epoch"]),
        "metrics": metrics,
        "history": history,
        "training": config.model_dump(mode="json"),
    }


def check_fits(
    config: TrainConfig, model: ImageClassifier, dataset: str, shape: tuple[int, ...], classes: int
) -> None:
    if tuple(model.input_shape) != tuple(shape):
        raise AdvlabError(
            f"model '{config.model}' takes {tuple(model.input_shape)} images but "
            f"'{dataset}' has {tuple(shape)}: pick a matching model and data set"
        )
    if classes and classes != model.num_classes:
        raise AdvlabError(
            f"model '{config.model}' has {model.num_classes} outputs but '{dataset}' "
            f"has {classes} classes: pick a matching pair, or set arch_kwargs num_classes"
        )


def initialize_from(
    config: TrainConfig, model: ImageClassifier, spec: str, device: torch.device
) -> None:
    """Copy ``spec``'s weights into ``model``: both must be the same network."""
    source = load_model(spec, device=device)
    ours, theirs = model.net.state_dict(), source.net.state_dict()
    mismatch = sorted(set(ours) ^ set(theirs)) or sorted(
        key for key in ours if ours[key].shape != theirs[key].shape
    )
    if mismatch:
        raise AdvlabError(
            f"cannot start from '{spec}': its weights do not fit '{config.model}' "
            f"with arch_kwargs {config.arch_kwargs} (first difference: "
            f"'{mismatch[0]}'); use the same architecture and arch_kwargs"
        )
    if tuple(source.mean) != tuple(model.mean) or tuple(source.std) != tuple(model.std):
        # The weights were learnt on inputs normalized another way.
        raise AdvlabError(
            f"cannot start from '{spec}': it normalizes with mean {tuple(source.mean)}, "
            f"std {tuple(source.std)}, '{config.model}' with {tuple(model.mean)}, "
            f"{tuple(model.std)}; start from a model of the same registry entry"
        )
    model.net.load_state_dict(theirs)
    log.info("starting from the weights of %s", spec)


def check_same_run(config: TrainConfig, out_dir: Path, state: dict[str, Any]) -> None:
    """A folder's saved run may only be resumed by the same config."""
    saved, current = state["config"], config.identity()
    # A field made free to change since the run was saved is free for it too.
    keys = (set(saved) | set(current)) - RESUME_FREE_FIELDS
    changed = sorted(key for key in keys if config_differs(saved.get(key), current.get(key)))
    if changed:
        key = changed[0]
        raise AdvlabError(
            f"{out_dir} holds a run with a different '{key}' ({saved.get(key)!r}, now "
            f"{current.get(key)!r}): use another out_dir, or delete it to start over"
        )


def config_differs(saved: Any, current: Any) -> bool:
    """Config values differ; a field missing on one side equals None (a field added to
    the config since the run was saved, left at its default, must not block a resume)."""
    if isinstance(saved, dict) and isinstance(current, dict):
        return any(config_differs(saved.get(k), current.get(k)) for k in set(saved) | set(current))
    return bool(saved != current)
