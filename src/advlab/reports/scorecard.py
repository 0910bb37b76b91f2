"""The scorecard: one run's headline numbers and a plain pass / fail for a team lead.

:func:`scorecard` reads an :class:`~advlab.results.Evaluation` (results.json) or a
:class:`~advlab.results.DefenseComparison` (defend.json) and judges it against
:class:`Thresholds`. Robust accuracy is the per-image worst case over every attack at
the chosen eps; when the run measured a defense with adaptive attacks, the lower of the
plain and adaptive numbers counts (a defense is only as good as the strongest attack on
it), and every gradient-masking warning is listed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from advlab.errors import AdvlabError, check
from advlab.reports.tables import attack_name, format_eps, format_percent
from advlab.results import (
    DefenseComparison,
    DetectionEvaluation,
    Evaluation,
    RowResult,
    TransferMatrix,
)

#: Defaults of ``advlab report --min-clean / --min-robust``.
DEFAULT_MIN_CLEAN = 0.90
DEFAULT_MIN_ROBUST = 0.50

Verdict = Literal["pass", "fail", "n/a"]
Scored = Evaluation | DefenseComparison


@dataclass(frozen=True)
class Thresholds:
    """What a run must reach to pass: fractions in [0, 1]; ``eps`` None takes the run's
    largest eps."""

    min_clean: float = DEFAULT_MIN_CLEAN
    min_robust: float = DEFAULT_MIN_ROBUST
    eps: float | None = None

    def __post_init__(self) -> None:
        for name in ("min_clean", "min_robust"):
            value = getattr(self, name)
            check(0.0 <= value <= 1.0, f"{name} must be a fraction in [0, 1], got {value}")
        check(self.eps is None or self.eps >= 0, f"eps must be >= 0, got {self.eps}")


@dataclass(frozen=True)
class Scorecard:
    """The headline numbers of one run (fractions; None where the run did not measure
    them) and the verdict, with the reasons for it."""

    run_id: str
    kind: str  # "evaluation" or "defense-comparison"
    model: str
    dataset: str
    n: int
    seed: int
    norm: str
    eps: float | None
    clean_accuracy: float | None
    robust_accuracy: float | None
    strongest_attack: str | None
    strongest_attack_accuracy: float | None
    defense: str | None
    defense_gain: float | None  # robust accuracy with the defense minus without, at eps
    warnings: list[str]
    verdict: Verdict
    reasons: list[str]
    thresholds: Thresholds = field(default_factory=Thresholds)

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def rows(self) -> list[tuple[str, str]]:
        """The scorecard as (label, display text) pairs, in the order every format shows."""
        gain = self.defense_gain
        return [
            ("Verdict", self.verdict.upper()),
            ("Model", self.model or "n/a"),
            ("Data set", f"{self.dataset} (n={self.n}, seed {self.seed})"),
            ("Clean accuracy", format_percent(self.clean_accuracy)),
            ("Eps", self.eps_text),
            ("Robust accuracy (worst case)", format_percent(self.robust_accuracy)),
            ("Strongest attack", self.strongest_attack or "n/a"),
            ("Defense", self.defense or "none"),
            ("Defense gain", "n/a" if gain is None else f"{100 * gain:+.2f} points"),
            ("Masking warnings", "; ".join(self.warnings) or "none"),
            ("Why", "; ".join(self.reasons)),
        ]

    @property
    def eps_text(self) -> str:
        return format_eps(self.eps, self.norm) if self.eps is not None else "n/a"


def read_results(data: Mapping[str, Any] | Any) -> Any:
    """The typed result of a results file's content (or a typed result itself):
    Evaluation, DefenseComparison, TransferMatrix or DetectionEvaluation."""
    if isinstance(data, Evaluation | DefenseComparison | TransferMatrix | DetectionEvaluation):
        return data
    check(isinstance(data, Mapping), "results must be the content of a results file")
    kind = data.get("kind")
    if kind == "defense-comparison":
        return DefenseComparison.from_dict(data)
    if kind == "transfer":
        return TransferMatrix.from_dict(data)
    if "detector" in data:
        return DetectionEvaluation.from_dict(data)
    return Evaluation.from_dict(data)


def scorecard(
    results: Scored | Mapping[str, Any], thresholds: Thresholds | None = None
) -> Scorecard:
    """Judge one evaluation or defense comparison against ``thresholds``."""
    results = read_results(results)
    thresholds = thresholds or Thresholds()
    if isinstance(results, Evaluation):
        return _evaluation_card(results, thresholds)
    if isinstance(results, DefenseComparison):
        return _comparison_card(results, thresholds)
    raise AdvlabError(
        f"a scorecard needs an evaluation or a defense comparison, not a {type(results).__name__}"
    )


def _evaluation_card(results: Evaluation, thresholds: Thresholds) -> Scorecard:
    available = sorted(results.worst_case) or sorted({e.eps for e in results.results})
    eps = _pick_eps(available, thresholds.eps)
    robust = None if eps is None else _finite(results.worst_case.get(eps))
    entries = [e for e in results.results if eps is not None and e.eps == eps]
    strongest = min(entries, key=lambda e: _order(e.robust_accuracy), default=None)
    if robust is None and entries:
        robust = min(_finite(e.robust_accuracy) or math.inf for e in entries)
        robust = None if math.isinf(robust) else robust
    card: dict[str, Any] = dict(
        norm=results.norms[0] if len(results.norms) == 1 else "",
        clean_accuracy=_finite(results.clean_accuracy),
        strongest_attack=None if strongest is None else attack_name(strongest),
        strongest_attack_accuracy=None if strongest is None else strongest.robust_accuracy,
        defense=None,
        defense_gain=None,
        warnings=[],
    )
    comparison = results.defense_comparison
    if comparison is not None and eps is not None and len(comparison.rows) > 1:
        defended = comparison.rows[-1]
        honest = _row_robust(defended, eps)
        if honest is not None and (robust is None or honest[0] < robust):
            robust, card["strongest_attack"] = honest[0], f"{honest[1]} (adaptive)"
            card["strongest_attack_accuracy"] = honest[0]
        card["defense"] = defended.label
        card["defense_gain"] = _gain(comparison.rows[0], defended, eps)
        card["warnings"] = _warnings(comparison)
    return _judge(results, card, eps, robust, available, thresholds)


def _comparison_card(results: DefenseComparison, thresholds: Thresholds) -> Scorecard:
    eps = _pick_eps(sorted(results.epsilons), thresholds.eps)
    check(bool(results.rows), "the defense comparison holds no rows")
    undefended = results.rows[0]
    scored = [(row, _row_robust(row, eps) if eps is not None else None) for row in results.rows]
    # The row a team lead would ship: the most robust under the strongest attack.
    best, honest = max(scored, key=lambda pair: -1.0 if pair[1] is None else pair[1][0])
    is_defense = best is not undefended
    card: dict[str, Any] = dict(
        norm=results.norm,
        clean_accuracy=_finite(best.clean_accuracy),
        strongest_attack=None if honest is None else honest[1],
        strongest_attack_accuracy=None if honest is None else honest[0],
        defense=best.label if is_defense else None,
        defense_gain=_gain(undefended, best, eps) if is_defense and eps is not None else None,
        warnings=_warnings(results),
    )
    robust = None if honest is None else honest[0]
    return _judge(results, card, eps, robust, sorted(results.epsilons), thresholds)


def _judge(
    results: Scored,
    card: dict[str, Any],
    eps: float | None,
    robust: float | None,
    available: list[float],
    thresholds: Thresholds,
) -> Scorecard:
    clean = card["clean_accuracy"]
    reasons: list[str] = []
    verdict: Verdict = "pass"
    if eps is None:
        verdict = "n/a"
        wanted = "no eps" if thresholds.eps is None else f"eps {thresholds.eps:g}"
        have = ", ".join(f"{e:g}" for e in available) or "none"
        reasons.append(f"{wanted} was evaluated (the run has eps {have})")
    elif robust is None or clean is None:
        verdict = "n/a"
        reasons.append("the run lacks the clean or robust accuracy")
    else:
        eps_text = format_eps(eps, card["norm"])
        for label, value, bound in (
            ("clean accuracy", clean, thresholds.min_clean),
            (f"robust accuracy at eps {eps_text}", robust, thresholds.min_robust),
        ):
            relation = ">=" if value >= bound else "<"
            reasons.append(f"{label} {format_percent(value)} {relation} {format_percent(bound)}")
            if value < bound:
                verdict = "fail"
    if card["warnings"] and verdict == "pass":
        reasons.append("masking warnings: the robust accuracy may be overstated")
    return Scorecard(
        run_id=results.run_id,
        kind="evaluation" if isinstance(results, Evaluation) else "defense-comparison",
        model=results.model,
        dataset=results.dataset,
        n=results.n,
        seed=results.seed,
        **card,
        eps=eps,
        robust_accuracy=robust,
        verdict=verdict,
        reasons=reasons,
        thresholds=thresholds,
    )


def _pick_eps(available: list[float], wanted: float | None) -> float | None:
    if wanted is None:
        return available[-1] if available else None
    return next((eps for eps in available if math.isclose(eps, wanted, abs_tol=1e-9)), None)


def _row_robust(row: RowResult, eps: float) -> tuple[float, str] | None:
    """The lowest robust accuracy of ``row`` at ``eps`` over plain and adaptive attacks,
    with the attack that reached it."""
    found: list[tuple[float, str]] = []
    for cell in row.cells:
        if cell.eps != eps:
            continue
        name = attack_name(cell)
        if _finite(cell.robust_accuracy) is not None:
            found.append((cell.robust_accuracy, name))
        if _finite(cell.adaptive_robust_accuracy) is not None:
            worst = cell.worst_attack
            label = name if worst in ("", "standard") else f"{name} + {worst}"
            found.append((cell.adaptive_robust_accuracy, label))
    return min(found, default=None)


def _gain(undefended: RowResult, defended: RowResult, eps: float) -> float | None:
    before, after = _row_robust(undefended, eps), _row_robust(defended, eps)
    return None if before is None or after is None else after[0] - before[0]


def _warnings(results: DefenseComparison) -> list[str]:
    out = []
    for row in results.rows:
        out += [f"{row.label}: {c.name} check warns" for c in row.checks or [] if not c.passed]
        flagged = sorted({attack_name(c) for c in row.cells if c.gap_flagged})
        if flagged:
            out.append(f"{row.label}: adaptive attacks beat plain {', '.join(flagged)}")
    return out


def _finite(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _order(value: Any) -> float:
    number = _finite(value)
    return math.inf if number is None else number
