"""What a robustness evaluation returns: the numbers of results.json and example images."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from advlab.results.base import RunResult, build, find, mapping, records, run_fields
from advlab.results.defense import Check, DefenseComparison
from advlab.results.example import Example

#: Fields that measure time, not robustness: they differ between a resumed and a fresh run.
TIMING_FIELDS = ("seconds", "images_per_second")

#: Accuracy per class name; None for a class the run could not measure.
PerClass = dict[str, float | None]


#: The images an evaluation keeps per (attack, eps): :class:`Example` objects (with
#: the attack's ``key``), readable by name like the dicts they once were.
AttackExamples = Example


@dataclass
class AttackEvaluation:
    """One attack at one eps. Accuracies and rates are fractions in [0, 1].

    ``attack_success_rate`` is over the images classified correctly before the attack;
    the norms and ``mean_confidence`` over its successful adversarial examples;
    ``mean_queries`` and ``max_queries_spent`` over the images it ran on,
    ``median_queries`` over the images it fooled, and ``query_curve`` the share fooled
    within q queries, as [queries, share] pairs. Each is None when that set is empty.
    ``config`` is the attack's own ``config()``, whose keys differ per attack.
    """

    attack: str
    key: str
    norm: str
    eps: float
    targeted: bool
    robust_accuracy: float
    attack_success_rate: float | None
    mean_linf: float | None
    median_linf: float | None
    mean_l2: float | None
    median_l2: float | None
    mean_confidence: float | None
    mean_queries: float | None
    median_queries: float | None
    max_queries_spent: int | None
    query_curve: list[list[float]] | None
    per_class_robust_accuracy: PerClass
    seconds: float
    images_per_second: float | None
    config: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], class_names: Sequence[str] = ()
    ) -> AttackEvaluation:
        data = mapping(data, "an attack result")
        per_class = per_class_dict(data.get("per_class_robust_accuracy"), class_names)
        return build(cls, data, "an attack result", per_class_robust_accuracy=per_class)

    @property
    def budget(self) -> int | None:
        """The query budget (``max_queries`` of the config) of a query-based attack."""
        value = self.config.get("max_queries")
        return (
            int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
        )


@dataclass
class SuiteEvaluation:
    """One preset cascade (``advlab evaluate --suite``) at one eps, over all ``n`` images.

    ``robust_accuracy`` is the per-image worst case over the suite's attacks;
    ``broken_by`` counts the images each attack broke first ("clean": misclassified
    before any attack, "robust": none broke it). Per attack, ``queries`` is its total
    queries in its own unit, ``mean_queries`` per image it ran on and ``seconds`` its
    time. The sanity lines (AutoAttack's): the largest perturbation in each norm,
    ``nan`` adversarial images and the smallest and largest pixel value.
    """

    suite: str
    key: str
    norm: str
    eps: float
    robust_accuracy: float
    broken_by: dict[str, int]
    queries: dict[str, int]
    mean_queries: dict[str, float | None]
    seconds: dict[str, float]
    max_linf: float
    max_l2: float
    nan: int
    min_pixel: float
    max_pixel: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SuiteEvaluation:
        return build(cls, data, "a suite result")


@dataclass
class Evaluation(RunResult):
    """A finished robustness evaluation; :meth:`to_dict` is the results.json content.

    ``worst_case`` maps eps to the share of images no attack broke at that eps;
    ``defense_comparison`` is set when the run had a defense (``--defense``), and then
    written as the last key of results.json. ``examples`` are not part of the file.
    ``suite`` (one entry per eps), ``checks`` (the automatic gradient-masking checks) and
    ``warnings`` are set by a suite run (``--suite``) and written only when set, so the
    results.json of a run without one is as before.
    """

    FILE = "results.json"

    class_names: list[str]
    clean_accuracy: float
    per_class_clean_accuracy: PerClass
    results: list[AttackEvaluation]
    worst_case: dict[float, float]
    config: dict[str, Any]
    weights_sha256: str
    advlab_version: str
    device: str
    seconds: float
    examples: dict[tuple[str, float], AttackExamples] = field(default_factory=dict, repr=False)
    defense_comparison: DefenseComparison | None = None
    suite: list[SuiteEvaluation] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def result(self, attack: str, eps: float) -> AttackEvaluation:
        """The entry for an attack (its name or key) at ``eps``."""
        return find(self.results, attack, eps)

    @property
    def norms(self) -> list[str]:
        """The norms of the attack entries, in the order they first appear."""
        return list(dict.fromkeys(entry.norm for entry in self.results))

    def to_dict(self) -> dict[str, Any]:
        out = {
            "run_id": self.run_id,
            **run_fields(self),
            "class_names": list(self.class_names),
            "clean_accuracy": self.clean_accuracy,
            "per_class_clean_accuracy": dict(self.per_class_clean_accuracy),
            "results": [entry.to_dict() for entry in self.results],
            "worst_case": {str(eps): value for eps, value in self.worst_case.items()},
            "config": self.config,
            "seconds": self.seconds,
        }
        if self.suite:
            out["suite"] = [entry.to_dict() for entry in self.suite]
        if self.checks:
            out["checks"] = [entry.to_dict() for entry in self.checks]
        if self.suite or self.warnings:
            out["warnings"] = list(self.warnings)
        if self.defense_comparison is not None:
            out["defense_comparison"] = self.defense_comparison.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Evaluation:
        """The evaluation of a results.json (``examples`` stay empty)."""
        data = mapping(data, "results.json")
        names = [str(name) for name in data.get("class_names") or []]
        comparison = data.get("defense_comparison")
        return build(
            cls,
            data,
            "results.json",
            class_names=names,
            per_class_clean_accuracy=per_class_dict(data.get("per_class_clean_accuracy"), names),
            results=[
                AttackEvaluation.from_dict(entry, names)
                for entry in records(data, "results", "results.json")
            ],
            worst_case=_by_eps(data.get("worst_case")),
            defense_comparison=None
            if comparison is None
            else DefenseComparison.from_dict(comparison),
            suite=[SuiteEvaluation.from_dict(e) for e in records(data, "suite", "results.json")],
            checks=[Check.from_dict(e) for e in records(data, "checks", "results.json")],
            warnings=[str(text) for text in data.get("warnings") or []],
        )


def per_class_dict(value: Any, class_names: Sequence[str] = ()) -> PerClass:
    """Per-class accuracies keyed by class name: a mapping as it is (keys as text), or
    a list in class order (a class beyond ``class_names`` is keyed by its index)."""
    if isinstance(value, Mapping):
        return {str(name): accuracy for name, accuracy in value.items()}
    names = list(class_names)
    return {
        names[index] if index < len(names) else str(index): accuracy
        for index, accuracy in enumerate(value or [])
    }


def _by_eps(value: Any) -> dict[float, float]:
    """``{"0.1": 0.5}`` as ``{0.1: 0.5}``, leaving out keys that are not numbers."""
    out: dict[float, float] = {}
    for key, accuracy in mapping(value or {}, "worst_case").items():
        try:
            out[float(key)] = accuracy
        except (TypeError, ValueError):
            continue
    return out


def without_timings(results: dict[str, Any]) -> dict[str, Any]:
    """``results`` (a to_dict()) minus the timing fields, to compare two runs' numbers."""
    out = {key: value for key, value in results.items() if key not in TIMING_FIELDS}
    out["results"] = [
        {key: value for key, value in entry.items() if key not in TIMING_FIELDS}
        for entry in results.get("results", [])
    ]
    return out
