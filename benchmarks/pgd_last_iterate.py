"""How many images does a last-iterate PGD lose that an earlier step had fooled?

torchattacks' PGD returns its last iterate; advlab's evaluation PGD (early stop) keeps the
first example that fools the model. This reruns torchattacks' loop (uniform random start,
sign steps of ``--alpha``, projection, clip to [0, 1]) with the prediction checked at every
step, and counts the images fooled at the last iterate and at some iterate::

    ADVLAB_DATA_DIR=/path/to/data python benchmarks/pgd_last_iterate.py \\
        --model runs/zoo-cifar-resnet20-robust-8/best.safetensors --n 512
"""

from __future__ import annotations

import argparse

import torch
from torch.nn import functional

from advlab.data import load_dataset
from advlab.models import load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="cifar-resnet20-robust-8")
    parser.add_argument("--dataset", default="cifar10")
    parser.add_argument("--n", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--eps", type=float, default=8 / 255)
    parser.add_argument("--alpha", type=float, default=2 / 255)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model = load_model(args.model, device="cpu").eval()
    data = load_dataset(args.dataset, split="test", n=args.n, seed=args.seed)
    eps, alpha = args.eps, args.alpha
    last = ever = 0
    for start in range(0, args.n, args.batch_size):
        x = data.images[start : start + args.batch_size]
        y = data.labels[start : start + args.batch_size]
        adversarial = (x + torch.empty_like(x).uniform_(-eps, eps)).clamp(0, 1)
        fooled = torch.zeros(len(y), dtype=torch.bool)
        for _ in range(args.steps):
            adversarial.requires_grad_(True)
            logits = model(adversarial)
            (grad,) = torch.autograd.grad(functional.cross_entropy(logits, y), adversarial)
            fooled |= logits.argmax(1) != y
            step = adversarial.detach() + alpha * grad.sign() - x
            adversarial = (x + step.clamp(-eps, eps)).clamp(0, 1)
        with torch.no_grad():
            final = model(adversarial).argmax(1) != y
        last += int(final.sum())
        ever += int((fooled | final).sum())
    print(f"fooled at the last iterate {last}/{args.n}, at some iterate {ever}/{args.n}: "
          f"{ever - last} images ({(ever - last) / args.n:.2%}) lost on the way")  # fmt: skip


if __name__ == "__main__":
    main()
