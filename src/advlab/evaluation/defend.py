"""Defenses side by side: the undefended model and each defense, under plain and adaptive attacks.

::

    from advlab.evaluation import AttackSpec
    from advlab.evaluation.defend import compare_defenses, defense_candidate

    comparison = compare_defenses(
        model, data, [defense_candidate(model, "jpeg:quality=75")],
        [AttackSpec("fgsm"), AttackSpec("pgd")], [0.1, 0.3],
    )
    comparison.write_json("defend.json")

Every row is attacked twice over. The *standard* attack is the attack as configured, run
on the defended model. The *adaptive* attacks know the defense (Athalye, Carlini and
Wagner 2018; Tramèr et al. 2020):

- ``bpda`` / ``eot`` / ``bpda+eot``: for preprocessing that masks or randomizes gradients,
  the attack runs on :func:`~advlab.defenses.adaptive_model` (straight-through gradients,
  gradients averaged over random draws);
- ``logits``: for a defended *model* (defensive distillation, adversarial training), the
  attack runs on the logits divided by their own spread (:class:`RescaledLogits`), so
  that a saturated softmax cannot hide the gradient (Carlini and Wagner 2016);
- ``transfer``: the examples crafted on the undefended model, replayed on the defense;
- ``aware``: for a detector, an attack on model and detector together.

Every example is judged on the real defended model. An image counts as robust under
"adaptive" only if every adaptive attack and the standard one failed on it (the
per-image worst case), and that number is what the relative reduction of the attack
success rate uses. A row whose standard robust accuracy exceeds its adaptive one by
``gap_threshold`` or more is flagged; its gradient-masking checks
(:mod:`advlab.evaluation.masking`) say why.

With a results store, each finished row and each row's checks are stored as they come,
so calling again with the same models, data, attacks and settings (the same run id)
after an interrupt loads them instead of recomputing: the result equals an
uninterrupted run's, timings aside.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

import numpy as np
import torch

import advlab
from advlab.attacks import Attack
from advlab.data import ImageDataset
from advlab.defenses import DefendedClassifier, adaptive_model, apply_defense
from advlab.defenses.detection import FeatureSqueezingDetector, SqueezeAwarePGD
from advlab.errors import AdvlabError, check
from advlab.evaluation.masking import Check, gradient_masking_checks, predict, run_attack
from advlab.evaluation.masking import summary as checks_summary
from advlab.evaluation.spec import AttackSpec, canonical_json, derive_seed, weights_sha256
from advlab.evaluation.store import ResultStore
from advlab.models import ImageClassifier
from advlab.models.context import frozen_eval
from advlab.progress import progress_bar

log = logging.getLogger(__name__)

Kind = Literal["undefended", "preprocess", "model", "detector"]
#: What decides the numbers besides model, data, attacks and seed (part of the run id).
_SETTINGS = ("batch_size", "eot_samples", "gap_threshold", "min_retention", "checks", "check_n",
             "check_eps", "check_steps", "check_queries")  # fmt: skip
UNDEFENDED = "undefended"
_T = TypeVar("_T")


# -- detectors: anything with fit / detect, registered by name ---------------------------


class Detector(Protocol):
    """What the comparison needs of a detector: a threshold from clean images, and flags."""

    def fit(self, clean_images: torch.Tensor) -> Any: ...

    def detect(self, images: torch.Tensor) -> torch.Tensor: ...


@dataclass(frozen=True)
class DetectorEntry:
    """``build(model, fpr)`` makes an unfitted detector; ``aware(detector, eps, norm, steps,
    seed)`` an attack on model and detector together (None: no adaptive attack known)."""

    name: str
    build: Callable[[ImageClassifier, float], Detector]
    aware: Callable[[Any, float, str, int, int], Attack] | None
    description: str


DETECTORS: dict[str, DetectorEntry] = {}


def register_detector(entry: DetectorEntry) -> DetectorEntry:
    DETECTORS[entry.name] = entry
    return entry


def get_detector(name: str) -> DetectorEntry:
    key = name.strip().lower().replace("_", "-")
    if key not in DETECTORS:
        known = ", ".join(sorted(DETECTORS))
        raise AdvlabError(f"unknown detector '{name}': use one of {known}")
    return DETECTORS[key]


register_detector(
    DetectorEntry(
        "feature-squeezing",
        lambda model, fpr: FeatureSqueezingDetector(model, fpr=fpr),
        lambda detector, eps, norm, steps, seed: SqueezeAwarePGD(
            detector,
            eps=eps,
            norm=norm,
            steps=steps,
            seed=seed,  # type: ignore[arg-type]
        ),
        "feature squeezing (Xu et al. 2018); adaptive: SqueezeAwarePGD",
    )
)


# -- the rows ---------------------------------------------------------------------------


class RescaledLogits(DefendedClassifier):
    """The model's logits divided by their per-image standard deviation (held constant).

    Predictions are unchanged (a positive per-image scale keeps the argmax), but the
    softmax of the rescaled logits is not saturated, so cross-entropy attacks get a
    gradient again where huge logits (defensive distillation) made it exactly zero in
    float32. This is the attack on the logits of Carlini and Wagner 2016.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = super().forward(x)
        return logits / logits.detach().std(dim=1, keepdim=True).clamp_min(1e-12)


