"""One row of a defense comparison: every attack at every eps, standard and adaptive,
each example judged on the real defended model."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import torch

from advlab.attacks import Attack
from advlab.defenses import DefendedClassifier, RescaledLogits, adaptive_model
from advlab.evaluation.defend.candidates import Candidate
from advlab.evaluation.session import predict, run_attack, seeded
from advlab.evaluation.spec import AttackSpec, derive_seed
from advlab.models import ImageClassifier
from advlab.results import CellResult, RowResult

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    """Per image, for one attack on one row: still correct (or flagged), and flagged."""

    robust: torch.Tensor
    fooled: torch.Tensor  # the classifier was fooled (flagged or not), attacked images only
    flagged: torch.Tensor | None
    adversarial: torch.Tensor


@dataclass
class RowWork:
    """What the rows share (attacks, images, settings) and what later rows take from row 0:
    its adversarial examples (replayed as the transfer attack) and success rates."""

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
        with seeded(derive_seed(self.seed, f"clean/{candidate.label}", 0.0, 0)):
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
        variants: dict[str, Outcome] = {}
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
    ) -> Outcome:
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
    ) -> Outcome:
        with seeded(derive_seed(self.seed, f"judge/{candidate.label}/{what}", eps, 0)):
            fooled = predict(candidate.model, adversarial, self.batch_size) != self.labels
        fooled &= attacked
        flagged = None
        if candidate.detector is not None:
            flagged = candidate.detector.detect(adversarial).cpu() & attacked
        robust = attacked & ~fooled if flagged is None else attacked & (~fooled | flagged)
        return Outcome(robust, fooled, flagged, adversarial)


def _array_name(key: str, eps: float) -> str:
    return f"{key}@{eps!r}"


def _rate(hits: torch.Tensor, count: int) -> float | None:
    return float(hits.sum()) / count if count else None


def _detection(outcome: Outcome) -> float | None:
    """Share of the fooling examples the detector flags (None without a detector)."""
    if outcome.flagged is None:
        return None
    fooled = int(outcome.fooled.sum())
    return float((outcome.flagged & outcome.fooled).sum()) / fooled if fooled else None


def _randomized(model: ImageClassifier) -> bool:
    return bool(getattr(model, "randomized", False))
