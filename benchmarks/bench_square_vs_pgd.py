"""Square Attack (score-based, no gradients) against white-box PGD-20 on the zoo models.

The issue-3 yardstick: on each model, Square at L-inf eps (0.3 on MNIST, 8/255 on CIFAR-10)
should reach at least 95% of PGD-20's success rate with a median under 500 queries, and
never exceed its budget. Only images the model classifies correctly are attacked.

    ADVLAB_DATA_DIR=/path/to/data python benchmarks/bench_square_vs_pgd.py --n 200
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from advlab.attacks import PGD, Square
from advlab.data import load_dataset
from advlab.errors import AdvlabError
from advlab.models import load_model
from advlab.targets import LocalTarget

SETUPS = {  # model: (data set, L-inf eps)
    "mnist-cnn": ("mnist", 0.3),
    "mnist-mlp": ("mnist", 0.3),
    "mnist-cnn-robust-0.1": ("mnist", 0.1),
    "cifar-resnet20": ("cifar10", 8 / 255),
    "cifar-resnet20-advlab": ("cifar10", 8 / 255),
    "cifar-mobilenetv2": ("cifar10", 8 / 255),
}


def measure(name: str, dataset: str, eps: float, n: int, queries: int) -> dict[str, object]:
    model = load_model(name)
    data = load_dataset(dataset, n=n, seed=0)
    with torch.no_grad():
        correct = model(data.images).argmax(1) == data.labels
    images, labels = data.images[correct], data.labels[correct]
    began = time.perf_counter()
    pgd = PGD(eps, steps=20, seed=0)(model, images, labels)
    pgd_seconds = time.perf_counter() - began
    began = time.perf_counter()
    square = Square(eps, "linf", max_queries=queries, seed=0)(LocalTarget(model), images, labels)
    square_seconds = time.perf_counter() - began
    spent = square.queries[square.success].tolist()
    return {
        "model": name, "dataset": dataset, "eps": eps, "attacked": int(correct.sum()),
        "pgd20_success": pgd.success_rate, "square_success": square.success_rate,
        "ratio": square.success_rate / pgd.success_rate if pgd.success_rate else None,
        "square_median_queries": statistics.median(spent) if spent else None,
        "square_mean_queries": statistics.fmean(spent) if spent else None,
        "square_max_queries": int(square.queries.max()), "budget": queries,
        "pgd20_seconds": pgd_seconds, "square_seconds": square_seconds,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--model", action="append", help="default: every zoo model present")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    rows = []
    for name in args.model or list(SETUPS):
        dataset, eps = SETUPS.get(name, ("mnist", 0.3))
        try:
            row = measure(name, dataset, eps, args.n, args.queries)
        except AdvlabError as error:
            print(f"skipping {name}: {error}")
            continue
        rows.append(row)
        median = row["square_median_queries"]
        print(
            f"{name} eps {eps:.4g}: {row['attacked']} images; PGD-20 success "
            f"{row['pgd20_success']:.3f}, Square {row['square_success']:.3f} "
            f"(ratio {row['ratio'] or 0:.3f}), median queries {median}, max "
            f"{row['square_max_queries']}/{args.queries}; {row['pgd20_seconds']:.1f} s vs "
            f"{row['square_seconds']:.1f} s"
        )
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
