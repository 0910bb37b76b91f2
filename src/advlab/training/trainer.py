"""``train(config)``: a seeded, resumable training loop that writes advlab checkpoints.

Every epoch writes ``last.safetensors`` (+ JSON sidecar), ``best.safetensors`` when the
selection metric improved (validation accuracy; robust validation accuracy for
adversarial training), ``history.json``, ``report.html`` and finally ``state.pt``.
Calling :func:`train` again with the same ``out_dir`` continues after the last finished
epoch and, on CPU, ends with the same weights as an uninterrupted run; a finished (or
early-stopped) run only reports.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

import advlab.training.ddp as ddp
from advlab.data import DATASETS
from advlab.models import ImageClassifier, build_model, load_model, resolve_device
from advlab.progress import progress_bar
from advlab.training.checkpoints import (
    BEST,
    LAST,
    check_fits,
    check_same_run,
    initialize_from,
    save_epoch,
)
from advlab.training.config import TrainConfig, load_config
from advlab.training.data import TrainData, augment_batch, prepare_data
from advlab.training.schedule import learning_rate
from advlab.training.state import load_state, restore_rng
from advlab.training.steps import (
    DistillationStep,
    EpsilonScheduled,
    StepOutput,
    TrainingStep,
    make_training_step,
)
from advlab.training.validation import (
    EpochRecord,
    evaluate_accuracy,
    robust_accuracy,
    robust_val_set,
    selection_score,
    stop_reason,
)

#: ``(out_dir, config, history, stopped)``: writes a run's report page after each epoch.
ReportWriter = Callable[[Path, TrainConfig, list[EpochRecord], str | None], object]

log = logging.getLogger(__name__)

__all__ = ["BEST", "LAST", "EpochRecord", "TrainResult", "evaluate_accuracy", "selection_score",
           "train"]  # fmt: skip


@dataclass
class TrainResult:
    config: TrainConfig
    out_dir: Path
    history: list[EpochRecord]  # one record per finished epoch, all calls together
    best_epoch: int
    best_val_accuracy: float
    resumed_from: int  # epochs already finished before this call
    epochs_run: int  # epochs trained by this call (0 for a finished run)
    data: dict[str, int]  # sizes: train, val, excluded
    stopped: str | None = None  # why the run ended before config.epochs, if it did

    @property
    def best_path(self) -> Path:
        return self.out_dir / BEST

    @property
    def last_path(self) -> Path:
        return self.out_dir / LAST

    @property
    def final_val_accuracy(self) -> float:
        return self.history[-1]["val_accuracy"]


def train(
    config: TrainConfig | Mapping[str, Any] | str | Path,
    progress: bool = True,
    *,
    step: TrainingStep | None = None,
    on_epoch_end: Callable[[EpochRecord], None] | None = None,
    report: ReportWriter | None = None,
) -> TrainResult:
    """Train ``config`` (a :class:`TrainConfig`, a mapping or a YAML file) into ``out_dir``.

    ``step`` replaces the configured training step (standard or adversarial) with any
    ``step(model, images, labels) -> StepOutput``; ``on_epoch_end`` is called with each
    epoch's record after its checkpoint is on disk. ``report(out_dir, config, history,
    stopped)`` writes the run's page after every epoch (``advlab train`` passes
    :func:`advlab.reports.training.write_training_report`; training sits below reports).
    """
    config = load_config(config)
    device = ddp.rank_device(resolve_device(config.device))
    if step is None:
        if config.distill_from is not None:
            teacher = load_model(config.distill_from, device=device)
            step = DistillationStep(teacher, config.temperature)
        else:
            step = make_training_step(config.adversarial, config.temperature)
    with _torch_threads(config.num_threads):
        return _Run(config, device, step, progress, on_epoch_end, report).execute()


@contextlib.contextmanager
def _torch_threads(count: int | None) -> Iterator[None]:
    """Use ``count`` CPU threads for the run and give the setting back afterwards."""
    previous = torch.get_num_threads()
    if count is not None:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class _Run:
    def __init__(
        self,
        config: TrainConfig,
        device: torch.device,
        step: TrainingStep,
        progress: bool,
        on_epoch_end: Callable[[EpochRecord], None] | None,
        report: ReportWriter | None = None,
    ) -> None:
        self.config = config
        self.device = device
        self.step = step
        self.progress = progress and ddp.is_main()
        self.on_epoch_end = on_epoch_end
        self.report = report
        self.out_dir = config.run_dir
        self._forward: nn.Module | None = None

    # -- the run ------------------------------------------------------------------------
    def execute(self) -> TrainResult:
        config = self.config
        state = load_state(self.out_dir)
        if state is not None:
            check_same_run(config, self.out_dir, state)
            if state["epoch"] >= config.epochs or state.get("stopped"):
                return self._report_finished(state)
        torch.manual_seed(config.seed)  # weight initialization
        model = build_model(config.model, **config.arch_kwargs).to(self.device)
        # Channels-last weights as well as inputs: a CIFAR MobileNetV2 step on two CPU cores
        # took 0.64 s against 0.76 s with channels-last inputs only and 0.92 s with neither.
        model = model.to(memory_format=torch.channels_last)
        model.num_classes = int(config.arch_kwargs.get("num_classes", model.num_classes))
        known = DATASETS.get(config.dataset_name)
        if known is not None:  # fail before loading (CIFAR-10 takes seconds to read)
            check_fits(config, model, known.name, known.image_shape, known.num_classes)
        data = prepare_data(config)
        check_fits(config, model, data.train.name, data.train.image_shape, data.train.num_classes)
        model.class_names = list(data.train.class_names)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if state is None and config.init_from is not None:
            initialize_from(config, model, config.init_from, self.device)
        optimizer = self._optimizer(model)
        generator = torch.Generator().manual_seed(config.seed)  # shuffling and augmentation
        history: list[EpochRecord] = []
        start = 0
        if state is not None:
            model.net.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            restore_rng(state["rng"], generator, self.device)
            history = list(state["history"])
            start = int(state["epoch"])
            log.info("resuming %s after epoch %d of %d", self.out_dir, start, config.epochs)
        sizes = {"train": len(data.train), "val": len(data.val), "excluded": data.excluded}
        log.info(
            "training %s on %d %s images (%d excluded), validating on %d, for %d epochs on %s",
            config.model, sizes["train"], data.train.name, data.excluded, sizes["val"],
            config.epochs, self.device,
        )  # fmt: skip
        robust_val = robust_val_set(config, data.val, self.device)
        stopped: str | None = None
        for epoch in range(start, config.epochs):
            rank, world = ddp.rank_and_world()
            if world > 1:  # the ranks' random starts differ, and repeat on a resume
                torch.manual_seed(config.seed * 1_000_003 + epoch * world + rank)
            record = self._train_epoch(model, optimizer, data, generator, epoch)
            if robust_val is not None:
                record["val_robust_accuracy"] = self._robust_accuracy(model, *robust_val)
            history.append(record)
            stopped = stop_reason(config, history)  # the same on every rank: same weights
            if ddp.is_main():
                save_epoch(
                    config, model, optimizer, generator, self.device, history, sizes, stopped
                )
                if self.report is not None:
                    self.report(self.out_dir, config, history, stopped)
            ddp.barrier()
            summary = _epoch_summary(record, config.epochs)
            if self.progress:  # a line that stays in a log file, beside the progress lines
                print(summary, file=sys.stderr)
            else:
                log.info(summary)
            if self.on_epoch_end is not None:
                self.on_epoch_end(record)
            if stopped:
                log.warning("%s: stopping after epoch %d", stopped, epoch + 1)
                break
            if config.pause_after is not None and epoch + 1 >= config.pause_after:
                log.warning("pausing after epoch %d of %d (pause_after): run again with a "
                            "larger pause_after, or none, to go on", epoch + 1,
                            config.epochs)  # fmt: skip
                break
        return self._result(history, start, sizes, stopped)

    # -- robust validation (a method, so that tests can stand in for it) -----------------
    def _robust_accuracy(
        self, model: ImageClassifier, images: torch.Tensor, labels: torch.Tensor
    ) -> float:
        assert self.config.adversarial is not None
        return robust_accuracy(self.config.adversarial, model, images, labels)

    def _train_epoch(
        self,
        model: ImageClassifier,
        optimizer: torch.optim.Optimizer,
        data: TrainData,
        generator: torch.Generator,
        epoch: int,
    ) -> EpochRecord:
        config = self.config
        began = time.perf_counter()
        batches = _epoch_batches(len(data.train), config.batch_size, generator)
        label = f"epoch {epoch + 1}/{config.epochs}"
        model.train()
        loss_sum, correct, seen, rate = 0.0, 0, 0, config.learning_rate
        adversarial = config.adversarial
        eps = adversarial.eps if adversarial is not None else 0.0
        with progress_bar(len(batches), label, enabled=self.progress) as bar:
            for number, index in enumerate(batches):
                if adversarial is not None and isinstance(self.step, EpsilonScheduled):
                    eps = _warmed_up(adversarial.eps, adversarial.warmup_epochs,
                                     epoch + number / len(batches))  # fmt: skip
                    self.step.set_eps(eps)
                step = epoch * len(batches) + number
                rate = learning_rate(config.schedule, config.learning_rate, step,
                                     len(batches) * config.epochs)  # fmt: skip
                images, labels = self._batch(data, index, generator)
                output = self._train_step(model, optimizer, images, labels, rate)
                loss_sum += float(output.loss.detach()) * len(labels)
                correct += int((output.logits.detach().argmax(1) == labels).sum())
                seen += len(labels)
                bar.describe(f"{label} loss {loss_sum / seen:.4f} acc {correct / seen:.4f}")
                bar(1)
        loss_sum, hits, count = ddp.total(loss_sum, correct, seen)  # over the ranks
        record = {
            "epoch": epoch + 1,
            "train_loss": loss_sum / count,
            "train_accuracy": hits / count,
            "val_accuracy": evaluate_accuracy(model, data.val, self.device),
            "lr": rate,
            "seconds": time.perf_counter() - began,
        }
        if adversarial is not None:
            record["eps"] = eps  # at the end of the epoch (below the target while warming up)
        return record

    def _batch(
        self, data: TrainData, index: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The images (augmented) and labels of one batch: this rank's part of it."""
        pixels = data.train.pixels[index]
        if self.config.augment:
            pixels = augment_batch(pixels, generator)
        # Under torchrun each rank takes its part of the batch after the augmentation, so
        # that every rank draws the same random numbers from ``generator``.
        part = ddp.share(torch.arange(len(index)))
        images = pixels[part].to(self.device).float().div_(255.0)
        # Channels-last convolutions are ~1.4x faster on CPU (as in the attacks).
        images = images.contiguous(memory_format=torch.channels_last)
        return images, data.train.labels[index[part]].to(self.device)

    def _train_step(
        self,
        model: ImageClassifier,
        optimizer: torch.optim.Optimizer,
        images: torch.Tensor,
        labels: torch.Tensor,
        rate: float,
    ) -> StepOutput:
        for group in optimizer.param_groups:
            group["lr"] = rate
        optimizer.zero_grad(set_to_none=True)
        with self._autocast():
            output = self.step(self._forward_module(model), images, labels)
        output.loss.backward()
        optimizer.step()
        return output

    def _forward_module(self, model: ImageClassifier) -> nn.Module:
        """The module the training step calls: ``model`` itself, or once per run its
        compiled and/or DistributedDataParallel form (sharing its parameters, so checkpoints
        and evaluation use ``model``)."""
        if self._forward is None:
            forward = ddp.wrap(model, self.device)  # the model itself in one process
            if self.config.compile:
                # Static shapes: a run sees two batch sizes (full and last), and the graphs
                # torch would make dynamic after the second one run slower on CPU.
                forward = cast(nn.Module, torch.compile(forward, dynamic=False))
            self._forward = forward
        return self._forward

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        # bfloat16 needs no loss scaling; CPU autocast would only slow training down.
        if self.config.amp and self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    # -- helpers --------------------------------------------------------------------------
    def _optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        config = self.config
        if config.optimizer == "sgd":
            return torch.optim.SGD(
                model.parameters(), lr=config.learning_rate, momentum=config.momentum,
                weight_decay=config.weight_decay, nesterov=config.momentum > 0,
            )  # fmt: skip
        return torch.optim.Adam(
            model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
        )

    def _report_finished(self, state: dict[str, Any]) -> TrainResult:
        history = list(state["history"])
        stopped = state.get("stopped") or None
        result = self._result(history, int(state["epoch"]), dict(state["sizes"]), stopped)
        log.info(
            "%s already finished %d epochs (best val acc %.4f at epoch %d); nothing to do",
            self.out_dir, state["epoch"], result.best_val_accuracy, result.best_epoch,
        )  # fmt: skip
        return result

    def _result(
        self,
        history: list[EpochRecord],
        start: int,
        sizes: dict[str, int],
        stopped: str | None = None,
    ) -> TrainResult:
        best = max(history, key=selection_score)
        return TrainResult(
            config=self.config, out_dir=self.out_dir, history=history,
            best_epoch=int(best["epoch"]), best_val_accuracy=best["val_accuracy"],
            resumed_from=start, epochs_run=len(history) - start, data=sizes, stopped=stopped,
        )  # fmt: skip


def _epoch_summary(record: EpochRecord, epochs: int) -> str:
    robust = record.get("val_robust_accuracy")
    return (
        f"epoch {record['epoch']}/{epochs}: loss {record['train_loss']:.4f}, "
        f"train acc {record['train_accuracy']:.4f}, val acc {record['val_accuracy']:.4f}"
        + ("" if robust is None else f", val robust acc {robust:.4f}")
        + f" ({record['seconds']:.1f} s)"
    )


def _warmed_up(eps: float, warmup_epochs: float, progress: float) -> float:
    """Linear eps warm-up over the first ``warmup_epochs`` epochs (progress in epochs)."""
    if warmup_epochs <= 0:
        return eps
    return eps * min(1.0, progress / warmup_epochs)


def _epoch_batches(n: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    order = torch.randperm(n, generator=generator)
    batches = list(order.split(batch_size))
    if len(batches) > 1 and len(batches[-1]) == 1:
        batches.pop()  # BatchNorm cannot train on a batch of one image
    return batches
