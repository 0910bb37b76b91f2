"""Checks of what a dashboard user uploads: images and model files are untrusted.

An image is refused, with a message that says why, before it is decoded when it is too
large on disk, not a PNG or JPEG (by its bytes, not its name), or has more pixels than
:data:`MAX_PIXELS` (a decompression bomb is a small file of a huge image: its header
gives it away). A model file is refused when it is too large or neither safetensors nor
TorchScript (a zip archive); it is loaded with advlab's own loader, which never unpickles
(:func:`load_model_upload`).
"""

from __future__ import annotations

import io
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from advlab.errors import AdvlabError
from advlab.models import load_model

MAX_IMAGE_BYTES = 10 * 2**20
MAX_PIXELS = 4096 * 4096
MAX_MODEL_BYTES = 200 * 2**20
IMAGE_FORMATS = {"PNG", "JPEG"}
_SIGNATURES = {b"\x89PNG\r\n\x1a\n": "PNG", b"\xff\xd8\xff": "JPEG"}


class UploadError(AdvlabError):
    """An upload the dashboard refuses; the message is shown to the user as it is."""


def _size(nbytes: int) -> str:
    return f"{nbytes / 2**20:.1f} MB" if nbytes >= 2**20 else f"{nbytes / 1024:.0f} KB"


def sniff_image(data: bytes) -> str | None:
    """ "PNG" or "JPEG" by the file's first bytes, else None."""
    for magic, name in _SIGNATURES.items():
        if data.startswith(magic):
            return name
    return None


def check_image(data: bytes, name: str = "upload", max_pixels: int = MAX_PIXELS) -> Image.Image:
    """The decoded image (RGB or L) of an uploaded PNG/JPEG, or :class:`UploadError`."""
    if len(data) == 0:
        raise UploadError(f"'{name}' is empty: upload a PNG or JPEG image")
    if len(data) > MAX_IMAGE_BYTES:
        raise UploadError(
            f"'{name}' is {_size(len(data))}: images up to {_size(MAX_IMAGE_BYTES)} are accepted"
        )
    kind = sniff_image(data)
    if kind is None:
        raise UploadError(
            f"'{name}' is not a PNG or JPEG image (whatever its name says): upload a .png or .jpg"
        )
    if kind == "PNG" and len(data) >= 24 and data[12:16] == b"IHDR":  # before PIL sees it
        _check_pixels(int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big"),
                      name, max_pixels)  # fmt: skip
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=[kind])  # reads the header only
            _check_pixels(*image.size, name, max_pixels)
            image.load()
    except UploadError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise UploadError(f"'{name}' refused as a decompression bomb: {error}") from None
    except (OSError, ValueError, SyntaxError) as error:
        raise UploadError(f"'{name}' could not be read as a {kind} image: {error}") from None
    return image.convert("L" if image.mode in ("1", "L", "I;16", "I") else "RGB")


def _check_pixels(width: int, height: int, name: str, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise UploadError(
            f"'{name}' is {width}x{height} pixels: images up to {max_pixels:,} pixels are "
            "accepted (refused before decoding: it may be a decompression bomb)"
        )


def image_to_array(image: Image.Image, shape: tuple[int, int, int]) -> np.ndarray:
    """``image`` as a float32 (C, H, W) array in [0, 1] for a model reading ``shape``."""
    channels, height, width = shape
    image = image.convert("L" if channels == 1 else "RGB").resize(
        (width, height), Image.Resampling.BILINEAR
    )
    array = np.asarray(image, dtype=np.float32) / 255.0
    return array[None] if channels == 1 else array.transpose(2, 0, 1)


def model_suffix(data: bytes, name: str) -> str:
    """ ".safetensors" or ".pt" (TorchScript) by the file's bytes, or :class:`UploadError`."""
    if len(data) > MAX_MODEL_BYTES:
        raise UploadError(
            f"'{name}' is {_size(len(data))}: model files up to {_size(MAX_MODEL_BYTES)} "
            "are accepted"
        )
    if data[:4] == b"PK\x03\x04":
        return ".pt"
    if len(data) >= 8:
        header = int.from_bytes(data[:8], "little")
        if 2 <= header <= len(data) - 8 and data[8:9] == b"{":
            return ".safetensors"
    raise UploadError(
        f"'{name}' is neither a safetensors file nor a TorchScript archive: upload one of those"
    )


MAX_SIDECAR_BYTES = 2**20


def load_model_upload(
    data: bytes, name: str, architecture: str | None = None, sidecar: bytes | None = None
) -> Any:
    """The model of an uploaded file, loaded by advlab's loader on the CPU.

    A TorchScript archive loads as it is (it runs the code it holds: the dashboard binds
    127.0.0.1 by default, so the uploader is its user). A safetensors file is either a
    checkpoint with its JSON ``sidecar`` (runs no code) or the weights of the registry
    model ``architecture``. Any failure is an :class:`UploadError` saying why.
    """
    suffix = model_suffix(data, name)
    if suffix == ".safetensors" and sidecar is None and not architecture:
        raise UploadError(
            f"'{name}' holds weights only: upload its JSON sidecar too, or pick the "
            "architecture they belong to"
        )
    if sidecar is not None and len(sidecar) > MAX_SIDECAR_BYTES:
        raise UploadError(f"the sidecar is {_size(len(sidecar))}: at most 1 MB is accepted")
    with tempfile.TemporaryDirectory(prefix="advlab-upload-") as folder:
        path = save_model_upload(data, name, folder)
        try:
            if suffix == ".safetensors" and sidecar is None:
                return load_model(str(architecture), weights=path, device="cpu")
            if sidecar is not None:
                path.with_suffix(".json").write_bytes(sidecar)
            return load_model(path, device="cpu")
        except (AdvlabError, RuntimeError, ValueError, KeyError, OSError) as error:
            raise UploadError(f"'{name}' could not be loaded as a model: {error}") from None


def save_model_upload(data: bytes, name: str, folder: str | Path | None = None) -> Path:
    """Write an accepted model upload to a private temporary file named by its kind."""
    suffix = model_suffix(data, name)
    handle, path = tempfile.mkstemp(suffix=suffix, prefix="advlab-upload-", dir=folder)
    with os.fdopen(handle, "wb") as file:
        file.write(data)
    return Path(path)
