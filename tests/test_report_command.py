"""``advlab report`` on a demo run: all six formats, and their numbers read back equal
results.json (Markdown, LaTeX, CSV, JSON and HTML tables, the PDF's text)."""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from helpers import run_cli

from advlab.reports.scorecard import Thresholds, scorecard
from advlab.results import DefenseComparison, Evaluation
from advlab.workflows import run_demo
from advlab.workflows.report import ReportConfig, run_report

FIXTURES = Path(__file__).parent / "fixtures" / "results"


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[Path, dict, Path]:
    """A small demo run (40 images): its folder, results.json content and store."""
    root = tmp_path_factory.mktemp("demo")
    store = root / "store.sqlite"
    run_demo(str(root / "run"), n=40, store=str(store), progress=False)
    results = json.loads((root / "run" / "results.json").read_text())
    return root / "run", results, store


@pytest.fixture(scope="module")
def report(demo, tmp_path_factory) -> tuple[Path, str]:
    """``advlab report RUN_ID --store ...`` with every format (the default)."""
    _, results, store = demo
    out = tmp_path_factory.mktemp("report")
    code = _cli(["report", results["run_id"], "--store", str(store), "--out", str(out),
                 "--min-clean", "0.9", "--min-robust", "0.2", "--eps", "0.1"])  # fmt: skip
    assert code == 0
    return out, results["run_id"]


def _cli(args: list[str]) -> int:
    try:
        from advlab.cli.main import main

        main(args)
    except SystemExit as done:
        return int(done.code or 0)
    return 0


def _pct(text: str) -> float:
    return float(text.strip().rstrip("%")) / 100


def _expected(results: dict) -> list[tuple[str, float, float]]:
    """(attack key, eps, robust accuracy) of every entry of results.json."""
    return [(e["key"], e["eps"], e["robust_accuracy"]) for e in results["results"]]


def _check_rows(rows: list[list[str]], results: dict) -> None:
    """``rows`` (attack, norm, eps, robust acc. ...) as display text match results.json."""
    by_attack = {(r[0], float(r[2])): _pct(r[3]) for r in rows if re.match(r"[\d.]+$", r[2])}
    assert by_attack[("clean", 0.0)] == pytest.approx(results["clean_accuracy"], abs=5e-5)
    for entry in results["results"]:
        name = entry["attack"] + entry["key"][len(f"{entry['attack']}-{entry['norm']}") :]
        got = by_attack[(name, entry["eps"])]
        assert got == pytest.approx(entry["robust_accuracy"], abs=5e-5)
    worst = {float(r[2]): _pct(r[3]) for r in rows if r[0] == "worst case"}
    assert worst == pytest.approx({float(k): v for k, v in results["worst_case"].items()}, abs=5e-5)


def _scorecard_values(rows: list[list[str]]) -> dict[str, str]:
    return {row[0].strip(): row[1].strip() for row in rows if len(row) > 1}


def _check_scorecard(values: dict[str, str], results: dict) -> None:
    assert values["Verdict"] == "PASS"  # 100% clean, worst case at 0.1 above 20%
    assert _pct(values["Clean accuracy"]) == pytest.approx(results["clean_accuracy"], abs=5e-5)
    robust = _pct(values["Robust accuracy (worst case)"])
    assert robust == pytest.approx(results["worst_case"]["0.1"], abs=5e-5)
    assert values["Eps"] == "0.1"


def test_every_format_is_written(report):
    out, _ = report
    for name in ("report.html", "report.pdf", "report.md", "report.tex", "scorecard.csv",
                 "results.csv", "report.json", "scorecard.png", "figures/robustness.pdf",
                 "figures/robustness.svg"):  # fmt: skip
        assert (out / name).stat().st_size > 0, name


def test_json_holds_results_json_and_the_scorecard(report, demo):
    out, _ = report
    data = json.loads((out / "report.json").read_text())
    (run,) = data["runs"]
    assert run["results"] == demo[1]
    card = run["scorecard"]
    assert card["clean_accuracy"] == demo[1]["clean_accuracy"]
    assert card["robust_accuracy"] == demo[1]["worst_case"]["0.1"]
    assert card["verdict"] == "pass" and card["eps"] == 0.1
    assert run["provenance"]["Seed"] == "0" and data["environment"]["advlab version (report)"]


def test_csv_reads_back_exactly(report, demo):
    out, run_id = report
    results = demo[1]
    (card,) = list(csv.DictReader((out / "scorecard.csv").open()))
    assert card["run_id"] == run_id and card["verdict"] == "pass"
    assert float(card["clean_accuracy"]) == results["clean_accuracy"]
    assert float(card["robust_accuracy"]) == results["worst_case"]["0.1"]
    rows = list(csv.DictReader((out / "results.csv").open()))
    got = {(r["attack"], float(r["eps"])): float(r["robust_accuracy"]) for r in rows}
    for entry in results["results"]:
        name = entry["attack"] + entry["key"][len(f"{entry['attack']}-{entry['norm']}") :]
        assert got[(name, entry["eps"])] == entry["robust_accuracy"]


def _md_tables(text: str) -> list[list[list[str]]]:
    tables: list[list[list[str]]] = []
    current: list[list[str]] = []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
            if not set("".join(cells)) <= set("-: |"):
                current.append(cells)
        elif current:
            tables.append(current)
            current = []
    return tables


