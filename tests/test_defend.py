"""Defense comparison and gradient-masking checks: plain vs adaptive attacks, end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers import run_cli
from torch import nn

from advlab.attacks import FGSM
from advlab.data import load_dataset
from advlab.defenses import accuracy, apply_defense, evaluate_adaptive
from advlab.evaluation import AttackSpec, ResultStore
from advlab.evaluation.defend import (
    DefenseComparison,
    compare_defenses,
    defense_candidate,
    model_candidate,
)
from advlab.models import ImageClassifier, load_model

EPS = 0.3


@pytest.fixture(scope="module")
def model() -> ImageClassifier:
    return load_model("mnist-cnn", device="cpu")


@pytest.fixture(scope="module")
def data():
    return load_dataset("mnist-demo", n=32, seed=3)


@pytest.fixture(scope="module")
def comparison(model, data) -> DefenseComparison:
    """Undefended, JPEG and 4-bit depth under FGSM and 4-step PGD, with small checks."""
    candidates = [defense_candidate(model, "jpeg:quality=75"), defense_candidate(model, "bits")]
    return compare_defenses(
        model, data, candidates, [AttackSpec("fgsm"), AttackSpec("pgd", params={"steps": 4})],
        [EPS], check_n=16, check_steps=2, check_queries=16, timing_repeats=1,
    )  # fmt: skip


@pytest.mark.parametrize("label", ["jpeg(quality=75)", "bits(bits=4)"])
def test_masked_preprocessing_collapses_under_bpda_and_the_checks_warn(comparison, label):
    row = comparison.row(label)
    assert row.kind == "preprocess" and row.adaptive_attacks == ["bpda", "transfer"]
    cell = row.cell("pgd", EPS)
    # Zero gradients: plain PGD barely moves the images; BPDA breaks nearly all of them.
    assert cell.robust_accuracy >= 0.85
    assert cell.variants["bpda"]["robust_accuracy"] <= 0.15
    assert cell.adaptive_robust_accuracy <= 0.15 and cell.gap_flagged
    assert cell.gap == pytest.approx(cell.robust_accuracy - cell.adaptive_robust_accuracy)
    statuses = {check.name: check.status for check in row.checks}
    assert statuses["unbounded"] == "warn" and statuses["eps-sweep"] == "warn"
    assert (
        row.checks[[c.name for c in row.checks].index("unbounded")].numbers["unbounded_success"]
        < 0.5
    )
    # The report says it in words, with both numbers.
    sentence = next(text for text in comparison.findings if text.startswith(label))
    assert "collapses" in sentence
    assert f"{cell.robust_accuracy:.1%}" in sentence and "bpda" in sentence
    assert any(text.startswith(f"Gradient-masking checks warn for {label}")
               for text in comparison.findings)  # fmt: skip


def test_undefended_model_passes_the_checks(comparison):
    row = comparison.rows[0]
    assert row.label == "undefended" and row.clean_retention is None
    statuses = {check.name: check.status for check in row.checks}
    assert statuses["unbounded"] == "pass" and statuses["eps-sweep"] == "pass"
    assert statuses["iterative"] == "pass" and statuses["white-box"] == "pass"
    assert all(not cell.gap_flagged and cell.worst_attack == "standard" for cell in row.cells)


def test_a_cell_matches_a_direct_computation(comparison, model, data):
    """FGSM is deterministic: every number of its cells can be recomputed by hand."""
    x, y = data.images, data.labels
    jpeg = apply_defense(model, "jpeg:quality=75")
    crafted = FGSM(eps=EPS)(model, x, y).adversarial
    with torch.no_grad():
        base_correct = model(x).argmax(1) == y
        # Only the images the undefended model gets right are attacked (and transferred).
        base_adv = torch.where(base_correct[:, None, None, None], crafted, x)
        base_fooled = base_correct & (model(base_adv).argmax(1) != y)
        correct = jpeg(x).argmax(1) == y
        transfer_fooled = jpeg(base_adv).argmax(1) != y
    undefended = comparison.rows[0].cell("fgsm", EPS)
    base_robust = float((base_correct & ~base_fooled).float().mean())
    assert undefended.robust_accuracy == pytest.approx(base_robust)
    base_asr = float(base_fooled.sum() / base_correct.sum())
    assert undefended.attack_success_rate == pytest.approx(base_asr)

    bpda = evaluate_adaptive(FGSM(eps=EPS), jpeg, x[correct], y[correct])
    plain = FGSM(eps=EPS)(jpeg, x[correct], y[correct])
    worst = bpda.success | plain.success | transfer_fooled[correct]
    cell = comparison.row("jpeg(quality=75)").cell("fgsm", EPS)
    assert cell.robust_accuracy == pytest.approx(float((~plain.success).sum()) / len(y))
    assert cell.variants["bpda"]["robust_accuracy"] == pytest.approx(
        float((~bpda.success).sum()) / len(y)
    )
    assert cell.adaptive_robust_accuracy == pytest.approx(float((~worst).sum()) / len(y))
    expected = 1 - float(worst.float().mean()) / base_asr
    assert cell.asr_reduction == pytest.approx(expected, rel=1e-5, abs=1e-6)
    row = comparison.row("jpeg(quality=75)")
    assert row.clean_retention == pytest.approx(accuracy(jpeg, x, y) / accuracy(model, x, y))
    assert row.inference_slowdown is not None and row.inference_slowdown > 0
    assert row.training_seconds is None and comparison.rows[0].training_seconds > 0


class _Hot(nn.Module):
    """Logits times 1000: the saturated softmax of a defensively distilled network."""

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        return logits * 1000


def test_saturated_logits_look_robust_until_attacked_on_the_logits(model, data):
    hot = ImageClassifier(
        nn.Sequential(model.net, _Hot()), name="hot", input_shape=model.input_shape,
        num_classes=10, mean=model.mean, std=model.std,
    )  # fmt: skip
    result = compare_defenses(
        model, data.subset(list(range(24))), [model_candidate(hot)],
        [AttackSpec("pgd", params={"steps": 4})], [EPS], checks=False, timing_repeats=0,
    )  # fmt: skip
    cell = result.row("hot").cell("pgd", EPS)
    assert result.row("hot").adaptive_attacks == ["logits", "transfer"]
    assert cell.robust_accuracy >= 0.9  # the cross-entropy gradient is exactly zero
    assert cell.variants["logits"]["robust_accuracy"] <= 0.1
    assert cell.variants["transfer"]["robust_accuracy"] <= 0.2
    assert cell.gap_flagged and cell.asr_reduction == pytest.approx(0.0, abs=0.1)


def test_cli_defend_writes_json_report_and_store(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.setenv("ADVLAB_HOME", str(tmp_path / "home"))
    out, store = tmp_path / "defend", tmp_path / "store.sqlite"
    code, stdout, err = run_cli(
        ["defend", "--defense", "bits:bits=4", "--attack", "fgsm", "--eps", "0.3", "--n", "24",
         "--no-checks", "--device", "cpu", "--out", str(out), "--store", str(store)],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    results = json.loads((out / "defend.json").read_text())
    assert [row["label"] for row in results["rows"]] == ["undefended", "bits(bits=4)"]
    assert results["seed"] == 0 and results["config"]["defenses"] == ["bits:bits=4"]
    cell = results["rows"][1]["cells"][0]
    assert cell["gap_flagged"] and cell["robust_accuracy"] > cell["adaptive_robust_accuracy"]
    html = (out / "report.html").read_text()
    assert "Defense comparison" in html and "bits(bits=4) looks robust" in html
    assert f"{100 * cell['robust_accuracy']:.1f}%" in html
    assert "bits(bits=4)" in stdout and "results:" in stdout
    code, stdout, _ = run_cli(["runs", "--store", str(store)], capsys)
    assert code == 0 and results["run_id"][:12] in stdout


def test_cli_tables_fit_80_columns_with_whole_row_names(monkeypatch, capsys):
    from advlab.cli import defend as defend_cli

    monkeypatch.setattr(defend_cli.console, "width", 80)
    keys = [("fgsm", "fgsm-linf"), ("pgd", "pgd-linf[steps=40]"), ("mim", "mim-linf[steps=40]")]
    labels = ["undefended", "mnist-cnn-robust-0.1", "mnist-cnn-robust-0.3",
              "detector:feature-squeezing"]  # fmt: skip
    cells = [{"attack": attack, "key": key, "norm": "linf", "eps": eps, "robust_accuracy": 1.0,
              "adaptive_robust_accuracy": 0.625, "worst_attack": "transfer",
              "asr_reduction": -0.286, "gap_flagged": True}
             for attack, key in keys for eps in (0.1, 0.3)]  # fmt: skip
    rows = [{"label": label, "kind": "model", "clean_accuracy": 0.9952, "clean_retention": 1.0,
             "inference_slowdown": 1.0, "training_seconds": 660.0, "cells": cells,
             "checks_summary": "2 pass, 3 warn (white-box, eps-sweep, unbounded)"}
            for label in labels]  # fmt: skip
    defend_cli.print_comparison(
        {"rows": rows, "epsilons": [0.1, 0.3], "config": {"gap_threshold": 0.1}, "findings": []}
    )
    lines = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert sum(line.rstrip().endswith("┓") for line in lines) == 3  # no right border cut off
    for label in labels:  # whole, and on one line: never "mnist-cnn-robus…"
        assert sum(line.startswith(f"│ {label} ") for line in lines) == 3
    assert not any("…" in line for line in lines)
    assert "pgd: pgd-linf[steps=40]" in " ".join(" ".join(lines).split())  # short headers


@pytest.mark.parametrize(
    "args",
    [["defend", "--defense", "jpeg:quality=abc"], ["defend", "--defense", "nope"],
     ["evaluate", "--defense", "bits:levels=3"], ["defend"]],
)  # fmt: skip
def test_cli_bad_defense_is_one_line(tmp_path, monkeypatch, capsys, args):
    monkeypatch.setenv("ADVLAB_HOME", str(tmp_path / "home"))
    code, _, err = run_cli([*args, "--out", str(tmp_path / "x")], capsys)
    assert code == 2
    assert err.count("\n") == 1 and "error:" in err and "Traceback" not in err


def test_cli_evaluate_with_a_defense_adds_adaptive_attacks(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ADVLAB_HOME", str(tmp_path / "home"))
    out = tmp_path / "eval"
    code, stdout, err = run_cli(
        ["evaluate", "--defense", "bits:bits=4", "--attack", "fgsm", "--eps", "0.3", "--n", "8",
         "--device", "cpu", "--out", str(out), "--store", str(tmp_path / "s.sqlite"),
         "--examples", "2"],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    results = json.loads((out / "results.json").read_text())
    assert results["model"] == "mnist-cnn+bits(bits=4)"
    plain = results["results"][0]["robust_accuracy"]
    defended = results["defense_comparison"]["rows"][1]
    cell = defended["cells"][0]
    assert cell["robust_accuracy"] == pytest.approx(plain) and plain >= 0.75
    assert cell["gap_flagged"] and cell["variants"]["bpda"]["robust_accuracy"] <= 0.25
    assert {c["name"] for c in defended["checks"] if c["status"] == "warn"} >= {"unbounded"}
    html = (out / "report.html").read_text()
    assert 'id="defenses"' in html and "Gradient-masking checks" in html
    assert "collapses" in stdout
    # The comparison is stored as a run of its own (so an interrupted one resumes).
    with ResultStore(tmp_path / "s.sqlite") as store:
        runs = {run["run_id"]: run for run in store.list_runs()}
    comparison = runs[results["defense_comparison"]["run_id"]]
    assert comparison["status"] == "finished" and len(runs) == 2
