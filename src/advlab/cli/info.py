"""What advlab knows and has done: ``models``, ``datasets``, ``attacks``, ``runs``, and
``serve`` (a model as an HTTP endpoint for black-box attacks)."""

from __future__ import annotations

import inspect
import json
from dataclasses import asdict, dataclass
from typing import Annotated, Any

import typer
from rich.table import Column, Table

from advlab.cli.options import Device, Store, Weights, console, grouped, pct


def models() -> None:
    """List the registry's models."""
    from advlab.models import registered_models

    table = Table("name", "input", "classes", "data", "weights", "description", expand=True)
    for entry in registered_models():
        if entry.weights is None:
            source = "torchvision" if entry.dataset == "imagenet" else "-"
        else:
            source = "bundled" if entry.weights.bundled else "data dir / download"
            if entry.weights.accuracy:
                source += f" ({entry.weights.accuracy:.2%})"
        shape = "x".join(map(str, entry.input_shape))
        table.add_row(
            entry.name, shape, str(entry.num_classes), entry.dataset, source, entry.description
        )
    console.print(table)
    console.print("Also: torchvision:NAME, package.module:factory, file.safetensors, TorchScript.")


def datasets() -> None:
    """List the data sets advlab can load."""
    from advlab.data import DATASETS

    table = Table("name", "image", "classes", "description")
    for info in DATASETS.values():
        table.add_row(
            info.name,
            "x".join(map(str, info.image_shape)),
            str(info.num_classes or "-"),
            info.description,
        )
    console.print(table)
    console.print("Lookup: --data-dir, then ADVLAB_DATA_DIR, then a download into ~/.advlab/cache.")


def attacks() -> None:
    """List the attacks and their parameters."""
    from advlab.attacks import ATTACKS

    table = Table("name", "parameters (defaults)", "description")
    for name, cls in sorted(ATTACKS.items()):
        params = inspect.signature(cls.__init__).parameters.values()
        shown = ", ".join(f"{p.name}={_fmt(p.default)}" for p in params if p.name != "self")
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        table.add_row(name, shown, doc)
    console.print(table)
    console.print(
        "Pass options as --attack pgd:steps=20,restarts=2 (eps and norm have their own flags)."
    )


def runs(
    run_id: Annotated[str | None, typer.Argument(help="Show one run's results as JSON.")] = None,
    store: Store = None,
    salvage: Annotated[
        str | None,
        typer.Option(
            metavar="NEW_STORE",
            help="Copy every readable run of a damaged --store into this new store file.",
        ),
    ] = None,
) -> None:
    """List the runs in the results store, or print one run's results.

    An "interrupted" run (Ctrl-C, kill -9) resumes when its command runs again.
    """
    from advlab.evaluation import ResultStore

    if salvage:
        _salvage(store, salvage)
        return
    results_store = ResultStore(store) if store else ResultStore()
    if run_id:
        console.print_json(json.dumps(results_store.get_run(run_id), default=str))
        return
    table = Table("created", "status", "model", "dataset", "n", "clean acc", "worst case")
    table.columns.insert(0, Column("run id", no_wrap=True, min_width=12))
    for row in results_store.list_runs():
        worst = row.get("worst_case") or {}
        worst_text = ", ".join(f"{float(eps):g}: {pct(acc)}" for eps, acc in worst.items())
        table.add_row(
            str(row["run_id"])[:12],
            str(row.get("created", ""))[:19],
            _status(row),
            str(row.get("model", "")),
            str(row.get("dataset", "")),
            str(row.get("n", "")),
            pct(row.get("clean_accuracy")),
            worst_text,
        )
    console.print(table)


def _status(row: dict[str, Any]) -> str:
    status = str(row.get("status", ""))
    if status != "interrupted":
        return status
    done, total = row.get("units_done"), row.get("units_total")
    stored = f"{done}/{total} units, " if total else ""
    return f"interrupted ({stored}resumable: rerun its command)"


def _salvage(store: str | None, destination: str) -> None:
    from advlab.evaluation.store import default_store_path, salvage

    report = salvage(store or default_store_path(), destination)
    console.print(
        f"salvaged {len(report.copied)} run(s) of {report.source} into {report.destination}"
    )
    for run_id, why in report.skipped.items():
        console.print(f"left out damaged run {run_id}: {why}", highlight=False)


@dataclass(frozen=True)
class Limits:
    """The server's bounds (:class:`advlab.serve.ServeLimits`) as options."""

    max_batch: Annotated[int, typer.Option(help="Largest batch one request may carry.")] = 256
    max_request_bytes: Annotated[
        int, typer.Option(help="Largest request body in bytes (413 beyond).")
    ] = 64 * 1024 * 1024
    max_pending: Annotated[
        int, typer.Option(help="Requests admitted at once; beyond: 503 with Retry-After.")
    ] = 64
    max_inflight_bytes: Annotated[
        int | None,
        typer.Option(
            help="Bytes of the admitted bodies together; beyond: 503 with Retry-After "
            "(default: 2 x --max-request-bytes, at least 128 MiB)."
        ),
    ] = None
    request_timeout: Annotated[
        float, typer.Option(help="Seconds a whole request body may take to arrive (408).")
    ] = 30.0
    workers: Annotated[
        int | None, typer.Option(help="Threads that decode requests (default: CPUs, at most 4).")
    ] = None


@grouped
def serve(
    model: Annotated[str, typer.Option(help="Model to serve (as for evaluate).")] = "mnist-cnn",
    weights: Weights = None,
    host: Annotated[str, typer.Option(help="Address to bind; 0.0.0.0 exposes it.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    labels_only: Annotated[
        bool, typer.Option("--labels-only", help="Answer with top-1 labels, never scores.")
    ] = False,
    limits: Limits = Limits(),
    device: Device = "auto",
) -> None:
    """Serve a model as an HTTP endpoint (POST /predict, GET /info) for black-box attacks."""
    from advlab.errors import check
    from advlab.models import resolve_device
    from advlab.serve import run_server

    workers = limits.workers
    check(workers is None or workers >= 1, f"--workers must be >= 1, got {workers}")
    run_server(
        model,
        weights,
        host=host,
        port=port,
        output="labels" if labels_only else "scores",
        device=str(resolve_device(device)),
        ready=lambda url: console.print(f"serving {model} at {url} (Ctrl-C to stop)"),
        **asdict(limits),
    )


def _fmt(value: Any) -> str:
    return "-" if value is inspect.Parameter.empty else repr(value)