@dataclass
class Candidate:
    """One row of the comparison: a model, what kind of defense it is, and its cost.

    ``training_seconds``: what the defended model cost to train, when its checkpoint
    records it (None: unknown; preprocessing and detectors add no training).
    """

    label: str
    model: ImageClassifier
    kind: Kind
    spec: str
    training_seconds: float | None = None
    detector: Detector | None = None
    detector_entry: DetectorEntry | None = None


def undefended_candidate(model: ImageClassifier, spec: str | None = None) -> Candidate:
    name = spec or model.name
    return Candidate(UNDEFENDED, model, "undefended", name, training_seconds(name))


def defense_candidate(model: ImageClassifier, spec: str) -> Candidate:
    """``model`` behind the preprocessing ``spec`` (see :func:`advlab.defenses.apply_defense`)."""
    defended = apply_defense(model, spec)
    label = defended.name.removeprefix(f"{model.name}+")
    return Candidate(label, defended, "preprocess", spec)


def model_candidate(model: ImageClassifier, spec: str | None = None) -> Candidate:
    """A model trained as a defense (distilled, adversarially trained), e.g. a zoo entry;
    the row is labelled with the model's name (a checkpoint's sidecar name, not its path)."""
    return Candidate(
        model.name, model, "model", spec or model.name, training_seconds(spec or model.name)
    )


def detector_candidate(
    model: ImageClassifier, name: str, clean_images: torch.Tensor, fpr: float = 0.05
) -> Candidate:
    """``model`` with detector ``name``, its threshold fitted on ``clean_images`` (use
    images the comparison does not attack) for a false-positive rate of ``fpr``."""
    entry = get_detector(name)
    check(clean_images.shape[0] >= 2, "fit the detector on at least 2 clean images")
    detector = entry.build(model, fpr)
    detector.fit(clean_images)
    return Candidate(f"detector:{entry.name}", model, "detector", entry.name,
                     detector=detector, detector_entry=entry)  # fmt: skip


def training_seconds(spec: str, _teacher: bool = True) -> float | None:
    """Training time recorded in the sidecar of a registered model or checkpoint file.

    ``training_seconds`` if the sidecar has it, else the sum of its epochs' ``seconds``,
    plus the teacher's time for a distilled student whose teacher checkpoint is still
    there; None when there is no sidecar or no timing (e.g. torchvision models).
    """
    from advlab.models.checkpoint import read_sidecar, sidecar_path
    from advlab.models.registry import get_entry, resolve_default_weights

    try:
        if Path(spec).suffix in (".safetensors", ".pt", ".pth") and sidecar_path(spec).is_file():
            meta = read_sidecar(spec)
        else:
            entry = get_entry(spec)
            if entry.weights is None:
                return None
            meta = read_sidecar(resolve_default_weights(entry, download=False))
    except (AdvlabError, OSError):
        return None
    if isinstance(meta.get("training_seconds"), (int, float)):
        return float(meta["training_seconds"])
    seconds = [r.get("seconds") for r in meta.get("history") or [] if isinstance(r, dict)]
    numbers = [float(s) for s in seconds if isinstance(s, (int, float))]
    if not numbers:
        return None
    teacher = (meta.get("training") or {}).get("distill_from")
    extra = training_seconds(str(teacher), _teacher=False) if teacher and _teacher else None
    return sum(numbers) + (extra or 0.0)


