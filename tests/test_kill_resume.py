"""kill -9 at seeded points of ``evaluate``, ``defend``, ``transfer`` and ``train``: rerunning
the same command always ends with the results of an uninterrupted run.

Each command runs as ``python -m advlab.cli.main`` in a subprocess on tiny settings, in a
folder of its own (same relative ``--out`` and ``--store``, so every run has the same
config). The reference runs once, uninterrupted. For each kill point the command is
started in a fresh folder and SIGKILLed once its store (or training folder) holds ``k``
finished units plus a seeded delay, so that the kill lands anywhere in the work: mid-unit,
mid-commit, while writing the results. The same command then runs to completion and its
results must equal the reference's, timing fields aside.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from safetensors.torch import load_file

KILL_POINTS = 5
#: Fields that time the work (and any key ending in "seconds"): they differ between runs.
TIMING = {"images_per_second", "inference_seconds_per_image", "inference_slowdown"}
COMMON = ["--device", "cpu", "--seed", "0", "--quiet"]


def _store_progress(folder: Path) -> int:
    """Units and parts committed to the store so far (0 while there is none)."""
    path = folder / "store.sqlite"
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=0.05) as conn:
            return int(conn.execute(
                "SELECT (SELECT count(*) FROM units) + (SELECT count(*) FROM parts)"
            ).fetchone()[0])  # fmt: skip
    except sqlite3.Error:  # not created yet, or busy for a moment
        return 0


def _epochs_done(folder: Path) -> int:
    try:
        return len(json.loads((folder / "out" / "history.json").read_text()))
    except (OSError, ValueError):
        return 0


def _without_timing(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: _without_timing(v)
            for k, v in value.items()
            if k not in TIMING and not k.endswith("seconds")
        }
    if isinstance(value, list):
        return [_without_timing(v) for v in value]
    return value


def _json_result(name: str) -> Callable[[Path], Any]:
    return lambda folder: _without_timing(json.loads((folder / "out" / name).read_text()))


def _trained(folder: Path) -> Any:
    """The final weights (as lists) and the history without its timings."""
    out = folder / "out"
    weights = {k: v.tolist() for k, v in load_file(str(out / "last.safetensors")).items()}
    history = _without_timing(json.loads((out / "history.json").read_text()))
    return {"weights": weights, "history": history}


@dataclass
class Command:
    args: list[str]
    progress: Callable[[Path], int]
    result: Callable[[Path], Any]
    delay: float  # the most seconds a kill lands after its unit (about one unit's time)


STORED = ["--out", "out", "--store", "store.sqlite", "--n", "32", "--batch-size", "8"]
COMMANDS = {
    "evaluate": Command(
        ["evaluate", *STORED, "-a", "fgsm", "-a", "pgd:steps=10", "-e", "0.1", "-e", "0.3",
         "--examples", "2", "--no-report"],
        _store_progress, _json_result("results.json"), 0.05,
    ),
    "defend": Command(
        ["defend", *STORED, "-d", "noise", "-a", "fgsm", "-a", "pgd:steps=3",
         "-e", "0.1", "-e", "0.3", "--eot-samples", "2", "--check-n", "8", "--no-report"],
        _store_progress, _json_result("defend.json"), 0.3,
    ),
    "transfer": Command(
        ["transfer", *STORED, "-s", "mnist-cnn", "-s", "mnist-mlp", "-a", "fgsm",
         "-a", "pgd:steps=10", "-e", "0.1", "-e", "0.3", "--dataset", "mnist-demo"],
        _store_progress, _json_result("transfer.json"), 0.1,
    ),
    "train": Command(
        ["train", "--config", "train.yaml", "--out", "out", "--n-train", "256", "--epochs", "6",
         "--batch-size", "32", "--arch", "width=4", "--arch", "hidden=16"],
        _epochs_done, _trained, 0.4,
    ),
}  # fmt: skip


def _environment() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    source = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [source, env.get("PYTHONPATH")]))
    return env


def _start(command: Command, folder: Path, home: Path) -> subprocess.Popen[bytes]:
    folder.mkdir(parents=True, exist_ok=True)
    if "train.yaml" in command.args:
        (folder / "train.yaml").write_text("n_val: 200\n")  # validate on 200 images, not 10,000
    return subprocess.Popen(
        [sys.executable, "-m", "advlab.cli.main", *command.args, *COMMON],
        cwd=folder, env=dict(_environment(), ADVLAB_HOME=str(home)),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip


def _complete(command: Command, folder: Path, home: Path) -> None:
    child = _start(command, folder, home)
    _, stderr = child.communicate(timeout=300)
    assert child.returncode == 0, stderr.decode(errors="replace")[-2000:]


def _kill_after(command: Command, folder: Path, home: Path, units: int, delay: float) -> bool:
    """Start the command, SIGKILL it ``delay`` s after ``units`` units are done; False if it
    finished first (then the point is not a kill point)."""
    child = _start(command, folder, home)
    try:
        while command.progress(folder) < units:
            if child.poll() is not None:
                return False
            time.sleep(0.005)
        time.sleep(delay)
        if child.poll() is not None:
            return False
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
        return True
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        assert child.stderr is not None
        child.stderr.close()


@pytest.mark.slow
@pytest.mark.parametrize("name", list(COMMANDS))
def test_kill_9_resumes_to_the_uninterrupted_result(
    name: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if name == "train":
        request.getfixturevalue("data_dir")  # MNIST's training images: skip without them
    command = COMMANDS[name]
    home = tmp_path / "home"
    _complete(command, tmp_path / "reference", home)
    reference = command.result(tmp_path / "reference")
    total = command.progress(tmp_path / "reference")
    assert total >= 3, f"{name} stored only {total} units: too few to kill in between"

    rng = random.Random(f"kill-{name}")
    killed: list[tuple[int, float]] = []
    for attempt in range(3 * KILL_POINTS):
        if len(killed) == KILL_POINTS:
            break
        units, delay = rng.randrange(1, total), rng.uniform(0, command.delay)
        folder = tmp_path / f"kill-{attempt}"
        if not _kill_after(command, folder, home, units, delay):
            continue  # it finished before the kill: draw another point
        killed.append((units, round(delay, 3)))
        _complete(command, folder, home)
        assert command.result(folder) == reference, f"{name} killed at {units} units + {delay}s"
    assert len(killed) == KILL_POINTS, f"only {len(killed)} kills landed before the end"
