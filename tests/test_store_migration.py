"""A store written before issue 11 (schema 1, tests/fixtures/store-v1.sqlite) is migrated
when opened: the same runs, the same results, and the same evaluation resumes it."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from helpers import run_cli

from advlab.evaluation import ResultStore, without_timings
from advlab.evaluation.store import SCHEMA_VERSION, blobs

FIXTURES = Path(__file__).parent / "fixtures"
SWEEP, COMPARISON = "157e4462992429fb", "15c2f3da37042d5d"


@pytest.fixture
def old_store(tmp_path: Path) -> Path:
    path = tmp_path / "store-v1.sqlite"
    shutil.copyfile(FIXTURES / "store-v1.sqlite", path)
    return path


def _version(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    conn.close()
    return version


def test_opening_migrates_and_keeps_every_run(old_store: Path) -> None:
    assert _version(old_store) == 1
    with ResultStore(old_store) as store:
        runs = {run["run_id"]: run for run in store.list_runs()}
        assert set(runs) == {SWEEP, COMPARISON}
        assert all(run["status"] == "finished" for run in runs.values())
        assert store.get_run(SWEEP) == json.loads((FIXTURES / "store-v1/results.json").read_text())
        assert store.get_run(COMPARISON) == json.loads(
            (FIXTURES / "store-v1/defend.json").read_text()
        )
        examples = store.examples(SWEEP)
        assert len(examples) == 4 and all(a["clean"].shape == (4, 1, 28, 28)
                                          for a in examples.values())  # fmt: skip
        (blob,) = store._conn.execute("SELECT data FROM examples LIMIT 1").fetchone()
        assert set(blobs.unpack(blob)) == set(examples[next(iter(examples))])  # safetensors
    assert _version(old_store) == SCHEMA_VERSION


def test_the_same_evaluation_resumes_the_migrated_run(
    old_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("ADVLAB_HOME", str(tmp_path / "home"))

    def recomputed(*args: object, **kwargs: object) -> None:
        raise AssertionError("a stored unit was computed again")

    monkeypatch.setattr(ResultStore, "write_unit", recomputed)
    monkeypatch.setattr(ResultStore, "write_clean", recomputed)
    out = tmp_path / "eval"
    code, _, err = run_cli(
        ["evaluate", "--model", "mnist-cnn", "--dataset", "mnist-demo", "--n", "8",
         "--attack", "fgsm", "--attack", "pgd:steps=2", "--eps", "0.1", "--eps", "0.2",
         "--examples", "4", "--store", str(old_store), "--out", str(out), "--no-report", "-q"],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    old = json.loads((FIXTURES / "store-v1/results.json").read_text())
    new = json.loads((out / "results.json").read_text())
    for results in (old, new):  # where the files went is not part of the results
        results["config"].pop("out")
        results["config"].pop("store")
    assert new["run_id"] == SWEEP
    # Options added since (e.g. --suite, --target-timeout) join the stored configuration
    # with their defaults; every option the old run had keeps its value.
    old_config, new_config = old.pop("config"), new.pop("config")
    assert {key: new_config.get(key) for key in old_config} == old_config
    assert without_timings(new) == without_timings(old)


def test_the_same_defense_comparison_resumes_the_migrated_run(
    old_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    from advlab.evaluation.defend import compare, rows

    monkeypatch.setenv("ADVLAB_HOME", str(tmp_path / "home"))

    def recomputed(*args: object, **kwargs: object) -> None:
        raise AssertionError("a stored row or check was computed again")

    monkeypatch.setattr(rows.RowWork, "row", recomputed)
    monkeypatch.setattr(compare, "gradient_masking_checks", recomputed)
    out = tmp_path / "defend"
    code, _, err = run_cli(
        ["defend", "--model", "mnist-cnn", "--dataset", "mnist-demo", "--n", "8",
         "--defense", "bits:bits=1", "--attack", "fgsm", "--eps", "0.1", "--check-n", "4",
         "--store", str(old_store), "--out", str(out), "--no-report", "-q"],
        capsys,
    )  # fmt: skip
    assert code == 0, err

    def numbers(path: Path) -> dict:
        results = json.loads(path.read_text())
        results.pop("seconds")
        for key in ("out", "store"):  # where the files went is not part of the results
            results["config"].pop(key)
        for key in ("precision", "compile"):  # options added since the store was recorded
            results["config"].pop(key, None)
        for row in results["rows"]:
            row.pop("inference_seconds_per_image")
            row.pop("inference_slowdown")
        return results

    assert numbers(out / "defend.json") == numbers(FIXTURES / "store-v1/defend.json")
