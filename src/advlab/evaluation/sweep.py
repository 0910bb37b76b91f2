"""``evaluate``: a resumable sweep of attacks x epsilons over a data set.

The work is cut into units: one clean-pass batch, or one (attack, eps, batch). Each unit
gets its own seed, derived from the run seed and the unit's name, and is committed to
the results store when it finishes; a second call with the same configuration skips
the stored units. The numbers are then computed from the stored per-image rows only,
so a resumed run ends with exactly the numbers of an uninterrupted one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch

import advlab
import advlab.evaluation.metrics as metrics
from advlab.attacks.cascade import CascadeResult
from advlab.attacks.norms import perturbation_norms
from advlab.attacks.precision import check_precision, search_precision
from advlab.attacks.search import compiled_search
from advlab.data import ImageDataset
from advlab.errors import check
from advlab.evaluation.ranks import Ranks
from advlab.evaluation.replay import replaying
from advlab.evaluation.session import (
    check_fit,
    model_device,
    precision_identity,
    predict_top,
    run_precision,
    session,
)
from advlab.evaluation.spec import (
    AttackSpec,
    check_sweep,
    derive_seed,
    run_id_of,
    run_identity,
)
from advlab.evaluation.store import CLEAN_KEY, CleanRows, ResultStore, UnitRows
from advlab.evaluation.suite import (
    SuiteSpec,
    collect_suite,
    part_name,
    unit_part,
)
from advlab.evaluation.suite_checks import end_suite
from advlab.models import ImageClassifier
from advlab.progress import progress_bar
from advlab.results import AttackEvaluation, AttackExamples, Evaluation

log = logging.getLogger(__name__)

#: An entry of the sweep's attack list: one attack, or a preset cascade (``--suite``).
Spec = AttackSpec | SuiteSpec
#: One computed unit, as rank 0 writes it: (kind, key, eps, offset, seconds, values).
_Payload = tuple[str, str, float, int, float, tuple[Any, ...]]


@dataclass(frozen=True)
class BatchDone:
    """Passed to ``on_batch`` after each unit is committed (``attack`` None: clean pass)."""

    attack: str | None
    eps: float | None
    offset: int
    size: int
    units_done: int
    units_total: int
    seconds: float


def evaluate(
    model: ImageClassifier,
    dataset: ImageDataset,
    attacks: Sequence[Spec],
    epsilons: Sequence[float],
    *,
    batch_size: int = 128,
    seed: int = 0,
    store: ResultStore | None = None,
    run_config: dict[str, Any] | None = None,
    progress: bool = True,
    examples: int = 8,
    on_batch: Callable[[BatchDone], None] | None = None,
    checks: bool = True,
    precision: str = "float32",
    compile: bool = False,
) -> Evaluation:
    """Run every attack at every eps on ``dataset`` and measure robustness.

    Attacks run only on the images the model classifies correctly (the others count as
    not robust at no cost); ``worst_case`` counts an image robust at an eps only if every
    attack failed on it. Pass a :class:`ResultStore` to make the run resumable: the same
    configuration continues where an interrupted run stopped. Without one, the rows live
    in an in-memory store for the duration of the call.

    A :class:`~advlab.evaluation.suite.SuiteSpec` among ``attacks`` runs a preset cascade;
    the result then holds its numbers per eps (``suite``), its sanity lines as
    ``warnings`` and, with ``checks``, the gradient-masking checks of
    :mod:`~advlab.evaluation.suite_checks`. Under ``torchrun`` (an initialized process
    group) every rank calls this with the same arguments, each computes its share of
    the batches, and rank 0 alone writes to ``store`` (pass None on the other ranks);
    every rank returns the same evaluation, equal to a one-process run's.

    ``precision`` "bfloat16" (or "auto": bfloat16 where the device runs it fast) searches
    in bfloat16 with float32 verdicts (:mod:`advlab.attacks.precision`); it is part of
    the run's identity. ``compile`` searches on ``torch.compile`` of the model
    (:func:`~advlab.attacks.search.compiled_search`): the same run, faster steps after a
    compile up front.
    """
    attacks = list(attacks)
    check_precision(precision)
    epsilons = [float(eps) for eps in epsilons]
    check(len(dataset) > 0, "the data set is empty: give at least one image")
    check(examples >= 0, f"examples must be >= 0, got {examples}")
    # A SuiteSpec has an AttackSpec's shape (key, params, build, to_dict): both check alike.
    check_sweep(cast(list[AttackSpec], attacks), epsilons, batch_size)
    check_fit(model, dataset)
    precision = run_precision(precision, model, dataset)
    identity = run_identity(model, dataset, cast(list[AttackSpec], attacks), epsilons,
                            batch_size, seed)  # fmt: skip
    identity.update(precision_identity(precision))
    run_id = run_id_of(identity)
    config = {
        **(run_config or {}), "batch_size": batch_size, "seed": seed, "epsilons": epsilons,
        "attacks": [spec.to_dict() for spec in attacks], "precision": precision,
        "compile": compile,
    }  # fmt: skip
    sweep = _Sweep(model, dataset, attacks, epsilons, batch_size, seed, run_id, examples)
    ranks = sweep.ranks
    store = store if ranks.main else None
    # A suite unit stores a part beside its rows, counted as a unit of its own in the store.
    parts = (
        sum(isinstance(spec, SuiteSpec) for spec in attacks) * len(epsilons) * len(sweep.offsets)
    )
    with session(store, run_id, identity, config, sweep.units_total + parts,
                 "evaluation") as run:  # fmt: skip
        if run.resumed:
            log.info("resuming run %s: %d of %d units already stored in %s",
                     run_id, len(run.done), sweep.units_total + parts, run.store.path)  # fmt: skip
        sweep.store = run.store
        with search_precision(precision), compiled_search(compile):
            sweep.run(run.done, progress, on_batch)
            evaluation = _collect(sweep, identity, config) if ranks.main else None
            if evaluation is not None and evaluation.suite:
                end_suite(evaluation, sweep.model, sweep.dataset, sweep.store,
                          sweep.batch_size, sweep.seed if checks else None)  # fmt: skip
        if evaluation is not None:
            run.finish(evaluation.to_dict())
    return ranks.broadcast(evaluation)  # type: ignore[return-value]


class _Sweep:
    """The units of one run and the code that computes and stores each of them."""

    def __init__(
        self,
        model: ImageClassifier,
        dataset: ImageDataset,
        attacks: list[Spec],
        epsilons: list[float],
        batch_size: int,
        seed: int,
        run_id: str,
        examples: int,
    ) -> None:
        self.model, self.dataset, self.attacks, self.epsilons = model, dataset, attacks, epsilons
        self.batch_size, self.seed, self.run_id = batch_size, seed, run_id
        self.store: ResultStore  # set when the session has opened the run
        self.examples = examples
        self.device = model_device(model)
        self.offsets = list(range(0, len(dataset), batch_size))
        self.units = {(CLEAN_KEY, 0.0, offset) for offset in self.offsets} | {
            (spec.key, eps, offset)
            for spec in attacks for eps in epsilons for offset in self.offsets
        }  # fmt: skip
        self.units_total = len(self.units)
        self.ranks = Ranks.current()

    def run(
        self,
        done: set[tuple[str, float, int]],
        progress: bool,
        on_batch: Callable[[BatchDone], None] | None,
    ) -> None:
        """Compute the units not in ``done``; with several ranks, each its share of every
        round, rank 0 writing them all (the others hold no store)."""
        ranks = self.ranks
        done = ranks.broadcast(done)
        count = len(done & self.units)

        def write(payload: _Payload | None) -> None:
            nonlocal count
            if payload is None:
                return
            kind, key, eps, offset, seconds, values = payload
            if kind == "clean":
                labels, prediction, confidence = values
                self.store.write_clean(self.run_id, offset, labels, prediction, confidence,
                                       seconds)  # fmt: skip
            else:
                rows, keep, part = values
                if part is not None:  # first: the unit marked done is always complete
                    self.store.write_part(self.run_id, part_name(key, eps, offset), *part)
                self.store.write_unit(self.run_id, key, eps, offset, rows, seconds, keep)
            count += 1
            bar()
            if on_batch is not None:
                size = min(self.batch_size, len(self.dataset) - offset)
                attack = None if kind == "clean" else key
                on_batch(BatchDone(attack, None if kind == "clean" else eps, offset, size, count,
                                   self.units_total, seconds))  # fmt: skip

        def compute(units: list[Any], unit: Callable[..., _Payload]) -> None:
            for item in ranks.rounds(units):
                payloads = ranks.gather(None if item is None else unit(*item))
                for payload in payloads:
                    write(payload)

        with progress_bar(self.units_total, "evaluating", progress and ranks.main,
                          count) as bar:  # fmt: skip
            bar.describe("clean")
            compute([(o,) for o in self.offsets if (CLEAN_KEY, 0.0, o) not in done],
                    self._clean_unit)  # fmt: skip
            clean = ranks.broadcast(
                self.store.clean_rows(self.run_id, len(self.dataset)) if ranks.main else None
            )
            for spec in self.attacks:
                for eps in self.epsilons:
                    bar.describe(f"{spec.key} eps={eps:.4g}")
                    pending = [(spec, eps, o, clean) for o in self.offsets
                               if (spec.key, eps, o) not in done]  # fmt: skip
                    compute(pending, self._attack_unit)

    def _batch(self, offset: int) -> tuple[torch.Tensor, torch.Tensor]:
        _, images, labels = next(self.dataset.batches(self.batch_size, start=offset))
        return images.to(self.device), labels.to(self.device)

    def _clean_unit(self, offset: int) -> _Payload:
        start = time.perf_counter()
        images, labels = self._batch(offset)
        prediction, confidence = predict_top(self.model, images)
        seconds = time.perf_counter() - start
        values = (labels.cpu().numpy(), prediction, confidence)
        return ("clean", CLEAN_KEY, 0.0, offset, seconds, values)

    def _attack_unit(self, spec: Spec, eps: float, offset: int, clean: CleanRows) -> _Payload:
        key = spec.key
        start = time.perf_counter()
        images, labels = self._batch(offset)
        size = labels.shape[0]
        positions = np.arange(offset, offset + size)
        correct = clean.correct[positions]
        # Defaults for images the model already gets wrong: not attacked, nothing spent.
        adversarial = images.clone()
        pred, conf = clean.pred[positions].copy(), clean.confidence[positions].copy()
        success = np.zeros(size, dtype=bool)
        target = np.full(size, -1, dtype=np.int64)
        linf, l2 = np.zeros(size), np.zeros(size)
        queries = np.zeros(size, dtype=np.int64)
        part = None
        index = np.flatnonzero(correct)
        if index.size:
            attack = spec.build(eps, derive_seed(self.seed, key, eps, offset))
            chosen = torch.from_numpy(index).to(self.device)
            # A query-only target answers from the store what an earlier attempt paid for.
            model = replaying(self.model, self.store, (self.run_id, key, eps, offset))
            result = attack(model, images[chosen], labels[chosen])
            adversarial[chosen] = result.adversarial
            pred[index], conf[index] = predict_top(self.model, result.adversarial)
            norms = perturbation_norms(result.adversarial, images[chosen])
            linf[index] = norms["linf"].double().cpu().numpy()
            l2[index] = norms["l2"].double().cpu().numpy()
            queries[index] = result.queries.cpu().numpy()
            if isinstance(result, CascadeResult):
                data, arrays = unit_part(result, index, size)
                part = (data, 0.0, arrays)  # its time is the unit's
            if result.targets is not None:
                target[index] = result.targets.cpu().numpy()
                success[index] = pred[index] == target[index]
            else:
                # From the stored predictions, so success and robust accuracy always agree.
                success[index] = pred[index] != clean.labels[positions][index]
        seconds = time.perf_counter() - start
        rows = UnitRows(positions, correct, pred, conf, success,
                        target if (target >= 0).any() else None, linf, l2, queries)  # fmt: skip
        keep = self._examples(offset, images, adversarial, labels, clean, pred, conf)
        return ("attack", key, eps, offset, seconds, (rows, keep, part))

    def _examples(
        self,
        offset: int,
        images: torch.Tensor,
        adversarial: torch.Tensor,
        labels: torch.Tensor,
        clean: CleanRows,
        pred: np.ndarray,
        conf: np.ndarray,
    ) -> dict[str, np.ndarray] | None:
        """Images of the first batch for the report, one per class first (data sets such as
        the bundled demo set are sorted by class, and eight zeros make a dull figure)."""
        if offset != 0 or self.examples == 0:
            return None
        label_array = labels.cpu().numpy().astype(np.int64)
        _, first = np.unique(label_array, return_index=True)
        rest = np.setdiff1d(np.arange(label_array.size), first)
        pick = np.concatenate([np.sort(first), rest])[: self.examples]
        index = torch.from_numpy(pick).to(images.device)
        return {
            "clean": images[index].float().cpu().numpy(),
            "adversarial": adversarial[index].float().cpu().numpy(),
            "labels": label_array[pick],
            "clean_pred": clean.pred[pick], "clean_conf": clean.confidence[pick].astype(np.float32),
            "adv_pred": pred[pick], "adv_conf": conf[pick].astype(np.float32),
        }  # fmt: skip


def _collect(sweep: _Sweep, identity: dict[str, Any], config: dict[str, Any]) -> Evaluation:
    """The run's numbers, from the per-image rows in the store."""
    store, run_id, dataset, n = sweep.store, sweep.run_id, sweep.dataset, len(sweep.dataset)
    names = list(dataset.class_names)
    clean = store.clean_rows(run_id, n)
    results: list[AttackEvaluation] = []
    robust_by_eps: dict[float, list[np.ndarray]] = {eps: [] for eps in sweep.epsilons}
    for spec in sweep.attacks:
        key = spec.key
        for eps in sweep.epsilons:
            outcomes = store.attack_rows(run_id, key, eps, n)
            robust_by_eps[eps].append(metrics.robust_correct(outcomes, clean.labels))
            seconds = store.unit_seconds(run_id, key, eps)
            attack = spec.build(eps, sweep.seed)
            results.append(AttackEvaluation(
                attack=spec.to_dict()["name"], key=key, norm=spec.norm, eps=eps,
                targeted=bool(getattr(attack, "targeted", False)),
                **metrics.attack_metrics(outcomes, clean.labels, names),
                seconds=seconds, images_per_second=n / seconds if seconds > 0 else None,
                config=attack.config(),
            ))  # fmt: skip
    stored_examples = store.examples(run_id) if sweep.examples else {}
    return Evaluation(
        run_id=run_id, model=identity["model"], dataset=dataset.name, split=dataset.split,
        n=n, seed=sweep.seed, class_names=names,
        clean_accuracy=metrics.accuracy(clean.correct),
        per_class_clean_accuracy=metrics.per_class_accuracy(clean.correct, clean.labels, names),
        results=results,
        worst_case={eps: metrics.worst_case_accuracy(robust_by_eps[eps]) for eps in sweep.epsilons},
        config=config, weights_sha256=identity["weights_sha256"],
        advlab_version=advlab.__version__, device=str(sweep.device),
        seconds=store.unit_seconds(run_id),
        examples=_as_examples(stored_examples, sweep),
        suite=[collect_suite(store, run_id, spec, eps, sweep.offsets, n)
               for spec in sweep.attacks if isinstance(spec, SuiteSpec) for eps in sweep.epsilons],
    )  # fmt: skip


def _as_examples(
    stored: dict[tuple[str, float], dict[str, np.ndarray]], sweep: _Sweep
) -> dict[tuple[str, float], AttackExamples]:
    out: dict[tuple[str, float], AttackExamples] = {}
    for spec in sweep.attacks:
        for eps in sweep.epsilons:
            arrays = stored.get((spec.key, eps))
            if arrays is None:
                continue
            k = sweep.examples
            tensors = {name: torch.from_numpy(np.array(arr[:k])) for name, arr in arrays.items()}
            out[(spec.key, eps)] = AttackExamples(
                attack=spec.to_dict()["name"], key=spec.key, norm=spec.norm, eps=eps,
                clean=tensors["clean"], adversarial=tensors["adversarial"],
                labels=tensors["labels"], clean_pred=tensors["clean_pred"],
                clean_conf=tensors["clean_conf"], adv_pred=tensors["adv_pred"],
                adv_conf=tensors["adv_conf"],
            )  # fmt: skip
    return out
