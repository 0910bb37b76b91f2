"""``python -m advlab.training --config FILE.yaml [--distill] [--no-progress]``: an alias
of ``advlab train --config FILE.yaml [--distill] [--quiet]``, kept for the zoo's recipes.

An entry point, not a library module: it hands the command line to ``advlab train``
(imported by name at run time, as the console script would run it).
"""

from __future__ import annotations

import importlib
import sys


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    args = ["--quiet" if arg == "--no-progress" else arg for arg in args]
    if "-h" not in args and "--help" not in args and "--config" not in args:
        print("usage: python -m advlab.training --config FILE.yaml [--distill] [--no-progress]",
              file=sys.stderr)  # fmt: skip
        return 2
    cli = importlib.import_module("advlab.cli.main")
    try:
        cli.main(["--verbose", "train", *args])
    except SystemExit as done:
        return int(done.code or 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
