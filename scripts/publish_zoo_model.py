"""Copy a finished training run's checkpoint into the package zoo with its provenance.

    python scripts/publish_zoo_model.py runs/zoo-mnist-cnn-robust-0.1/best.safetensors \
        --name mnist-cnn-robust-0.1 --description "..." \
        --config src/advlab/zoo/mnist-cnn-robust-0.1.train.yaml \
        --metrics '{"robust_accuracy_eps0.1_worst_case": 0.97}'

The weights are copied byte for byte (the sha256 in the new sidecar is the run's file's);
the sidecar is the run's, plus name, description, command, licenses and extra metrics.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from advlab.models.checkpoint import read_sidecar, sha256_of, sidecar_path

ZOO = Path(__file__).resolve().parents[1] / "src" / "advlab" / "zoo"
DATA_LICENSES = {
    "mnist": "MNIST (LeCun, Cortes, Burges), CC BY-SA 3.0",
    "cifar10": "CIFAR-10 (Krizhevsky 2009); its authors state no license",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--name", required=True)
    parser.add_argument("--description", required=True)
    parser.add_argument("--config", required=True, help="the training YAML it came from")
    parser.add_argument("--metrics", default="{}", help="JSON object of measured figures")
    parser.add_argument("--distill", action="store_true", help="the run used --distill")
    args = parser.parse_args()
    meta = read_sidecar(args.checkpoint)
    target = ZOO / f"{args.name}.safetensors"
    shutil.copyfile(args.checkpoint, target)
    flag = " --distill" if args.distill else ""
    meta.update(
        name=args.name,
        description=args.description,
        command=f"ADVLAB_DATA_DIR=/path/to/data python -m advlab.training --config {args.config}"
        + flag,
        license="BSD-3-Clause (advlab's own training)",
        data_license=DATA_LICENSES.get(str(meta.get("dataset")), str(meta.get("dataset"))),
        sha256=sha256_of(target),
    )
    meta["metrics"] = {**meta.get("metrics", {}), **json.loads(args.metrics)}
    sidecar_path(target).write_text(json.dumps(meta, indent=2, default=str))
    print(f"{target} ({target.stat().st_size:,} bytes, sha256 {meta['sha256']})")


if __name__ == "__main__":
    main()
