"""Does bfloat16 search change the standard suite's answer? Per image, on many models.

Runs the ``standard`` suite twice on the same images, searching in float32 and in
bfloat16 (:func:`advlab.attacks.search_precision`), and prints per model: robust accuracy
of both, the images robust in one and broken in the other (in both directions: bfloat16
weaker, bfloat16 stronger), the images broken by a different stage, the first-batch
error the band starts from, and both times. Every verdict is float32's in both runs; what
bfloat16 can change is which adversarial example the search finds. Times are only
comparable when the machine is otherwise idle::

    ADVLAB_DATA_DIR=/path/to/data python benchmarks/bfloat16_agreement.py \\
        --models cifar-resnet32:1/255,mnist-cnn:0.1 --n 100 --json out.json

``--timing-only`` prints instead what ``--precision auto`` measures for each model.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections import Counter
from typing import Any

import torch

import advlab.attacks.precision as precision
from advlab.attacks import search_precision, suite
from advlab.attacks.fold import folded
from advlab.data import load_dataset
from advlab.models import get_entry, load_model
from advlab.spec import parse_epsilon

DEFAULT_MODELS = (
    "cifar-resnet32:1/255,cifar-resnet56:1/255,cifar-mobilenetv2:1/255,"
    "cifar-resnet20-advlab:1/255,mnist-cnn:0.1,mnist-mlp:0.05,mnist-cnn-distilled:0.1"
)


def run(model: torch.nn.Module, data: Any, eps: float, mode: str) -> tuple[Any, float]:
    start = time.perf_counter()
    with search_precision(mode):
        result = suite("standard", eps)(model, data.images, data.labels)
    return result, time.perf_counter() - start


def compare(name: str, eps_text: str, n: int) -> dict[str, Any]:
    model = load_model(name, device="cpu").eval()
    data = load_dataset(get_entry(name).dataset, n=n)
    eps = parse_epsilon(eps_text)
    exact, exact_s = run(model, data, eps, "float32")
    approx, approx_s = run(model, data, eps, "bfloat16")
    robust32, robust16 = ~exact.success, ~approx.success
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        rounded = model(data.images[:64]).float()
    with torch.no_grad():
        first = float(precision.top_class_error(rounded, model(data.images[:64])).max())
    row = {
        "model": name, "eps": eps, "n": n,
        "robust_accuracy_float32": exact.robust_accuracy,
        "robust_accuracy_bfloat16": approx.robust_accuracy,
        "bfloat16_weaker": int((robust16 & ~robust32).sum()),
        "bfloat16_stronger": int((robust32 & ~robust16).sum()),
        "other_stage": int((exact.broken_by != approx.broken_by).sum()),
        "breakers_float32": _count(exact.breakers()),
        "breakers_bfloat16": _count(approx.breakers()),
        "seconds_float32": round(exact_s, 1), "seconds_bfloat16": round(approx_s, 1),
        "first_batch_error": round(first, 4), "searched_in_float32": first > precision.CHECK,
    }  # fmt: skip
    return row


def _count(breakers: list[str | None]) -> dict[str, int]:
    return dict(Counter(breaker or "robust" for breaker in breakers))


def timing(name: str) -> str:
    """What ``--precision auto`` measures: a forward+backward pass of the model's search
    copy on 64 images, in float32 and under bfloat16 autocast (best of three)."""
    model = load_model(name, device="cpu").eval()
    images = load_dataset(get_entry(name).dataset, n=64).images
    copy = folded(model, images)
    sample = images.contiguous(memory_format=torch.channels_last)
    float32, bfloat16 = (precision._seconds(copy, sample, low) for low in (False, True))
    choice = "bfloat16" if bfloat16 <= precision.WORTH * float32 else "float32"
    return (f"| {name} | {1e3 * float32:.1f} | {1e3 * bfloat16:.1f} | "
            f"{bfloat16 / float32:.2f} | {choice} |")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=DEFAULT_MODELS, help="name:eps,name:eps,...")
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", help="write the rows here as they come")
    parser.add_argument(
        "--timing-only",
        action="store_true",
        help="only what --precision auto times for each model (no suites)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.timing_only:
        print("| model | float32 ms | bfloat16 ms | ratio | auto searches in |")
        print("|---|---|---|---|---|")
        for item in args.models.split(","):
            print(timing(item.rsplit(":", 1)[0]), flush=True)
        return
    rows = []
    print("| model | eps | n | robust float32 | robust bfloat16 | bfloat16 weaker | bfloat16 "
          "stronger | other stage | first-batch error | s float32 | s bfloat16 |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for item in args.models.split(","):
        name, eps_text = item.rsplit(":", 1)
        row = compare(name, eps_text, args.n)
        rows.append(row)
        print(f"| {name} | {eps_text} | {args.n} | {row['robust_accuracy_float32']:.3f} | "
              f"{row['robust_accuracy_bfloat16']:.3f} | {row['bfloat16_weaker']} | "
              f"{row['bfloat16_stronger']} | {row['other_stage']} | {row['first_batch_error']} | "
              f"{row['seconds_float32']} | {row['seconds_bfloat16']} |", flush=True)  # fmt: skip
        if args.json:
            with open(args.json, "w") as file:
                json.dump({"machine": platform.processor() or platform.machine(),
                           "torch": torch.__version__, "threads": args.threads,
                           "rows": rows}, file, indent=1)  # fmt: skip


if __name__ == "__main__":
    main()
