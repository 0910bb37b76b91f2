"""What several pages share: picking a run of a kind, and an (attack, eps) of it."""

from __future__ import annotations

from typing import Any

import streamlit as st

from advlab.dashboard.data import DashboardData, Kind, StoredRun


def pick_run(data: DashboardData, kind: Kind, key: str) -> tuple[StoredRun, Any] | None:
    """A finished run of ``kind`` chosen in a select box, with its typed result."""
    runs = [r for r in data.runs() if r.kind == kind and r.status == "finished"]
    if not runs:
        st.info(f"No finished {kind} run in {data.path} yet.")
        return None
    labels = {f"{r.run_id} · {r.model} · {r.dataset} · {r.created}": r for r in runs}
    run = labels[str(st.selectbox("Run", list(labels), key=key))]
    return run, data.result(run.run_id)


def pick_unit(pairs: list[tuple[str, float]], key: str) -> tuple[str, float]:
    """An (attack key, eps) chosen with two selectors."""
    attacks = list(dict.fromkeys(attack for attack, _ in pairs))
    left, right = st.columns(2)
    attack = str(left.selectbox("Attack", attacks, key=f"{key}_attack"))
    epsilons = [eps for a, eps in pairs if a == attack]
    eps = right.selectbox("eps", epsilons, key=f"{key}_eps", format_func=eps_label)
    return attack, float(eps if eps is not None else epsilons[0])


def eps_label(eps: float) -> str:
    """``0.0314 (8/255)``."""
    return f"{eps:.4g} ({eps * 255:.3g}/255)"
