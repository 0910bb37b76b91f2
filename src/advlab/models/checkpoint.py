"""Checkpoints: safetensors weights plus a JSON sidecar that says what they are.

``model.safetensors`` holds the bare network's state dict; ``model.json`` beside it holds
the architecture, its arguments, the input size, the normalization, the class names, the
training configuration and the measured metrics. Nothing is ever unpickled: legacy
``.pt``/``.pth`` files load with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from advlab.errors import AdvlabError

SIDECAR_VERSION = 1


def sidecar_path(weights: str | Path) -> Path:
    return Path(weights).with_suffix(".json")


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_checkpoint(net: nn.Module, path: str | Path, metadata: Mapping[str, Any]) -> Path:
    """Write ``net``'s weights to ``path`` (.safetensors) and ``metadata`` to the sidecar."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {key: value.detach().cpu().contiguous() for key, value in net.state_dict().items()}
    tmp = path.with_suffix(".safetensors.tmp")
    save_file(state, str(tmp))
    tmp.chmod(0o644)  # safetensors creates 0600 files; a checkpoint is meant to be shared
    tmp.replace(path)  # atomic: an interrupted save never leaves a half-written checkpoint
    sidecar = {"format_version": SIDECAR_VERSION, **metadata, "sha256": sha256_of(path)}
    sidecar_path(path).write_text(json.dumps(sidecar, indent=2, default=str))
    return path


def read_sidecar(path: str | Path) -> dict[str, Any]:
    side = sidecar_path(path)
    if not side.is_file():
        raise AdvlabError(
            f"checkpoint {path} has no sidecar {side.name}: save it with advlab train, or pass "
            "--model NAME so advlab knows the architecture"
        )
    try:
        data = json.loads(side.read_text())
    except json.JSONDecodeError as error:
        raise AdvlabError(f"checkpoint sidecar {side} is not valid JSON ({error})") from None
    if not isinstance(data, dict) or "architecture" not in data:
        raise AdvlabError(f"checkpoint sidecar {side} has no 'architecture' entry")
    return data


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict from .safetensors, or from .pt/.pth/.th with weights_only=True."""
    path = Path(path)
    if not path.is_file():
        raise AdvlabError(f"weights file not found: {path} (check the path)")
    if path.suffix == ".safetensors":
        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as error:
            raise AdvlabError(
                f"weights file {path} is corrupt or not safetensors ({error})"
            ) from None
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a corrupt or pickled file
        first_line = (
            str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        )
        raise AdvlabError(
            f"cannot read weights file {path}: {first_line} (advlab loads only tensors, never "
            "pickled code; re-save it as a state dict or safetensors)"
        ) from None
    if isinstance(obj, Mapping) and "state_dict" in obj:
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise AdvlabError(f"weights file {path} does not hold a state dict of tensors")
    # Checkpoints saved from nn.DataParallel prefix every key with "module.".
    return {key.removeprefix("module."): value for key, value in obj.items()}


def load_weights_into(net: nn.Module, path: str | Path) -> None:
    """Load weights strictly: a mismatch is the user's wrong file, never silently ignored."""
    state = load_state_dict(path)
    try:
        result = net.load_state_dict(state, strict=False)
    except RuntimeError as error:  # shape mismatches
        detail = str(error).strip().splitlines()[-1].strip()
        raise AdvlabError(
            f"weights in {path} do not fit this architecture ({detail}); "
            "pick the model the file was trained for"
        ) from None
    problems = []
    if result.missing_keys:
        problems.append(f"{len(result.missing_keys)} missing (e.g. {result.missing_keys[0]})")
    if result.unexpected_keys:
        problems.append(
            f"{len(result.unexpected_keys)} unexpected (e.g. {result.unexpected_keys[0]})"
        )
    if problems:
        raise AdvlabError(
            f"weights in {path} do not fit this architecture: keys {', '.join(problems)}; "
            "pick the model the file was trained for"
        )
