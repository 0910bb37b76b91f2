"""The SQLite results store: round trips, listing, and untrusted or damaged files."""

from __future__ import annotations

import io
import json
import pickle
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from advlab.data import load_dataset
from advlab.errors import AdvlabError
from advlab.evaluation import AttackSpec, ResultStore, evaluate
from advlab.evaluation.store import UnitRows, salvage
from advlab.models import ImageClassifier

IDENTITY = {"model": "m", "dataset": "d", "split": "test", "n": 6, "seed": 3, "epsilons": [0.1],
            "attacks": [{"name": "pgd", "norm": "linf", "params": {}}]}  # fmt: skip


def unit_rows(rng: np.random.Generator, offset: int, size: int) -> UnitRows:
    return UnitRows(
        positions=np.arange(offset, offset + size), clean_correct=rng.random(size) < 0.8,
        adv_pred=rng.integers(0, 10, size), confidence=rng.random(size),
        success=rng.random(size) < 0.5, target=None, linf=rng.random(size) / 10,
        l2=rng.random(size), queries=rng.integers(0, 100, size),
    )  # fmt: skip


def example_arrays(rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {
        "clean": rng.random((2, 1, 4, 4), dtype=np.float32),
        "adversarial": rng.random((2, 1, 4, 4), dtype=np.float32),
        "labels": np.array([1, 2]), "clean_pred": np.array([1, 3]),
        "clean_conf": np.array([0.9, 0.8], dtype=np.float32), "adv_pred": np.array([4, 3]),
        "adv_conf": np.array([0.7, 0.6], dtype=np.float32),
    }  # fmt: skip


def filled_store(path: Path) -> tuple[ResultStore, list[UnitRows], dict[str, np.ndarray]]:
    """A run of 6 images in batches of 3: the clean pass and one attack at eps 0.1."""
    rng = np.random.default_rng(0)
    store = ResultStore(path)
    assert store.start_run("abc123", IDENTITY, {"note": "x"}, units_total=4) is False
    labels = rng.integers(0, 10, 6)
    for offset in (0, 3):
        store.write_clean("abc123", offset, labels[offset : offset + 3],
                          labels[offset : offset + 3], rng.random(3), seconds=0.5)  # fmt: skip
    rows = [unit_rows(rng, 0, 3), unit_rows(rng, 3, 3)]
    examples = example_arrays(rng)
    store.write_unit("abc123", "pgd-linf", 0.1, 0, rows[0], 1.25, examples)
    store.write_unit("abc123", "pgd-linf", 0.1, 3, rows[1], 2.0)
    return store, rows, examples


def test_store_file_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "results.sqlite"
    store, rows, examples = filled_store(path)
    store.close()
    with ResultStore(path) as store:  # reopened from disk
        assert store.start_run("abc123", IDENTITY, {"note": "y"}, units_total=4) is True
        units = {("", 0.0, 0), ("", 0.0, 3), ("pgd-linf", 0.1, 0), ("pgd-linf", 0.1, 3)}
        assert store.done_units("abc123") == units
        outcomes = store.attack_rows("abc123", "pgd-linf", 0.1, n=6)
        for name in ("clean_correct", "adv_pred", "confidence", "success", "linf", "l2", "queries"):
            expected = np.concatenate([getattr(part, name) for part in rows])
            assert np.array_equal(getattr(outcomes, name), expected), name  # exact, floats too
        assert store.unit_seconds("abc123", "pgd-linf", 0.1) == 3.25
        assert store.unit_seconds("abc123") == 4.25
        (stored,) = store.examples("abc123").values()
        assert all(np.array_equal(stored[name], examples[name]) for name in examples)
        journal = store._conn.execute("PRAGMA journal_mode").fetchone()[0]
        assert journal == "wal"


def test_incomplete_runs_say_how_to_finish(tmp_path: Path) -> None:
    store, _, _ = filled_store(tmp_path / "results.sqlite")
    with pytest.raises(AdvlabError, match=r"running \(4 of 4 units stored\).*again"):
        store.get_run("abc123")
    with pytest.raises(AdvlabError, match="holds 6 of 9 images"):
        store.attack_rows("abc123", "pgd-linf", 0.1, n=9)
    with pytest.raises(AdvlabError, match="holds 0 of 6 images"):
        store.attack_rows("abc123", "fgsm-linf", 0.1, n=6)
    store.finish_run("abc123", {"clean_accuracy": 0.5, "worst_case": {"0.1": 0.25}})
    assert store.get_run("abc")["worst_case"] == {"0.1": 0.25}  # a unique prefix will do
    with pytest.raises(AdvlabError, match="no run 'zzz'"):
        store.get_run("zzz")
    with pytest.raises(AdvlabError, match="no run"):
        store.get_run("%")  # LIKE wildcards are matched literally


def test_a_failed_write_leaves_nothing_behind(tmp_path: Path) -> None:
    store, _, _ = filled_store(tmp_path / "results.sqlite")
    rows = unit_rows(np.random.default_rng(1), 0, 3)
    rows.linf[2] = np.nan  # SQLite stores NaN as NULL: the NOT NULL constraint fails on row 3
    with pytest.raises(AdvlabError):
        store.write_unit("abc123", "fgsm-linf", 0.1, 0, rows, 1.0)
    assert ("fgsm-linf", 0.1, 0) not in store.done_units("abc123")
    count = store._conn.execute("SELECT count(*) FROM outcomes WHERE attack_key = 'fgsm-linf'")
    assert count.fetchone()[0] == 0  # the two good rows were rolled back with the bad one


def test_list_runs_after_evaluations(
    small_mnist_model: ImageClassifier, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ADVLAB_HOME", str(tmp_path / "home"))
    store = ResultStore()  # the default file under ADVLAB_HOME, folders created
    assert store.path == tmp_path / "home" / "results.sqlite" and store.path.is_file()
    data = load_dataset("mnist-demo", n=16, seed=0)
    first = evaluate(small_mnist_model, data, [AttackSpec("fgsm")], [0.1, 0.2], batch_size=8,
                     store=store, progress=False, examples=2)  # fmt: skip
    second = evaluate(small_mnist_model, data, [AttackSpec("fgsm")], [0.1], batch_size=8,
                      store=store, progress=False, examples=0)  # fmt: skip
    runs = ResultStore(store.path).list_runs()  # a second connection sees the commits
    assert [run["run_id"] for run in runs] == [second.run_id, first.run_id]  # newest first
    run = runs[1]
    assert run["status"] == "finished" and run["units_done"] == run["units_total"] == 6
    assert (run["model"], run["dataset"], run["n"]) == ("mnist-cnn", "mnist-demo", 16)
    assert run["clean_accuracy"] == first.clean_accuracy
    assert run["worst_case"] == first.to_dict()["worst_case"]
    assert run["attacks"] == ["fgsm-linf"] and run["epsilons"] == [0.1, 0.2]
    assert store.get_run(first.run_id) == json.loads(json.dumps(first.to_dict()))


# -- untrusted and damaged files ------------------------------------------------------
def test_a_file_that_is_not_sqlite_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "results.sqlite"
    path.write_bytes(b"this is not a database, just some text " * 100)
    with pytest.raises(AdvlabError, match="corrupt or not an advlab results file"):
        ResultStore(path)


def test_a_folder_is_not_a_store(tmp_path: Path) -> None:
    with pytest.raises(AdvlabError, match="results store"):
        ResultStore(tmp_path)


def test_someone_elses_sqlite_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE runs (x)")
    conn.close()
    with pytest.raises(AdvlabError, match="not an advlab results store"):
        ResultStore(path)


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "results.sqlite"
    ResultStore(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(AdvlabError, match="newer advlab"):
        ResultStore(path)


def test_damaged_pages_give_an_advlab_error(tmp_path: Path) -> None:
    path = tmp_path / "results.sqlite"
    store, _, _ = filled_store(path)
    store.close()  # checkpoints the WAL into the main file
    data = bytearray(path.read_bytes())
    data[100:] = bytes(len(data) - 100)  # keep the header, zero every page
    path.write_bytes(bytes(data))
    with pytest.raises(AdvlabError, match="corrupt"):
        ResultStore(path).list_runs()


def test_bad_json_in_the_store_gives_an_advlab_error(tmp_path: Path) -> None:
    store, _, _ = filled_store(tmp_path / "results.sqlite")
    store._conn.execute("UPDATE runs SET summary = '{not json', status = 'finished'")
    with pytest.raises(AdvlabError, match="corrupt"):
        store.get_run("abc123")
    with pytest.raises(AdvlabError, match="corrupt"):
        store.list_runs()


class _Trap:
    """Unpickling this would create the file: it must never happen."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[()]]:
        return (self.marker.touch, ())


def test_pickled_example_blobs_are_never_unpickled(tmp_path: Path) -> None:
    store, _, _ = filled_store(tmp_path / "results.sqlite")
    marker = tmp_path / "unpickled"
    arrays = {name: np.zeros(2) for name in ("clean", "adversarial", "labels", "clean_pred",
                                             "clean_conf", "adv_pred", "adv_conf")}  # fmt: skip
    arrays["labels"] = np.array([_Trap(marker), 1], dtype=object)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # object arrays are stored pickled
    pickle.loads(pickle.dumps(_Trap(tmp_path / "proof")))  # the trap works when unpickled
    assert (tmp_path / "proof").exists()
    store._conn.execute("UPDATE examples SET data = ?", (buffer.getvalue(),))
    with pytest.raises(AdvlabError, match="example images"):
        store.examples("abc123")
    assert not marker.exists()


# -- killed runs, truncated and damaged files (issue 14, item 3) -----------------------
def test_a_killed_run_is_listed_as_interrupted(tmp_path: Path) -> None:
    store, _, _ = filled_store(tmp_path / "results.sqlite")
    assert store.list_runs()[0]["status"] == "running"  # its process (this one) is alive
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a process that ended without finishing the run, as after kill -9
    store._conn.execute("UPDATE runs SET pid = ?", (gone.pid,))
    with ResultStore(store.path) as other:
        assert other.list_runs()[0]["status"] == "interrupted"
        with pytest.raises(AdvlabError, match=r"interrupted \(4 of 4 units stored\)"):
            other.get_run("abc123")
    assert store.start_run("abc123", IDENTITY, {}, units_total=4) is True  # resumable
    assert store.list_runs()[0]["status"] == "running"


def test_a_zero_length_store_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "results.sqlite"
    path.touch()
    with pytest.raises(AdvlabError, match="empty file"):
        ResultStore(path)
    assert path.stat().st_size == 0  # left as it was found


def _two_runs_one_damaged(path: Path) -> None:
    """Runs "good" and "bad"; on disk, the pages of bad's long summary are zeroed."""
    with ResultStore(path) as store:
        for run_id in ("good", "bad"):
            store.start_run(run_id, {**IDENTITY, "run": run_id}, {}, units_total=1)
        store.write_part("good", "row/0", {"x": 2}, 1.0, {"small": np.arange(3)})
        store.finish_run("good", {"clean_accuracy": 0.5})
        store.finish_run("bad", {"note": "Z" * 40000})  # overflows into ~10 pages
    data = bytearray(path.read_bytes())
    page = 4096
    for start in range(page, len(data), page):
        if data[start + 4 : start + page] == b"Z" * (page - 4):
            data[start : start + page] = bytes(page)  # an overflow page of run "bad"
    path.write_bytes(bytes(data))


def test_damaged_pages_are_named_on_open_and_readable_runs_salvaged(tmp_path: Path) -> None:
    path = tmp_path / "results.sqlite"
    _two_runs_one_damaged(path)
    with pytest.raises(AdvlabError, match="corrupt.*integrity check.*salvage"):
        ResultStore(path)
    report = salvage(path, tmp_path / "saved.sqlite")
    assert report.copied == ["good"] and list(report.skipped) == ["bad"]
    with ResultStore(tmp_path / "saved.sqlite") as saved:
        assert saved.get_run("good") == {"clean_accuracy": 0.5}
        data, arrays = saved.parts("good")["row/0"]
        assert data == {"x": 2} and np.array_equal(arrays["small"], np.arange(3))
    with pytest.raises(AdvlabError, match="exists"):
        salvage(path, tmp_path / "saved.sqlite")
