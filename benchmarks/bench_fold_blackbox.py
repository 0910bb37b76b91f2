"""Square on a local model, querying the model itself or its batch-norm-folded copy.

Both runs use the same seed, images and budget; the verdicts must agree::

    ADVLAB_DATA_DIR=/path/to/data python benchmarks/bench_fold_blackbox.py \\
        --model cifar-resnet20-robust-8 --n 64 --queries 300
"""

from __future__ import annotations

import argparse
import time

import torch

from advlab.attacks import Square
from advlab.data import load_dataset
from advlab.models import load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="cifar-resnet20-robust-8")
    parser.add_argument("--dataset", default="cifar10")
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--eps", type=float, default=8 / 255)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model(args.model, device="cpu").eval()
    data = load_dataset(args.dataset, split="test", n=args.n, seed=0)
    seconds = {}
    for fold in (False, True):
        attack = Square(args.eps, max_queries=args.queries, seed=0)
        attack.search_copy = fold
        start = time.perf_counter()
        result = attack(model, data.images, data.labels)
        seconds[fold] = time.perf_counter() - start
        with torch.no_grad():
            fooled = model(result.adversarial).argmax(1) != data.labels
        print(f"folded={fold}: {seconds[fold]:.2f} s, success {int(result.success.sum())}, "
              f"fooled on the model {int(fooled.sum())}, "
              f"queries {int(result.queries.sum())}")  # fmt: skip
        assert torch.equal(result.success, fooled), "the verdicts must be the model's own"
    print(f"folded / plain speed: {seconds[False] / seconds[True]:.2f}x")


if __name__ == "__main__":
    main()
