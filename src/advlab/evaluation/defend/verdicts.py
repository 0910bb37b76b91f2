"""The comparison in words: the best defense per eps, and the findings."""

from __future__ import annotations

from collections.abc import Sequence

from advlab.results import BestDefense, CellResult, RowResult


def best_defenses(
    rows: Sequence[RowResult], epsilons: Sequence[float], min_retention: float
) -> dict[str, BestDefense | None]:
    """Per eps: the defense keeping ``min_retention`` of the clean accuracy whose smallest
    relative reduction of the (adaptive) attack success rate over the attacks is largest."""
    best: dict[str, BestDefense | None] = {}
    for eps in epsilons:
        choice: BestDefense | None = None
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
    rows: Sequence[RowResult], best: dict[str, BestDefense | None], min_retention: float
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