# -- results ----------------------------------------------------------------------------


@dataclass
class CellResult:
    """One attack at one eps on one row. Rates are fractions; accuracies are over all
    images, success rates over the images the row classifies correctly (and, with a
    detector, does not flag)."""

    attack: str
    key: str
    norm: str
    eps: float
    robust_accuracy: float
    attack_success_rate: float | None
    adaptive_robust_accuracy: float
    adaptive_attack_success_rate: float | None
    worst_attack: str  # "standard" or the adaptive attack that broke the most images
    variants: dict[str, dict[str, float | None]]
    gap: float
    gap_flagged: bool
    asr_reduction: float | None  # 1 - adaptive ASR / undefended ASR
    detection_rate: float | None = None  # among fooling examples, flagged by the detector
    adaptive_detection_rate: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RowResult:
    label: str
    kind: Kind
    spec: str
    model: str
    clean_accuracy: float
    clean_retention: float | None
    adaptive_attacks: list[str]
    cells: list[CellResult]
    inference_seconds_per_image: float
    inference_slowdown: float | None
    training_seconds: float | None
    checks: list[Check] | None
    false_positive_rate: float | None = None

    def cell(self, attack: str, eps: float) -> CellResult:
        for cell in self.cells:
            if attack in (cell.key, cell.attack) and cell.eps == eps:
                return cell
        raise KeyError(f"no result for {attack} at eps {eps} in row {self.label}")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["cells"] = [cell.to_dict() for cell in self.cells]
        out["checks"] = None if self.checks is None else [c.to_dict() for c in self.checks]
        out["checks_summary"] = None if self.checks is None else checks_summary(self.checks)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RowResult:
        """The row that :meth:`to_dict` wrote (``checks_summary`` is derived, so dropped)."""
        values = {f.name: data[f.name] for f in fields(cls) if f.name in data}
        values["cells"] = [CellResult(**cell) for cell in data["cells"]]
        checks = data.get("checks")
        values["checks"] = None if checks is None else [Check.from_dict(c) for c in checks]
        return cls(**values)


