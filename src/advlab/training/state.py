"""The resumable state of a run (``state.pt``) and its human-readable ``history.json``.

``state.pt`` is self-contained: weights, optimizer state, schedule position, RNG states,
history and the config it belongs to. It is written last in every epoch, atomically, so
it always describes one finished epoch. Only tensors and plain Python values go in, and
it is read back with ``torch.load(weights_only=True)``: nothing is ever unpickled.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from advlab.errors import AdvlabError

STATE_FILE = "state.pt"
HISTORY_FILE = "history.json"
STATE_VERSION = 1


def save_state(out_dir: Path, state: dict[str, Any]) -> Path:
    path = out_dir / STATE_FILE
    tmp = path.with_suffix(".pt.tmp")
    torch.save({"format_version": STATE_VERSION, **state}, tmp)
    tmp.replace(path)  # atomic: an interrupted save leaves the previous epoch's state
    return path


def load_state(out_dir: Path) -> dict[str, Any] | None:
    """The saved state, or None when ``out_dir`` holds no run yet."""
    path = out_dir / STATE_FILE
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a corrupt file
        raise AdvlabError(
            f"cannot read training state {path} ({type(error).__name__}): delete it to start "
            "the run over"
        ) from None
    if not isinstance(state, dict) or state.get("format_version") != STATE_VERSION:
        raise AdvlabError(
            f"{path} is not an advlab training state: delete it or use another out_dir"
        )
    return state


def write_history(out_dir: Path, history: list[dict[str, float]]) -> None:
    path = out_dir / HISTORY_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(history, indent=2))
    tmp.replace(path)


def rng_states(generator: torch.Generator, device: torch.device) -> dict[str, Any]:
    """The data generator's and torch's global RNG states (attacks draw from the latter)."""
    return {
        "data": generator.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
    }


def restore_rng(states: dict[str, Any], generator: torch.Generator, device: torch.device) -> None:
    generator.set_state(states["data"])
    torch.set_rng_state(states["torch"])
    if device.type == "cuda" and states.get("cuda") is not None:
        torch.cuda.set_rng_state(states["cuda"], device)
