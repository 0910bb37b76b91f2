"""Defenses: the plain vs adaptive comparison, gradient-masking checks, detection ROC."""

from __future__ import annotations

import pandas as pd  # type: ignore[import-untyped]
import streamlit as st

from advlab.dashboard import charts
from advlab.dashboard.data import DashboardData, roc_rows
from advlab.dashboard.views.common import entry_table, pick_run
from advlab.results import DefenseComparison, DetectionEvaluation


def render(data: DashboardData) -> None:
    st.header("Defenses")
    comparison_tab, detection_tab = st.tabs(["Defense comparison", "Detection"])
    with comparison_tab:
        comparison = pick_run(data, "defend", "defend_run", DefenseComparison)
        if comparison is not None:
            show_comparison(comparison[1])
    with detection_tab:
        detection = pick_run(data, "detect", "detect_run", DetectionEvaluation)
        if detection is not None:
            show_detection(detection[1])


def show_comparison(comparison: DefenseComparison) -> None:
    for finding in comparison.findings:
        st.markdown(f"- {finding}")
    rows = [{"defense": row.label, "attack": cell.key, "eps": cell.eps,
             "plain robust acc.": cell.robust_accuracy,
             "adaptive robust acc.": cell.adaptive_robust_accuracy,
             "worst attack": cell.worst_attack, "gap": cell.gap,
             "gap flagged": cell.gap_flagged}
            for row in comparison.rows for cell in row.cells]  # fmt: skip
    st.dataframe(pd.DataFrame(rows), hide_index=True)
    bars = [{"defense": r["defense"], "robust accuracy": r[which], "attack": which}
            for r in rows for which in ("plain robust acc.", "adaptive robust acc.")]  # fmt: skip
    st.altair_chart(charts.bars(bars, "defense", "robust accuracy", "attack"), width="stretch")
    st.markdown("**Gradient-masking checks**")
    for row in comparison.rows:
        for check in row.checks or []:
            text = f"{row.label}: {check.name} — {check.explanation}"
            (st.success if check.passed else st.warning)(text)


def show_detection(evaluation: DetectionEvaluation) -> None:
    detector, fpr = evaluation.detector.get("detector"), evaluation.false_positive_rate
    st.caption(f"detector {detector}, false positive rate {fpr:.1%} "
               f"(target {evaluation.fpr_target})")  # fmt: skip
    columns = {"adaptive": "adaptive", "detection rate": "detection_rate",
               "evasion": "evasion_rate", "AUC": "auc"}  # fmt: skip
    entry_table(st, evaluation.results, columns)
    curves = roc_rows(evaluation)
    if curves:
        st.markdown("**ROC** (clean vs fooling adversarial examples)")
        st.altair_chart(charts.lines(curves, "false positive rate", "true positive rate"),
                        width="stretch")  # fmt: skip
