"""Input-preprocessing defenses and the defended model that puts them in front of a classifier.

A defense never leaves the model type: :class:`DefendedClassifier` *is* an
:class:`~advlab.models.ImageClassifier` (pixels in [0, 1], same ``input_shape``,
``num_classes``, ``class_names``), so every attack and evaluation takes it unchanged::

    defended = defend(model, JpegCompression(quality=75), BitDepthReduction(bits=4))

Each preprocessor is an ``nn.Module`` mapping [0, 1] images to [0, 1] images and says what
an honest evaluation must know about it: ``differentiable = False`` (its gradient is
zero: plain gradient attacks see a *masked* gradient, use BPDA) and ``randomized = True``
(every call draws new randomness: use EOT). :mod:`advlab.defenses.adaptive` reads these
flags to build the adaptive attack's surrogate.
"""

from __future__ import annotations

import copy
import io
import itertools
import math
from collections.abc import Iterable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from advlab.errors import AdvlabError, check
from advlab.models.classifier import ImageClassifier


class DefenseLayer(nn.Module):
    """A module a defense adds; says whether it is differentiable and whether it is random."""

    differentiable: bool = True
    randomized: bool = False
    #: The name in the defense registry ("jpeg", "bits", ...), used in model names.
    spec_name: str = ""

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.params().items())

    def params(self) -> dict[str, object]:
        """The layer's configuration (for names, reprs and reports)."""
        return {}


