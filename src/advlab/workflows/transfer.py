"""``advlab transfer`` as a call: the transfer matrix of attacks crafted on sources and
shown to targets, written as transfer.json, transfer.csv, heatmaps (and transfer.html)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from advlab.workflows.common import (
    load_data,
    prepare_folder,
    resolve_batch_size,
    searching,
    write_config,
)
from advlab.workflows.config import TransferConfig

if TYPE_CHECKING:
    from advlab.evaluation.transfer import TransferMatrix

RESULT_FILES = ("transfer.json", "transfer.csv")


@dataclass
class TransferOutput:
    matrix: TransferMatrix
    results_path: Path  # transfer.json; transfer.csv beside it
    figures: list[Path] = field(default_factory=list)
    report_path: Path | None = None


def run_transfer(
    config: TransferConfig, *, progress: bool = True, force: bool = False
) -> TransferOutput:
    """Craft each attack at each eps on every source; classify the examples with every target.

    The partial matrix is written to ``transfer.json`` after each source.
    """
    from advlab.evaluation import AttackSpec, ResultStore
    from advlab.evaluation.transfer import transfer_matrix
    from advlab.models import load_model, resolve_device
    from advlab.reports.transfer import save_transfer_heatmaps, write_transfer_report

    out_dir = prepare_folder(config, force=force, results=RESULT_FILES)
    device = resolve_device(config.device)
    models: dict[str, Any] = {}
    for spec in [*config.sources, *config.targets]:  # each once: a source may be a target
        if spec not in models:
            models[spec] = load_model(spec, device=device)
    assert config.dataset is not None  # the config resolves it
    data = load_data(config.dataset, config.split, config.n, config.data_dir, seed=config.seed)
    batch_size = resolve_batch_size(config.batch_size, list(models.values()), len(data))
    specs = [AttackSpec(name=c.name, norm=c.norm, params=dict(c.params)) for c in config.attacks]
    write_config(config)

    def save(partial: TransferMatrix) -> None:
        partial.write_json(out_dir / "transfer.json")
        partial.write_csv(out_dir / "transfer.csv")

    # (the first source is timed for --precision auto: the sources are what is attacked)
    with searching(config, models[config.sources[0]], data):
        matrix = transfer_matrix(
            {spec: models[spec] for spec in config.sources},
            {spec: models[spec] for spec in config.targets},
            specs, config.epsilons, data, batch_size=batch_size, seed=config.seed,
            progress=progress, run_config=config.model_dump(), on_update=save,
            store=ResultStore(config.store) if config.store else ResultStore(),
        )  # fmt: skip
    save(matrix)
    results = matrix.to_dict()
    figures = save_transfer_heatmaps(results, out_dir)
    report = write_transfer_report(results, out_dir / "transfer.html") if config.report else None
    return TransferOutput(matrix, out_dir / "transfer.json", list(figures), report)
