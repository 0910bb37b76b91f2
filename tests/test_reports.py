"""Reports: tables, figures and the self-contained HTML report.

The results fed in are real: FGSM and PGD run on the small MNIST model, measured and
laid out the way advlab.evaluation writes results.json.
"""

from __future__ import annotations

import base64
import csv
import io
import re
import time
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from advlab.attacks import FGSM, PGD, Attack
from advlab.errors import AdvlabError
from advlab.models import build_model
from advlab.reports import (
    Example,
    example_grid,
    figure_to_png_bytes,
    per_class_bars,
    results_table_csv,
    results_table_markdown,
    robustness_curve,
    save_figure,
    write_html_report,
)
from advlab.reports.tables import format_eps

EPSILONS = (0.05, 0.1, 0.2)
N_IMAGES = 64


# -- a real (small) evaluation, laid out as results.json ---------------------------------


def _predict(model: torch.nn.Module, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        probs = model(images).softmax(dim=1)
    conf, pred = probs.max(dim=1)
    return pred, conf


def _per_class(correct: torch.Tensor, labels: torch.Tensor, classes: int) -> list[float | None]:
    return [
        float(correct[labels == c].float().mean()) if (labels == c).any() else None
        for c in range(classes)
    ]


def _run(
    model: Any, attack: Attack, images: torch.Tensor, labels: torch.Tensor, pick: torch.Tensor
) -> tuple:
    start = time.perf_counter()
    result = attack(model, images, labels)
    seconds = time.perf_counter() - start
    pred, conf = _predict(model, result.adversarial)
    delta = (result.adversarial - images).flatten(1)
    linf, l2 = delta.abs().amax(1), delta.norm(dim=1)
    success = result.success
    entry = {
        "attack": attack.name,
        "norm": attack.norm,
        "eps": attack.eps,
        "targeted": attack.targeted,
        "robust_accuracy": float((pred == labels).float().mean()),
        "attack_success_rate": float(success.float().mean()),
        "mean_linf": float(linf[success].mean()) if success.any() else None,
        "median_linf": float(linf[success].median()) if success.any() else None,
        "mean_l2": float(l2[success].mean()) if success.any() else None,
        "median_l2": float(l2[success].median()) if success.any() else None,
        "mean_confidence": float(conf.mean()),
        "mean_queries": float(result.queries.float().mean()),
        "per_class_robust_accuracy": _per_class(pred == labels, labels, 10),
        "seconds": seconds,
        "images_per_second": len(labels) / seconds,
        "config": attack.config(),
    }
    example = Example(
        attack=attack.name,
        norm=attack.norm,
        eps=float(attack.eps or 0),
        clean=images[pick],
        adversarial=result.adversarial[pick],
        labels=labels[pick],
        clean_pred=_predict(model, images[pick])[0],
        clean_conf=_predict(model, images[pick])[1],
        adv_pred=pred[pick],
        adv_conf=conf[pick],
    )
    return entry, pred == labels, example


@pytest.fixture(scope="module")
def evaluation(small_mnist_model, mnist_sample) -> tuple[dict[str, Any], dict[str, Example]]:
    model = small_mnist_model
    # A stride, not a prefix: the demo set is sorted by class, so a prefix is all zeros.
    step = len(mnist_sample[1]) // N_IMAGES
    images, labels = mnist_sample[0][::step][:N_IMAGES], mnist_sample[1][::step][:N_IMAGES]
    assert len(set(labels.tolist())) == 10
    clean_pred, _ = _predict(model, images)
    pick = torch.stack([(labels == c).nonzero()[0, 0] for c in range(6)])  # digits 0..5
    entries, examples, worst = [], {}, {}
    for eps in EPSILONS:
        robust = clean_pred == labels
        for attack in (FGSM(eps=eps), PGD(eps=eps, steps=5, seed=0)):
            entry, correct, example = _run(model, attack, images, labels, pick)
            entries.append(entry)
            robust &= correct
            if eps == 0.1:
                examples[f"{attack.name}/linf/eps={eps}"] = example
        worst[str(eps)] = float(robust.float().mean())
    results = {
        "model": "mnist-cnn",
        "dataset": "mnist-demo",
        "split": "test",
        "n": N_IMAGES,
        "seed": 1234,
        "clean_accuracy": float((clean_pred == labels).float().mean()),
        "per_class_clean_accuracy": _per_class(clean_pred == labels, labels, 10),
        "class_names": [str(i) for i in range(10)],
        "config": {
            "model": "mnist-cnn",
            "dataset": "mnist-demo",
            "n": N_IMAGES,
            "seed": 1234,
            "attacks": [
                {"name": "fgsm", "norm": "linf", "params": {}},
                {"name": "pgd", "norm": "linf", "params": {"steps": 5}},
            ],
            "epsilons": list(EPSILONS),
            "batch_size": 128,
            "device": "cpu",
        },
        "run_id": "run-7f3a9c",
        "advlab_version": "0.1.0",
        "device": "cpu",
        "seconds": sum(e["seconds"] for e in entries),
        "results": entries,
        "worst_case": worst,
    }
    return results, examples


@pytest.fixture(scope="module")
def report(evaluation, tmp_path_factory) -> str:
    results, examples = evaluation
    path = write_html_report(results, examples, tmp_path_factory.mktemp("r") / "out" / "r.html")
    assert path.is_file()
    return path.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def rgb_example() -> Example:
    """FGSM on a random-weight CIFAR ResNet-20: real RGB adversarial images."""
    torch.manual_seed(0)
    model = build_model("cifar-resnet20").eval()
    images = torch.rand(3, 3, 32, 32)
    labels = torch.tensor([0, 1, 2])
    result = FGSM(eps=8 / 255)(model, images, labels)
    clean_pred, clean_conf = _predict(model, images)
    adv_pred, adv_conf = _predict(model, result.adversarial)
    return Example(
        "fgsm",
        "linf",
        8 / 255,
        images,
        result.adversarial,
        labels,
        clean_pred,
        clean_conf,
        adv_pred,
        adv_conf,
    )


# -- reading the HTML back, independently of the report code -----------------------------


class _Tables(HTMLParser):
    """Every <table> as a list of rows, each a list of cell texts (entities decoded)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: list[list[list[str]]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def _tables(text: str) -> list[list[list[str]]]:
    parser = _Tables()
    parser.feed(text)
    return parser.tables


def _results_table(text: str) -> list[list[str]]:
    return next(t for t in _tables(text) if t and "Robust acc." in t[0])


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


# -- the HTML report ----------------------------------------------------------------------


def test_report_is_one_self_contained_file(report, evaluation):
    assert "http://" not in report and "https://" not in report
    assert not re.search(r"<(script|link|iframe|object|embed)\b", report, re.IGNORECASE)
    assert "@import" not in report and "url(" not in report
    # Every src= is an embedded image; nothing is fetched.
    sources = re.findall(r'src="([^"]*)"', report)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    _, examples = evaluation
    assert len(sources) == 1 + len(examples) + 1  # curve, one grid per example, per class
    for source in sources:
        image = Image.open(io.BytesIO(base64.b64decode(source.split(",", 1)[1], validate=True)))
        image.verify()
        assert image.format == "PNG" and min(image.size) > 100


def test_report_shows_the_measured_numbers(report, evaluation):
    results, examples = evaluation
    rows = _results_table(report)
    assert rows[1][:5] == ["clean", "", "0", "n/a", _pct(results["clean_accuracy"])]
    for entry, row in zip(results["results"], rows[2:], strict=False):
        assert row[0] == entry["attack"] and row[1] == "linf"
        assert row[2] == f"{entry['eps']:g}" and row[3] == "no"
        assert row[4] == _pct(entry["robust_accuracy"])
        assert row[5] == _pct(entry["attack_success_rate"])
        assert row[11] == ("1" if entry["attack"] == "fgsm" else "5")
    worst_rows = [row for row in rows if row[0] == "worst case"]
    assert [(row[2], row[4]) for row in worst_rows] == [
        (f"{eps:g}", _pct(results["worst_case"][str(eps)])) for eps in EPSILONS
    ]
    # PGD at the largest eps really breaks this small model, so the table is not trivial.
    assert results["worst_case"]["0.2"] < results["clean_accuracy"] - 0.3
    for needle in ("mnist-cnn", "mnist-demo", "1234", "run-7f3a9c", "fgsm", "pgd", *examples):
        assert needle in report
    meta = next(t for t in _tables(report) if t and t[0][0] == "Model")
    assert dict(row for row in meta if len(row) == 2)["Seed"] == "1234"


def test_report_lists_settings_and_per_class_accuracy(report, evaluation):
    results, _ = evaluation
    settings = {row[0]: row[1] for table in _tables(report) for row in table if len(row) == 2}
    assert settings["attacks[1].params.steps"] == "5"
    assert settings["batch_size"] == "128"
    per_class = next(t for t in _tables(report) if t and t[0][0] == "Class")
    assert len(per_class) == 1 + 10 and len(per_class[0]) == 2 + len(results["results"])
    for c, row in enumerate(per_class[1:]):
        value = results["per_class_clean_accuracy"][c]
        assert row[0] == str(c) and row[1] == _pct(value)
        assert row[-1] == _pct(results["results"][-1]["per_class_robust_accuracy"][c])


def test_untrusted_strings_are_escaped(evaluation, tmp_path):
    results, examples = evaluation
    evil = "<script>alert(1)</script>"
    hostile = {
        **results,
        "model": evil,
        "run_id": '"><img src=x onerror=alert(2)>',
        "class_names": ["<b>zero</b>", *results["class_names"][1:]],
        "config": {**results["config"], "note": "</pre><iframe>"},
        "results": [{**results["results"][0], "attack": "<i>fgsm</i>"}, *results["results"][1:]],
    }
    key = next(iter(examples))
    text = write_html_report(
        hostile, {"<svg onload=alert(3)>": examples[key]}, tmp_path / "evil.html"
    ).read_text()
    for raw in (evil, "<img src=x", "<b>zero", "<iframe>", "<i>fgsm", "<svg"):
        assert raw not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "&lt;i&gt;fgsm&lt;/i&gt;" in text and "&lt;b&gt;zero&lt;/b&gt;" in text
    assert _results_table(text)[2][0] == "<i>fgsm</i>"  # escaped, yet reads back unchanged


def test_report_survives_missing_numbers(tmp_path):
    results = {
        "model": "m",
        "dataset": "d",
        "n": 3,
        "seed": 0,
        "clean_accuracy": None,
        "results": [
            {
                "attack": "pgd",
                "norm": "l2",
                "eps": 0.5,
                "targeted": True,
                "robust_accuracy": None,
                "attack_success_rate": float("nan"),
            }
        ],
        "worst_case": {},
    }
    text = write_html_report(results, {}, tmp_path / "r.html").read_text()
    row = _results_table(text)[2]
    assert row[:6] == ["pgd", "l2", "0.5", "yes", "n/a", "n/a"]
    assert "No examples were kept" in text


def test_report_reads_the_evaluation_runners_layout(evaluation, tmp_path):
    # advlab.evaluation writes per-class accuracies as {class name: value} for the classes
    # present, adds an attack ``key`` and keys its examples by (key, eps).
    results, examples = evaluation
    names = results["class_names"]

    def as_dict(values: list[float | None]) -> dict[str, float]:
        return {names[c]: v for c, v in enumerate(values) if v is not None and c != 9}

    entries = [
        {**e, "key": "pgd-linf[steps=5]" if e["attack"] == "pgd" else "fgsm-linf",
         "per_class_robust_accuracy": as_dict(e["per_class_robust_accuracy"])}
        for e in results["results"]
    ]  # fmt: skip
    runner_results = {
        **results,
        "per_class_clean_accuracy": as_dict(results["per_class_clean_accuracy"]),
        "results": entries,
        "weights_sha256": "ab12cd",
    }
    pgd = examples["pgd/linf/eps=0.1"]
    runner_examples = {("pgd-linf[steps=5]", 0.1): {**vars(pgd), "key": "pgd-linf[steps=5]"}}
    text = write_html_report(runner_results, runner_examples, tmp_path / "r.html").read_text()
    rows = _results_table(text)
    assert [row[0] for row in rows[2:4]] == ["fgsm", "pgd[steps=5]"]
    assert "<h3>pgd-linf[steps=5] eps=0.1</h3>" in text and "ab12cd" in text
    per_class = next(t for t in _tables(text) if t and t[0][0] == "Class")
    assert per_class[0][-1] == "pgd[steps=5] (linf) eps=0.2"
    for c, row in enumerate(per_class[1:]):
        expected = results["results"][-1]["per_class_robust_accuracy"][c]
        assert row[-1] == (_pct(expected) if c != 9 else "n/a")
    assert "| pgd[steps=5] |" in results_table_markdown(runner_results)


def test_report_path_must_be_a_file(evaluation, tmp_path):
    with pytest.raises(AdvlabError, match="is a folder"):
        write_html_report(evaluation[0], {}, tmp_path)


# -- figures ------------------------------------------------------------------------------


def test_robustness_curve_plots_every_attack_and_the_worst_case(evaluation):
    results, _ = evaluation
    fig = robustness_curve(results)
    (ax,) = fig.axes
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert set(lines) == {"fgsm (linf)", "pgd (linf)", "worst case", "clean"}
    pgd = [e["robust_accuracy"] for e in results["results"] if e["attack"] == "pgd"]
    assert list(lines["pgd (linf)"].get_xdata()) == [0.0, *EPSILONS]
    assert list(lines["pgd (linf)"].get_ydata()) == [results["clean_accuracy"], *pgd]
    worst = lines["worst case"]
    assert worst.get_linewidth() > lines["pgd (linf)"].get_linewidth()
    assert list(worst.get_ydata())[1:] == [results["worst_case"][str(e)] for e in EPSILONS]
    assert Image.open(io.BytesIO(figure_to_png_bytes(fig))).format == "PNG"


def test_robustness_curve_gives_each_norm_its_own_panel(evaluation):
    results, _ = evaluation
    l2 = {**results["results"][0], "attack": "pgd", "norm": "l2", "eps": 1.0}
    fig = robustness_curve({**results, "results": [*results["results"], l2]})
    assert len(fig.axes) == 2
    assert [line.get_label() for line in fig.axes[1].get_lines()] == ["pgd (l2)", "clean"]


def test_example_grid_grayscale(evaluation):
    _, examples = evaluation
    example = examples["pgd/linf/eps=0.1"]
    names = [f"digit {i}" for i in range(10)]
    fig = example_grid(example, names, amplify=4.0)
    assert len(fig.axes) == 3 * 6
    clean, adv = example.clean.numpy(), example.adversarial.numpy()
    first, middle, last = fig.axes[0], fig.axes[6], fig.axes[12]
    np.testing.assert_allclose(first.images[0].get_array(), clean[0, 0])
    np.testing.assert_allclose(middle.images[0].get_array(), adv[0, 0])
    np.testing.assert_allclose(
        last.images[0].get_array(), np.clip(0.5 + 4.0 * (adv[0, 0] - clean[0, 0]), 0, 1), atol=1e-6
    )
    label, pred = int(example.labels[0]), int(example.adv_pred[0])
    assert f"true digit {label}" in first.get_title()
    assert f"pred digit {pred} {100 * float(example.adv_conf[0]):.0f}%" == middle.get_title()
    assert middle.get_ylabel() == "adversarial" and "x4" in last.get_ylabel()


def test_example_grid_rgb_from_a_mapping(rgb_example):
    fields = {name: getattr(rgb_example, name) for name in rgb_example.__dataclass_fields__}
    fig = example_grid(fields, ["plane", "car", "bird"] + ["x"] * 7)
    assert len(fig.axes) == 9
    shown = fig.axes[3].images[0].get_array()
    np.testing.assert_allclose(shown, rgb_example.adversarial[0].permute(1, 2, 0).numpy())
    # Auto amplification stretches the largest change to the full grey range.
    delta = (rgb_example.adversarial - rgb_example.clean).numpy()
    perturbation = np.stack([np.asarray(ax.images[0].get_array()) for ax in fig.axes[6:]])
    assert abs(perturbation.max() - 1.0) < 1e-5 or abs(perturbation.min()) < 1e-5
    assert np.abs(delta).max() == pytest.approx(8 / 255, rel=1e-4)
    assert "fgsm (linf, eps=8/255)" == fig.get_suptitle()
    assert "true plane" in fig.axes[0].get_title()


def test_example_rejects_malformed_input(rgb_example):
    with pytest.raises(AdvlabError, match="lacks the fields adv_pred"):
        example_grid(
            {
                "attack": "x",
                "norm": "linf",
                "eps": 0.1,
                "clean": rgb_example.clean,
                "adversarial": rgb_example.adversarial,
                "labels": [0, 1, 2],
                "clean_pred": [0, 1, 2],
                "clean_conf": [1, 1, 1],
                "adv_conf": [1, 1, 1],
            }
        )
    bad = Example(
        "x",
        "linf",
        0.1,
        rgb_example.clean,
        rgb_example.adversarial[:, :, :16],
        [0, 1, 2],
        [0, 1, 2],
        [1, 1, 1],
        [0, 1, 2],
        [1, 1, 1],
    )
    with pytest.raises(AdvlabError, match="differ in shape"):
        example_grid(bad)


def test_per_class_bars_show_clean_and_each_attack_at_its_largest_eps(evaluation):
    results, _ = evaluation
    fig = per_class_bars(results)
    (ax,) = fig.axes
    labels = [c.get_label() for c in ax.containers]
    assert labels == ["clean", "fgsm (linf) eps=0.2", "pgd (linf) eps=0.2"]
    heights = [bar.get_height() for bar in ax.containers[2]]
    expected = results["results"][-1]["per_class_robust_accuracy"]
    np.testing.assert_allclose(heights, [np.nan if v is None else v for v in expected])
    many = {
        "class_names": [f"c{i}" for i in range(100)],
        "per_class_clean_accuracy": [i / 100 for i in range(100)],
    }
    assert len(per_class_bars(many, max_classes=20).axes[0].containers[0]) == 20


def test_save_figure_by_suffix(evaluation, tmp_path):
    fig = robustness_curve(evaluation[0])
    assert save_figure(fig, tmp_path / "a" / "curve.png").read_bytes()[:4] == b"\x89PNG"
    assert save_figure(fig, tmp_path / "curve.PDF").read_bytes()[:5] == b"%PDF-"
    with pytest.raises(AdvlabError, match="use a .png, .pdf, .svg"):
        save_figure(fig, tmp_path / "curve.jpg")


# -- tables -------------------------------------------------------------------------------


def test_markdown_table_holds_the_numbers(evaluation):
    results, _ = evaluation
    lines = results_table_markdown(results).splitlines()
    assert lines[0].startswith("| Attack | Norm | Eps | Targeted | Robust acc. | ASR |")
    assert len(lines) == 2 + 1 + len(results["results"]) + len(EPSILONS)
    cells = [[c.strip() for c in line.strip("|").split(" | ")] for line in lines[2:]]
    assert cells[0][4] == _pct(results["clean_accuracy"])
    for entry, row in zip(results["results"], cells[1:], strict=False):
        assert row[0] == entry["attack"] and row[4] == _pct(entry["robust_accuracy"])
    piped = {**results, "model": "x", "results": [{**results["results"][0], "attack": "a|b"}]}
    assert "| a\\|b |" in results_table_markdown(piped)


def test_csv_table_reads_back_exactly(evaluation):
    results, _ = evaluation
    rows = list(csv.DictReader(io.StringIO(results_table_csv(results))))
    assert rows[0]["attack"] == "clean"
    assert float(rows[0]["robust_accuracy"]) == results["clean_accuracy"]
    for entry, row in zip(results["results"], rows[1:], strict=False):
        assert row["attack"] == entry["attack"] and float(row["eps"]) == entry["eps"]
        assert float(row["robust_accuracy"]) == entry["robust_accuracy"]
        assert float(row["mean_queries"]) == entry["mean_queries"]
        assert row["targeted"] == "false"
    worst = [row for row in rows if row["attack"] == "worst case"]
    assert [float(r["robust_accuracy"]) for r in worst] == list(results["worst_case"].values())
    formula = {**results, "results": [{**results["results"][0], "attack": "=cmd()"}]}
    assert "'=cmd()" in results_table_csv(formula)


@pytest.mark.parametrize(
    ("eps", "norm", "text"),
    [
        (8 / 255, "linf", "8/255"),
        (0.1, "linf", "0.1"),
        (0.2, "linf", "0.2"),
        (0.5, "l2", "0.5"),
        (None, "linf", "n/a"),
    ],
)
def test_format_eps(eps, norm, text):
    assert format_eps(eps, norm) == text


def test_figures_need_no_display(evaluation, tmp_path: Path):
    # Building figures must not touch pyplot's global state (no GUI, no leaked figures).
    import matplotlib.pyplot as plt

    before = len(plt.get_fignums())
    robustness_curve(evaluation[0])
    per_class_bars(evaluation[0])
    assert len(plt.get_fignums()) == before
