"""The defense comparison as one resumable run: every row, then every row's checks, each
stored as it finishes (see :mod:`advlab.evaluation.defend` for what is compared and how)."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch

from advlab.data import ImageDataset
from advlab.errors import AdvlabError, check
from advlab.evaluation.defend.candidates import Candidate, undefended_candidate
from advlab.evaluation.defend.rows import RowWork
from advlab.evaluation.defend.verdicts import best_defenses, findings
from advlab.evaluation.masking import CheckBudget, gradient_masking_checks
from advlab.evaluation.session import (
    precision_identity,
    searched_precision,
    seeded,
    session,
)
from advlab.evaluation.spec import AttackSpec, canonical_json, derive_seed, weights_sha256
from advlab.evaluation.store import ResultStore
from advlab.models import ImageClassifier
from advlab.models.context import frozen_eval
from advlab.progress import progress_bar
from advlab.results import Check, DefenseComparison, RowResult

log = logging.getLogger(__name__)

#: What decides the numbers besides model, data, attacks and seed (part of the run id).
_SETTINGS = ("batch_size", "eot_samples", "gap_threshold", "min_retention", "checks", "check_n",
             "check_eps", "check_steps", "check_queries")  # fmt: skip
_T = TypeVar("_T")


# -- the comparison ---------------------------------------------------------------------


def compare_defenses(
    model: ImageClassifier,
    dataset: ImageDataset,
    candidates: Sequence[Candidate],
    attacks: Sequence[AttackSpec],
    epsilons: Sequence[float],
    *,
    seed: int = 0,
    batch_size: int = 128,
    eot_samples: int = 10,
    gap_threshold: float = 0.1,
    min_retention: float = 0.97,
    checks: bool = True,
    check_n: int = 100,
    check_eps: float | None = None,
    check_steps: int = 20,
    check_queries: int = 200,
    timing_repeats: int = 3,
    store: ResultStore | None = None,
    run_config: dict[str, Any] | None = None,
    progress: bool = False,
) -> DefenseComparison:
    """Compare ``model`` (the undefended row, always first) with each candidate.

    ``check_eps`` (default: the largest eps) and ``check_n`` images are used for the
    gradient-masking checks of every row that is not a detector; ``checks=False`` skips
    them. ``min_retention`` is the clean-accuracy retention a defense needs to be named
    the best one. With a ``store``, the comparison is recorded as one run (``advlab runs``
    lists it; ``advlab runs ID`` prints this dict) and each row and each row's checks
    are stored as they finish: the same call after an interrupt resumes where it stopped.
    """
    attacks, epsilons = list(attacks), sorted({float(e) for e in epsilons})
    check(len(dataset) > 0, "the data set is empty: give at least one image")
    check(bool(attacks) and bool(epsilons), "give at least one attack and one eps")
    check(eot_samples >= 1, f"eot_samples must be >= 1, got {eot_samples}")
    check(0 <= gap_threshold <= 1, f"gap_threshold must be in [0, 1], got {gap_threshold}")
    for spec in attacks:
        for eps in epsilons:
            spec.build(eps, 0)  # a bad option fails now, not after the first rows
    labels = [c.label for c in candidates]
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    check(not repeated, f"defense {', '.join(repeated)} is listed twice: give each once")
    started = time.perf_counter()
    rows_in = [undefended_candidate(model), *candidates]
    config = {
        **(run_config or {}), "seed": seed, "batch_size": batch_size, "eot_samples": eot_samples,
        "gap_threshold": gap_threshold, "min_retention": min_retention, "checks": checks,
        "check_n": check_n, "check_eps": check_eps, "check_steps": check_steps,
        "check_queries": check_queries, "attacks": [s.to_dict() for s in attacks],
        "epsilons": epsilons, "rows": [{"label": c.label, "kind": c.kind, "spec": c.spec}
                                       for c in rows_in],
    }  # fmt: skip
    precision = searched_precision(model, dataset)
    config["precision"] = precision
    # Known before any work: the run id is also the key of the stored rows.
    identity = _identity(model, dataset, seed, attacks, epsilons, config, rows_in)
    identity.update(precision_identity(precision))
    run_id = hashlib.sha256(canonical_json(identity).encode()).hexdigest()[:16]
    images, truth = dataset.images, dataset.labels
    checked = [checks and c.kind != "detector" for c in rows_in]
    total = len(rows_in) * len(attacks) * len(epsilons) + sum(checked)
    work = RowWork(attacks, epsilons, seed, batch_size, eot_samples, images, truth)
    eps = check_eps if check_eps is not None else max(epsilons)
    take = min(check_n, len(dataset))

    def masking_checks(candidate: Candidate) -> list[Check]:
        with seeded(derive_seed(seed, f"checks/{candidate.label}", eps, 0)):
            return gradient_masking_checks(
                candidate.model, images[:take], truth[:take], eps, norm=_norm_of(attacks),
                budget=CheckBudget(check_steps, check_queries, seed, batch_size),
            )  # fmt: skip

    units = len(rows_in) + sum(checked)
    with session(store, run_id, identity, config, units, "defense comparison") as run:
        saved = _Saved(run.store, run_id, run.store.parts(run_id))
        earlier = run.store.unit_seconds(run_id)  # what the stored rows and checks took
        if run.resumed:
            log.info("resuming defense comparison %s: %d of %d rows done (checks: %d of %d) "
                     "in %s", run_id, saved.count("row/"), len(rows_in), saved.count("checks/"),
                     sum(checked), run.store.path)  # fmt: skip
        rows: list[RowResult] = []
        with progress_bar(total, "comparing defenses", enabled=progress) as advance:
            for index, candidate in enumerate(rows_in):
                base = rows[0] if rows else None
                rows.append(saved.row(work, index, candidate, base, gap_threshold, advance))
            for index, (row, candidate) in enumerate(zip(rows, rows_in, strict=True)):
                # A detector row's classifier is the undefended one: its checks are row 0's.
                if checked[index]:
                    row.checks = saved.checks(index, candidate, masking_checks)
                    advance(1)
        _time_rows(rows, rows_in, images, batch_size, timing_repeats)
        best = best_defenses(rows, epsilons, min_retention)
        comparison = DefenseComparison(
            run_id=run_id, model=model.name, dataset=dataset.name, split=dataset.split,
            n=len(dataset), seed=seed, attacks=[s.to_dict() for s in attacks],
            epsilons=epsilons, rows=rows, findings=findings(rows, best, min_retention),
            best=best, config=config, weights_sha256=identity["weights_sha256"],
            device=str(model.device), seconds=earlier + time.perf_counter() - started,
            resumed_rows=saved.count("row/"), resumed_checks=saved.count("checks/"),
        )  # fmt: skip
        run.finish(comparison.to_dict())
        # Row 0's adversarial examples only serve later rows of an unfinished run.
        run.store.drop_part_arrays(run_id)
    return comparison


def _identity(
    model: ImageClassifier,
    dataset: ImageDataset,
    seed: int,
    attacks: Sequence[AttackSpec],
    epsilons: Sequence[float],
    config: dict[str, Any],
    rows_in: Sequence[Candidate],
) -> dict[str, Any]:
    """What decides the numbers, hashed into the run id: weights, images, attacks, rows,
    settings, and a detector's fitted threshold (stored rows are reused under this id)."""
    rows = []
    for entry, candidate in zip(config["rows"], rows_in, strict=True):
        row = {**entry, "weights_sha256": weights_sha256(candidate.model)}
        if candidate.detector is not None:
            detector = candidate.detector
            row["detector"] = {"type": type(detector).__name__,
                               "fpr": getattr(detector, "fpr", None),
                               "threshold": getattr(detector, "threshold", None)}  # fmt: skip
        rows.append(row)
    return {
        "kind": "defense-comparison", "model": model.name,
        "weights_sha256": weights_sha256(model), "dataset": dataset.name,
        "split": dataset.split, "n": len(dataset),
        "indices_sha256": hashlib.sha256(dataset.indices.tobytes()).hexdigest(),
        "seed": seed, "attacks": [s.to_dict() for s in attacks], "epsilons": list(epsilons),
        "rows": rows, "settings": {key: config[key] for key in _SETTINGS},
    }  # fmt: skip


