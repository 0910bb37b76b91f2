"""``torchrun`` training: two gloo processes with DistributedDataParallel train as one does.

Each rank trains on its half of every (global) batch and DDP averages the gradients, so
standard training on two processes equals the one-process run up to float rounding; two
processes of adversarial training (TRADES) run, and rank 0 alone writes the run's files.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from helpers import free_port
from safetensors.torch import load_file

TINY = ["train", "--model", "mnist-mlp", "--dataset", "mnist", "--n-train", "512",
        "--epochs", "2", "--batch-size", "64", "--num-threads", "1", "--device", "cpu",
        "--seed", "0", "--quiet"]  # fmt: skip


def _run(args: list[str], tmp_path: Path, processes: int) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ADVLAB_HOME": str(tmp_path / "home")}
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1",
                "--nproc_per_node", str(processes), "--master_addr", "127.0.0.1",
                "--master_port", str(free_port())]  # fmt: skip
    prefix = launcher if processes > 1 else [sys.executable]
    done = subprocess.run([*prefix, "-m", "advlab.cli.main", *args], env=env,
                          capture_output=True, text=True, timeout=240)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]


def test_two_processes_train_as_one(tmp_path: Path, data_dir: Path) -> None:
    args = [*TINY, "--data-dir", str(data_dir)]
    _run([*args, "--out", str(tmp_path / "two")], tmp_path, 2)
    _run([*args, "--out", str(tmp_path / "one")], tmp_path, 1)
    two = json.loads((tmp_path / "two" / "history.json").read_text())
    one = json.loads((tmp_path / "one" / "history.json").read_text())
    assert [e["val_accuracy"] for e in two] == [e["val_accuracy"] for e in one]
    for a, b in zip(two, one, strict=True):
        assert abs(a["train_loss"] - b["train_loss"]) < 1e-5
        assert a["train_accuracy"] == b["train_accuracy"]
    weights_two = load_file(tmp_path / "two" / "last.safetensors")
    weights_one = load_file(tmp_path / "one" / "last.safetensors")
    assert weights_two.keys() == weights_one.keys()
    for name, value in weights_one.items():
        torch.testing.assert_close(weights_two[name], value, rtol=1e-4, atol=1e-5)


def test_two_processes_train_adversarially(tmp_path: Path, data_dir: Path) -> None:
    out = tmp_path / "trades"
    _run([*TINY, "--data-dir", str(data_dir), "--adversarial", "trades", "--eps", "0.1",
          "--steps", "2", "--val-n", "50", "--val-steps", "2", "--out", str(out)],
         tmp_path, 2)  # fmt: skip
    history = json.loads((out / "history.json").read_text())
    assert [e["epoch"] for e in history] == [1, 2]
    assert all(0.0 <= e["val_robust_accuracy"] <= e["val_accuracy"] for e in history)
    assert history[-1]["val_accuracy"] > 0.5  # it learned: 10 classes, chance is 0.1
    assert sorted(p.name for p in out.iterdir()) == [
        "best.json", "best.safetensors", "config.yaml", "history.json", "last.json",
        "last.safetensors", "report.html", "state.pt",
    ]  # fmt: skip


def test_each_rank_trains_on_its_own_part_of_every_batch(monkeypatch) -> None:
    from advlab.training import ddp

    batch = torch.arange(10, 15)
    parts = []
    for rank in range(2):
        monkeypatch.setattr(ddp, "rank_and_world", lambda rank=rank: (rank, 2))
        parts.append(ddp.share(batch).tolist())
    assert parts == [[10, 11, 12], [13, 14]]
    monkeypatch.setattr(ddp, "rank_and_world", lambda: (0, 1))
    assert ddp.share(batch) is batch and ddp.total(2.0, 3.0) == [2.0, 3.0]
