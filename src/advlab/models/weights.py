"""Finding, checking and downloading a registry model's default weights."""

from __future__ import annotations

import hashlib
import logging
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from torch import nn

from advlab.errors import AdvlabError
from advlab.models.checkpoint import sha256_of
from advlab.models.entry import ModelEntry, WeightsSource
from advlab.paths import cache_dir, data_dir

log = logging.getLogger(__name__)


def resolve_default_weights(entry: ModelEntry, download: bool = True) -> Path:
    """Find the entry's default weights file, downloading into the cache if allowed."""
    source = entry.weights
    if source is None:
        raise AdvlabError(
            f"model '{entry.name}' has no pretrained weights: pass --weights FILE, "
            f"or train one with 'advlab train --model {entry.name}'"
        )
    candidates: list[Path] = []
    if source.bundled:
        candidates.append(Path(str(resources.files("advlab") / "zoo" / source.filename)))
    root = data_dir()
    if root is not None:
        candidates.append(root / source.data_subdir / source.filename)
    cached = cache_dir() / "weights" / source.filename
    candidates.append(cached)
    for candidate in candidates:
        if candidate.is_file():
            _verify_sha256(candidate, source.sha256)
            return candidate
    if source.url and download:
        return _download(source, cached)
    raise AdvlabError(
        f"weights for '{entry.name}' not found (looked in {', '.join(map(str, candidates))}): "
        "set ADVLAB_DATA_DIR to the folder that holds weights/, or pass --weights FILE"
    )


def _verify_sha256(path: Path, expected: str) -> None:
    if expected and sha256_of(path) != expected:
        raise AdvlabError(
            f"weights file {path} has the wrong sha256 (corrupt or a different file): "
            "delete it and fetch it again"
        )


def _download(source: WeightsSource, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    log.info("downloading %s to %s", source.url, target)
    try:
        torch.hub.download_url_to_file(str(source.url), str(target), hash_prefix=source.sha256)
    except Exception as error:
        raise AdvlabError(
            f"could not download {source.url} ({error}); "
            "download it by hand and pass --weights FILE"
        ) from None
    return target


def load_torchvision_weights(net: nn.Module, named: Any) -> None:
    """torchvision's named weights from the torch hub cache, downloaded only when absent.

    torch.hub checks the checksum only when it downloads and unpickles with
    ``weights_only=False`` unless told otherwise: a file in the cache is read as data only.
    """
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(named.url).path).name
    try:
        state = named.get_state_dict(progress=True, check_hash=True, weights_only=True)
    except Exception as error:
        if cached.is_file():
            raise AdvlabError(
                f"cannot read the cached torchvision weights {cached} ({type(error).__name__}: "
                f"{str(error).splitlines()[0][:200]}): delete the file to download it again"
            ) from None
        raise AdvlabError(
            f"torchvision weights {named} are not cached and could not be downloaded "
            f"({type(error).__name__}); copy the file to {cached} or pass --weights "
            "FILE.pth, or --no-pretrained for random weights"
        ) from None
    try:
        net.load_state_dict(state)
    except RuntimeError as error:
        raise AdvlabError(
            f"the cached torchvision weights {cached} do not fit {named}: "
            f"{str(error).splitlines()[0][:200]}; delete the file to download it again"
        ) from None


def weights_sha256(model: nn.Module) -> str:
    """sha256 of the model's state dict (names, dtypes, shapes and values).

    Hashing the tensors themselves, not a file, also identifies models built in memory
    and catches a retrained model that kept its name.
    """
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        value = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{value.dtype}|{tuple(value.shape)}|".encode())
        digest.update(value.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
