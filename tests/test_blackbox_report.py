"""The black-box section of the evaluation report, from a real run on a small MNIST model."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from advlab.data import ImageDataset
from advlab.evaluation import AttackSpec, ResultStore, evaluate
from advlab.evaluation.metrics import query_curve
from advlab.reports import write_html_report
from advlab.reports.blackbox import budget_finding, budget_groups

N = 8
BUDGETS = (150, 600)


def test_query_curve_is_the_share_fooled_within_q_queries() -> None:
    queries = np.array([5, 10, 10, 100, 1000])
    fooled = np.array([True, True, True, True, False])
    assert query_curve(queries, fooled) == [[5.0, 0.2], [10.0, 0.6], [100.0, 0.8]]
    assert query_curve(queries, np.zeros(5, dtype=bool)) == [[1000.0, 0.0]]
    assert query_curve(np.array([], dtype=np.int64), np.array([], dtype=bool)) is None
    many = np.arange(1, 10_001)
    assert len(query_curve(many, many % 2 == 0) or []) <= 24


@pytest.fixture(scope="module")
def hopskipjump_run(small_mnist_model, mnist_sample, tmp_path_factory):
    images, labels = mnist_sample
    pixels = (images[:N] * 255).round().to(torch.uint8)
    data = ImageDataset("mnist-sample", "test", pixels, labels[:N].clone(),
                        [str(i) for i in range(10)])  # fmt: skip
    # L2 eps 10 admits every example HopSkipJump finds, and without early stopping it keeps
    # shrinking them: the median distance is what the budget bought.
    attacks = [
        AttackSpec("hopskipjump", norm="l2", params={"max_queries": b, "early_stop": False})
        for b in BUDGETS
    ]
    store = ResultStore(tmp_path_factory.mktemp("bb") / "results.sqlite")
    evaluation = evaluate(small_mnist_model, data, attacks, [10.0], batch_size=N, store=store,
                          progress=False)  # fmt: skip
    return evaluation.to_dict()


def test_results_carry_query_statistics(hopskipjump_run) -> None:
    small, large = hopskipjump_run["results"]
    for entry, budget in zip((small, large), BUDGETS, strict=True):
        assert entry["config"]["max_queries"] == budget
        assert 0 < entry["max_queries_spent"] <= budget
        assert entry["median_queries"] <= entry["max_queries_spent"]
        curve = entry["query_curve"]
        assert curve[-1][1] == pytest.approx(entry["attack_success_rate"])
        assert all(q <= budget for q, _ in curve)
    assert small["attack_success_rate"] == 1.0 and large["attack_success_rate"] == 1.0
    assert large["median_l2"] < small["median_l2"]


def test_report_shows_the_budget_curve(hopskipjump_run, tmp_path) -> None:
    groups = budget_groups(hopskipjump_run["results"])
    assert len(groups) == 1 and len(groups[0]) == 2
    finding = budget_finding(groups[0])
    assert "shrinks with every budget" in finding and "from 150 to 600 queries" in finding
    text = write_html_report(hopskipjump_run, {}, tmp_path / "r.html").read_text()
    section = text[text.index('<section id="blackbox">') :]
    section = section[: section.index("</section>")]
    assert 'href="#blackbox"' in text
    assert "What a bigger budget buys" in section and "shrinks with every budget" in section
    small, large = hopskipjump_run["results"]
    median = f"{large['median_l2']:.4g}"
    assert median in section  # the table and the finding carry the measured figure
    assert len(re.findall(r'<img src="data:image/png;base64,', section)) == 2


def test_report_without_query_attacks_has_no_blackbox_section(hopskipjump_run, tmp_path) -> None:
    white_box = {**hopskipjump_run, "results": [
        {**entry, "config": {k: v for k, v in entry["config"].items() if k != "max_queries"}}
        for entry in hopskipjump_run["results"]
    ]}  # fmt: skip
    text = write_html_report(white_box, {}, tmp_path / "r.html").read_text()
    assert 'id="blackbox"' not in text and 'href="#blackbox"' not in text
