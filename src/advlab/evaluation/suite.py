"""A preset cascade (``advlab evaluate --suite standard|fast|quick``) as one unit of a sweep.

A :class:`SuiteSpec` stands in the sweep's attack list like an
:class:`~advlab.evaluation.spec.AttackSpec`: per (eps, batch) the cascade of
:func:`advlab.attacks.cascade.suite` runs on the images the model gets right, each
later attack only on the images still robust, and the batch's rows (the first
successful example of each image) go to the store like any unit's. What a plain unit
has no column for (which attack broke each image, each attack's queries and time, the
sanity numbers of the adversarial images) is stored beside it as a part of the run,
so an interrupted suite run resumes with every number it had.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

import advlab.evaluation.metrics as metrics
from advlab.attacks.cascade import CLEAN, SUITES, Cascade, CascadeResult, suite
from advlab.attacks.norms import Norm
from advlab.errors import check
from advlab.evaluation.store import ResultStore
from advlab.results.evaluation import SuiteEvaluation


@dataclass(frozen=True)
class SuiteSpec:
    """The preset cascade ``name`` in ``norm``, an entry of the sweep's attack list."""

    name: str
    norm: str = "linf"
    params: dict[str, Any] = field(default_factory=dict)  # none: part of the sweep's shape

    def __post_init__(self) -> None:
        check(self.name in SUITES, f"unknown suite '{self.name}': use one of {', '.join(SUITES)}")
        check(self.norm in ("linf", "l2"), f"unknown norm '{self.norm}': use linf or l2")

    def build(self, eps: float, seed: int | None) -> Cascade:
        norm: Norm = "l2" if self.norm == "l2" else "linf"
        return suite(self.name, eps, norm, seed)

    @property
    def key(self) -> str:
        return f"suite:{self.name}-{self.norm}"

    def to_dict(self) -> dict[str, Any]:
        return {"name": f"suite:{self.name}", "norm": self.norm, "params": {}}


def part_name(key: str, eps: float, offset: int) -> str:
    """The stored part beside the unit (``key``, ``eps``, ``offset``)."""
    return f"{key}|{float(eps).hex()}|{offset}"


def unit_part(
    result: CascadeResult, chosen: np.ndarray, size: int
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """What a suite unit stores beside its rows: JSON data and per-image arrays over the
    batch (images not attacked count as broken by "clean" at no cost)."""
    broken_by = np.full(size, CLEAN, dtype=np.int64)
    broken_by[chosen] = result.broken_by.cpu().numpy()
    arrays = {"broken_by": broken_by}
    for label, spent in result.queries_by_attack.items():
        queries = np.zeros(size, dtype=np.int64)
        queries[chosen] = spent.cpu().numpy()
        arrays[f"queries:{label}"] = queries
    adversarial = result.adversarial.detach().float()
    finite = adversarial[torch.isfinite(adversarial)]
    data = {
        "stages": list(result.stages),
        "seconds": dict(result.seconds_by_attack),
        "nan": int(torch.isnan(adversarial.flatten(1)).any(1).sum()),
        "min": float(finite.min()) if finite.numel() else math.nan,
        "max": float(finite.max()) if finite.numel() else math.nan,
    }
    return data, arrays


def collect_suite(
    store: ResultStore, run_id: str, spec: SuiteSpec, eps: float, offsets: list[int], n: int
) -> SuiteEvaluation:
    """The suite's numbers at ``eps`` from the stored rows and parts of every batch."""
    parts = store.parts(run_id)
    stored = [parts[part_name(spec.key, eps, offset)] for offset in offsets]
    stages: list[str] = stored[0][0]["stages"] if stored else []
    broken_by = np.concatenate([arrays["broken_by"] for _, arrays in stored])
    outcomes = store.attack_rows(run_id, spec.key, eps, n)
    labels = store.clean_rows(run_id, n).labels
    robust = metrics.robust_correct(outcomes, labels)
    names = ("clean", *stages)
    counts = {name: int((broken_by == index).sum()) for index, name in enumerate(names)}
    counts["robust"] = int(robust.sum())
    queries: dict[str, int] = {}
    mean_queries: dict[str, float | None] = {}
    for label in stages:
        spent = np.concatenate([arrays[f"queries:{label}"] for _, arrays in stored])
        ran = int((spent > 0).sum())
        queries[label] = int(spent.sum())
        mean_queries[label] = float(spent.sum() / ran) if ran else None
    minima = [data["min"] for data, _ in stored if not math.isnan(data["min"])]
    maxima = [data["max"] for data, _ in stored if not math.isnan(data["max"])]
    return SuiteEvaluation(
        suite=spec.name, key=spec.key, norm=spec.norm, eps=eps,
        robust_accuracy=metrics.accuracy(robust), broken_by=counts, queries=queries,
        mean_queries=mean_queries,
        seconds={label: sum(data["seconds"].get(label, 0.0) for data, _ in stored)
                 for label in stages},
        max_linf=float(outcomes.linf.max()) if n else 0.0,
        max_l2=float(outcomes.l2.max()) if n else 0.0,
        nan=sum(int(data["nan"]) for data, _ in stored),
        min_pixel=min(minima) if minima else math.nan,
        max_pixel=max(maxima) if maxima else math.nan,
    )  # fmt: skip


def sanity_warnings(entry: SuiteEvaluation, tolerance: float = 1e-5) -> list[str]:
    """AutoAttack's sanity lines as warnings: a perturbation past eps, NaNs, pixels
    outside [0, 1]."""
    out = []
    largest = entry.max_linf if entry.norm == "linf" else entry.max_l2
    if largest > entry.eps + tolerance:
        out.append(f"{entry.key} eps {entry.eps:g}: max {entry.norm} perturbation {largest:.6g} "
                   "exceeds eps")  # fmt: skip
    if entry.nan:
        out.append(f"{entry.key} eps {entry.eps:g}: {entry.nan} adversarial images hold NaN")
    if entry.min_pixel < -tolerance or entry.max_pixel > 1 + tolerance:
        out.append(f"{entry.key} eps {entry.eps:g}: adversarial pixels span "
                   f"[{entry.min_pixel:.6g}, {entry.max_pixel:.6g}], outside [0, 1]")  # fmt: skip
    return out
