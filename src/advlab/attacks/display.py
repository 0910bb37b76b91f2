"""An attack's result in Jupyter: a grid of its first adversarial examples as inline PNGs."""

from __future__ import annotations

import base64
import html
import io
from typing import Any

import numpy as np
import torch
from PIL import Image


def png_data_uri(image: torch.Tensor, size: int = 96) -> str:
    """A (C, H, W) image in [0, 1] as a PNG data URI, scaled up to ``size`` pixels."""
    array = (image.detach().float().clamp(0, 1).cpu().numpy() * 255).round().astype(np.uint8)
    array = array[0] if array.shape[0] == 1 else array.transpose(1, 2, 0)
    picture = Image.fromarray(array)
    scale = max(1, size // max(picture.size))
    picture = picture.resize(
        (picture.width * scale, picture.height * scale), Image.Resampling.NEAREST
    )
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def result_html(result: Any, limit: int = 8) -> str:
    """The first ``limit`` adversarial images with fooled / held under each, and the rates."""
    images, success = result.adversarial[:limit], result.success[:limit]
    queries = result.queries.float()
    cells = []
    for index, (image, fooled) in enumerate(zip(images, success.tolist(), strict=True)):
        colour, word = ("#c0392b", "fooled") if fooled else ("#1e8449", "held")
        cells.append(
            f'<figure style="margin:0;text-align:center"><img src="{png_data_uri(image)}" '
            f'alt="adversarial example {index}"><figcaption style="font-size:11px;'
            f'color:{colour}">#{index} {word}</figcaption></figure>'
        )
    summary = (
        f"AttackResult: {result.adversarial.shape[0]} images, success rate "
        f"{100 * result.success_rate:.1f}%, mean queries "
        f"{float(queries.mean()) if queries.numel() else 0:.1f}"
    )
    more = f" (first {limit} shown)" if result.adversarial.shape[0] > limit else ""
    return (
        f"<div><div style='font-weight:600'>{html.escape(summary + more)}</div>"
        f'<div style="display:flex;flex-wrap:wrap;gap:6px">{"".join(cells)}</div></div>'
    )