def test_markdown_tables_agree(report, demo):
    out, _ = report
    text = (out / "report.md").read_text()
    tables = _md_tables(text)
    _check_scorecard(_scorecard_values(tables[0][1:]), demo[1])
    _check_rows(tables[1][1:], demo[1])
    assert "![" in text and "figures/robustness.svg" in text
    assert '"seed": 0' in text  # the full configuration


def test_latex_tables_agree(report, demo):
    out, _ = report
    text = (out / "report.tex").read_text()
    assert text.count(r"\toprule") == text.count(r"\bottomrule") >= 3
    assert r"\includegraphics[width=\columnwidth]{figures/robustness.pdf}" in text
    tables = []
    for body in re.findall(r"\\midrule\n(.*?)\\bottomrule", text, re.S):
        rows = [line.rstrip(" \\").split(" & ") for line in body.strip().splitlines()]
        tables.append([[c.replace(r"\%", "%").replace(r"\_", "_") for c in r] for r in rows])
    _check_scorecard(_scorecard_values(tables[0]), demo[1])
    _check_rows(tables[1], demo[1])


class _Tables(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self.cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self.cell is not None:
            self.tables[-1][-1].append("".join(self.cell))
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)


def test_html_tables_agree_and_the_page_is_self_contained(report, demo):
    out, _ = report
    text = (out / "report.html").read_text()
    assert "http://" not in text and "https://" not in text and "<script src" not in text
    assert "data:image/png;base64," in text and "@media print" in text
    parser = _Tables()
    parser.feed(text)
    _check_scorecard(_scorecard_values(parser.tables[0][1:]), demo[1])
    _check_rows(parser.tables[1][1:], demo[1])


def test_pdf_text_agrees_and_pages_show_scorecard_table_and_figure(report, demo, tmp_path):
    if not (shutil.which("pdftotext") and shutil.which("pdftoppm")):
        pytest.skip("poppler-utils (pdftotext, pdftoppm) is not installed")
    out, _ = report
    pdf, results = out / "report.pdf", demo[1]
    pages = [subprocess.run(["pdftotext", "-layout", "-f", str(p), "-l", str(p), str(pdf), "-"],
                            capture_output=True, text=True, check=True).stdout
             for p in (1, 2, 3)]  # fmt: skip
    assert "Scorecard" in pages[0] and "PASS" in pages[0]
    for value in (results["clean_accuracy"], results["worst_case"]["0.1"]):
        assert f"{100 * value:.2f}%" in pages[0]
    assert "Robustness against eps" in pages[1] and "worst-case robust accuracy" in pages[1]
    assert "Robust acc." in pages[2]
    for entry in results["results"]:
        assert f"{100 * entry['robust_accuracy']:.2f}%" in pages[2]
    subprocess.run(["pdftoppm", "-r", "30", "-png", str(pdf), str(tmp_path / "page")], check=True)
    images = sorted(tmp_path.glob("page-*.png"))
    assert len(images) == 3
    from PIL import Image

    for image in images:  # each page shows something: not blank
        pixels = Image.open(image).convert("L")
        assert pixels.getextrema()[0] < 128


def test_several_runs_are_compared(demo, tmp_path):
    folder, results, _ = demo
    output = run_report(ReportConfig(
        runs=[str(folder), str(FIXTURES / "defend.json")], formats=["md", "csv"],
        out=str(tmp_path), min_clean=0.5, min_robust=0.1,
    ))  # fmt: skip
    assert [c.kind for c in output.scorecards] == ["evaluation", "defense-comparison"]
    header = _md_tables((tmp_path / "report.md").read_text())[0][0]
    assert header[1:] == [results["run_id"], output.scorecards[1].run_id]
    assert len(list(csv.DictReader((tmp_path / "scorecard.csv").open()))) == 2


def test_scorecard_counts_adaptive_attacks_and_lists_masking_warnings():
    comparison = DefenseComparison.read_json(FIXTURES / "defend.json")
    card = scorecard(comparison, Thresholds(min_clean=0.5, min_robust=0.1))
    assert card.defense and card.defense_gain is not None and card.warnings
    defended = comparison.row(card.defense)
    honest = min(min(c.robust_accuracy, c.adaptive_robust_accuracy)
                 for c in defended.cells if c.eps == card.eps)  # fmt: skip
    assert card.robust_accuracy == honest


def test_scorecard_verdicts():
    results = Evaluation.read_json(FIXTURES / "results.json")
    eps = max(results.worst_case)
    robust = results.worst_case[eps]
    assert scorecard(results, Thresholds(0.0, robust)).verdict == "pass"
    assert scorecard(results, Thresholds(0.0, min(1.0, robust + 0.01))).verdict == "fail"
    assert scorecard(results, Thresholds(eps=0.123)).verdict == "n/a"


def test_cli_report_errors_in_one_line(capsys, tmp_path):
    args = ["report", str(tmp_path / "missing"), "--store", str(tmp_path / "s.sqlite")]
    code, _, err = run_cli([*args, "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "no run" in err


def test_run_page_opens_with_the_scorecard_and_has_pickers_without_script(demo):
    folder, results, _ = demo
    text = (folder / "report.html").read_text()
    assert text.index('id="scorecard"') < text.index('id="run"')
    card = scorecard(results)
    assert f"{100 * card.robust_accuracy:.2f}%" in text
    assert 'type="radio"' in text and "@media print" in text
    assert not re.search(r"<script\b", text, re.IGNORECASE)
