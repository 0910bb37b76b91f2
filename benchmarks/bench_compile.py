"""What ``--compile`` buys: APGD-CE and Square with and without ``torch.compile``.

For float32 and bfloat16 search, each attack runs twice on the same images, eagerly and
inside :func:`advlab.attacks.compiled_search`; the first compiled call pays the
compilation, the second shows the steady state. Prints seconds and images broken::

    ADVLAB_DATA_DIR=/path/to/data python benchmarks/bench_compile.py \\
        --model cifar-resnet20-robust-8 --n 64
"""

from __future__ import annotations

import argparse
import time

import torch

from advlab.attacks import APGD, Square, compiled_search, search_precision
from advlab.data import load_dataset
from advlab.models import get_entry, load_model
from advlab.spec import parse_epsilon


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="cifar-resnet20-robust-8")
    parser.add_argument("--eps", default="8/255")
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--square-queries", type=int, default=300)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model(args.model, device="cpu").eval()
    data = load_dataset(get_entry(args.model).dataset, n=args.n)
    eps = parse_epsilon(args.eps)
    attacks = {"APGD-CE, 100 steps": APGD(eps, 100, seed=0),
               f"Square, {args.square_queries} queries":
                   Square(eps, max_queries=args.square_queries, seed=0)}  # fmt: skip
    print("| attack | search | compiled | first call s | second call s | broken |")
    print("|---|---|---|---|---|---|")
    for precision in ("float32", "bfloat16"):
        for compiled in (False, True):
            for label, attack in attacks.items():
                seconds, broken = [], 0
                for _ in range(2):
                    start = time.perf_counter()
                    with search_precision(precision), compiled_search(compiled):
                        result = attack(model, data.images, data.labels)
                    seconds.append(time.perf_counter() - start)
                    broken = int(result.success.sum())
                print(f"| {label} | {precision} | {'yes' if compiled else 'no'} | "
                      f"{seconds[0]:.1f} | {seconds[1]:.1f} | {broken} |")  # fmt: skip


if __name__ == "__main__":
    main()