@dataclass
class DefenseComparison:
    """The comparison; :meth:`to_dict` is the content of defend.json."""

    run_id: str
    model: str
    dataset: str
    split: str
    n: int
    seed: int
    attacks: list[dict[str, Any]]
    epsilons: list[float]
    rows: list[RowResult]
    findings: list[str]
    best: dict[str, dict[str, Any] | None]
    config: dict[str, Any]
    weights_sha256: str
    device: str
    seconds: float
    advlab_version: str = advlab.__version__
    # Rows and checks loaded from the store rather than computed; not in to_dict, so a
    # resumed comparison's results equal an uninterrupted one's.
    resumed_rows: int = 0
    resumed_checks: int = 0

    def row(self, label: str) -> RowResult:
        for row in self.rows:
            if row.label == label or row.spec == label:
                return row
        raise KeyError(f"no row '{label}'")

    def to_dict(self) -> dict[str, Any]:
        hidden = ("rows", "resumed_rows", "resumed_checks")
        out = {k: v for k, v in asdict(self).items() if k not in hidden}
        out = {"kind": "defense-comparison", **out, "rows": [r.to_dict() for r in self.rows]}
        out["clean_accuracy"] = self.rows[0].clean_accuracy if self.rows else None
        return out

    def write_json(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2, default=str))
        return path


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
    # Known before any work: the run id is also the key of the stored rows.
    identity = _identity(model, dataset, seed, attacks, epsilons, config, rows_in)
    run_id = hashlib.sha256(canonical_json(identity).encode()).hexdigest()[:16]
    images, truth = dataset.images, dataset.labels
    checked = [checks and c.kind != "detector" for c in rows_in]
    total = len(rows_in) * len(attacks) * len(epsilons) + sum(checked)
    work = _Work(attacks, epsilons, seed, batch_size, eot_samples, images, truth)
    eps = check_eps if check_eps is not None else max(epsilons)
    take = min(check_n, len(dataset))

    def masking_checks(candidate: Candidate) -> list[Check]:
        with _seeded(derive_seed(seed, f"checks/{candidate.label}", eps, 0)):
            return gradient_masking_checks(
                candidate.model, images[:take], truth[:take], eps, norm=_norm_of(attacks),
                steps=check_steps, square_queries=check_queries, seed=seed,
                batch_size=batch_size,
            )  # fmt: skip

    with contextlib.ExitStack() as stack:
        if store is None:  # nothing to resume from: the rows live for this call only
            store = stack.enter_context(ResultStore(":memory:"))
        resumed = store.start_run(run_id, identity, config, len(rows_in) + sum(checked))
        saved = _Saved(store, run_id, store.parts(run_id))
        earlier = store.unit_seconds(run_id)  # what the stored rows and checks took
        if resumed:
            log.info("resuming defense comparison %s: %d of %d rows done (checks: %d of %d) "
                     "in %s", run_id, saved.count("row/"), len(rows_in), saved.count("checks/"),
                     sum(checked), store.path)  # fmt: skip
        try:
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
        except KeyboardInterrupt:
            _mark(store, run_id, "interrupted")
            log.warning("interrupted: defense comparison %s is saved in %s; run the same "
                        "comparison again to resume it", run_id, store.path)  # fmt: skip
            raise
        except BaseException:
            _mark(store, run_id, "failed")
            raise
        best = best_defenses(rows, epsilons, min_retention)
        comparison = DefenseComparison(
            run_id=run_id, model=model.name, dataset=dataset.name, split=dataset.split,
            n=len(dataset), seed=seed, attacks=[s.to_dict() for s in attacks],
            epsilons=epsilons, rows=rows, findings=findings(rows, best, min_retention),
            best=best, config=config, weights_sha256=identity["weights_sha256"],
            device=str(model.device), seconds=earlier + time.perf_counter() - started,
            resumed_rows=saved.count("row/"), resumed_checks=saved.count("checks/"),
        )  # fmt: skip
        store.finish_run(run_id, comparison.to_dict())
        # Row 0's adversarial examples only serve later rows of an unfinished run.
        store.drop_part_arrays(run_id)
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


def _mark(store: ResultStore, run_id: str, status: str) -> None:
    # Never let a failing store hide the error that stopped the run.
    with contextlib.suppress(AdvlabError):
        store.set_status(run_id, status)


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
        work: _Work,
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
        arrays = work.base_arrays() if index == 0 else None
        self.store.write_part(self.run_id, name, row.to_dict(), seconds, arrays)
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


@dataclass
class _Outcome:
    """Per image, for one attack on one row: still correct (or flagged), and flagged."""

    robust: torch.Tensor
    fooled: torch.Tensor  # the classifier was fooled (flagged or not), attacked images only
    flagged: torch.Tensor | None
    adversarial: torch.Tensor


