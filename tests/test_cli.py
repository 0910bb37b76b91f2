"""The command line, end to end, as a user runs it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import default_sigint, run_cli

REQUIRED_KEYS = {"model", "dataset", "n", "seed", "clean_accuracy", "results", "worst_case"}
ROW_KEYS = {
    "attack",
    "norm",
    "eps",
    "targeted",
    "robust_accuracy",
    "attack_success_rate",
    "mean_linf",
    "mean_l2",
    "seconds",
    "images_per_second",
}


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("ADVLAB_HOME", str(tmp_path / "home"))
    return tmp_path


def test_demo_writes_results_and_report(home, capsys):
    out = home / "demo"
    code, stdout, _ = run_cli(["demo", "--n", "60", "--out", str(out), "--quiet"], capsys)
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert REQUIRED_KEYS <= results.keys() and results["n"] == 60
    assert {row["attack"] for row in results["results"]} == {"fgsm", "pgd", "mim", "deepfool"}
    assert all(ROW_KEYS <= row.keys() for row in results["results"])
    assert results["clean_accuracy"] > 0.9
    # the attacks really break the model at the largest eps
    assert results["worst_case"][max(results["worst_case"], key=float)] < 0.2
    html = (out / "report.html").read_text()
    assert "mnist-cnn" in html and "data:image/png;base64," in html
    assert f"{100 * results['clean_accuracy']:.1f}" in html


def test_evaluate_with_a_config_file_and_runs_listing(home, capsys):
    config = home / "run.yaml"
    config.write_text("attack: [fgsm, 'pgd:steps=5']\neps: ['0.1', '0.2']\nn: 40\nseed: 3\n")
    out = home / "eval"
    store = home / "store.sqlite"
    code, _, err = run_cli(
        [
            "evaluate",
            "--config",
            str(config),
            "--out",
            str(out),
            "--store",
            str(store),
            "--no-report",
            "--quiet",
        ],
        capsys,
    )
    assert code == 0, err
    results = json.loads((out / "results.json").read_text())
    assert results["seed"] == 3 and results["n"] == 40
    assert sorted({row["eps"] for row in results["results"]}) == [0.1, 0.2]
    assert not (out / "report.html").exists()
    code, stdout, _ = run_cli(["runs", "--store", str(store)], capsys)
    assert code == 0 and results["run_id"][:12] in stdout
    code, stdout, _ = run_cli(["runs", results["run_id"][:12], "--store", str(store)], capsys)
    assert code == 0 and json.loads(stdout)["clean_accuracy"] == results["clean_accuracy"]


def test_attack_command_writes_adversarial_examples(home, capsys):
    out = home / "adv"
    code, stdout, _ = run_cli(
        [
            "attack",
            "--attack",
            "pgd:steps=10",
            "--eps",
            "0.2",
            "--n",
            "16",
            "--out",
            str(out),
            "--png",
            "--quiet",
        ],
        capsys,
    )
    assert code == 0
    saved = np.load(out / "adversarial.npz")
    delta = saved["adversarial"] - saved["clean"]
    assert np.abs(delta).max() <= 0.2 + 1e-6
    assert saved["adversarial"].min() >= 0 and saved["adversarial"].max() <= 1
    assert saved["success"].mean() > 0.5
    assert len(list((out / "png").glob("*.png"))) == 16


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["evaluate", "--model", "no-such-model"], "unknown model"),
        (["evaluate", "--dataset", "no-such-data"], "unknown data set"),
        (["evaluate", "--attack", "no-such-attack"], "unknown attack"),
        (["evaluate", "--eps", "-0.1"], "eps"),
        (["evaluate", "--eps", "8"], "8/255"),
        (["evaluate", "--eps", "abc"], "cannot read eps"),
        (["evaluate", "--attack", "pgd:steps"], "key=value"),
        (["evaluate", "--attack", "pgd:bogus=1"], "bad option"),
        (
            ["evaluate", "--model", "mnist-mlp", "--weights", "/no/such/file.safetensors"],
            "not found",
        ),
        (["evaluate", "--data-dir", "/no/such/dir", "--dataset", "mnist"], "not found"),
        (["evaluate", "--config", "/no/such.yaml"], "config file not found"),
    ],
)
def test_user_mistakes_give_one_line_and_exit_2(home, capsys, args, message):
    code, _, err = run_cli(args + ["--out", str(home / "x"), "--quiet"], capsys)
    assert code == 2
    assert message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_corrupt_checkpoint_and_shape_mismatch(home, capsys, data_dir):
    bad = home / "bad.pth"
    bad.write_bytes(b"garbage")
    code, _, err = run_cli(
        [
            "evaluate",
            "--model",
            "mnist-cnn",
            "--weights",
            str(bad),
            "--out",
            str(home / "x"),
            "--quiet",
        ],
        capsys,
    )
    assert code == 2 and "cannot read weights" in err
    code, _, err = run_cli(
        [
            "evaluate",
            "--model",
            "mnist-cnn",
            "--dataset",
            "cifar10",
            "--n",
            "4",
            "--out",
            str(home / "x"),
            "--quiet",
        ],
        capsys,
    )
    assert code == 2 and "expects images of shape" in err


def test_no_traceback_from_the_installed_command(home):
    env = {**os.environ, "ADVLAB_HOME": str(home / "home")}
    proc = subprocess.run(
        [sys.executable, "-m", "advlab.cli.main", "evaluate", "--model", "nope"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "unknown model 'nope'" in proc.stderr and "Traceback" not in proc.stderr


def _evaluate_cmd(out: Path, store: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "advlab.cli.main",
        "evaluate",
        "--model",
        "mnist-cnn",
        "--dataset",
        "mnist",
        "--attack",
        "fgsm",
        "--attack",
        "pgd:steps=5",
        "--eps",
        "0.1",
        "--eps",
        "0.3",
        "--n",
        "400",
        "--batch-size",
        "50",
        "--out",
        str(out),
        "--store",
        str(store),
        "--no-report",
        "--quiet",
    ]


def _comparable(results: dict) -> dict:
    """results.json without the fields that measure time or name the output folder."""
    timing = {"seconds", "images_per_second", "created", "finished", "started", "out", "store"}

    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in timing}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return strip(results)


def test_sigint_half_way_then_rerun_resumes_to_identical_results(home, data_dir):
    env = {**os.environ, "ADVLAB_HOME": str(home / "home")}
    store = home / "interrupted.sqlite"
    proc = subprocess.Popen(
        _evaluate_cmd(home / "a", store),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=default_sigint,
    )
    # Wait until some batches are stored, then interrupt like a user pressing Ctrl-C.
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.5)
        if store.exists() and _stored_units(store) >= 3:
            break
    assert proc.poll() is None, "run finished before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=60)
    assert proc.returncode != 0
    assert not (home / "a" / "results.json").exists()
    resumed = subprocess.run(
        _evaluate_cmd(home / "a", store), env=env, capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr
    straight = subprocess.run(
        _evaluate_cmd(home / "b", home / "straight.sqlite"),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert straight.returncode == 0, straight.stderr
    first = json.loads((home / "a" / "results.json").read_text())
    second = json.loads((home / "b" / "results.json").read_text())
    assert _comparable(first) == _comparable(second)


def _stored_units(store: Path) -> int:
    import sqlite3

    try:
        with sqlite3.connect(store, timeout=1) as db:
            tables = [r[0] for r in db.execute("select name from sqlite_master where type='table'")]
            for table in tables:
                if "batch" in table or "unit" in table:
                    return int(db.execute(f"select count(*) from {table}").fetchone()[0])
    except sqlite3.Error:
        return 0
    return 0


def test_evaluate_a_black_box_http_endpoint(home, capsys):
    from advlab.models import load_model
    from advlab.serve import start_server_in_thread

    server, thread, url = start_server_in_thread(load_model("mnist-cnn"))
    try:
        out = home / "bb"
        code, _, err = run_cli(["evaluate", "--target", url, "--attack", "square:max_queries=100",
                                "--eps", "0.3", "--n", "20", "--out", str(out), "--no-report",
                                "--store", str(home / "bb.sqlite"), "--quiet"], capsys)  # fmt: skip
        assert code == 0, err
        results = json.loads((out / "results.json").read_text())
        row = results["results"][0]
        assert row["attack"] == "square" and row["attack_success_rate"] > 0.5
        assert 0 < row["mean_queries"] <= 100
        # The server counted the clean pass, every query the attack spent, and the
        # evaluator's one check of each returned example: nothing unaccounted for.
        attacked = round(results["clean_accuracy"] * 20)
        spent = round(row["mean_queries"] * attacked)
        assert server.service.queries == 20 + spent + attacked
        code, _, err = run_cli(["evaluate", "--target", url, "--attack", "pgd",
                                "--out", str(out), "--quiet"], capsys)  # fmt: skip
        assert code == 2 and "needs gradients" in err
    finally:
        server.shutdown()
        thread.join(timeout=10)


def test_detect_prints_what_detection_json_holds(home, capsys):
    out = home / "detect"
    code, stdout, err = run_cli(["detect", "--dataset", "mnist-demo", "--fit-split", "test",
                                 "--n", "60", "--n-fit", "200", "--attack", "fgsm", "--attack",
                                 "pgd:steps=5", "--eps", "0.3", "--adaptive-steps", "5",
                                 "--out", str(out), "--report"], capsys)  # fmt: skip
    assert code == 0, err
    results = json.loads((out / "detection.json").read_text())
    assert results["seed"] == 0 and results["config"]["detector"] == "squeeze"
    assert results["fit"]["n"] == 200 and results["n"] == 60
    assert [(e["attack"], e["adaptive"]) for e in results["results"]] == [
        ("fgsm", False), ("pgd", False), ("squeeze-aware-pgd", True)
    ]  # fmt: skip
    assert f"{100 * results['false_positive_rate']:.1f}%" in stdout
    adaptive = results["results"][-1]
    for entry in results["results"][:2]:
        line = next(line for line in stdout.splitlines() if f"│ {entry['attack']}" in line)
        for value in (entry["attack_success_rate"], entry["detection_rate"],
                      adaptive["detection_rate"]):  # fmt: skip
            assert f"{100 * value:.1f}%" in line
        assert f"{entry['auc']:.3f}" in line
    assert "pgd[steps=5]" in stdout  # attack options are not eaten as rich markup
    html = (out / "report.html").read_text()
    assert 'id="detection"' in html and "data:image/png;base64," in html


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--fpr", "1.5"], "false positive rate"), (["--detector", "magnet"], "unknown detector")],
)
def test_detect_user_mistakes(home, capsys, args, message):
    code, _, err = run_cli(["detect", *args, "--out", str(home / "x"), "--quiet"], capsys)
    assert code == 2 and message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_train_adversarially_and_distil_from_the_command_line(home, capsys, data_dir):
    tiny = ["--arch", "width=4", "--arch", "hidden=16", "--n-train", "300", "--epochs", "1",
            "--num-threads", "1", "--data-dir", str(data_dir), "--quiet"]  # fmt: skip
    out = home / "robust"
    code, stdout, _ = run_cli(
        ["train", *tiny, "--adversarial", "fgsm-rs", "--eps", "0.1", "--val-n", "50",
         "--out", str(out)], capsys,
    )  # fmt: skip
    assert code == 0, stdout
    history = json.loads((out / "history.json").read_text())
    assert f"PGD robust val acc {history[0]['val_robust_accuracy']:.2%}" in stdout
    assert (out / "report.html").is_file()
    sidecar = json.loads((out / "best.json").read_text())
    assert sidecar["training"]["adversarial"]["method"] == "fgsm-rs"

    distilled = home / "distilled"
    code, stdout, _ = run_cli(
        ["train", *tiny, "--distill", "--temperature", "20", "--out", str(distilled)], capsys
    )
    assert code == 0, stdout
    teacher = json.loads((distilled / "teacher" / "best.json").read_text())
    student = json.loads((distilled / "best.json").read_text())
    assert teacher["training"]["temperature"] == student["training"]["temperature"] == 20
    assert student["training"]["distill_from"].endswith("teacher/best.safetensors")

    code, _, err = run_cli(["train", *tiny, "--eps", "0.1", "--out", str(home / "x")], capsys)
    assert code == 2 and "add --adversarial" in err


def test_results_table_shows_queries_for_query_based_attacks(capsys) -> None:
    from advlab.cli.evaluate import print_results as _print_results

    row = {"attack": "square", "key": "square-linf[max_queries=500]", "norm": "linf", "eps": 0.3,
           "robust_accuracy": 0.1, "attack_success_rate": 0.9, "mean_linf": 0.3, "mean_l2": 4.0,
           "mean_confidence": 0.6, "mean_queries": 123.4, "images_per_second": 7.0,
           "config": {"attack": "square", "max_queries": 500}}  # fmt: skip
    results = {"clean_accuracy": 1.0, "n": 10, "results": [row], "worst_case": {"0.3": 0.1}}
    _print_results(results)
    out = capsys.readouterr().out
    assert "query" in out and "123" in out and "img/s" not in out
    assert any(line.rstrip().endswith("┓") for line in out.splitlines())  # not cut at 80
    white_box = {**row, "attack": "pgd", "key": "pgd-linf", "config": {"attack": "pgd"}}
    _print_results({**results, "results": [white_box]})
    out = capsys.readouterr().out
    assert "img/s" in out and "query" not in out
