"""Transferability: the source x target success-rate matrix per attack and eps."""

from __future__ import annotations

import streamlit as st

from advlab.dashboard import charts
from advlab.dashboard.data import DashboardData, StoredRun
from advlab.dashboard.views.common import pick_unit, run_page
from advlab.results import TransferMatrix


def render(data: DashboardData) -> None:
    run_page(data, "Transferability", "transfer", "transfer_run", TransferMatrix, show_transfer)


def show_transfer(data: DashboardData, run: StoredRun, matrix: TransferMatrix) -> None:
    """The success-rate matrix of one transfer run, per attack and eps."""
    key, eps = pick_unit([(k, e) for k, _, e in matrix.runs()], "transfer_unit")
    value = str(st.radio("Value", ["success_rate", "target_adversarial_accuracy"],
                         horizontal=True, key="transfer_value"))  # fmt: skip
    values = matrix.matrix(key, eps, value)
    rows = [{"source": s, "target": t, value: v}
            for s, row in zip(matrix.sources, values, strict=True)
            for t, v in zip(matrix.targets, row, strict=True) if v is not None]  # fmt: skip
    st.altair_chart(charts.heatmap(rows, "target", "source", value), width="stretch")
    st.caption("Rows: the model the examples were crafted on; columns: the model attacked. "
               "The diagonal is white-box.")  # fmt: skip
