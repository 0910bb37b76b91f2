"""The page skeleton and inline stylesheet of the HTML reports, and how a page is written.

Everything lives in the one file: no external stylesheet, script, font or image, so
the report opens offline, attaches to an e-mail and archives with the results. Every
report (evaluation, defenses, detection, transfer) checks its arguments, titles and
signs its page the same way, so that is done here once.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

import advlab
from advlab.errors import check
from advlab.reports.figures import figure_to_png_bytes

STYLE = """
:root { --ink: #1d2430; --muted: #5c6675; --line: #d9dee6; --band: #f4f6f9;
        --accent: #2f5fa7; --bad: #c0392b; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: var(--ink); background: #fff; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 28px 48px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 32px 0 10px; padding-bottom: 4px;
     border-bottom: 2px solid var(--line); }
h3 { font-size: 14px; margin: 20px 0 6px; }
nav { margin: 10px 0 18px; font-size: 13px; }
nav a { color: var(--accent); margin-right: 14px; text-decoration: none; }
.muted { color: var(--muted); }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 14px 0; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 8px 14px;
        background: var(--band); min-width: 150px; }
.card .value { font-size: 20px; font-weight: 600; }
.card .label { font-size: 12px; color: var(--muted); }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: 13px; margin: 6px 0; }
th, td { border: 1px solid var(--line); padding: 3px 8px; text-align: right;
         white-space: nowrap; }
th { background: var(--band); font-weight: 600; }
td.text, th.text { text-align: left; }
table.meta td, table.meta th { text-align: left; white-space: normal; }
table.meta th { width: 200px; }
tr.clean td { background: #eef6ee; }
tr.worst td { background: #fbeeed; font-weight: 600; }
td.wrap { white-space: normal; text-align: left; font-family: ui-monospace, monospace;
          font-size: 12px; }
pre { background: var(--band); border: 1px solid var(--line); border-radius: 4px;
      padding: 10px; overflow-x: auto; font-size: 12px; }
figure { margin: 8px 0 16px; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); }
figcaption { font-size: 12px; color: var(--muted); }
footer { margin-top: 40px; font-size: 12px; color: var(--muted); }
"""


def page(title: str, body: str) -> str:
    """A complete HTML5 document; ``title`` and ``body`` must already be escaped."""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{title}</title>\n<style>{STYLE}</style>\n</head>\n"
        f"<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n"
    )


def esc(value: Any) -> str:
    """``value`` as text, safe inside HTML element content and attribute values."""
    return html.escape(str(value), quote=True)


def meta_table(fields: Iterable[tuple[str, Any]]) -> str:
    """A two-column ``<table class="meta">`` of ``(name, value)`` pairs, escaped."""
    rows = "".join(f"<tr><th>{esc(key)}</th><td>{esc(value)}</td></tr>" for key, value in fields)
    return f'<table class="meta">{rows}</table>'


def now() -> str:
    """The current time as reports print it (UTC, to the minute)."""
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def report_path(path: str | Path, name: str = "report.html") -> Path:
    """``path`` as a file path, once it is not a folder (``name``: the file to suggest)."""
    path = Path(path).expanduser()
    check(not path.is_dir(), f"{path} is a folder: give a file name such as {path}/{name}")
    return path


def img(figure: Figure, alt: str) -> str:
    """``figure`` as an ``<img>`` holding its PNG as a data URI (nothing outside the file)."""
    data = base64.b64encode(figure_to_png_bytes(figure)).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{esc(alt)}">'


def cards(items: Iterable[tuple[str, str]]) -> str:
    """``<div class="cards">``: one card per ``(label, value)``, the value large."""
    inner = "".join(
        f'<div class="card"><div class="value">{esc(value)}</div>'
        f'<div class="label">{esc(label)}</div></div>'
        for label, value in items
    )
    return f'<div class="cards">{inner}</div>'


def json_details(value: Any, summary: str = "Configuration as JSON") -> str:
    """A folded ``<details>`` showing ``value`` as indented JSON."""
    dumped = json.dumps(value, indent=2, default=str)
    return f"<details><summary>{esc(summary)}</summary><pre>{esc(dumped)}</pre></details>"


def run_facts(results: Any, model: str = "Model") -> list[tuple[str, Any]]:
    """The facts a run's table opens with: the ``model`` (a label), the data set, the
    number of images, the seed and the device."""
    return [
        (model, results.model),
        ("Data set", f"{results.dataset} ({results.split})"),
        ("Images (n)", results.n),
        ("Seed", results.seed),
        ("Device", results.device),
    ]


def run_section(fields: Iterable[tuple[str, Any]], before: str = "") -> str:
    """``<section id="run">``: ``before`` (e.g. cards), then the run's facts as a table."""
    return f'<section id="run"><h2>Run</h2>{before}{meta_table(fields)}</section>'


def write_run_page(
    path: Path,
    title: str,
    facts: Iterable[tuple[str, Any]],
    sections: Sequence[str],
    settings: Any,
    lead: Sequence[str] = (),
) -> str:
    """Write the page of one run (:func:`write_page`): ``lead`` (e.g. its scorecard), the
    run's ``facts``, ``sections``, then ``settings`` as folded JSON."""
    settings_html = f'<section id="settings"><h2>Settings</h2>{json_details(settings)}</section>'
    return write_page(path, title, [*lead, run_section(facts), *sections, settings_html])


def write_page(path: Path, title: str, sections: Sequence[str]) -> str:
    """Write the page ``title`` (a heading), ``sections`` (HTML) and the advlab footer to
    ``path``, creating its folder; returns the page's text."""
    footer = f"<footer>Written by advlab {esc(advlab.__version__)} on {esc(now())}.</footer>"
    body = "\n".join([f"<h1>{esc(title)}</h1>", *sections, footer])
    path.parent.mkdir(parents=True, exist_ok=True)
    text = page(esc(title), body)
    # Through a temporary file: a page rewritten while open (training) is never half there.
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return text