@dataclass
class _Work:
    attacks: list[AttackSpec]
    epsilons: list[float]
    seed: int
    batch_size: int
    eot_samples: int
    images: torch.Tensor
    labels: torch.Tensor
    base_adversarial: dict[tuple[str, float], torch.Tensor] = field(default_factory=dict)
    base_asr: dict[tuple[str, float], float | None] = field(default_factory=dict)

    def base_arrays(self) -> dict[str, np.ndarray]:
        """Row 0's adversarial examples, to store beside its result."""
        return {
            _array_name(key, eps): adversarial.detach().cpu().numpy()
            for (key, eps), adversarial in self.base_adversarial.items()
        }

    def restore_base(self, row: RowResult, arrays: Mapping[str, np.ndarray]) -> None:
        """What later rows use of row 0, from its stored result and examples."""
        for cell in row.cells:
            self.base_asr[(cell.key, cell.eps)] = cell.attack_success_rate
            if arrays:  # dropped when the run finished: then no row is left to compute
                array = arrays[_array_name(cell.key, cell.eps)]
                self.base_adversarial[(cell.key, cell.eps)] = torch.tensor(array)

    def row(
        self,
        candidate: Candidate,
        base: RowResult | None,
        gap_threshold: float,
        advance: Callable[[int], None],
    ) -> RowResult:
        model, detector = candidate.model, candidate.detector
        with _seeded(derive_seed(self.seed, f"clean/{candidate.label}", 0.0, 0)):
            draws = self.eot_samples if _randomized(model) else 1
            predictions = [predict(model, self.images, self.batch_size) for _ in range(draws)]
        clean_flags = detector.detect(self.images).cpu() if detector is not None else None
        kept = torch.ones_like(self.labels, dtype=torch.bool)
        if clean_flags is not None:
            kept = ~clean_flags
        # The images attacked: right on the first draw (and not flagged by the detector).
        attacked = (predictions[0] == self.labels) & kept
        clean = sum(float(((p == self.labels) & kept).float().mean()) for p in predictions) / draws
        surrogates = self._surrogates(candidate)
        cells = []
        for spec in self.attacks:
            for eps in self.epsilons:
                cells.append(self._cell(candidate, spec, eps, attacked, surrogates,
                                        gap_threshold))  # fmt: skip
                advance(1)
        return RowResult(
            label=candidate.label, kind=candidate.kind, spec=candidate.spec, model=model.name,
            clean_accuracy=clean,
            clean_retention=clean / base.clean_accuracy if base and base.clean_accuracy else None,
            adaptive_attacks=[*surrogates, *(["transfer"] if self._transfers(candidate) else [])],
            cells=cells, inference_seconds_per_image=0.0, inference_slowdown=None,
            training_seconds=candidate.training_seconds, checks=None,
            false_positive_rate=(
                None if clean_flags is None else float(clean_flags.float().mean())
            ),
        )  # fmt: skip

    def _surrogates(self, candidate: Candidate) -> dict[str, ImageClassifier | None]:
        """The adaptive attacks' targets by name (None: the detector-aware attack)."""
        model = candidate.model
        if candidate.kind == "detector":
            entry = candidate.detector_entry
            return {"aware": None} if entry is not None and entry.aware is not None else {}
        if candidate.kind == "model":
            return {"logits": RescaledLogits(model)}
        if isinstance(model, DefendedClassifier):
            names = [n for n, on in (("bpda", not model.differentiable),
                                     ("eot", model.randomized)) if on]  # fmt: skip
            if names:
                return {"+".join(names): adaptive_model(model, self.eot_samples)}
        return {}

    @staticmethod
    def _transfers(candidate: Candidate) -> bool:
        return candidate.kind in ("preprocess", "model")

    def _cell(
        self,
        candidate: Candidate,
        spec: AttackSpec,
        eps: float,
        attacked: torch.Tensor,
        surrogates: dict[str, ImageClassifier | None],
        gap_threshold: float,
    ) -> CellResult:
        key, label = spec.key, candidate.label
        standard = self._attack(candidate, spec, eps, attacked, candidate.model, "standard")
        if candidate.kind == "undefended":
            self.base_adversarial[(key, eps)] = standard.adversarial
        variants: dict[str, _Outcome] = {}
        for name, surrogate in surrogates.items():
            variants[name] = self._attack(candidate, spec, eps, attacked, surrogate, name)
        if self._transfers(candidate) and (key, eps) in self.base_adversarial:
            variants["transfer"] = self._judge(
                candidate, self.base_adversarial[(key, eps)], attacked, f"{key}/transfer", eps
            )
        worst = standard.robust.clone()
        for outcome in variants.values():
            worst &= outcome.robust
        n, count = len(self.labels), int(attacked.sum())
        asr = _rate(attacked & ~standard.robust, count)
        worst_asr = _rate(attacked & ~worst, count)
        if candidate.kind == "undefended":
            self.base_asr[(key, eps)] = asr
        base = self.base_asr.get((key, eps))
        robust = float(standard.robust.float().sum()) / n
        adaptive = float(worst.float().sum()) / n
        broken = {name: int((~o.robust).sum()) for name, o in variants.items()}
        worst_name = max(broken, key=lambda k: broken[k]) if broken else "standard"
        if broken and broken[worst_name] <= int((~standard.robust).sum()):
            worst_name = "standard"
        attack = spec.build(eps, None)
        log.debug("%s %s eps=%g: robust %.3f, adaptive %.3f", label, key, eps, robust, adaptive)
        return CellResult(
            attack=attack.name, key=key, norm=spec.norm, eps=eps, robust_accuracy=robust,
            attack_success_rate=asr, adaptive_robust_accuracy=adaptive,
            adaptive_attack_success_rate=worst_asr, worst_attack=worst_name,
            variants={
                name: {"robust_accuracy": float(o.robust.float().sum()) / n,
                       "attack_success_rate": _rate(attacked & ~o.robust, count),
                       "detection_rate": _detection(o)}
                for name, o in variants.items()
            },
            gap=robust - adaptive,
            gap_flagged=robust - adaptive > 0 and robust - adaptive >= gap_threshold,
            asr_reduction=(
                None if base is None or base == 0 or worst_asr is None else 1 - worst_asr / base
            ),
            detection_rate=_detection(standard),
            adaptive_detection_rate=(
                _detection(variants["aware"]) if "aware" in variants else None
            ),
        )  # fmt: skip

    def _attack(
        self,
        candidate: Candidate,
        spec: AttackSpec,
        eps: float,
        attacked: torch.Tensor,
        target: ImageClassifier | None,
        variant: str,
    ) -> _Outcome:
        """Craft on ``target`` (None: the detector-aware attack), judge on the real row."""
        adversarial = self.images.clone()
        index = attacked.nonzero().squeeze(1)
        for offset in range(0, index.numel(), self.batch_size):
            chosen = index[offset : offset + self.batch_size]
            unit_seed = derive_seed(self.seed, f"{candidate.label}/{spec.key}/{variant}", eps,
                                    offset)  # fmt: skip
            if target is None:
                attack = self._aware(candidate, spec, eps, unit_seed)
            else:
                attack = spec.build(eps, unit_seed)
            adversarial[chosen] = run_attack(
                attack,
                candidate.model if target is None else target,
                self.images[chosen],
                self.labels[chosen],
                self.batch_size,
            )
        return self._judge(candidate, adversarial, attacked, f"{spec.key}/{variant}", eps)

    @staticmethod
    def _aware(candidate: Candidate, spec: AttackSpec, eps: float, seed: int) -> Attack:
        """The detector's own adaptive attack, with the steps of ``spec`` (default 20)."""
        entry, detector = candidate.detector_entry, candidate.detector
        assert entry is not None and entry.aware is not None and detector is not None
        return entry.aware(detector, eps, spec.norm, int(spec.params.get("steps", 20)), seed)

    def _judge(
        self,
        candidate: Candidate,
        adversarial: torch.Tensor,
        attacked: torch.Tensor,
        what: str,
        eps: float,
    ) -> _Outcome:
        with _seeded(derive_seed(self.seed, f"judge/{candidate.label}/{what}", eps, 0)):
            fooled = predict(candidate.model, adversarial, self.batch_size) != self.labels
        fooled &= attacked
        flagged = None
        if candidate.detector is not None:
            flagged = candidate.detector.detect(adversarial).cpu() & attacked
        robust = attacked & ~fooled if flagged is None else attacked & (~fooled | flagged)
        return _Outcome(robust, fooled, flagged, adversarial)


