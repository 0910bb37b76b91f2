"""--precision and --compile on every command that attacks, not only evaluate.

Each records the precision it searched in, and a bfloat16 run is a run of its own in the
store (it never resumes a float32 one, nor the reverse).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import run_cli

from advlab.evaluation import ResultStore

SMALL = ["--eps", "0.3", "--attack", "fgsm", "--device", "cpu", "--quiet"]
COMMANDS = {
    "defend": (["--defense", "bits:bits=4", "--n", "16", "--no-checks"], "defend.json"),
    "transfer": (["--source", "mnist-cnn", "--target", "mnist-mlp", "--dataset", "mnist-demo",
                  "--n", "16"], "transfer.json"),
    # The adaptive attack on a detector runs its very model: bfloat16 must leave it alone.
    "detect": (["--dataset", "mnist-demo", "--fit-split", "test", "--n", "24", "--n-fit", "60",
                "--adaptive-steps", "3"], "detection.json"),
}  # fmt: skip


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_searches_in_the_precision_asked_in_a_run_of_its_own(
    command: str, tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.setenv("ADVLAB_HOME", str(tmp_path / "home"))
    args, results_file = COMMANDS[command]
    store = tmp_path / "store.sqlite"
    for precision in ("float32", "bfloat16"):
        out = tmp_path / precision
        code, _, err = run_cli(
            [command, *args, *SMALL, "--precision", precision, "--out", str(out),
             "--store", str(store)], capsys,
        )  # fmt: skip
        assert code == 0, err
        results = json.loads((out / results_file).read_text())
        assert results["config"]["precision"] == precision
    runs = ResultStore(store).list_runs()
    assert len(runs) == 2 and len({run["run_id"] for run in runs}) == 2


def test_attack_command_records_the_precision_and_stays_in_the_ball(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.setenv("ADVLAB_HOME", str(tmp_path / "home"))
    out = tmp_path / "adv"
    code, _, err = run_cli(
        ["attack", "--attack", "pgd:steps=5", "--eps", "0.2", "--n", "16", "--precision",
         "bfloat16", "--compile", "--out", str(out), "--quiet"], capsys,
    )  # fmt: skip
    assert code == 0, err
    assert json.loads((out / "attack.json").read_text())["precision"] == "bfloat16"
    saved = np.load(out / "adversarial.npz")
    assert np.abs(saved["adversarial"] - saved["clean"]).max() <= 0.2 + 1e-6
    assert saved["success"].mean() > 0.5


def test_a_bad_precision_is_one_line_on_every_command(tmp_path: Path, capsys) -> None:
    for command in ("attack", "defend", "transfer", "detect"):
        args = COMMANDS.get(command, ([], ""))[0]
        code, _, err = run_cli(
            [command, *args, "--precision", "fp8", "--out", str(tmp_path / command)], capsys
        )
        assert code == 2 and "precision" in err and "Traceback" not in err, (command, err)
        assert len(err.strip().splitlines()) == 1
