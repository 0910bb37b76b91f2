"""Cascades: attacks run in order, each later one only on the images still robust.

Robust accuracy is a per-image worst case over an ensemble of attacks (AutoAttack): an
image counts as robust only if no attack breaks it. A :class:`Cascade` spends no work on
images whose fate is decided: one forward pass finds the images already misclassified,
then each attack runs on the images that every earlier attack failed on::

    cascade = suite("standard", eps=8 / 255)           # or Cascade({"apgd-ce": APGD(...), ...})
    result = cascade(model, images, labels)
    result.robust_accuracy, result.breakers()           # per image: "apgd-t", "clean" or None

Per image it keeps the first successful attack's example (the cascade's strongest: the
first that breaks it), which attack broke it and each attack's queries. :func:`suite`
builds the presets by name (:data:`SUITES`), each with its cost in its docstring.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from advlab.attacks.apgd import APGD, APGDT
from advlab.attacks.base import Attack, AttackResult, check_inputs
from advlab.attacks.blackbox import Square
from advlab.attacks.fab import FABT
from advlab.attacks.gradient import layout
from advlab.attacks.norms import LINF, Norm
from advlab.errors import AdvlabError, check
from advlab.models.context import frozen_eval

log = logging.getLogger(__name__)

#: ``broken_by`` of an image the cascade could not break.
ROBUST = -1
#: ``broken_by`` of an image misclassified before any attack.
CLEAN = 0


@dataclass
class CascadeResult(AttackResult):
    """An :class:`AttackResult` (``success``: not robust) with the cascade's bookkeeping.

    ``broken_by`` per image: :data:`ROBUST`, :data:`CLEAN` or ``i`` for the i-th attack
    of ``stages`` (1-based). ``queries_by_attack`` holds each attack's queries per image
    (0 where it did not run) in the attack's own unit (gradient evaluations for white-box
    attacks, forward queries for black-box ones), ``seconds_by_attack`` its wall-clock
    time; ``queries`` is their sum.
    """

    stages: tuple[str, ...] = ()
    broken_by: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.int64))
    queries_by_attack: dict[str, torch.Tensor] = field(default_factory=dict)
    seconds_by_attack: dict[str, float] = field(default_factory=dict)

    @property
    def robust_accuracy(self) -> float:
        return 1.0 - self.success_rate if self.success.numel() else 0.0

    def breakers(self) -> list[str | None]:
        """Per image: the attack that broke it, "clean", or ``None`` (robust)."""
        names = ("clean", *self.stages)
        return [None if i == ROBUST else names[i] for i in self.broken_by.tolist()]


class Cascade:
    """Run ``attacks`` (label -> untargeted attack, in order) as one worst-case attack.

    All attacks must share one eps and norm (the threat model the robust accuracy is
    about). Images no attack breaks keep the first attack's example.
    """

    def __init__(self, attacks: Mapping[str, Attack]) -> None:
        check(len(attacks) > 0, "a cascade needs at least one attack")
        for label, attack in attacks.items():
            check(isinstance(attack, Attack), f"{label}: not an attack ({type(attack).__name__})")
            check(not attack.targeted, f"{label}: a cascade needs untargeted attacks")
        first = next(iter(attacks.values()))
        for label, attack in attacks.items():
            check(attack.eps == first.eps and attack.norm == first.norm,
                  f"{label}: eps {attack.eps} ({attack.norm}) differs from the cascade's "
                  f"{first.eps} ({first.norm})")  # fmt: skip
        self.attacks = dict(attacks)
        self.eps, self.norm = first.eps, first.norm

    def config(self) -> dict[str, Any]:
        """Every attack's configuration, in order."""
        return {"cascade": [{label: a.config()} for label, a in self.attacks.items()]}

    def __repr__(self) -> str:
        return f"Cascade({', '.join(self.attacks)}; eps={self.eps}, norm={self.norm!r})"

    def __call__(
        self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor
    ) -> CascadeResult:
        check(isinstance(model, nn.Module),
              f"a cascade attacks a torch.nn.Module, got {type(model).__name__}")  # fmt: skip
        check_inputs(images, labels, model)
        labels = labels.detach().long()
        dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), images.dtype)
        images = images.detach().to(dtype)
        with frozen_eval(model), torch.no_grad():
            predictions = model(images.contiguous(memory_format=layout(images))).argmax(1)
        robust = predictions == labels
        broken_by = torch.where(robust, ROBUST, CLEAN).to(torch.int64).cpu()
        adversarial = images.clone()
        queries: dict[str, torch.Tensor] = {}
        seconds: dict[str, float] = {}
        for stage, (label, attack) in enumerate(self.attacks.items(), start=1):
            queries[label] = torch.zeros(images.shape[0], dtype=torch.int64)
            active = robust.nonzero().squeeze(1)
            if active.numel() == 0:
                seconds[label] = 0.0
                continue
            start = time.perf_counter()
            result = attack(model, images[active], labels[active])
            seconds[label] = time.perf_counter() - start
            queries[label][active.cpu()] = result.queries
            keep = result.success if stage > 1 else torch.ones_like(result.success)
            # (black-box attacks answer in float32 whatever the model's dtype)
            adversarial[active[keep]] = result.adversarial[keep].to(adversarial.dtype)
            broken = active[result.success]
            robust[broken] = False
            broken_by[broken.cpu()] = stage
            log.info("%s: %d of %d images still robust (%.1f s)", label,
                     int(robust.sum()), images.shape[0], seconds[label])  # fmt: skip
        total = torch.stack(list(queries.values())).sum(0)
        return CascadeResult(adversarial, ~robust, total, None, tuple(self.attacks),
                             broken_by, queries, seconds)  # fmt: skip


