"""The dashboard's charts (Altair, which Streamlit ships with): colour-blind-safe."""

from __future__ import annotations

from typing import Any

import altair as alt
import pandas as pd  # type: ignore[import-untyped]

#: Okabe-Ito, safe for the common colour-vision deficiencies.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]


def _colour(field: str) -> Any:
    return alt.Color(f"{field}:N", scale=alt.Scale(range=PALETTE))


def lines(
    rows: list[dict[str, Any]], x: str, y: str, series: str = "series", dash: str | None = None
) -> alt.Chart:
    """One line per ``series`` (long-form ``rows``), with points, y in [0, 1]; with ``dash``
    the lines of one colour differ by that field's dash pattern (runs overlaid)."""
    frame = pd.DataFrame(rows)
    encoding: dict[str, Any] = {"x": alt.X(f"{x}:Q"),
                                "y": alt.Y(f"{y}:Q", scale=alt.Scale(domain=[0, 1])),
                                "color": _colour(series),
                                "tooltip": list(frame.columns)}  # fmt: skip
    if dash is not None:
        encoding["strokeDash"] = alt.StrokeDash(f"{dash}:N")
    return alt.Chart(frame).mark_line(point=True).encode(**encoding).properties(height=320)


def bars(rows: list[dict[str, Any]], x: str, y: str, series: str) -> alt.Chart:
    """Grouped bars: ``y`` per ``x``, one bar per ``series``."""
    frame = pd.DataFrame(rows)
    return (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            x=alt.X(f"{x}:N"),
            xOffset=f"{series}:N",
            y=alt.Y(f"{y}:Q"),
            color=_colour(series),
            tooltip=list(frame.columns),
        )  # fmt: skip
        .properties(height=320)
    )


def histogram(rows: list[dict[str, Any]], value: str, series: str) -> alt.Chart:
    """Overlaid histograms of ``value``, one colour per ``series``."""
    frame = pd.DataFrame(rows)
    return (
        alt.Chart(frame)
        .mark_bar(opacity=0.55)
        .encode(
            x=alt.X(f"{value}:Q", bin=alt.Bin(maxbins=30)),
            y=alt.Y("count():Q", stack=None),
            color=_colour(series),
        )  # fmt: skip
        .properties(height=280)
    )


def heatmap(rows: list[dict[str, Any]], x: str, y: str, value: str) -> alt.Chart:
    """A matrix as coloured cells with their values written in."""
    frame = pd.DataFrame(rows)
    base = alt.Chart(frame).encode(x=alt.X(f"{x}:N"), y=alt.Y(f"{y}:N"))
    cells = base.mark_rect().encode(
        color=alt.Color(f"{value}:Q", scale=alt.Scale(scheme="viridis", domain=[0, 1])),
        tooltip=list(frame.columns),
    )
    text = base.mark_text(color="white").encode(text=alt.Text(f"{value}:Q", format=".2f"))
    return (cells + text).properties(height=max(160, 48 * frame[y].nunique()))
