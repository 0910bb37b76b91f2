"""advlab.results: the typed schema reads today's files and writes them back unchanged.

The fixtures under tests/fixtures/results were written by advlab's CLI on tiny runs
(evaluate with and without --defense, defend, transfer, detect, train).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from advlab.errors import AdvlabError
from advlab.reports.defense import write_defense_report
from advlab.reports.detection import write_detection_report
from advlab.reports.evaluation import write_html_report
from advlab.reports.training import write_training_report
from advlab.reports.transfer import write_transfer_report
from advlab.results import (
    AttackEvaluation,
    Check,
    DefenseComparison,
    DetectionEvaluation,
    Evaluation,
    TrainingSummary,
    TransferMatrix,
    history_from_list,
)
from advlab.training.config import load_config

FIXTURES = Path(__file__).parent / "fixtures" / "results"
FILES = [
    ("results.json", Evaluation),
    ("results-defense.json", Evaluation),
    ("defend.json", DefenseComparison),
    ("transfer.json", TransferMatrix),
    ("detection.json", DetectionEvaluation),
    ("checkpoint.json", TrainingSummary),
]


@pytest.mark.parametrize(("name", "cls"), FILES)
def test_files_round_trip_exactly(name, cls):
    text = (FIXTURES / name).read_text()
    result = cls.from_json(text)
    assert result.to_dict() == json.loads(text)
    assert result.to_json() == text  # key order and number text too
    assert cls.from_dict(result.to_dict()) == result


def test_history_round_trips():
    history = json.loads((FIXTURES / "history.json").read_text())
    assert history_from_list(history) == history
    with pytest.raises(ValueError, match="lacks val_accuracy"):
        history_from_list([{k: v for k, v in history[0].items() if k != "val_accuracy"}])


def test_nested_parts_are_typed():
    plain = Evaluation.read_json(FIXTURES / "results.json")
    assert plain.result("square", 0.2).budget == 50 and plain.result("pgd", 0.2).budget is None
    assert plain.norms == ["linf"]
    evaluation = Evaluation.read_json(FIXTURES / "results-defense.json")
    assert all(isinstance(e, AttackEvaluation) for e in evaluation.results)
    assert list(evaluation.worst_case) == [0.1]  # eps keys are numbers again
    comparison = evaluation.defense_comparison
    assert isinstance(comparison, DefenseComparison)
    row = comparison.row("jpeg:quality=75")
    assert row.checks and all(isinstance(c, Check) for c in row.checks)
    assert row.checks_summary == row.to_dict()["checks_summary"]
    assert row.cell("fgsm", 0.1).variants["bpda"]["robust_accuracy"] >= 0

    matrix = TransferMatrix.read_json(FIXTURES / "transfer.json")
    assert matrix.models["mnist-mlp"]["num_classes"] == 10
    assert matrix.runs() == [("fgsm-linf", "linf", 0.1), ("pgd-linf[steps=3]", "linf", 0.1)]
    assert (
        matrix.matrix("pgd", 0.1)[0][0]
        == matrix.cell("pgd", 0.1, "mnist-cnn", "mnist-cnn").success_rate
    )
    assert matrix.csv_text() == (FIXTURES / "transfer.csv").read_text()

    detection = DetectionEvaluation.read_json(FIXTURES / "detection.json")
    assert detection.fpr_target == detection.detector["fpr"] == 0.05
    assert detection.entry("fgsm", 0.1).roc["fpr"][0] == 0.0


def test_partial_files_read_with_blanks():
    evaluation = Evaluation.from_dict({
        "model": "m", "clean_accuracy": None,
        "per_class_clean_accuracy": [0.5, None],
        "results": [{"attack": "pgd", "norm": "l2", "eps": 0.5}],
        "worst_case": {"0.5": 0.25, "not a number": 1.0},
    })  # fmt: skip
    assert math.isnan(evaluation.clean_accuracy) and evaluation.class_names == []
    assert evaluation.per_class_clean_accuracy == {"0": 0.5, "1": None}
    assert evaluation.worst_case == {0.5: 0.25}
    (entry,) = evaluation.results
    assert entry.key == "" and entry.attack_success_rate is None and entry.config == {}
    assert entry.budget is None
    with pytest.raises(AdvlabError, match="must be a list"):
        Evaluation.from_dict({"results": {"a": 1}})
    with pytest.raises(AdvlabError, match="such as defend.json holds"):
        DefenseComparison.coerce(["not", "a", "dict"])


def test_coerce_takes_the_result_a_dict_or_another_modules_object():
    evaluation = Evaluation.read_json(FIXTURES / "results.json")
    assert Evaluation.coerce(evaluation) is evaluation
    assert Evaluation.coerce(evaluation.to_dict()) == evaluation

    class Elsewhere:  # e.g. advlab.evaluation's own class before the two are one
        def to_dict(self):
            return evaluation.to_dict()

    assert Evaluation.coerce(Elsewhere()) == evaluation


@pytest.mark.parametrize(
    ("name", "write"),
    [
        ("results.json", lambda r, p: write_html_report(r, {}, p)),
        ("results-defense.json", lambda r, p: write_html_report(r, {}, p)),
        ("defend.json", write_defense_report),
        ("transfer.json", write_transfer_report),
        ("detection.json", write_detection_report),
    ],
)
def test_every_page_reads_the_file_and_its_typed_result_alike(name, write, tmp_path):
    cls = dict(FILES)[name]
    data = json.loads((FIXTURES / name).read_text())
    from_dict = write(data, tmp_path / "a.html").read_text()
    from_typed = write(cls.from_dict(data), tmp_path / "b.html").read_text()
    assert from_dict.count("data:image/png;base64,") >= 1
    assert _undated(from_dict) == _undated(from_typed)


def _undated(page: str) -> str:
    return re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", "", page)


def test_training_page_from_a_checkpoint_summary(tmp_path):
    summary = TrainingSummary.read_json(FIXTURES / "checkpoint.json")
    config = load_config({**summary.training, "out_dir": str(tmp_path)})
    path = write_training_report(tmp_path, config, summary.history, None)
    text = path.read_text()
    assert "robust val acc" in text and f"{summary.history[-1]['val_robust_accuracy']:.2%}" in text
    assert not list(tmp_path.glob("*.tmp"))
