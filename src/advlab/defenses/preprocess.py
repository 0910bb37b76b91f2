"""Input-preprocessing defenses: JPEG, bit depth, median, noise, resize-pad.

Each is a :class:`~advlab.defenses.base.DefenseLayer` mapping [0, 1] images to [0, 1]
images, put in front of a model with :func:`~advlab.defenses.base.defend`.
"""

from __future__ import annotations

import io
import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from advlab.defenses.base import DefenseLayer, substitute
from advlab.errors import check


def _check_integer(value: object, low: int, high: int, what: str) -> None:
    """An error unless ``value`` is an integer in ``low..high``."""
    check(
        isinstance(value, int) and low <= value <= high,
        f"{what} must be an integer in {low}..{high}, got {value!r}",
    )


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """[0, 1] floats to uint8 pixels, rounded (how the images would be stored)."""
    return (images.detach() * 255).round().clamp(0, 255).to(torch.uint8)


class JpegCompression(DefenseLayer):
    """A real JPEG encode/decode round trip at ``quality`` (Dziugaite et al. 2016, Das et al.
    2017), with Pillow's libjpeg. Non-differentiable: the gradient is zero.

    The round trip runs on the CPU on uint8 pixels, one image at a time, and the result is
    moved back to the input's device.
    """

    spec_name = "jpeg"
    param_names = ("quality",)
    differentiable = False

    def __init__(self, quality: int = 75) -> None:
        super().__init__()
        _check_integer(quality, 1, 100, "JPEG quality")
        self.quality = quality

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check(
            x.shape[1] in (1, 3),
            f"JPEG compression needs 1 or 3 channels, got {x.shape[1]}: drop jpeg",
        )
        pixels = to_uint8(x).cpu().permute(0, 2, 3, 1).numpy()  # NHWC for Pillow
        decoded = np.stack([self._round_trip(image) for image in pixels]) if len(pixels) else pixels
        out = torch.from_numpy(decoded).permute(0, 3, 1, 2).to(device=x.device, dtype=x.dtype)
        return substitute(x, out / 255, "zero")

    def _round_trip(self, image: np.ndarray) -> np.ndarray:
        mode = "L" if image.shape[2] == 1 else "RGB"
        buffer = io.BytesIO()
        Image.fromarray(image[:, :, 0] if mode == "L" else image, mode).save(
            buffer, "JPEG", quality=self.quality
        )
        decoded = np.asarray(Image.open(buffer).convert(mode))
        return decoded.reshape(image.shape)


class BitDepthReduction(DefenseLayer):
    """Quantize each pixel to ``bits`` bits: ``round(x * (2**bits - 1)) / (2**bits - 1)``
    (Xu et al. 2018). ``torch.round`` has a zero gradient, so it masks gradients."""

    spec_name = "bits"
    param_names = ("bits",)

    differentiable = False

    def __init__(self, bits: int = 4) -> None:
        super().__init__()
        _check_integer(bits, 1, 8, "bit depth")
        self.bits = bits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        levels = 2**self.bits - 1
        return torch.round(x * levels) / levels


class MedianSmoothing(DefenseLayer):
    """A ``size`` x ``size`` median filter per channel, reflect-padded (Xu et al. 2018).

    Differentiable almost everywhere: the gradient flows to the pixel that is the median.
    """

    spec_name = "median"
    param_names = ("size",)

    def __init__(self, size: int = 3) -> None:
        super().__init__()
        check(
            isinstance(size, int) and size >= 1 and size % 2 == 1,
            f"median filter size must be an odd integer >= 1, got {size!r}: use e.g. 3",
        )
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.size == 1:
            return x
        n, c, h, w = x.shape
        pad = self.size // 2
        check(
            h > pad and w > pad,
            f"images of {h}x{w} are too small for a {self.size}x{self.size} median",
        )
        padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
        windows = F.unfold(padded, self.size).view(n, c, self.size * self.size, h * w)
        return windows.median(dim=2).values.view(n, c, h, w)


class GaussianNoise(DefenseLayer):
    """Add N(0, sigma^2) noise to every pixel and clip to [0, 1]; a new draw on every call."""

    spec_name = "noise"
    param_names = ("sigma",)

    randomized = True

    def __init__(self, sigma: float = 0.1) -> None:
        super().__init__()
        check(math.isfinite(sigma) and sigma >= 0, f"noise sigma must be >= 0, got {sigma!r}")
        self.sigma = float(sigma)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x + self.sigma * torch.randn_like(x)).clamp(0.0, 1.0)


class RandomResizePad(DefenseLayer):
    """Random resizing and padding (Xie et al. 2018), at the model's own input size.

    Each image is shrunk by a random factor in ``[min_scale, max_scale]`` (bilinear) and
    placed at a random position on a zero canvas of the original size. Xie et al. enlarge
    to 331 px and pad to a larger canvas; advlab keeps the size so that any model fits.
    Differentiable, randomized, a new draw per image and call.
    """

    spec_name = "resize-pad"
    param_names = ("min_scale", "max_scale")

    randomized = True

    def __init__(self, min_scale: float = 0.8, max_scale: float = 1.0) -> None:
        super().__init__()
        check(
            0 < min_scale <= max_scale <= 1,
            f"resize-pad needs 0 < min_scale <= max_scale <= 1, got {min_scale}, {max_scale}",
        )
        self.min_scale = float(min_scale)
        self.max_scale = float(max_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        scale = torch.empty(n, device=x.device, dtype=x.dtype)
        scale.uniform_(self.min_scale, self.max_scale)
        # Offsets in normalized coordinates that keep the shrunk image inside the canvas.
        shift = (torch.rand(n, 2, device=x.device, dtype=x.dtype) * 2 - 1) * (1 - scale)[:, None]
        theta = torch.zeros(n, 2, 3, device=x.device, dtype=x.dtype)
        theta[:, 0, 0] = theta[:, 1, 1] = 1 / scale
        theta[:, :, 2] = -shift / scale[:, None]
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        return out.clamp(0.0, 1.0)
