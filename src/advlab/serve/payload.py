"""Decoding ``POST /predict`` bodies into checked float32 pixel arrays.

Two encodings: ``{"npy": base64 of a .npy float array (N, C, H, W) in [0, 1]}`` (read
without pickle: a request can never run code) or ``{"images": [base64 PNG, ...]}``
(8-bit PNGs of exactly the model's size, no resizing).

Nothing here allocates more than the body already holds: the ``.npy`` header is checked
(shape, dtype, element count against the bytes present) before any pixel is read, and the
pixels are viewed in the decoded bytes rather than copied. Every failure is a
:class:`RequestError` with a one-sentence message; no internal exception text leaks out.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import math
from typing import Any

import numpy as np
from PIL import Image


class RequestError(Exception):
    """A request the server refuses: HTTP ``status`` and a one-sentence ``message``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def parse_json(body: bytes | bytearray) -> Any:
    """The decoded JSON body, or a 400 (malformed, not UTF-8, or nested too deeply)."""
    try:
        return json.loads(body)
    except RecursionError:
        raise RequestError(400, "the body is nested too deeply to be a request") from None
    except UnicodeDecodeError:
        raise RequestError(400, "the body is not valid JSON (not UTF-8)") from None
    except json.JSONDecodeError as error:
        where = f"line {error.lineno} column {error.colno}"
        raise RequestError(400, f"the body is not valid JSON ({where})") from None


def _b64(text: Any, what: str) -> bytes:
    if not isinstance(text, str):
        raise RequestError(400, f"{what} must be a base64 string")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise RequestError(400, f"{what} is not valid base64") from None


_UNREADABLE = "'npy' is not a readable .npy array of numbers (object arrays are refused)"


def decode_npy(
    text: Any, input_shape: tuple[int, int, int] | None = None, max_batch: int | None = None
) -> np.ndarray:
    """The float32 array in base64 ``.npy`` ``text``; its header is checked before its data."""
    data = _b64(text, "'npy'")
    stream = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(stream)
        else:
            raise ValueError("unsupported version")
    except Exception:  # numpy raises ValueError, SyntaxError, EOFError... on a broken header
        if data[:2] == b"PK":
            raise RequestError(400, "'npy' must hold one .npy array, not an .npz archive") from None
        raise RequestError(400, _UNREADABLE) from None
    if dtype.hasobject or dtype.kind not in "fiub":
        raise RequestError(400, _UNREADABLE)
    if dtype.kind != "f":
        raise RequestError(400, f"'npy' must be a float32 array in [0, 1], got dtype {dtype}")
    if input_shape is not None:
        _check_shape(tuple(shape), input_shape)
    if max_batch is not None and len(shape) >= 1:
        _check_batch(int(shape[0]), max_batch)
    count = math.prod(shape)
    offset = stream.tell()
    if count * dtype.itemsize != len(data) - offset:
        raise RequestError(
            400, f"'npy' header claims shape {tuple(shape)} but holds {len(data) - offset} bytes"
        )
    array = np.frombuffer(data, dtype=dtype, count=count, offset=offset)
    array = array.reshape(shape[::-1]).transpose() if fortran else array.reshape(shape)
    return array.astype(np.float32, copy=False)


_EIGHT_BIT_MODES = {"1", "L", "LA", "P", "PA", "RGB", "RGBA", "CMYK", "YCbCr"}


def decode_pngs(items: Any, input_shape: tuple[int, int, int]) -> np.ndarray:
    if not isinstance(items, list):
        raise RequestError(400, "'images' must be a list of base64 PNG strings")
    channels, height, width = input_shape
    if channels not in (1, 3):
        raise RequestError(400, f"this model takes {channels} channels: send 'npy' arrays")
    pixels = np.empty((len(items), channels, height, width), dtype=np.float32)
    for position, item in enumerate(items):
        data = _b64(item, f"images[{position}]")
        try:
            # open() reads only the header: check the size before decoding any pixels.
            image = Image.open(io.BytesIO(data), formats=["PNG"])
            if image.size != (width, height):
                raise RequestError(
                    400,
                    f"images[{position}] is {image.size[0]}x{image.size[1]} but the model "
                    f"takes {width}x{height}: resize it before sending",
                )
            if image.mode not in _EIGHT_BIT_MODES:
                raise RequestError(400, f"images[{position}] must be an 8-bit PNG")
            array = np.asarray(image.convert("L" if channels == 1 else "RGB"))
        except RequestError:
            raise
        except Exception:  # PIL raises many kinds of errors on broken files
            raise RequestError(400, f"images[{position}] is not a readable PNG") from None
        array = array[None] if channels == 1 else array.transpose(2, 0, 1)
        pixels[position] = array.astype(np.float32) / 255.0
    return pixels


def decode_images(payload: Any, input_shape: tuple[int, int, int], max_batch: int) -> np.ndarray:
    """The request's images as float32 (N, C, H, W) in [0, 1], or a :class:`RequestError`."""
    if not isinstance(payload, dict):
        raise RequestError(400, "the body must be a JSON object with 'npy' or 'images'")
    if ("npy" in payload) == ("images" in payload):
        raise RequestError(400, "send exactly one of 'npy' (base64 .npy) or 'images' (PNGs)")
    if "images" in payload and isinstance(payload["images"], list):
        # Refuse before decoding: a large batch of PNGs is the expensive part.
        _check_batch(len(payload["images"]), max_batch)
    if "npy" in payload:
        pixels = decode_npy(payload["npy"], input_shape, max_batch)
    else:
        pixels = decode_pngs(payload["images"], input_shape)
    check_pixels(pixels, input_shape, max_batch)
    return pixels


def _check_batch(count: int, max_batch: int) -> None:
    if count < 1:
        raise RequestError(400, "the request holds no images")
    if count > max_batch:
        raise RequestError(
            400, f"a batch of {count} images exceeds max_batch={max_batch}: send smaller batches"
        )


def _check_shape(shape: tuple[int, ...], input_shape: tuple[int, int, int]) -> None:
    if len(shape) != 4 or tuple(shape[1:]) != tuple(input_shape):
        expected = "(N, " + ", ".join(map(str, input_shape)) + ")"
        raise RequestError(400, f"images have shape {shape} but the model takes {expected}")


def check_pixels(pixels: np.ndarray, input_shape: tuple[int, int, int], max_batch: int) -> None:
    _check_shape(tuple(pixels.shape), input_shape)
    _check_batch(pixels.shape[0], max_batch)
    if not bool(np.isfinite(pixels).all()):
        raise RequestError(400, "images contain NaN or infinite values")
    low, high = float(pixels.min()), float(pixels.max())
    if low < 0.0 or high > 1.0:
        raise RequestError(
            400, f"images must be in [0, 1], got {low:.3g}..{high:.3g}: divide uint8 pixels by 255"
        )
