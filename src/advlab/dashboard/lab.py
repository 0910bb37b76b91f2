"""The playground's work, without Streamlit: one image attacked, its top-5 and pictures."""

from __future__ import annotations

import inspect
import io
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from advlab.attacks import ATTACKS, get_attack
from advlab.errors import AdvlabError
from advlab.models.context import frozen_eval


@dataclass
class Outcome:
    """One attacked image: clean and adversarial (C, H, W) arrays in [0, 1], and top-5s."""

    clean: np.ndarray
    adversarial: np.ndarray
    clean_top: list[tuple[str, float]]
    adv_top: list[tuple[str, float]]
    success: bool
    linf: float
    l2: float

    @property
    def amplified(self) -> np.ndarray:
        """The perturbation scaled to fill [0, 1] around mid grey (zero change is 0.5)."""
        delta = self.adversarial - self.clean
        peak = float(np.abs(delta).max())
        return np.clip(0.5 + delta / (2 * peak), 0, 1) if peak > 0 else np.full_like(delta, 0.5)


def attack_names() -> list[str]:
    return sorted(ATTACKS)


def attack_options(name: str) -> set[str]:
    """The constructor parameters of attack ``name``."""
    return set(inspect.signature(get_attack(name).__init__).parameters) - {"self"}


def top_k(model: Any, image: torch.Tensor, names: list[str], k: int = 5) -> list[tuple[str, float]]:
    """The ``k`` most probable classes of one (C, H, W) image, as (name, probability)."""
    with torch.no_grad(), frozen_eval(model):
        probs = torch.softmax(model(image[None]).float(), dim=1)[0]
    values, indices = probs.topk(min(k, probs.numel()))
    return [(_name(names, int(i)), float(v)) for v, i in zip(values, indices, strict=True)]


def predict(model: Any, image: np.ndarray) -> int:
    """The model's top-1 class index for one (C, H, W) image."""
    return int(top_k(model, torch.as_tensor(image, dtype=torch.float32), [], 1)[0][0])


def class_names(model: Any, image: np.ndarray) -> list[str]:
    """The model's class names, or "0".."k-1" by its output width when it has none."""
    names = [str(name) for name in getattr(model, "class_names", None) or []]
    if names:
        return names
    count = int(getattr(model, "num_classes", 0) or 0)
    if not count:
        with torch.no_grad(), frozen_eval(model):
            count = int(model(torch.as_tensor(image, dtype=torch.float32)[None]).shape[1])
    return [str(index) for index in range(count)]


def _name(names: list[str], index: int) -> str:
    return names[index] if index < len(names) else str(index)


def run_playground(
    model: Any,
    image: np.ndarray,
    label: int,
    attack: str,
    eps: float,
    norm: str = "linf",
    steps: int | None = None,
    target: int | None = None,
    class_names: list[str] | None = None,
) -> Outcome:
    """Attack one (C, H, W) image in [0, 1] of class ``label`` (toward ``target``)."""
    options = attack_options(attack)
    kwargs: dict[str, Any] = {"eps": eps, "norm": norm, "seed": 0}
    if steps is not None and "steps" in options:
        kwargs["steps"] = steps
    try:
        built = get_attack(attack)(**kwargs)
    except TypeError as error:
        raise AdvlabError(f"attack '{attack}' does not take these settings: {error}") from None
    names = list(class_names or getattr(model, "class_names", None) or [])
    x = torch.as_tensor(image, dtype=torch.float32)[None]
    y = torch.tensor([label])
    targets = None if target is None else torch.tensor([target])
    result = built(model, x, y, targets)
    adv = result.adversarial.detach().float().cpu()[0]
    delta = (adv - x[0]).flatten()
    return Outcome(
        clean=image,
        adversarial=adv.numpy(),
        clean_top=top_k(model, x[0], names),
        adv_top=top_k(model, adv, names),
        success=bool(result.success[0]),
        linf=float(delta.abs().max()),
        l2=float(delta.norm()),
    )


def to_pil(array: np.ndarray) -> Image.Image:
    """A (C, H, W) array in [0, 1] as an 8-bit PIL image."""
    pixels = np.clip(np.rint(array * 255), 0, 255).astype(np.uint8)
    return Image.fromarray(pixels[0] if pixels.shape[0] == 1 else pixels.transpose(1, 2, 0))


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    to_pil(array).save(buffer, format="PNG")
    return buffer.getvalue()


def figure_png(outcome: Outcome) -> bytes:
    """Clean | adversarial | amplified perturbation, with their top-5, as one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(9, 4.6), dpi=100)
    panels = [("clean", outcome.clean, outcome.clean_top),
              ("adversarial", outcome.adversarial, outcome.adv_top),
              ("perturbation (amplified)", outcome.amplified, None)]  # fmt: skip
    for column, (title, array, top) in enumerate(panels):
        axis = figure.add_subplot(2, 3, column + 1)
        axis.imshow(np.asarray(to_pil(array)), cmap="gray" if array.shape[0] == 1 else None)
        axis.set_title(title if top is None else f"{title}: {top[0][0]} ({top[0][1]:.0%})")
        axis.axis("off")
        if top is not None:
            bars = figure.add_subplot(2, 3, column + 4)
            bars.barh([name for name, _ in top][::-1], [p for _, p in top][::-1], color="#0072B2")
            bars.set_xlim(0, 1)
            bars.set_xlabel("probability")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
