"""What several pages share: picking a run of a kind, an (attack, eps) of it, and a
table of its per-(attack, eps) entries."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

import pandas as pd  # type: ignore[import-untyped]
import streamlit as st

from advlab.dashboard.data import DashboardData, Kind, StoredRun

_R = TypeVar("_R")


def pick_run(
    data: DashboardData, kind: Kind, key: str, result: type[_R]
) -> tuple[StoredRun, _R] | None:
    """A finished run of ``kind`` chosen in a select box, with its typed ``result``."""
    runs = [r for r in data.runs() if r.kind == kind and r.status == "finished"]
    if not runs:
        st.info(f"No finished {kind} run in {data.path} yet.")
        return None
    labels = {f"{r.run_id} · {r.model} · {r.dataset} · {r.created}": r for r in runs}
    run = labels[str(st.selectbox("Run", list(labels), key=key))]
    typed = data.result(run.run_id)
    assert isinstance(typed, result)
    return run, typed


def run_page(
    data: DashboardData,
    title: str,
    kind: Kind,
    key: str,
    result: type[_R],
    show: Callable[[DashboardData, StoredRun, _R], None],
) -> None:
    """A page about one run: ``title``, a select box of the finished runs of ``kind``
    (:func:`pick_run`), then ``show(data, run, result)`` for the run picked."""
    st.header(title)
    picked = pick_run(data, kind, key, result)
    if picked is not None:
        show(data, *picked)


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


def entry_table(target: Any, entries: Iterable[Any], columns: Mapping[str, str]) -> None:
    """A table of a result's per-(attack, eps) entries on ``target`` (``st`` or a
    column): the attack key, eps, then each ``columns`` header with that attribute."""
    rows = [
        {"attack": e.key, "eps": e.eps, **{name: getattr(e, a) for name, a in columns.items()}}
        for e in entries
    ]
    target.dataframe(pd.DataFrame(rows), hide_index=True)