def _time_rows(
    rows: Sequence[RowResult],
    rows_in: Sequence[Candidate],
    images: torch.Tensor,
    batch_size: int,
    repeats: int,
) -> None:
    """Inference time per image of every row (measured again on resume) and its slowdown."""
    for row, candidate in zip(rows, rows_in, strict=True):
        if repeats > 0:
            row.inference_seconds_per_image = _seconds_per_image(
                candidate, images, batch_size, repeats
            )
    base_seconds = rows[0].inference_seconds_per_image
    for row in rows:
        row.inference_slowdown = (
            row.inference_seconds_per_image / base_seconds if base_seconds > 0 else None
        )


@dataclass
class _Saved:
    """One comparison's rows and checks already in the store, and the storing of new ones."""

    store: ResultStore
    run_id: str
    parts: dict[str, tuple[dict[str, Any], dict[str, np.ndarray]]]

    def count(self, prefix: str) -> int:
        return sum(name.startswith(prefix) for name in self.parts)

    def row(
        self,
        work: RowWork,
        index: int,
        candidate: Candidate,
        base: RowResult | None,
        gap_threshold: float,
        advance: Callable[[int], None],
    ) -> RowResult:
        """Row ``index``, loaded if stored, else computed and stored; row 0 with its
        adversarial examples, which later rows replay (transfer)."""
        name = f"row/{index}/{candidate.label}"
        if name in self.parts:
            data, arrays = self.parts[name]
            row = self._read(name, lambda: RowResult.from_dict(data))
            if index == 0:
                self._read(name, lambda: work.restore_base(row, arrays))
            advance(len(work.attacks) * len(work.epsilons))
            return row
        if index > 0 and not work.base_adversarial:
            raise AdvlabError(
                f"results store {self.store.path} lacks the adversarial examples of row 0 of "
                f"run {self.run_id}: move the store away or pass another one"
            )
        log.info("defense comparison: %s", candidate.label)
        begun = time.perf_counter()
        row = work.row(candidate, base, gap_threshold, advance)
        seconds = time.perf_counter() - begun
        examples = work.base_arrays() if index == 0 else None
        self.store.write_part(self.run_id, name, row.to_dict(), seconds, examples)
        return row

    def checks(
        self, index: int, candidate: Candidate, run: Callable[[Candidate], list[Check]]
    ) -> list[Check]:
        """The gradient-masking checks of row ``index``: loaded if stored, else run and stored."""
        name = f"checks/{index}/{candidate.label}"
        if name in self.parts:
            data = self.parts[name][0]
            return self._read(name, lambda: [Check.from_dict(c) for c in data["checks"]])
        begun = time.perf_counter()
        result = run(candidate)
        data = {"checks": [c.to_dict() for c in result]}
        self.store.write_part(self.run_id, name, data, time.perf_counter() - begun)
        return result

    def _read(self, name: str, load: Callable[[], _T]) -> _T:
        try:
            return load()
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise AdvlabError(
                f"results store {self.store.path} holds an unreadable {name} for run "
                f"{self.run_id} ({error!r}): move the store away or pass another one"
            ) from None


def _seconds_per_image(
    candidate: Candidate, images: torch.Tensor, batch_size: int, repeats: int
) -> float:
    """Inference time per image: the fastest of ``repeats`` full passes (less noisy on a
    shared machine than the mean); with a detector, its decision is part of inference."""
    model, detector = candidate.model, candidate.detector
    device = model.device
    best = float("inf")
    with frozen_eval(model), torch.no_grad():
        for _ in range(repeats):
            start = time.perf_counter()
            for offset in range(0, images.shape[0], batch_size):
                batch = images[offset : offset + batch_size].to(device)
                model(batch).argmax(dim=1).cpu()
                if detector is not None:
                    detector.detect(batch)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            best = min(best, time.perf_counter() - start)
    return best / max(1, images.shape[0])


def _norm_of(attacks: Sequence[AttackSpec]) -> Any:
    norms = {spec.norm for spec in attacks}
    return "linf" if "linf" in norms or not norms else norms.pop()
