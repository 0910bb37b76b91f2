"""The black-box part of the evaluation report: what the queries bought.

Query-based attacks (their config has a ``max_queries`` budget) get a table of query
statistics, the success rate against queries spent, and, for an attack run at several
budgets that differ in nothing else, its median distance and success rate against the
budget: the HopSkipJump curve that should fall as the budget grows, with a sentence
that says whether it did.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
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

_FONT = 8
# Options that may differ between the runs of one budget curve.
_BUDGET_FREE = frozenset({"max_queries", "seed"})


def blackbox_entries(results: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The result entries of query-based attacks (those run with a query budget)."""
    return [entry for entry in results.get("results") or [] if _budget(entry) is not None]


def budget_groups(entries: Sequence[Mapping[str, Any]]) -> list[list[Mapping[str, Any]]]:
    """Entries of one attack at one eps that differ only in their budget, by budget.

    Only groups with at least two budgets are returned: they are the budget curves.
    """
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for entry in entries:
        config = {k: v for k, v in (entry.get("config") or {}).items() if k not in _BUDGET_FREE}
        key = json.dumps([entry.get("attack"), entry.get("norm"), entry.get("eps"),
                          entry.get("targeted"), config], sort_keys=True, default=str)  # fmt: skip
        groups.setdefault(key, []).append(entry)
    curves = [sorted(group, key=lambda e: _budget(e) or 0) for group in groups.values()]
    return [group for group in curves if len({_budget(e) for e in group}) >= 2]


def budget_finding(group: Sequence[Mapping[str, Any]]) -> str:
    """One sentence on a budget curve: does the median distance shrink with the budget?"""
    first, last = group[0], group[-1]
    norm = str(first.get("norm") or "l2")
    distance = "median_l2" if norm == "l2" else "median_linf"
    low, high = first.get(distance), last.get(distance)
    name = f"{first.get('attack')} ({norm}, eps {format_eps(first.get('eps'), norm)})"
    budgets = f"from {_budget(first)} to {_budget(last)} queries"
    success = (f"success rate {format_percent(first.get('attack_success_rate'))} → "
               f"{format_percent(last.get('attack_success_rate'))}")  # fmt: skip
    if low is None or high is None:
        return f"{name}: {success} {budgets}; no successful example to measure at some budget."
    values = [e.get(distance) for e in group]
    pairs = zip(values, values[1:], strict=False)
    shrinks = all(a is not None and b is not None and b <= a for a, b in pairs)
    trend = "shrinks with every budget" if shrinks else "does NOT shrink with every budget"
    label = "L2" if norm == "l2" else "L-inf"
    return (f"{name}: median {label} {format_number(low)} → {format_number(high)} {budgets} "
            f"({trend}); {success}.")  # fmt: skip


def query_success_figure(entries: Sequence[Mapping[str, Any]]) -> Figure:
    """Share of attacked images fooled within q queries, one line per attack and eps."""
    fig = Figure(figsize=(5.2, 3.2), dpi=100)
    ax = fig.subplots()
    for entry in entries:
        curve = entry.get("query_curve") or []
        if not curve:
            continue
        steps = [[0.0, 0.0], *curve]
        label = f"{series_label(entry)}, eps {format_eps(entry.get('eps'), str(entry.get('norm')))}"
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


def budget_figure(groups: Sequence[Sequence[Mapping[str, Any]]]) -> Figure:
    """Median distance (left) and success rate (right) against the query budget."""
    fig = Figure(figsize=(8.4, 3.0), dpi=100)
    left, right = fig.subplots(1, 2)
    for group in groups:
        norm = str(group[0].get("norm") or "l2")
        distance = "median_l2" if norm == "l2" else "median_linf"
        label = f"{attack_name(group[0])} ({norm}, eps {format_eps(group[0].get('eps'), norm)})"
        budgets = [_budget(e) for e in group]
        left.plot(budgets, [e.get(distance) for e in group], marker="o", label=label)
        right.plot(budgets, [e.get("attack_success_rate") for e in group], marker="o", label=label)
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


def blackbox_section(results: Mapping[str, Any]) -> str:
    """``<section id="blackbox">``, or "" when no query-based attack was run."""
    from advlab.reports.html import _img, esc  # html imports this module

    entries = blackbox_entries(results)
    if not entries:
        return ""
    head = ("Attack", "Norm", "Eps", "Budget", "ASR", "Mean queries", "Median queries (fooled)",
            "Max spent", "Median L2", "Median Linf")  # fmt: skip
    rows = []
    for entry in entries:
        norm = str(entry.get("norm"))
        cells = (
            attack_name(entry), norm, format_eps(entry.get("eps"), norm),
            format_count(_budget(entry)), format_percent(entry.get("attack_success_rate")),
            format_count(entry.get("mean_queries")), format_count(entry.get("median_queries")),
            format_count(entry.get("max_queries_spent")), format_number(entry.get("median_l2")),
            format_number(entry.get("median_linf")),
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
        f"<figure>{_img(query_success_figure(entries), 'success rate against queries')}"
        "<figcaption>Share of the attacked images fooled within q queries.</figcaption></figure>",
    ]  # fmt: skip
    groups = budget_groups(entries)
    if groups:
        findings = "".join(f"<li>{esc(budget_finding(group))}</li>" for group in groups)
        parts += [
            f"<h3>What a bigger budget buys</h3><ul>{findings}</ul>",
            f"<figure>{_img(budget_figure(groups), 'distance and success against budget')}"
            "<figcaption>Runs of one attack that differ only in their query budget. A "
            "decision-based attack run without early stopping (hopskipjump:early_stop=false) "
            "keeps shrinking its perturbation, so its median distance should fall as the "
            "budget grows.</figcaption></figure>",
        ]
    parts.append("</section>")
    return "".join(parts)


def _budget(entry: Mapping[str, Any]) -> int | None:
    value = (entry.get("config") or {}).get("max_queries")
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None