def _array_name(key: str, eps: float) -> str:
    return f"{key}@{eps!r}"


def _rate(hits: torch.Tensor, count: int) -> float | None:
    return float(hits.sum()) / count if count else None


def _detection(outcome: _Outcome) -> float | None:
    """Share of the fooling examples the detector flags (None without a detector)."""
    if outcome.flagged is None:
        return None
    fooled = int(outcome.fooled.sum())
    return float((outcome.flagged & outcome.fooled).sum()) / fooled if fooled else None


def _randomized(model: ImageClassifier) -> bool:
    return bool(getattr(model, "randomized", False))


def _norm_of(attacks: Sequence[AttackSpec]) -> Any:
    norms = {spec.norm for spec in attacks}
    return "linf" if "linf" in norms or not norms else norms.pop()


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Seed torch's CPU and CUDA generators for the block and restore them after."""
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


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


# -- verdicts ---------------------------------------------------------------------------


def best_defenses(
    rows: Sequence[RowResult], epsilons: Sequence[float], min_retention: float
) -> dict[str, dict[str, Any] | None]:
    """Per eps: the defense keeping ``min_retention`` of the clean accuracy whose smallest
    relative reduction of the (adaptive) attack success rate over the attacks is largest."""
    best: dict[str, dict[str, Any] | None] = {}
    for eps in epsilons:
        choice: dict[str, Any] | None = None
        for row in rows[1:]:
            if row.clean_retention is None or row.clean_retention < min_retention:
                continue
            reductions = [c.asr_reduction for c in row.cells if c.eps == eps]
            if not reductions or any(r is None for r in reductions):
                continue
            worst = min(r for r in reductions if r is not None)
            if worst <= 0:
                continue  # no better than no defense against some attack
            if choice is None or worst > choice["min_asr_reduction"]:
                choice = {"label": row.label, "min_asr_reduction": worst,
                          "clean_retention": row.clean_retention,
                          "attacks": [c.attack for c in row.cells if c.eps == eps]}  # fmt: skip
        best[repr(eps)] = choice
    return best


