"""Where does bfloat16 search get a prediction wrong? The error study behind the band.

Runs the ``standard`` suite with ``--precision bfloat16`` and, for every row of every pass
of the search model (:class:`advlab.attacks.precision.BFloat16Search`), also the float32
logits of the model, without changing what the search returns. Per attack of the suite it
prints the rows, the share recomputed in float32, the band at the end of each call, the
rows whose bfloat16 prediction differs from float32's and the largest bfloat16 top-two
gap (over the logit range) among them, and how many of them the band missed (not
recomputed, so the search saw bfloat16's prediction there; the result is judged in float32
all the same).
Also the first batch's error (what the band starts from). The extra float32 passes make
it slow: time the suite elsewhere (``bench_attacks.py``)::

    ADVLAB_DATA_DIR=/path/to/data python benchmarks/bfloat16_errors.py \\
        --model cifar-resnet20-robust-8 --eps 8/255 --n 64
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from typing import Any

import torch

import advlab.attacks.precision as precision
from advlab.attacks import search_precision, suite
from advlab.data import load_dataset
from advlab.models import get_entry, load_model
from advlab.spec import parse_epsilon

#: Per attack label: one (wrong, bfloat16 gap, recomputed) row block per pass.
rows: dict[str, list[torch.Tensor]] = defaultdict(list)
bands: dict[str, list[precision.Band]] = defaultdict(list)
first_errors: list[float] = []
current = ["clean"]


class Labelled:
    """An attack of the cascade that records which label the passes belong to."""

    def __init__(self, label: str, attack: Any) -> None:
        self.label, self.attack = label, attack

    def __getattr__(self, name: str) -> Any:
        return getattr(self.attack, name)

    def __call__(self, *args: Any) -> Any:
        current[0] = self.label
        return self.attack(*args)


def instrument() -> None:
    search_forward = precision.BFloat16Search.forward
    first_error = precision._first_error
    band_init = precision.Band.__init__

    def forward(self: precision.BFloat16Search, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad(), torch.autocast(x.device.type, dtype=torch.bfloat16):
            approx = self.net(x.detach()).float()
        with torch.no_grad():
            exact = self.exact[0](x.detach())
        wrong = approx.argmax(1) != exact.argmax(1)
        top = approx.topk(2, dim=1).values
        gap = (top[:, 0] - top[:, 1]) / (top[:, 0] - approx.amin(1)).clamp_min(1e-12)
        recomputed = precision.near_boundary(approx, self.band.gap)  # the band before the call
        rows[current[0]].append(torch.stack([wrong.float(), gap, recomputed.float()], 1))
        return search_forward(self, x)

    def measured_first_error(*args: Any) -> float | None:
        error = first_error(*args)
        first_errors.append(float("nan") if error is None else error)
        return error

    def init(self: precision.Band, error: float) -> None:
        band_init(self, error)
        bands[current[0]].append(self)

    precision.BFloat16Search.forward = forward  # type: ignore[method-assign]
    precision._first_error = measured_first_error
    precision.Band.__init__ = init  # type: ignore[method-assign]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="cifar-resnet20-robust-8")
    parser.add_argument("--eps", default="8/255", help="L-inf eps (8/255 or 0.03)")
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model(args.model, device="cpu").eval()
    data = load_dataset(get_entry(args.model).dataset, n=args.n)
    eps = parse_epsilon(args.eps)
    cascade = suite("standard", eps)
    for label, attack in list(cascade.attacks.items()):
        cascade.attacks[label] = Labelled(label, attack)  # type: ignore[assignment]
    instrument()
    start = time.perf_counter()
    with search_precision("bfloat16"):
        result = cascade(model, data.images, data.labels)
    print(f"{args.model}, eps {eps:.4g}, {args.n} images: robust accuracy "
          f"{result.robust_accuracy:.3f} ({time.perf_counter() - start:.0f} s with the study); "
          f"first-batch error {first_errors[0]:.4f} of the logit range")  # fmt: skip
    print("| attack | rows | recomputed | band at the end | wrong rows | "
          "largest bfloat16 gap among them | wrong rows not recomputed |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for label in cascade.attacks:
        if not rows[label]:
            continue
        table = torch.cat(rows[label])
        wrong, gap, recomputed = table[:, 0].bool(), table[:, 1], table[:, 2]
        ends = sorted({round(band.gap, 4) for band in bands[label]})
        largest = f"{float(gap[wrong].max()):.4f}" if wrong.any() else "-"
        missed = int((wrong & (recomputed == 0)).sum())
        print(f"| {label} | {len(table)} | "
              f"{float(recomputed.mean()):.3f} | {', '.join(map(str, ends))} | "
              f"{int(wrong.sum())} | {largest} | {missed} |")  # fmt: skip


if __name__ == "__main__":
    main()