class _ZeroGradient(torch.autograd.Function):
    """Forward ``fn(x)``; backward zero: what autograd sees through a quantizer or a codec.

    Returning zeros (rather than cutting the graph) keeps ``torch.autograd.grad`` working,
    so a plain gradient attack runs and meets the masked gradient instead of crashing.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, output: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return output.clone()

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        return torch.zeros_like(grad), None


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
    differentiable = False

    def __init__(self, quality: int = 75) -> None:
        super().__init__()
        check(
            isinstance(quality, int) and 1 <= quality <= 100,
            f"JPEG quality must be an integer in 1..100, got {quality!r}",
        )
        self.quality = quality

    def params(self) -> dict[str, object]:
        return {"quality": self.quality}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check(
            x.shape[1] in (1, 3),
            f"JPEG compression needs 1 or 3 channels, got {x.shape[1]}: drop jpeg",
        )
        pixels = to_uint8(x).cpu().permute(0, 2, 3, 1).numpy()  # NHWC for Pillow
        decoded = np.stack([self._round_trip(image) for image in pixels]) if len(pixels) else pixels
        out = torch.from_numpy(decoded).permute(0, 3, 1, 2).to(device=x.device, dtype=x.dtype)
        return _ZeroGradient.apply(x, out / 255)

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

    differentiable = False

    def __init__(self, bits: int = 4) -> None:
        super().__init__()
        check(
            isinstance(bits, int) and 1 <= bits <= 8,
            f"bit depth must be an integer in 1..8, got {bits!r}",
        )
        self.bits = bits

    def params(self) -> dict[str, object]:
        return {"bits": self.bits}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        levels = 2**self.bits - 1
        return torch.round(x * levels) / levels


class MedianSmoothing(DefenseLayer):
    """A ``size`` x ``size`` median filter per channel, reflect-padded (Xu et al. 2018).

    Differentiable almost everywhere: the gradient flows to the pixel that is the median.
    """

    spec_name = "median"

    def __init__(self, size: int = 3) -> None:
        super().__init__()
        check(
            isinstance(size, int) and size >= 1 and size % 2 == 1,
            f"median filter size must be an odd integer >= 1, got {size!r}: use e.g. 3",
        )
        self.size = size

    def params(self) -> dict[str, object]:
        return {"size": self.size}

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

    randomized = True

    def __init__(self, sigma: float = 0.1) -> None:
        super().__init__()
        check(math.isfinite(sigma) and sigma >= 0, f"noise sigma must be >= 0, got {sigma!r}")
        self.sigma = float(sigma)

    def params(self) -> dict[str, object]:
        return {"sigma": self.sigma}

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

    randomized = True

    def __init__(self, min_scale: float = 0.8, max_scale: float = 1.0) -> None:
        super().__init__()
        check(
            0 < min_scale <= max_scale <= 1,
            f"resize-pad needs 0 < min_scale <= max_scale <= 1, got {min_scale}, {max_scale}",
        )
        self.min_scale = float(min_scale)
        self.max_scale = float(max_scale)

    def params(self) -> dict[str, object]:
        return {"min_scale": self.min_scale, "max_scale": self.max_scale}

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


class Compose(DefenseLayer):
    """Preprocessors applied in order; non-differentiable / random if any step is."""

    def __init__(self, *steps: nn.Module) -> None:
        super().__init__()
        self.steps = nn.ModuleList(steps)

    @property  # type: ignore[override]
    def differentiable(self) -> bool:
        return all(is_differentiable(step) for step in self.steps)

    @property  # type: ignore[override]
    def randomized(self) -> bool:
        return any(is_randomized(step) for step in self.steps)

    def extra_repr(self) -> str:
        return ""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for step in self.steps:
            x = step(x)
        return x

    def __len__(self) -> int:
        return len(self.steps)


def chain(*steps: nn.Module | None) -> nn.Module:
    """One preprocessing module for ``steps`` in order, flattening nested Compose."""
    flat: list[nn.Module] = []
    for step in steps:
        if step is None or isinstance(step, nn.Identity):
            continue
        flat.extend(step.steps if isinstance(step, Compose) else [step])
    if not flat:
        return nn.Identity()
    return flat[0] if len(flat) == 1 else Compose(*flat)


def is_differentiable(module: nn.Module) -> bool:
    """False if any defense layer inside ``module`` masks its gradient."""
    if isinstance(module, DefenseLayer):
        return bool(module.differentiable)
    return all(is_differentiable(child) for child in module.children())


def is_randomized(module: nn.Module) -> bool:
    """True if any defense layer inside ``module`` draws randomness on each call."""
    if isinstance(module, DefenseLayer):
        return bool(module.randomized)
    return any(is_randomized(child) for child in module.children())


def describe(module: nn.Module) -> str:
    """A short name such as ``jpeg(quality=75)+bits(bits=4)`` for a defense layer."""
    if isinstance(module, Compose):
        return "+".join(describe(step) for step in module.steps)
    name = getattr(module, "spec_name", None) or type(module).__name__
    params = module.params() if isinstance(module, DefenseLayer) else {}
    args = ",".join(f"{k}={v}" for k, v in params.items())
    return f"{name}({args})" if args else name


class DefendedClassifier(ImageClassifier):
    """``model`` with ``preprocess`` in front (and possibly a modified ``net``).

    The forward is ``net(normalize(preprocess(x)))``: preprocessing acts in pixel space,
    before the wrapped model's own normalization. ``net`` and ``normalize`` are the wrapped
    model's own modules (shared, not copied), so a defense costs no memory and leaves the
    wrapped model as it was. Wrapping a DefendedClassifier again chains the preprocessing
    (the new one runs first) instead of nesting.
    """

    def __init__(
        self,
        model: ImageClassifier,
        preprocess: nn.Module | None = None,
        *,
        net: nn.Module | None = None,
        name: str | None = None,
    ) -> None:
        if not isinstance(model, ImageClassifier):
            raise AdvlabError(
                f"defenses wrap an advlab ImageClassifier, got {type(model).__name__}: "
                "load the model with advlab.models.load_model"
            )
        inner_pre: nn.Module | None = None
        if _composes_as_defended(model):
            inner_pre = model.preprocess  # type: ignore[union-attr]
            base_name = model.base_name  # type: ignore[union-attr]
            base_net, normalize = model.net, model.normalize
        elif type(model).forward is ImageClassifier.forward:
            base_name, base_net, normalize = model.name, model.net, model.normalize
        else:
            # A model with its own forward (e.g. EOT): keep it whole as the network.
            base_name, base_net, normalize = model.name, model, nn.Identity()
        super().__init__(
            net if net is not None else base_net,
            name=model.name,
            input_shape=model.input_shape,  # type: ignore[arg-type]
            num_classes=model.num_classes,
            mean=model.mean,
            std=model.std,
            class_names=model.class_names,
        )
        self.normalize = normalize
        self.preprocess = chain(preprocess, inner_pre)
        self.base_name = base_name
        self.name = name or self._default_name()

    def _default_name(self) -> str:
        if isinstance(self.preprocess, nn.Identity):
            return self.base_name
        return f"{self.base_name}+{describe(self.preprocess)}"

    @property
    def differentiable(self) -> bool:
        return is_differentiable(self.preprocess) and is_differentiable(self.net)

    @property
    def randomized(self) -> bool:
        return is_randomized(self.preprocess) or is_randomized(self.net)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.normalize(self.preprocess(x)))


def _composes_as_defended(model: nn.Module) -> bool:
    """A DefendedClassifier whose forward is the standard one can be flattened."""
    return isinstance(model, DefendedClassifier) and (
        type(model).forward is DefendedClassifier.forward
    )


def defend(model: ImageClassifier, *preprocessors: nn.Module) -> DefendedClassifier:
    """``model`` behind ``preprocessors``, applied in the order given."""
    for step in preprocessors:
        check(
            isinstance(step, nn.Module),
            f"a preprocessing defense must be an nn.Module, got {type(step).__name__}",
        )
    return DefendedClassifier(model, chain(*preprocessors))


def share_structure(net: nn.Module) -> nn.Module:
    """A copy of ``net``'s module tree that shares every parameter and buffer.

    Lets a defense change the network's structure (insert a layer) without copying the
    weights and without touching the caller's model.
    """
    memo = {id(t): t for t in itertools.chain(net.parameters(), net.buffers())}
    return copy.deepcopy(net, memo)


def iter_leaves(module: nn.Module) -> Iterable[tuple[str, nn.Module]]:
    return ((name, m) for name, m in module.named_modules() if not list(m.children()))
