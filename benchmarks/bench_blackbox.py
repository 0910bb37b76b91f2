"""Benchmark: advlab's Square Attack against torchattacks' on the same model and images.

Uses the bundled ``mnist-cnn`` on the bundled demo images (eps 0.3 L-inf / 3.0 L2), or
``--model NAME`` on its data set's test images (CIFAR-10 models: eps 8/255 / 0.5; needs
``ADVLAB_DATA_DIR``). Only images the model
classifies correctly are attacked (torchattacks skips the others). Both attacks get the
same budget, seed and ``p_init``; torchattacks' per-image query counts come from its own
``attack_single_run``. Prints success rate, median queries over successes, seconds, and
advlab/torchattacks ratios.

    python benchmarks/bench_blackbox.py [--model cifar-mobilenetv2] [--n 100] [--queries 1000]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import torch
from torch import nn

from advlab.attacks import Square
from advlab.data import load_dataset
from advlab.models import get_entry, load_model
from advlab.targets import LocalTarget


@dataclass
class Run:
    success_rate: float
    median_queries: float
    seconds: float


EPS = {"mnist": {"linf": 0.3, "l2": 3.0}, "cifar10": {"linf": 8 / 255, "l2": 0.5}}


def pick_setup(
    n: int, name: str | None
) -> tuple[nn.Module, torch.Tensor, torch.Tensor, dict[str, float]]:
    if name is None:  # the bundled MNIST CNN on the bundled demo images
        model, data, dataset = load_model("mnist-cnn"), load_dataset("mnist-demo", n=n), "mnist"
    else:
        model, dataset = load_model(name), get_entry(name).dataset
        if dataset not in EPS:
            raise SystemExit(f"no default eps for {name}'s data set {dataset!r}: pick another")
        data = load_dataset(dataset, n=n, seed=0)
    eps = dict(EPS[dataset])
    model.eval()
    images, labels = data.images, data.labels
    with torch.no_grad():
        correct = model(images).argmax(dim=1) == labels
    print(f"model {model.name}: {int(correct.sum())}/{n} test images correct, attacking those")
    return model, images[correct], labels[correct], eps


def run_advlab(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, norm: str, eps: float,
    queries: int, p_init: float,
) -> Run:  # fmt: skip
    start = time.perf_counter()
    attack = Square(eps, norm, max_queries=queries, p_init=p_init, seed=0)  # type: ignore[arg-type]
    result = attack(LocalTarget(model), images, labels)
    seconds = time.perf_counter() - start
    return Run(result.success_rate, _median(result.queries[result.success]), seconds)


def run_torchattacks(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, norm: str, eps: float,
    queries: int, p_init: float,
) -> Run:  # fmt: skip
    import torchattacks

    start = time.perf_counter()
    attack = torchattacks.Square(
        model, norm="Linf" if norm == "linf" else "L2", eps=eps, n_queries=queries,
        p_init=p_init, seed=0, loss="margin",
    )  # fmt: skip
    attack.init_hyperparam(images)
    torch.manual_seed(0)
    spent, adversarial = attack.attack_single_run(images, labels)
    seconds = time.perf_counter() - start
    with torch.no_grad():
        success = model(adversarial).argmax(dim=1) != labels
    return Run(float(success.float().mean()), _median(spent[success]), seconds)


def _median(values: torch.Tensor) -> float:
    return float(values.float().median()) if values.numel() else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="a registry name (default: mnist-cnn)")
    parser.add_argument("--n", type=int, default=100, help="test images drawn")
    parser.add_argument("--queries", type=int, default=1000, help="query budget per image")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--linf-eps", type=float, default=None, help="override the L-inf eps")
    parser.add_argument("--l2-eps", type=float, default=None, help="override the L2 eps")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, images, labels, eps = pick_setup(args.n, args.model)
    eps["linf"] = args.linf_eps or eps["linf"]
    eps["l2"] = args.l2_eps or eps["l2"]
    header = f"{'norm':5} {'eps':>7} {'library':12} {'success':>8} {'med.q':>7} {'seconds':>8}"
    print(header)
    for norm, p_init in (("linf", 0.8), ("l2", 0.1)):
        ours = run_advlab(model, images, labels, norm, eps[norm], args.queries, p_init)
        theirs = run_torchattacks(model, images, labels, norm, eps[norm], args.queries, p_init)
        for library, run in (("advlab", ours), ("torchattacks", theirs)):
            print(f"{norm:5} {eps[norm]:7.4f} {library:12} {run.success_rate:8.3f} "
                  f"{run.median_queries:7.0f} {run.seconds:8.2f}")  # fmt: skip
        print(f"{norm:5} ratio advlab/torchattacks: success "
              f"{ours.success_rate / max(theirs.success_rate, 1e-9):.3f}, median queries "
              f"{ours.median_queries / theirs.median_queries:.3f}, "
              f"time {ours.seconds / theirs.seconds:.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
