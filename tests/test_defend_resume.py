"""Defense comparison, interrupted and resumed: finished rows and checks are not recomputed,
and the result equals an uninterrupted run's."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers import run_cli

from advlab.data import load_dataset
from advlab.errors import AdvlabError
from advlab.evaluation import AttackSpec
from advlab.evaluation.defend import (
    DefenseComparison,
    RowResult,
    compare_defenses,
    defense_candidate,
    detector_candidate,
)
from advlab.evaluation.defend import compare as compare_module
from advlab.evaluation.defend import rows as rows_module
from advlab.evaluation.store import ResultStore
from advlab.results import Check

ATTACKS = [AttackSpec("fgsm"), AttackSpec("pgd", params={"steps": 3})]
EPSILONS = [0.1, 0.3]
DEFENSES = ["bits:bits=1", "noise"]  # masked gradients (BPDA) and a random one (EOT)


@pytest.fixture(scope="module")
def data():
    return load_dataset("mnist-demo", n=16, seed=3)


def _compare(model, data, store: ResultStore | None, **settings: Any) -> DefenseComparison:
    candidates = [defense_candidate(model, spec) for spec in DEFENSES]
    options: dict[str, Any] = {"eot_samples": 2, "check_n": 8, "check_steps": 2,
                               "check_queries": 8, "timing_repeats": 1, **settings}  # fmt: skip
    return compare_defenses(model, data, candidates, ATTACKS, EPSILONS, store=store, **options)


def _numbers(comparison: DefenseComparison) -> dict[str, Any]:
    """to_dict() without what is timed."""
    out = comparison.to_dict()
    out.pop("seconds")
    for row in out["rows"]:
        row.pop("inference_seconds_per_image")
        row.pop("inference_slowdown")
    return out


@pytest.fixture(scope="module")
def reference(small_mnist_model, data) -> DefenseComparison:
    """The uninterrupted comparison, without a store."""
    return _compare(small_mnist_model, data, None)


class _Counted:
    """Wraps ``name`` of ``owner``, counting calls; ``interrupt_at``: the call that raises
    KeyboardInterrupt (as Ctrl-C would), before doing any work."""

    def __init__(self, monkeypatch, owner: Any, name: str, interrupt_at: int | None = None):
        self.calls: list[Any] = []
        self.interrupt_at = interrupt_at
        original = getattr(owner, name)

        def wrapped(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(args)
            if len(self.calls) == self.interrupt_at:
                raise KeyboardInterrupt
            return original(*args, **kwargs)

        monkeypatch.setattr(owner, name, wrapped)


def _status(path: Path, run_id: str) -> tuple[str, int, int]:
    with ResultStore(path) as store:
        run = next(r for r in store.list_runs() if r["run_id"] == run_id)
    return run["status"], run["units_done"], run["units_total"]


def test_interrupted_after_the_first_row_resumes_without_recomputing_it(
    small_mnist_model, data, reference, tmp_path, monkeypatch, caplog
):
    path = tmp_path / "store.sqlite"
    with monkeypatch.context() as patch:
        rows = _Counted(patch, rows_module.RowWork, "row", interrupt_at=2)
        with ResultStore(path) as store, pytest.raises(KeyboardInterrupt):
            _compare(small_mnist_model, data, store)
    assert len(rows.calls) == 2
    # Row 0 is stored, with its adversarial examples, and the run marked interrupted.
    assert _status(path, reference.run_id) == ("interrupted", 1, 6)
    with ResultStore(path) as store:
        (name, (_, arrays)), *others = store.parts(reference.run_id).items()
    assert name == "row/0/undefended" and not others
    assert sorted(arrays) == sorted(f"{spec.key}@{eps!r}" for spec in ATTACKS for eps in EPSILONS)
    assert all(array.shape == tuple(data.images.shape) for array in arrays.values())

    # Without those examples the later rows cannot be computed as before: a clear error.
    broken = tmp_path / "broken.sqlite"
    broken.write_bytes(path.read_bytes())
    with sqlite3.connect(broken) as conn:
        conn.execute("UPDATE parts SET arrays = NULL")
    with ResultStore(broken) as store, pytest.raises(AdvlabError, match="row 0"):
        _compare(small_mnist_model, data, store)

    rows = _Counted(monkeypatch, rows_module.RowWork, "row")
    checks = _Counted(monkeypatch, compare_module, "gradient_masking_checks")
    with caplog.at_level(logging.INFO, logger="advlab.evaluation.defend"):
        with ResultStore(path) as store:  # a new connection, as after a restart
            resumed = _compare(small_mnist_model, data, store)
    computed = [args[1].label for args in rows.calls]  # args: (work, candidate, ...)
    assert computed == ["bits(bits=1)", resumed.rows[2].label]
    assert len(checks.calls) == 3
    assert f"resuming defense comparison {reference.run_id}: 1 of 3 rows done" in caplog.text
    assert resumed.resumed_rows == 1 and resumed.resumed_checks == 0
    # Later rows used row 0's stored adversarial examples (transfer) and its success rate.
    cell = resumed.row("bits(bits=1)").cell("pgd", 0.3)
    assert "transfer" in cell.variants and cell.asr_reduction is not None
    assert _numbers(resumed) == _numbers(reference)
    assert _status(path, reference.run_id) == ("finished", 6, 6)
    with ResultStore(path) as store:
        stored = store.get_run(reference.run_id)
        # Once finished, the examples are no longer needed and are dropped.
        assert all(arrays == {} for _, arrays in store.parts(reference.run_id).values())
    assert stored["rows"][1]["cells"] == _numbers(reference)["rows"][1]["cells"]


def test_interrupted_during_the_checks_resumes_with_the_finished_checks(
    small_mnist_model, data, reference, tmp_path, monkeypatch
):
    path = tmp_path / "store.sqlite"
    with monkeypatch.context() as patch:
        checks = _Counted(patch, compare_module, "gradient_masking_checks", interrupt_at=2)
        with ResultStore(path) as store, pytest.raises(KeyboardInterrupt):
            _compare(small_mnist_model, data, store)
    assert _status(path, reference.run_id) == ("interrupted", 4, 6)

    rows = _Counted(monkeypatch, rows_module.RowWork, "row")
    checks = _Counted(monkeypatch, compare_module, "gradient_masking_checks")
    with ResultStore(path) as store:
        resumed = _compare(small_mnist_model, data, store)
    assert rows.calls == [] and len(checks.calls) == 2
    assert resumed.resumed_rows == 3 and resumed.resumed_checks == 1
    assert _numbers(resumed) == _numbers(reference)

    # A finished run called again: everything is loaded, nothing attacked.
    with ResultStore(path) as store:
        again = _compare(small_mnist_model, data, store)
    assert len(rows.calls) == 0 and len(checks.calls) == 2
    assert _numbers(again) == _numbers(reference)

    # Other settings are another run: nothing of this one is reused.
    with ResultStore(path) as store:
        other = _compare(small_mnist_model, data, store, checks=False)
    assert other.run_id != reference.run_id and len(rows.calls) == 3
    assert other.resumed_rows == 0


def test_a_detector_fitted_otherwise_is_another_run(small_mnist_model, data):
    fit = load_dataset("mnist-demo", n=64, seed=9).images
    ids = []
    for fpr in (0.05, 0.2):
        candidate = detector_candidate(small_mnist_model, "feature-squeezing", fit, fpr)
        result = compare_defenses(
            small_mnist_model, data.subset(list(range(4))), [candidate],
            [AttackSpec("fgsm")], [0.1], checks=False, timing_repeats=0,
        )  # fmt: skip
        ids.append(result.run_id)
    assert ids[0] != ids[1]


def test_rows_and_checks_round_trip_through_their_dicts(reference):
    for row in reference.rows:
        again = RowResult.from_dict(row.to_dict())
        assert again == row and again.to_dict() == row.to_dict()
    check = reference.rows[1].checks[0]
    assert Check.from_dict(check.to_dict()) == check
    with pytest.raises(ValueError, match="status"):
        Check.from_dict({**check.to_dict(), "status": "maybe"})


def test_a_store_from_before_the_parts_table_gets_it(tmp_path):
    path = tmp_path / "old.sqlite"
    ResultStore(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE parts")
    with ResultStore(path) as store:
        store.start_run("r1", {"kind": "test"}, {}, 1)
        arrays = {"pgd@0.3": torch.rand(2, 1, 4, 4).numpy()}
        store.write_part("r1", "row/0/a", {"x": 0.1}, 1.5, arrays)
        (data, stored), *_ = store.parts("r1").values()
        assert data == {"x": 0.1} and (stored["pgd@0.3"] == arrays["pgd@0.3"]).all()
        assert store.done_units("r1") == {("row/0/a", 0.0, 0)} and store.unit_seconds("r1") == 1.5


def test_cli_resumes_by_running_the_same_command(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ADVLAB_HOME", str(tmp_path / "home"))
    args = ["defend", "--defense", "bits:bits=1", "--attack", "fgsm", "--eps", "0.3", "--n", "8",
            "--no-checks", "--device", "cpu", "--out", str(tmp_path / "out"), "--store",
            str(tmp_path / "store.sqlite"), "--quiet"]  # fmt: skip
    with monkeypatch.context() as patch:
        _Counted(patch, rows_module.RowWork, "row", interrupt_at=2)
        code, stdout, _ = run_cli(args, capsys)
    assert code != 0 and "results:" not in stdout
    rows = _Counted(monkeypatch, rows_module.RowWork, "row")
    code, stdout, err = run_cli(args, capsys)
    assert code == 0, err
    assert len(rows.calls) == 1
    assert "resumed run" in stdout and "1 of 2 rows" in stdout and "results:" in stdout