def findings(
    rows: Sequence[RowResult], best: dict[str, dict[str, Any] | None], min_retention: float
) -> list[str]:
    """The comparison in words: gaps between plain and adaptive attacks, masking warnings,
    and the best defense per eps."""
    out: list[str] = []
    for row in rows[1:]:
        flagged = sorted((c for c in row.cells if c.gap_flagged), key=lambda c: -c.gap)
        if flagged:
            out.append(_gap_sentence(row.label, flagged))
        if row.checks is not None and any(not c.passed for c in row.checks):
            warned = "; ".join(c.explanation for c in row.checks if not c.passed)
            out.append(f"Gradient-masking checks warn for {row.label}: {warned}.")
        elif row.checks is not None and not flagged:
            out.append(
                f"{row.label}: all gradient-masking checks pass and the adaptive attacks "
                "find no gap."
            )
    for eps, choice in best.items():
        if choice is None:
            out.append(
                f"At eps {float(eps):g} no defense keeps {min_retention:.0%} of the clean "
                "accuracy and lowers the attack success rate against every attack."
            )
            continue
        out.append(
            f"At eps {float(eps):g} the best defense keeping {min_retention:.0%} of the clean "
            f"accuracy is {choice['label']}: it cuts the attack success rate by at least "
            f"{choice['min_asr_reduction']:.1%} relative to the undefended model "
            f"({', '.join(choice['attacks'])}; adaptive attacks included) and keeps "
            f"{choice['clean_retention']:.1%} of the clean accuracy."
        )
    return out


def _gap_sentence(label: str, flagged: Sequence[CellResult]) -> str:
    """The largest gap in words, with both numbers; the other flagged cells after it."""
    top = flagged[0]
    plain, adaptive = top.robust_accuracy, top.adaptive_robust_accuracy
    where = f"plain {top.attack} at eps {top.eps:g} (robust accuracy {plain:.1%})"
    if plain >= 0.5 and adaptive <= plain / 2:
        text = f"{label} looks robust under {where} and collapses under"
    else:
        text = f"{label} holds up better under {where} than under"
    text += f" the adaptive attack ({top.worst_attack}: {adaptive:.1%})"
    others = ", ".join(
        f"{c.attack} eps {c.eps:g} {c.robust_accuracy:.1%} -> {c.adaptive_robust_accuracy:.1%}"
        for c in flagged[1:]
    )
    return text + (f"; also {others}." if others else ".")
