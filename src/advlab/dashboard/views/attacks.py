"""Attack analytics of one evaluation: curves, success rates, norms, classes, confusion,
queries."""

from __future__ import annotations

import numpy as np
import pandas as pd  # type: ignore[import-untyped]
import streamlit as st

from advlab.attacks import get_attack
from advlab.dashboard import charts
from advlab.dashboard.data import DashboardData, StoredRun, confusion, robust_curves
from advlab.dashboard.views.common import pick_unit, run_page
from advlab.errors import AdvlabError
from advlab.results import Evaluation


def render(data: DashboardData) -> None:
    run_page(data, "Attack analytics", "evaluate", "attacks_run", Evaluation, show_attacks)


def show_attacks(data: DashboardData, run: StoredRun, evaluation: Evaluation) -> None:
    """The charts and tables of one evaluation run."""
    st.caption(f"{evaluation.model} on {evaluation.dataset} ({evaluation.n} images), "
               f"clean accuracy {evaluation.clean_accuracy:.1%}")  # fmt: skip
    st.markdown("**Robust accuracy vs eps** per attack, with the per-image worst case")
    st.altair_chart(charts.lines(robust_curves(evaluation), "eps", "robust accuracy", "attack"),
                    width="stretch")  # fmt: skip
    bars = [{"attack": e.key, "eps": f"{e.eps:g}", "success rate": e.attack_success_rate}
            for e in evaluation.results]  # fmt: skip
    st.markdown("**Attack success rate** (over images classified correctly)")
    st.altair_chart(charts.bars(bars, "eps", "success rate", "attack"), width="stretch")

    pairs = [(e.key, e.eps) for e in evaluation.results]
    key, eps = pick_unit(pairs, "attacks_unit")
    entry = evaluation.result(key, eps)
    outcomes = data.outcomes(run.run_id, key, eps, evaluation.n)
    clean = data.clean(run.run_id, evaluation.n)
    fooled = outcomes.success
    left, right = st.columns(2)
    with left:
        st.markdown("**Perturbation size** of the successful examples")
        norm = st.radio("Norm", ["Linf", "L2"], horizontal=True, key="attacks_norm")
        values = outcomes.linf if norm == "Linf" else outcomes.l2
        sizes = [{"norm": norm, "size": float(v)} for v in values[fooled]]
        if sizes:
            st.altair_chart(charts.histogram(sizes, "size", "norm"), width="stretch")
        else:
            st.caption("No successful example at this eps.")
    with right:
        st.markdown("**Per class**: clean vs robust accuracy")
        per_class = [{"class": name, "accuracy": value, "which": which}
                     for which, table in (("clean", evaluation.per_class_clean_accuracy),
                                          ("robust", entry.per_class_robust_accuracy))
                     for name, value in table.items() if value is not None]  # fmt: skip
        st.altair_chart(charts.bars(per_class, "class", "accuracy", "which"), width="stretch")
    names = evaluation.class_names or [str(i) for i in range(int(clean.labels.max()) + 1)]
    matrix = confusion(clean.pred, outcomes.adv_pred, len(names))
    st.markdown("**Clean vs adversarial predictions** (rows: clean, columns: adversarial)")
    st.dataframe(pd.DataFrame(matrix, index=names, columns=names))
    if entry.query_curve and _black_box(entry.attack):
        st.markdown(f"**Queries to success** (share fooled within q queries; budget "
                    f"{entry.budget or 'none'})")  # fmt: skip
        curve = [{"queries": q, "share fooled": share, "series": key}
                 for q, share in entry.query_curve]  # fmt: skip
        st.altair_chart(charts.lines(curve, "queries", "share fooled"), width="stretch")
        spent = outcomes.queries[outcomes.clean_correct]
        if spent.size:
            st.caption(f"queries per attacked image: median {np.median(spent):g}, "
                       f"max {spent.max():g}")  # fmt: skip


def _black_box(name: str) -> bool:
    """Whether attack ``name`` only queries the model (False for an unknown name)."""
    try:
        return not get_attack(name).needs_gradients
    except AdvlabError:
        return False
