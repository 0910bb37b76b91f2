"""``torchrun``: the sharded evaluation equals the one-process run, image for image.

Two CPU processes with the gloo backend on 127.0.0.1, started by the test through
``python -m torch.distributed.run`` on the real command line (about 20 s).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from helpers import free_port

from advlab.evaluation import ResultStore
from advlab.evaluation.ranks import Ranks
from advlab.results import without_timings
from advlab.workflows import EvaluateConfig, run_evaluation

# "-n", not "--n": torchrun reads an abbreviation of its own options into "--n".
ARGS = ["evaluate", "--model", "mnist-cnn", "--dataset", "mnist-demo", "-n", "12",
        "--batch-size", "4", "--attack", "fgsm", "--suite", "quick", "--eps", "0.1",
        "--examples", "2", "--no-report"]  # fmt: skip


def test_ranks_deal_every_item_once_in_matching_rounds() -> None:
    items = list(range(5))
    shares = [list(Ranks(rank, 2).rounds(items)) for rank in range(2)]
    assert shares == [[0, 2, 4], [1, 3, None]]
    assert list(Ranks().rounds(items)) == items


def test_two_gloo_processes_equal_one_process_image_for_image(tmp_path: Path) -> None:
    sharded, single = tmp_path / "sharded", tmp_path / "single"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ADVLAB_HOME": str(tmp_path / "home")}
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1",
               "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
               "--master_port", str(free_port()), "-m", "advlab.cli.main", *ARGS,
               "--device", "cpu", "--out", str(sharded), "--store", str(sharded / "s.sqlite"),
               "--quiet"]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=150)
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(p.name for p in sharded.iterdir() if p.suffix == ".json") == ["results.json"]

    config = EvaluateConfig(model="mnist-cnn", dataset="mnist-demo", n=12, batch_size=4,
                            attacks=["fgsm"], suite="quick", epsilons=[0.1], examples=2,
                            report=False, device="cpu", out=str(single),
                            store=str(single / "s.sqlite"))  # fmt: skip
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each rank: the same sums in the same order, bit for bit
    try:
        alone = run_evaluation(config, progress=False).results
    finally:
        torch.set_num_threads(threads)
    together = json.loads((sharded / "results.json").read_text())
    assert together["run_id"] == alone["run_id"]

    def numbers(results: dict) -> dict:
        out = without_timings(results)
        out.pop("config")
        for entry in out.get("suite", []):
            entry.pop("seconds")
        return out

    assert numbers(together) == numbers(json.loads(json.dumps(alone, default=str)))
    with ResultStore(sharded / "s.sqlite") as one, ResultStore(single / "s.sqlite") as two:
        run = alone["run_id"]
        assert one.get_run(run)["run_id"] == run  # finished: its summary is stored
        for key in ("fgsm-linf", "suite:quick-linf"):
            a, b = one.attack_rows(run, key, 0.1, 12), two.attack_rows(run, key, 0.1, 12)
            for name in ("adv_pred", "confidence", "success", "linf", "l2", "queries"):
                np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
