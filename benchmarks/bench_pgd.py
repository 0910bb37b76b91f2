"""PGD-10 throughput: advlab against torchattacks on the same model, images and settings.

Both run in one process after a warm-up, taking turns batch by batch, so that both see the
same machine state (CPU frequency, other load, CUDA caches). Prints images/s for each and
the ratio advlab / torchattacks (the median of per-batch ratios, each pair timed back to
back); ``--out FILE`` also writes the figures as JSON.

    ADVLAB_DATA_DIR=/path/to/data python benchmarks/bench_pgd.py --n 256 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from advlab.attacks import PGD
from advlab.data import load_dataset
from advlab.errors import AdvlabError
from advlab.models import load_model, resolve_device

log = logging.getLogger("bench_pgd")

EPS, ALPHA, STEPS = 8 / 255, 2 / 255, 10


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, mps or auto")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--n", type=int, default=256, help="images per timed run")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each library")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON")
    return parser.parse_args()


def model_and_images(n: int, device: torch.device) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """cifar-resnet20 on CIFAR-10 where the data folder is set; else an MNIST CNN."""
    if os.environ.get("ADVLAB_DATA_DIR"):
        try:
            data = load_dataset("cifar10", n=n)
            return load_model("cifar-resnet20", device=device), data.images, data.labels
        except AdvlabError as error:
            log.warning("falling back to mnist-cnn: %s", error)
    data = load_dataset("mnist-demo", n=n)
    return load_model("mnist-cnn", device=device), data.images, data.labels


def timed(
    attack: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    labels: torch.Tensor,
    device: torch.device,
) -> tuple[float, float, torch.Tensor]:
    """Wall seconds, process CPU seconds and the adversarial images of one batch."""
    synchronize(device)
    wall, cpu = time.perf_counter(), time.process_time()
    adversarial = attack(images, labels)
    synchronize(device)
    return time.perf_counter() - wall, time.process_time() - cpu, adversarial


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = parse_args()
    import torchattacks  # a benchmark-only dependency (advlab's "test" extra)

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    model, images, labels = model_and_images(args.n, device)
    images, labels = images.to(device), labels.to(device)

    ours = PGD(eps=EPS, alpha=ALPHA, steps=STEPS)
    # The same attack stopping each image once fooled: what robust accuracy needs.
    ours_early = PGD(eps=EPS, alpha=ALPHA, steps=STEPS, early_stop=True)
    theirs = torchattacks.PGD(model, eps=EPS, alpha=ALPHA, steps=STEPS, random_start=True)

    def theirs_with_success(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # advlab also returns per-image success flags, which cost one forward pass more;
        # this is what a torchattacks user runs to get the same result.
        adversarial = theirs(x, y)
        with torch.no_grad():
            model(adversarial).argmax(1).ne(y)
        return adversarial

    contenders: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
        "advlab": lambda x, y: ours(model, x, y).adversarial,
        "advlab-early-stop": lambda x, y: ours_early(model, x, y).adversarial,
        "torchattacks": lambda x, y: theirs(x, y),
        "torchattacks+success": theirs_with_success,
    }
    batches = [
        (images[offset : offset + args.batch_size], labels[offset : offset + args.batch_size])
        for offset in range(0, len(images), args.batch_size)
    ]
    # Warm-up: first calls pay for allocator growth, cuDNN autotuning and lazy imports.
    for attack in contenders.values():
        timed(attack, *batches[0], device)

    names = list(contenders)
    wall: dict[str, list[float]] = {name: [0.0] * args.repeats for name in names}
    cpu: dict[str, list[float]] = {name: [0.0] * args.repeats for name in names}
    # Per-batch time ratios torchattacks / advlab, each pair measured back to back, which
    # cancels most of the drift of a shared machine.
    paired: dict[str, list[float]] = {name: [] for name in names[1:]}
    early_vs_theirs: list[float] = []
    correct = dict.fromkeys(names, 0)
    turn = 0
    for repeat in range(args.repeats):
        for x, y in batches:
            # Rotate the order so that no contender always runs in the same position.
            order = names[turn % len(names) :] + names[: turn % len(names)]
            turn += 1
            batch_wall: dict[str, float] = {}
            for name in order:
                seconds, cpu_seconds, adversarial = timed(contenders[name], x, y, device)
                batch_wall[name] = seconds
                wall[name][repeat] += seconds
                cpu[name][repeat] += cpu_seconds
                if repeat == args.repeats - 1:
                    with torch.no_grad():
                        correct[name] += int((model(adversarial).argmax(1) == y).sum())
            for name in paired:
                paired[name].append(batch_wall[name] / batch_wall["advlab"])
            early_vs_theirs.append(batch_wall["torchattacks"] / batch_wall["advlab-early-stop"])
        log.info("repeat %d: %s", repeat + 1, ", ".join(
            f"{name} {len(images) / wall[name][repeat]:.1f} img/s" for name in names))  # fmt: skip

    rates = {name: len(images) / statistics.median(times) for name, times in wall.items()}
    cpu_rates = {name: len(images) / statistics.median(times) for name, times in cpu.items()}
    robust = {name: correct[name] / len(images) for name in names}
    ratios = {name: statistics.median(values) for name, values in paired.items()}
    ratios["torchattacks (vs advlab-early-stop)"] = statistics.median(early_vs_theirs)
    log.info("model %s on %s (%d threads), %d images, batch %d, PGD-%d eps %.4f alpha %.4f",
             getattr(model, "name", type(model).__name__), device, torch.get_num_threads(),
             len(images), args.batch_size, STEPS, EPS, ALPHA)  # fmt: skip
    for name in names:
        log.info("%-21s %9.1f images/s wall, %9.1f images/CPU-s, robust accuracy %.3f",
                 name, rates[name], cpu_rates[name], robust[name])  # fmt: skip
    for name, ratio in ratios.items():
        log.info("speed ratio advlab / %-36s %.3f (median of paired batches)", name, ratio)

    if args.out is not None:
        figures = {
            "model": getattr(model, "name", type(model).__name__),
            "device": str(device),
            "device_name": torch.cuda.get_device_name(device)
            if device.type == "cuda"
            else platform.processor() or platform.machine(),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "torchattacks": torchattacks.__version__,
            "n": len(images),
            "batch_size": args.batch_size,
            "eps": EPS,
            "alpha": ALPHA,
            "steps": STEPS,
            "repeats": args.repeats,
            "wall_seconds": wall,
            "cpu_seconds": cpu,
            "images_per_second": rates,
            "images_per_cpu_second": cpu_rates,
            "robust_accuracy": robust,
            "paired_ratio_advlab_over": ratios,
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(figures, indent=2))
        log.info("wrote %s", args.out)


if __name__ == "__main__":
    main()
