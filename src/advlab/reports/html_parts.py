"""HTML pieces the report pages share: the scorecard section and the attack / eps picker.

The picker is two groups of radio buttons and a few CSS rules that hide the items (rows,
figures) of other attacks or epsilons: no script, nothing loaded. On paper every item
shows and the picker hides, so a printed page holds everything.
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


class Picker:
    """Attack and eps radio buttons that filter items: CSS only (``:checked ~``), no script.

    :meth:`attrs` marks an item (a row, a figure) with its attack and eps (``*``: always
    shown); :meth:`wrap` puts the buttons before the items, which they must precede as
    siblings. On paper every item shows and the buttons hide.
    """

    def __init__(self, box: str, attacks: Sequence[str], epsilons: Sequence[str]) -> None:
        self.box = box
        self.values = {"a": list(dict.fromkeys(attacks)), "e": list(dict.fromkeys(epsilons))}

    def attrs(self, attack: str, eps: str) -> str:
        index = {key: 0 if v == "*" else self.values[key].index(v) + 1
                 for key, v in (("a", attack), ("e", eps))}  # fmt: skip
        return f' data-a="{index["a"]}" data-e="{index["e"]}"'

    def wrap(self, items: str) -> str:
        rules, buttons = [], []
        for key, label in (("a", "Attack"), ("e", "Eps")):
            group = [f'<span class="pick-label">{label}:</span>']
            for i, value in enumerate(["all", *self.values[key]]):
                ident = f"{self.box}-{key}{i}"
                checked = " checked" if i == 0 else ""
                group.append(
                    f'<input type="radio" class="pick" name="{self.box}-{key}" id="{ident}"'
                    f'{checked}><label for="{ident}">{esc(value)}</label>'
                )
                if i:
                    rules.append(f'#{ident}:checked ~ .items [data-{key}]:not([data-{key}="{i}"])'
                                 f':not([data-{key}="0"]){{display:none}}')  # fmt: skip
            buttons.append(" ".join(group) + "<br>")
        style = (
            "<style>.pick-label{font-size:13px;margin-right:4px}"
            ".pick+label{font-size:13px;margin-right:10px}" + "".join(rules) + "@media print{"
            ".pick,.pick+label,.pick-label{display:none}.items [data-a]{display:revert!important}}"
            "</style>"
        )
        return f'{style}{"".join(buttons)}<div class="items">{items}</div>'


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