# -- presets --------------------------------------------------------------------------------
def standard(eps: float, norm: Norm = LINF, seed: int | None = 0) -> Cascade:
    """AutoAttack's standard version: APGD-CE, APGD-T, FAB-T (9 targets each), Square.

    Cost per image still robust at the end: 100 + 900 + 900 = 1,900 forward+backward
    passes (APGD-CE 100 steps, APGD-T and FAB-T 9 targets x 100 steps) and up to 5,000
    forward passes (Square, 5,000 queries), plus 26 forward passes (the cascade's clean
    check; per attack a clean check and a final check; per run its last point).
    """
    return Cascade({
        "apgd-ce": APGD(eps, 100, norm, loss="ce", seed=seed),
        "apgd-t": APGDT(eps, 100, norm, n_target_classes=9, seed=seed),
        "fab-t": FABT(eps, 100, norm, n_target_classes=9, seed=seed),
        "square": Square(eps, norm, max_queries=5000, seed=seed),
    })  # fmt: skip


def fast(eps: float, norm: Norm = LINF, seed: int | None = 0) -> Cascade:
    """APGD-CE and APGD-T (9 targets), 100 steps each: the white-box part of ``standard``.

    Cost per image still robust at the end: 1,000 forward+backward passes (100 + 9 x 100)
    plus 15 forward passes (checks and each run's last point, as in ``standard``).
    """
    return Cascade({
        "apgd-ce": APGD(eps, 100, norm, loss="ce", seed=seed),
        "apgd-t": APGDT(eps, 100, norm, n_target_classes=9, seed=seed),
    })  # fmt: skip


def quick(eps: float, norm: Norm = LINF, seed: int | None = 0) -> Cascade:
    """A cheap smoke test for CI: APGD-CE 20 steps, then APGD-T over 3 targets, 20 steps.

    Cost per image still robust at the end: 80 forward+backward passes (20 + 3 x 20) plus
    9 forward passes. Not a robustness claim: an upper bound on robust accuracy.
    """
    return Cascade({
        "apgd-ce": APGD(eps, 20, norm, loss="ce", seed=seed),
        "apgd-t": APGDT(eps, 20, norm, n_target_classes=3, seed=seed),
    })  # fmt: skip


#: The preset cascades by name (``advlab evaluate --suite NAME``).
SUITES: dict[str, Callable[..., Cascade]] = {"standard": standard, "fast": fast, "quick": quick}


def suite(name: str, eps: float, norm: Norm = LINF, seed: int | None = 0) -> Cascade:
    """The preset cascade ``name`` ("standard", "fast" or "quick") at ``eps`` in ``norm``."""
    if name not in SUITES:
        raise AdvlabError(f"unknown suite '{name}': use one of {', '.join(SUITES)}")
    return SUITES[name](eps, norm, seed)
