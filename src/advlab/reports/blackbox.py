"""The black-box part of the evaluation report: what the queries bought.

Query-based attacks (their config has a ``max_queries`` budget) get a table of query
statistics, the success rate against queries spent, and, for an attack run at several
budgets that differ in nothing else, its median distance and success rate against the
budget: the HopSkipJump curve that should fall as the budget grows, with a sentence
that says whether it did.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from advlab.reports.figures import series_label
from advlab.reports.tables import (
    attack_name,
    format_count,
    format_eps,
    format_number,
    format_percent,
)
from advlab.reports.template import esc, img
from advlab.results import AttackEvaluation, Evaluation

_FONT = 8
# Options that may differ between the runs of one budget curve.
_BUDGET_FREE = frozenset({"max_queries", "seed"})
Entries = Iterable[AttackEvaluation | Mapping[str, Any]]


def blackbox_entries(results: Evaluation) -> list[AttackEvaluation]:
    """The result entries of query-based attacks (those run with a query budget)."""
    return [entry for entry in results.results if entry.budget is not None]


def budget_groups(entries: Entries) -> list[list[AttackEvaluation]]:
    """Entries of one attack at one eps that differ only in their budget, by budget.

    Only groups with at least two budgets are returned: they are the budget curves.
    """
    groups: dict[str, list[AttackEvaluation]] = {}
    for entry in _typed(entries):
        if entry.budget is None:
            continue
        config = {k: v for k, v in entry.config.items() if k not in _BUDGET_FREE}
        key = json.dumps([entry.attack, entry.norm, entry.eps, entry.targeted, config],
                         sort_keys=True, default=str)  # fmt: skip
        groups.setdefault(key, []).append(entry)
    curves = [sorted(group, key=lambda e: e.budget or 0) for group in groups.values()]
    return [group for group in curves if len({e.budget for e in group}) >= 2]


def budget_finding(group: Entries) -> str:
    """One sentence on a budget curve: does the median distance shrink with the budget?"""
    group = _typed(group)
    first, last = group[0], group[-1]
    norm = first.norm or "l2"
    values = [_distance(e) for e in group]
    low, high = values[0], values[-1]
    name = f"{first.attack} ({norm}, eps {format_eps(first.eps, norm)})"
    budgets = f"from {first.budget} to {last.budget} queries"
    success = (f"success rate {format_percent(first.attack_success_rate)} → "
               f"{format_percent(last.attack_success_rate)}")  # fmt: skip
    if low is None or high is None:
        return f"{name}: {success} {budgets}; no successful example to measure at some budget."
    pairs = zip(values, values[1:], strict=False)
    shrinks = all(a is not None and b is not None and b <= a for a, b in pairs)
    trend = "shrinks with every budget" if shrinks else "does NOT shrink with every budget"
    label = "L2" if norm == "l2" else "L-inf"
    return (f"{name}: median {label} {format_number(low)} → {format_number(high)} {budgets} "
            f"({trend}); {success}.")  # fmt: skip


def query_success_figure(entries: Sequence[AttackEvaluation]) -> Figure:
    """Share of attacked images fooled within q queries, one line per attack and eps."""
    fig = Figure(figsize=(5.2, 3.2), dpi=100)
    ax = fig.subplots()
    for entry in entries:
        if not entry.query_curve:
            continue
        steps = [[0.0, 0.0], *entry.query_curve]
        label = f"{series_label(entry)}, eps {format_eps(entry.eps, entry.norm)}"
        ax.step([q for q, _ in steps], [s for _, s in steps], where="post", label=label)
    ax.set_xlabel("queries spent", fontsize=_FONT)
    ax.set_ylabel("images fooled", fontsize=_FONT)
    ax.set_ylim(-0.02, 1.02)
    ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0))
    ax.tick_params(labelsize=_FONT)
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend(fontsize=_FONT - 1, loc="lower right")
    fig.tight_layout()
    return fig


def budget_figure(groups: Sequence[Sequence[AttackEvaluation]]) -> Figure:
    """Median distance (left) and success rate (right) against the query budget."""
    fig = Figure(figsize=(8.4, 3.0), dpi=100)
    left, right = fig.subplots(1, 2)
    for group in groups:
        norm = group[0].norm or "l2"
        label = f"{attack_name(group[0])} ({norm}, eps {format_eps(group[0].eps, norm)})"
        budgets = [e.budget for e in group]
        left.plot(budgets, [_distance(e) for e in group], marker="o", label=label)
        right.plot(budgets, [e.attack_success_rate for e in group], marker="o", label=label)
    left.set_ylabel("median distance of the successes", fontsize=_FONT)
    right.set_ylabel("attack success rate", fontsize=_FONT)
    right.set_ylim(-0.02, 1.02)
    right.yaxis.set_major_formatter(PercentFormatter(xmax=1.0))
    for ax in (left, right):
        ax.set_xscale("log")
        ax.set_xlabel("query budget per image", fontsize=_FONT)
        ax.tick_params(labelsize=_FONT)
        ax.grid(alpha=0.3)
    left.legend(fontsize=_FONT - 1)
    fig.tight_layout()
    return fig


def blackbox_section(results: Evaluation) -> str:
    """``<section id="blackbox">``, or "" when no query-based attack was run."""
    entries = blackbox_entries(results)
    if not entries:
        return ""
    head = ("Attack", "Norm", "Eps", "Budget", "ASR", "Mean queries", "Median queries (fooled)",
            "Max spent", "Median L2", "Median Linf")  # fmt: skip
    rows = []
    for entry in entries:
        cells = (
            attack_name(entry), entry.norm, format_eps(entry.eps, entry.norm),
            format_count(entry.budget), format_percent(entry.attack_success_rate),
            format_count(entry.mean_queries), format_count(entry.median_queries),
            format_count(entry.max_queries_spent), format_number(entry.median_l2),
            format_number(entry.median_linf),
        )  # fmt: skip
        rows.append("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in cells) + "</tr>")
    parts = [
        '<section id="blackbox"><h2>Black-box attacks</h2>',
        '<div class="scroll"><table><tr>',
        "".join(f"<th>{esc(h)}</th>" for h in head),
        "</tr>", *rows, "</table></div>",
        '<p class="muted">Budget: the most queries an attack may spend on one image (it never '
        "spends more). Mean queries are over the attacked images; the median is over the "
        "images it fooled; distances are over the successful examples.</p>",
        f"<figure>{img(query_success_figure(entries), 'success rate against queries')}"
        "<figcaption>Share of the attacked images fooled within q queries.</figcaption></figure>",
    ]  # fmt: skip
    groups = budget_groups(entries)
    if groups:
        findings = "".join(f"<li>{esc(budget_finding(group))}</li>" for group in groups)
        parts += [
            f"<h3>What a bigger budget buys</h3><ul>{findings}</ul>",
            f"<figure>{img(budget_figure(groups), 'distance and success against budget')}"
            "<figcaption>Runs of one attack that differ only in their query budget. A "
            "decision-based attack run without early stopping (hopskipjump:early_stop=false) "
            "keeps shrinking its perturbation, so its median distance should fall as the "
            "budget grows.</figcaption></figure>",
        ]
    parts.append("</section>")
    return "".join(parts)


def _distance(entry: AttackEvaluation) -> float | None:
    """The median distance of the successes, in the attack's own norm."""
    return entry.median_l2 if (entry.norm or "l2") == "l2" else entry.median_linf


def _typed(entries: Entries) -> list[AttackEvaluation]:
    return [
        entry if isinstance(entry, AttackEvaluation) else AttackEvaluation.from_dict(entry)
        for entry in entries
    ]
