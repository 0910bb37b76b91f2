"""HTML pieces the report pages share: the scorecard section and the attack / eps picker.

The picker is two ``<select>`` elements and a few lines of inline script that hide the
items (rows, figures) of other attacks or epsilons; no framework, nothing loaded. On
paper every item shows and the picker hides, so a printed page holds everything.
"""

from __future__ import annotations

from collections.abc import Sequence

from advlab.reports.scorecard import Scorecard
from advlab.reports.template import esc

_VERDICT_STYLE = {
    "pass": "background:#e3f1e6;border-color:#1e8449",
    "fail": "background:#fbeeed;border-color:#c0392b",
    "n/a": "background:#f4f6f9",
}

_PICKER_SCRIPT = """<script>
function advlabPick(id) {
  var box = document.getElementById(id), sel = box.querySelectorAll('.picker select');
  var a = sel[0].value, e = sel[1].value;
  box.querySelectorAll('[data-attack]').forEach(function (el) {
    el.hidden = (a !== '*' && el.dataset.attack !== a && el.dataset.attack !== '*') ||
                (e !== '*' && el.dataset.eps !== e && el.dataset.eps !== '*');
  });
}
</script>"""
_PICKER_STYLE = (
    "<style>.picker{margin:6px 0;font-size:13px}.picker select{margin:0 12px 0 4px}"
    "@media print{.picker{display:none}[data-attack][hidden]{display:revert!important}}"
    "</style>"
)


def picker(box_id: str, attacks: Sequence[str], epsilons: Sequence[str]) -> str:
    """Two selects (attack, eps) that filter the ``[data-attack][data-eps]`` items inside
    the element ``box_id``; an item whose value is ``*`` always shows."""

    def select(label: str, values: Sequence[str]) -> str:
        options = '<option value="*">all</option>' + "".join(
            f'<option value="{esc(v)}">{esc(v)}</option>' for v in dict.fromkeys(values)
        )
        return (
            f"<label>{esc(label)}<select onchange=\"advlabPick('{esc(box_id)}')\">"
            f"{options}</select></label>"
        )

    return (
        f'{_PICKER_STYLE}{_PICKER_SCRIPT}<div class="picker">'
        f"{select('Attack', attacks)}{select('Eps', epsilons)}</div>"
    )


def scorecard_section(cards: Sequence[Scorecard], labels: Sequence[str] = ()) -> str:
    """``<section id="scorecard">``: the verdict of each run and its headline numbers."""
    labels = list(labels) or [card.run_id or card.model for card in cards]
    head = '<th class="text"></th>' + "".join(f"<th>{esc(label)}</th>" for label in labels)
    rows = []
    for index, (name, _) in enumerate(cards[0].rows()):
        cells = []
        for card in cards:
            text = card.rows()[index][1]
            style = f' style="{_VERDICT_STYLE[card.verdict]}"' if name == "Verdict" else ""
            cells.append(f'<td class="text"{style}>{esc(text)}</td>')
        rows.append(f'<tr><th class="text">{esc(name)}</th>{"".join(cells)}</tr>')
    thresholds = cards[0].thresholds
    note = (
        f"Pass: clean accuracy at least {100 * thresholds.min_clean:g}% and worst-case robust "
        f"accuracy at least {100 * thresholds.min_robust:g}% at the eps shown "
        "(the largest the run measured unless one was chosen). With a defense, adaptive "
        "attacks count: the lowest accuracy any attack reached is the robust accuracy."
    )
    return (
        '<section id="scorecard"><h2>Scorecard</h2><div class="scroll"><table class="meta">'
        f"<tr>{head}</tr>{''.join(rows)}</table></div>"
        f'<p class="muted">{esc(note)}</p></section>'
    )
