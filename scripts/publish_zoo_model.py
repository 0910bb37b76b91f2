"""Copy a finished training run's checkpoint into the package zoo with its provenance.

    python scripts/publish_zoo_model.py runs/zoo-mnist-cnn-robust-0.1/best.safetensors \
        --name mnist-cnn-robust-0.1 --description "..." \
        --config src/advlab/zoo/mnist-cnn-robust-0.1.train.yaml \
        --metrics '{"robust_accuracy_eps0.1_worst_case": 0.97}'

The weights are copied byte for byte (the sha256 in the new sidecar is the run's file's);
the sidecar is the run's, plus name, description, command, licenses and extra metrics.
``--half`` stores the floating-point tensors as float16 instead (half the file; the model
still runs in float32 after loading) and measures the stored file's test accuracy again
(``metrics.test_accuracy``; the run's float32 figure stays as ``test_accuracy_float32``),
which needs the data set in ``ADVLAB_DATA_DIR``.

``--test-accuracy`` measures the shipped file on the whole test split (for runs validated on a
held-out part of the training set), and ``--suite-results`` adds the figures of an
``advlab evaluate --suite`` run of that checkpoint (its ``results.json``)::

    python scripts/publish_zoo_model.py runs/zoo-cifar-resnet20-robust-8/best.safetensors \
        --name cifar-resnet20-robust-8 --description "..." \
        --config src/advlab/zoo/cifar-resnet20-robust-8.train.yaml \
        --test-accuracy --suite-results runs/eval/std/results.json
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

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
    parser.add_argument("--half", action="store_true", help="store float tensors as float16")
    parser.add_argument("--command", default=None, help="the training command, if not one config")
    parser.add_argument("--test-accuracy", action="store_true", help="measure the test split")
    parser.add_argument("--suite-results", type=Path, help="results.json of a suite evaluation")
    parser.add_argument(
        "--zoo", type=Path, default=ZOO, help="where to write (default: the package)"
    )
    args = parser.parse_args()
    extra = json.loads(args.metrics)
    if args.suite_results is not None:
        extra.update(suite_metrics(args.suite_results, args.checkpoint))
    meta = read_sidecar(args.checkpoint)
    target = args.zoo / f"{args.name}.safetensors"
    if args.half:
        state = load_file(str(args.checkpoint))
        halved = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
        save_file(halved, str(target))
        target.chmod(0o644)
        meta["stored_dtype"] = "float16"
    else:
        shutil.copyfile(args.checkpoint, target)
    flag = " --distill" if args.distill else ""
    command = args.command or (
        f"ADVLAB_DATA_DIR=/path/to/data python -m advlab.training --config {args.config}" + flag
    )
    meta.update(
        name=args.name,
        description=args.description,
        command=command,
        license="BSD-3-Clause (advlab's own training)",
        data_license=DATA_LICENSES.get(str(meta.get("dataset")), str(meta.get("dataset"))),
        sha256=sha256_of(target),
    )
    meta["metrics"] = {**meta.get("metrics", {}), **extra}
    sidecar_path(target).write_text(json.dumps(meta, indent=2, default=str))
    if args.half or args.test_accuracy:
        meta["metrics"].update(_stored_accuracy(target, meta, was_halved=args.half))
        sidecar_path(target).write_text(json.dumps(meta, indent=2, default=str))
    print(f"{target} ({target.stat().st_size:,} bytes, sha256 {meta['sha256']})")


def suite_metrics(results: Path, checkpoint: Path) -> dict[str, object]:
    """The suite figures of one ``advlab evaluate --suite`` run of this checkpoint."""
    from advlab.models import load_model
    from advlab.models.weights import weights_sha256

    evaluation = json.loads(results.read_text())
    if evaluation.get("weights_sha256") != weights_sha256(load_model(str(checkpoint))):
        raise SystemExit(f"{results} evaluated other weights; evaluate this checkpoint first")
    if not evaluation.get("suite"):
        raise SystemExit(f"{results} has no suite; run advlab evaluate with --suite")
    (entry,) = evaluation["suite"]
    return {
        "suite": entry["suite"],
        "suite_robust_accuracy": entry["robust_accuracy"],
        "suite_eps": entry["eps"],
        "suite_n": evaluation["n"],
        "suite_clean_accuracy": evaluation["clean_accuracy"],
    }


def _stored_accuracy(target: Path, meta: dict, *, was_halved: bool) -> dict[str, float]:
    """Test accuracy of the file as users load it (float32 weights, even from float16)."""
    from advlab.data import load_dataset
    from advlab.models import load_model
    from advlab.training import evaluate_accuracy

    model = load_model(str(target))
    test = load_dataset(str(meta["dataset"]), split="test")
    accuracy = evaluate_accuracy(model, test, torch.device("cpu"))
    if not was_halved:
        print(f"{target.name}: test accuracy {accuracy:.4f} on {len(test)} images")
        return {"test_accuracy": accuracy}
    run = meta["metrics"].get("test_accuracy")
    print(f"stored float16 file: test accuracy {accuracy:.4f} (the run's float32: {run})")
    return {"test_accuracy": accuracy, "test_accuracy_float32": run}


if __name__ == "__main__":
    main()
