"""``python -m advlab.training --config FILE.yaml``: train from a YAML config."""

from __future__ import annotations

import argparse
import logging
import sys

from advlab.errors import AdvlabError
from advlab.training.config import load_config
from advlab.training.distill import distill
from advlab.training.trainer import train


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m advlab.training", description=__doc__)
    parser.add_argument("--config", required=True, help="YAML file with TrainConfig fields")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument(
        "--distill", action="store_true",
        help="defensive distillation: a teacher at the config's temperature, then the student",
    )  # fmt: skip
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        config = load_config(args.config)
        if args.distill:
            _, result = distill(config, progress=not args.no_progress)
        else:
            result = train(config, progress=not args.no_progress)
    except AdvlabError as error:
        logging.getLogger("advlab.training").error("%s", error)
        return 2
    logging.getLogger("advlab.training").info(
        "best val accuracy %.4f at epoch %d: %s",
        result.best_val_accuracy, result.best_epoch, result.best_path,
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
