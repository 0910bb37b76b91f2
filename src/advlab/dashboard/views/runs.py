"""Runs: every stored run with filters; two or more compared side by side."""

from __future__ import annotations

import importlib
from typing import Any

import pandas as pd  # type: ignore[import-untyped]
import streamlit as st

from advlab.dashboard import charts
from advlab.dashboard.data import (
    KINDS,
    DashboardData,
    StoredRun,
    filter_runs,
    robust_curves,
    roc_rows,
)
from advlab.dashboard.views.common import entry_table
from advlab.results import DefenseComparison, DetectionEvaluation, Evaluation, TransferMatrix


def render(data: DashboardData) -> None:
    st.header("Runs")
    runs = data.runs()
    if not runs:
        st.info(f"The store {data.path} holds no runs yet: run `advlab evaluate` first.")
        return
    left, middle, right = st.columns([2, 3, 1])
    kinds = left.multiselect("Kind", list(KINDS), key="runs_kinds")
    text = middle.text_input("Filter (id, model, data set, attack)", key="runs_text")
    finished = right.checkbox("Finished only", key="runs_finished")
    shown = filter_runs(runs, kinds, text, finished)
    st.caption(f"{len(shown)} of {len(runs)} runs")
    st.dataframe(pd.DataFrame([run.row() for run in shown]), hide_index=True)
    finished_ids = [run.run_id for run in shown if run.status == "finished"]
    picked = st.multiselect("Compare runs (pick two or more)", finished_ids, key="runs_compare")
    if len(picked) >= 2:
        compare(data, [run for run in shown if run.run_id in picked])
    elif picked:
        st.caption("Pick one more run to compare.")


def _headline(run: StoredRun, result: Any) -> dict[str, Any]:
    row: dict[str, Any] = {"run": run.run_id, "kind": run.kind, "model": run.model,
                           "data set": run.dataset, "n": run.n}  # fmt: skip
    if isinstance(result, Evaluation):
        row["clean accuracy"] = result.clean_accuracy
        for eps, value in sorted(result.worst_case.items()):
            row[f"worst case @ {eps:g}"] = value
    elif isinstance(result, DefenseComparison | DetectionEvaluation):
        row["clean accuracy"] = result.clean_accuracy
    elif isinstance(result, TransferMatrix):
        row["cells"] = len(result.cells)
    row["seconds"] = getattr(result, "seconds", None)
    return row


def scorecards(results: dict[str, Any]) -> None:
    """The report's scorecard of each run, side by side (when advlab has one)."""
    try:  # advlab.reports.scorecard arrives with `advlab report`
        module = importlib.import_module("advlab.reports.scorecard")
    except ImportError:
        return
    scored = {rid: r for rid, r in results.items() if isinstance(r, Evaluation | DefenseComparison)}
    try:
        cards = {rid: module.scorecard(result) for rid, result in scored.items()}
    except Exception as error:  # an extra on this page: it never breaks the comparison
        st.warning(f"no scorecard: {error}")
        return
    if cards:
        first = next(iter(cards.values()))
        st.markdown("**Scorecard** (default thresholds: "
                    f"clean ≥ {first.thresholds.min_clean:.0%}, "
                    f"robust ≥ {first.thresholds.min_robust:.0%} at the largest eps)")  # fmt: skip
        labels = [label for label, _ in first.rows()]
        columns = {rid: [text for _, text in card.rows()] for rid, card in cards.items()}
        st.dataframe(pd.DataFrame(columns, index=labels), key="compare_scorecards",
                     height=36 * (len(labels) + 1) + 4)  # fmt: skip


def _cell(value: Any) -> str:
    """A table cell as text: rates and times to 3 significant digits, blanks as "–"."""
    if value is None or (isinstance(value, float) and value != value):
        return "–"
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def overlay_others(results: dict[str, Any]) -> None:
    """Defense comparisons, transfer matrices and detection ROCs of several runs, overlaid."""
    defended = [{"run": rid[:8], "defense @ attack @ eps": f"{row.label} @ {c.key} @ {c.eps:g}",
                 "adaptive robust accuracy": c.adaptive_robust_accuracy}
                for rid, r in results.items() if isinstance(r, DefenseComparison)
                for row in r.rows for c in row.cells]  # fmt: skip
    if defended:
        st.markdown("**Defenses**: robust accuracy under the strongest (adaptive) attack")
        chart = charts.bars(defended, "defense @ attack @ eps", "adaptive robust accuracy", "run")
        st.altair_chart(chart, width="stretch")
    transfer = [{"run": rid[:8], "source → target @ eps": f"{c.source} → {c.target} @ {c.eps:g}",
                 "success rate": c.success_rate}
                for rid, r in results.items() if isinstance(r, TransferMatrix)
                for c in r.cells]  # fmt: skip
    if transfer:
        st.markdown("**Transfer success rate** per source, target and eps")
        chart = charts.bars(transfer, "source → target @ eps", "success rate", "run")
        st.altair_chart(chart, width="stretch")
    roc = [row for rid, r in results.items() if isinstance(r, DetectionEvaluation)
           for row in roc_rows(r, rid[:8])]  # fmt: skip
    if roc:
        st.markdown("**Detection ROC** of every run")
        chart = charts.lines(roc, "false positive rate", "true positive rate")
        st.altair_chart(chart, width="stretch")


def compare(data: DashboardData, runs: list[StoredRun]) -> None:
    st.subheader(f"Comparing {len(runs)} runs")
    results = {run.run_id: data.result(run.run_id) for run in runs}
    table = pd.DataFrame([_headline(run, results[run.run_id]) for run in runs]).set_index("run")
    st.dataframe(table.T.map(_cell), key="compare_table", height=36 * (table.shape[1] + 1) + 4)
    scorecards(results)
    overlay_others(results)
    evaluations = {rid: r for rid, r in results.items() if isinstance(r, Evaluation)}
    if not evaluations:
        return
    st.markdown("**Robust accuracy vs eps** (every attack and the worst case, all runs overlaid)")
    rows = [row for rid, ev in evaluations.items() for row in robust_curves(ev, rid[:8])]
    chart = charts.lines(rows, "eps", "robust accuracy", series="attack", dash="run")
    st.altair_chart(chart, width="stretch")
    st.markdown("**Attack success rate** per attack and eps")
    bars = [
        {
            "run": rid[:8],
            "attack @ eps": f"{e.key} @ {e.eps:g}",
            "success rate": e.attack_success_rate,
        }
        for rid, ev in evaluations.items()
        for e in ev.results
    ]
    st.altair_chart(charts.bars(bars, "attack @ eps", "success rate", "run"), width="stretch")
    columns = st.columns(len(evaluations))
    for column, (rid, ev) in zip(columns, evaluations.items(), strict=True):
        column.markdown(f"**{rid}** — {ev.model} on {ev.dataset}")
        shown = {"robust acc.": "robust_accuracy", "success": "attack_success_rate",
                 "mean Linf": "mean_linf"}  # fmt: skip
        entry_table(column, ev.results, shown)
