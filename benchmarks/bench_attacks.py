"""Attacks across libraries: advlab against torchattacks, ART and foolbox.

For each attack (FGSM, PGD-10, PGD-50 as a robust-accuracy evaluation, MIM, DeepFool, APGD,
Square, the ``fast`` suite) every library runs in one process on the same model, images,
batches and device, taking turns batch by batch in a rotating order. Prints per contender
the images per second, robust accuracy, peak memory, the speed ratio advlab / contender
(the median of per-batch time ratios, each pair timed back to back) and the cost relative
to ``k`` forward+backward passes of the model on the same batch; ``--out FILE`` writes it
all as JSON with the machine, the versions and the command.

Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` over one batch; on the CPU the
peak resident memory above the resident memory before the run, while a fresh subprocess
(holding only torch, the model, the images and that one library) runs one batch (Linux:
the peak ``VmHWM`` is reset first through ``/proc/self/clear_refs``; elsewhere the growth
of ``ru_maxrss``, which misses whatever stays below the peak of the imports).

    ADVLAB_DATA_DIR=/path/to/data python benchmarks/bench_attacks.py --model cifar-resnet20 --n 64
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from attack_contenders import ATTACKS, Contender, Setup, available, contenders
from torch import nn

from advlab.attacks.precision import resolve
from advlab.data import load_dataset
from advlab.errors import AdvlabError
from advlab.models import get_entry, load_model, resolve_device

log = logging.getLogger("bench_attacks")
LIBRARIES = ("advlab", "torchattacks", "art", "foolbox")
WARM_UP = 16  # images


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mnist-cnn", help="a registry name (advlab models)")
    parser.add_argument("--eps", type=float, default=None,
                        help="L-inf eps (default: 0.3 for MNIST models, else 8/255)")  # fmt: skip
    parser.add_argument("--n", type=int, default=64, help="images per timed run")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2, help="timed runs of each contender")
    parser.add_argument("--attacks", default=",".join(ATTACKS), help="comma-separated subset")
    parser.add_argument("--libraries", default=",".join(LIBRARIES), help="comma-separated")
    parser.add_argument("--skip", default="", help="contenders to leave out: art:deepfool,...")
    parser.add_argument("--square-queries", type=int, default=100)
    parser.add_argument("--apgd-steps", type=int, default=100)
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 or auto")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--precision", default="float32", help="advlab's search: bfloat16, auto")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory runs")
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON")
    parser.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--images-file", type=Path, default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def load(args: argparse.Namespace, device: torch.device) -> tuple[nn.Module, Any, Any]:
    """The model (random weights where no trained ones are at hand) and its test images."""
    entry = get_entry(args.model)
    try:  # torchvision models (entries without weights of advlab's own) stay untrained
        model = load_model(args.model, device=device, pretrained=entry.weights is not None)
    except AdvlabError as error:
        log.warning("%s: no trained weights (%s); random weights (speed does not depend "
                    "on them)", args.model, error)  # fmt: skip
        model = load_model(args.model, device=device, pretrained=False)
    if args.images_file is not None:
        images, labels = torch.load(args.images_file, weights_only=True)
        return model, images.to(device), labels.to(device)
    try:
        data = load_dataset(entry.dataset, n=args.n, image_size=entry.input_shape[-1])
        images, labels = data.images, data.labels
    except AdvlabError as error:
        log.warning("%s: no test images (%s); uniform noise with random labels", entry.dataset,
                    error)  # fmt: skip
        generator = torch.Generator().manual_seed(0)
        images = torch.rand((args.n, *entry.input_shape), generator=generator)
        labels = torch.randint(0, entry.num_classes, (args.n,), generator=generator)
    return model, images.to(device), labels.to(device)


def make_setup(args: argparse.Namespace, model: nn.Module, device: torch.device) -> Setup:
    entry = get_entry(args.model)
    eps = args.eps if args.eps is not None else 0.3 if "mnist" in entry.dataset else 8 / 255
    return Setup(model, eps, entry.num_classes, tuple(entry.input_shape), args.batch_size,
                 device, args.square_queries, args.apgd_steps,
                 resolve(args.precision, device))  # fmt: skip


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def pass_seconds(model: nn.Module, x: torch.Tensor, y: torch.Tensor, backward: bool) -> float:
    """Median seconds of one forward (+backward to the input) pass on the batch ``x``."""
    times = []
    for _ in range(6):
        synchronize(x.device)
        start = time.perf_counter()
        if backward:
            batch = x.clone().requires_grad_(True)
            loss = nn.functional.cross_entropy(model(batch), y, reduction="sum")
            torch.autograd.grad(loss, batch)
        else:
            with torch.no_grad():
                model(x)
        synchronize(x.device)
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def timed(run: Contender, x: torch.Tensor, y: torch.Tensor) -> tuple[float, torch.Tensor]:
    synchronize(x.device)
    start = time.perf_counter()
    adversarial = run(x, y)
    synchronize(x.device)
    return time.perf_counter() - start, adversarial


def cuda_peak_mib(run: Contender, x: torch.Tensor, y: torch.Tensor) -> float:
    torch.cuda.synchronize(x.device)
    before = torch.cuda.memory_allocated(x.device)
    torch.cuda.reset_peak_memory_stats(x.device)
    run(x, y)
    torch.cuda.synchronize(x.device)
    return (torch.cuda.max_memory_allocated(x.device) - before) / 2**20


def cpu_peak_mib(argv: list[str], attack: str, library: str, images_file: Path) -> float | None:
    """Growth of ru_maxrss (MiB) while a fresh process runs one batch of the contender."""
    command = [sys.executable, __file__, *argv, "--memory-child", f"{attack}:{library}",
               "--images-file", str(images_file)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        log.warning("memory run of %s/%s failed: %s", attack, library, done.stderr[-500:])
        return None
    return float(json.loads(lines[-1])["peak_mib"])


def memory_child(args: argparse.Namespace) -> None:
    device = resolve_device(args.device)
    model, images, labels = load(args, device)
    attack, library = args.memory_child.split(":")
    run = contenders(attack, make_setup(args, model, device), [library])[library]
    x, y = images[: args.batch_size], labels[: args.batch_size]
    try:  # Linux: reset the peak RSS (VmHWM), so that it measures this run alone
        Path("/proc/self/clear_refs").write_text("5")
        before = proc_status_kib("VmRSS")
        run(x, y)
        peak = proc_status_kib("VmHWM") - before
    except OSError:  # elsewhere: the growth of the high-water mark, 0 if it stays below
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        run(x, y)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    print(json.dumps({"peak_mib": peak / 1024}))


def proc_status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise OSError(f"no {field} in /proc/self/status")


def bench_attack(
    attack: str, runs: dict[str, Contender], batches: list[tuple[torch.Tensor, torch.Tensor]],
    model: nn.Module, repeats: int,
) -> dict[str, Any]:  # fmt: skip
    """Wall seconds per repeat, paired ratios and robust accuracy of every contender."""
    names = list(runs)
    x, y = batches[0]
    for name in names:  # warm-up on a few images: oneDNN/cuDNN plans, lazy imports
        timed(runs[name], x[:WARM_UP], y[:WARM_UP])
    wall = {name: [0.0] * repeats for name in names}
    paired: dict[str, list[float]] = {name: [] for name in names if name != "advlab"}
    correct = dict.fromkeys(names, 0)
    turn = 0
    for repeat in range(repeats):
        for x, y in batches:
            order = names[turn % len(names) :] + names[: turn % len(names)]
            turn += 1
            seconds: dict[str, float] = {}
            for name in order:
                seconds[name], adversarial = timed(runs[name], x, y)
                wall[name][repeat] += seconds[name]
                if repeat == repeats - 1:
                    with torch.no_grad():
                        correct[name] += int((model(adversarial).argmax(1) == y).sum())
            if "advlab" in seconds:
                for name in paired:
                    paired[name].append(seconds[name] / seconds["advlab"])
        log.info("%s repeat %d: %s", attack, repeat + 1,
                 ", ".join(f"{name} {wall[name][repeat]:.2f} s" for name in names))  # fmt: skip
    n = sum(len(y) for _, y in batches)
    return {
        "wall_seconds": wall,
        "images_per_second": {name: n / statistics.median(t) for name, t in wall.items()},
        "robust_accuracy": {name: correct[name] / n for name in names},
        "speed_ratio_advlab_over": {name: statistics.median(r) for name, r in paired.items()},
    }


def versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {"python": platform.python_version(), "torch": torch.__version__}
    for name, module in (("advlab", "advlab"), ("torchattacks", "torchattacks"),
                         ("art", "art"), ("foolbox", "foolbox")):  # fmt: skip
        try:
            found[name] = getattr(importlib.import_module(module), "__version__", "?")
        except ImportError:
            found[name] = None
    return found


def machine(device: torch.device) -> dict[str, Any]:
    return {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda"
        else platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "load_average": os.getloadavg(),
    }  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for chatty in ("art", "advlab"):  # per-batch progress lines of ART and the cascade
        logging.getLogger(chatty).setLevel(logging.WARNING)
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_child:
        memory_child(args)
        return
    device = resolve_device(args.device)
    model, images, labels = load(args, device)
    setup = make_setup(args, model, device)
    libraries = [name for name in args.libraries.split(",") if name]
    for library in libraries[:]:
        if library != "advlab" and available(library) is None:
            log.warning("skipping %s: it does not import (pip install it to compare)", library)
            libraries.remove(library)
    batches = [(images[i : i + args.batch_size], labels[i : i + args.batch_size])
               for i in range(0, len(images), args.batch_size)]  # fmt: skip
    fb = pass_seconds(model, *batches[0], backward=True) / len(batches[0][1])
    forward = pass_seconds(model, *batches[0], backward=False) / len(batches[0][1])
    log.info("model %s, %d images, batch %d, eps %.4f, %s (%d threads): one forward+backward "
             "%.2f ms/image, one forward %.2f ms/image; advlab searches in %s", args.model,
             len(images), args.batch_size, setup.eps, device, torch.get_num_threads(), fb * 1e3,
             forward * 1e3, setup.precision)  # fmt: skip
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as folder:
        images_file = Path(folder) / "images.pt"
        torch.save((images.cpu(), labels.cpu()), images_file)
        for attack in [name for name in args.attacks.split(",") if name]:
            runs = contenders(attack, setup, libraries)
            missing = sorted(set(libraries) - set(runs))
            if missing:
                log.info("%s: not in %s", attack, ", ".join(missing))
            for name in list(runs):
                if f"{name}:{attack}" in args.skip.split(","):
                    log.info("%s: leaving out %s (--skip)", attack, name)
                    del runs[name]
            figures = bench_attack(attack, runs, batches, model, args.repeats)
            k, unit = ATTACKS[attack]
            if attack == "square":
                k, per_pass = args.square_queries, forward
            else:
                per_pass = fb
            figures["k"], figures["k_counts"] = k, unit
            figures["cost_over_k_passes"] = {
                name: statistics.median(t) / (len(images) * k * per_pass)
                for name, t in figures["wall_seconds"].items()
            }
            if not args.no_memory:
                figures["peak_memory_mib"] = {
                    name: cuda_peak_mib(run, *batches[0]) if device.type == "cuda"
                    else cpu_peak_mib(argv, attack, name, images_file)
                    for name, run in runs.items()
                }  # fmt: skip
            results[attack] = figures
            report(attack, figures)
    log.info("%s", markdown(results))
    if args.out is not None:
        payload = {
            "command": shlex.join([sys.executable, *sys.argv]),
            "model": args.model, "eps": setup.eps, "n": len(images),
            "batch_size": args.batch_size, "repeats": args.repeats,
            "advlab_precision": setup.precision,
            "square_queries": args.square_queries, "apgd_steps": args.apgd_steps,
            "machine": machine(device), "versions": versions(),
            "forward_backward_seconds_per_image": fb, "forward_seconds_per_image": forward,
            "attacks": results,
        }  # fmt: skip
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(payload, indent=2))
        log.info("wrote %s", args.out)


def report(attack: str, figures: dict[str, Any]) -> None:
    log.info("%s (k = %d %s):", attack, figures["k"], figures["k_counts"])
    memory = figures.get("peak_memory_mib", {})
    for name, rate in figures["images_per_second"].items():
        ratio = figures["speed_ratio_advlab_over"].get(name)
        peak = memory.get(name)
        log.info("  %-13s %8.1f img/s  robust acc %.3f  cost %.2f x k passes  peak %s MiB"
                 "  advlab/this speed %s", name, rate, figures["robust_accuracy"][name],
                 figures["cost_over_k_passes"][name],
                 "n/a" if peak is None else f"{peak:.0f}",
                 "" if ratio is None else f"{ratio:.2f}")  # fmt: skip
    accuracy = figures["robust_accuracy"]
    if attack == "pgd-50-eval" and {"advlab", "torchattacks"} <= set(accuracy):
        log.info("  PGD-50 robust accuracy advlab (early stop) - torchattacks: %+.1f points",
                 100 * (accuracy["advlab"] - accuracy["torchattacks"]))  # fmt: skip


def markdown(results: dict[str, Any]) -> str:
    """The figures as a Markdown table (for benchmarks/README.md)."""
    rows = ["| attack | library | images/s | speed advlab / this | robust accuracy "
            "| cost / (k passes) | peak MiB |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for attack, figures in results.items():
        for name, rate in figures["images_per_second"].items():
            ratio = figures["speed_ratio_advlab_over"].get(name)
            peak = figures.get("peak_memory_mib", {}).get(name)
            rows.append(
                f"| {attack} (k {figures['k']}) | {name} | {rate:.1f} "
                f"| {'' if ratio is None else f'{ratio:.2f}'} "
                f"| {figures['robust_accuracy'][name]:.3f} "
                f"| {figures['cost_over_k_passes'][name]:.2f} "
                f"| {'' if peak is None else f'{peak:.0f}'} |"
            )
    return "\n".join(rows)


if __name__ == "__main__":
    main()
