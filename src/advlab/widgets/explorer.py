"""The explorer: pick an attack, move eps, see clean | adversarial | perturbation.

:func:`attack_example` is the computation (no widget needed, so it is tested without a
notebook); :class:`Explorer` wires it to ipywidgets: a dropdown of attacks, an eps slider
shown in pixel units and as k/255, a steps slider for iterative attacks, and an output
area with the example grid (:func:`advlab.reports.figures.example_grid`) and the
accuracy on the images shown.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from advlab.attacks import get_attack
from advlab.errors import AdvlabError, check
from advlab.reports.example import Example
from advlab.reports.figures import example_grid
from advlab.reports.template import img

DEFAULT_ATTACKS = ("fgsm", "pgd", "mim")


def attack_example(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    attack: str = "fgsm",
    eps: float = 0.1,
    *,
    norm: str = "linf",
    steps: int | None = None,
    seed: int = 0,
) -> Example:
    """Run ``attack`` at ``eps`` on ``images`` and return clean and adversarial answers."""
    cls = get_attack(attack)
    options: dict[str, Any] = {"eps": eps, "norm": norm}
    parameters = inspect.signature(cls.__init__).parameters
    if steps is not None and "steps" in parameters:
        options["steps"] = steps
    if "seed" in parameters:
        options["seed"] = seed
    result = cls(**options)(model, images, labels)
    with torch.no_grad():
        clean = torch.softmax(model(images), dim=1).max(dim=1)
        adv = torch.softmax(model(result.adversarial), dim=1).max(dim=1)
    return Example(attack, norm, eps, images.cpu(), result.adversarial.cpu(), labels.cpu(),
                   clean.indices.cpu(), clean.values.cpu(), adv.indices.cpu(),
                   adv.values.cpu())  # fmt: skip


class Explorer:
    """The widget and its state; ``widget`` is what a notebook cell displays."""

    def __init__(
        self,
        model: nn.Module,
        images: torch.Tensor,
        labels: torch.Tensor,
        *,
        attacks: Sequence[str] = DEFAULT_ATTACKS,
        max_eps: float = 0.3,
        eps: float = 0.1,
        class_names: Sequence[str] | None = None,
    ) -> None:
        try:
            import ipywidgets as widgets  # type: ignore[import-untyped]
        except ImportError:
            raise AdvlabError(
                "the explorer needs ipywidgets: pip install 'advlab[notebook]'"
            ) from None
        check(images.dim() == 4 and images.shape[0] == labels.shape[0],
              "images must be (N, C, H, W) with one label each")  # fmt: skip
        check(0 < eps <= max_eps, f"eps {eps} must be in (0, max_eps={max_eps}]")
        self.model, self.images, self.labels = model, images[:8], labels[:8]
        self.class_names = list(class_names or getattr(model, "class_names", None) or [])
        self.attack = widgets.Dropdown(
            options=list(attacks), value=attacks[0], description="attack"
        )
        self.eps = widgets.FloatSlider(value=eps, min=0.0, max=max_eps, step=1 / 255,
                                       description="eps", readout_format=".4f")  # fmt: skip
        self.steps = widgets.IntSlider(value=10, min=1, max=50, description="steps")
        self.status = widgets.HTML()
        self.output = widgets.HTML()
        for control in (self.attack, self.eps, self.steps):
            control.observe(lambda _change: self.update(), names="value")
        self.widget = widgets.VBox([
            widgets.HBox([self.attack, self.eps, self.steps]), self.status, self.output,
        ])  # fmt: skip
        self.example: Example | None = None
        self.update()

    def update(self) -> None:
        """Attack again with the current settings and redraw."""
        eps = float(self.eps.value)
        self.status.value = f"running {self.attack.value} at eps {eps:.4f} ({eps * 255:.1f}/255)…"
        if eps <= 0:
            self.status.value = "eps is 0: nothing to attack"
            return
        self.example = attack_example(self.model, self.images, self.labels, self.attack.value,
                                      eps, steps=int(self.steps.value))  # fmt: skip
        clean = float((self.example.clean_pred == self.labels.cpu()).float().mean())
        robust = float((self.example.adv_pred == self.labels.cpu()).float().mean())
        self.status.value = (
            f"{self.attack.value} at eps {eps:.4f} ({eps * 255:.1f}/255): accuracy "
            f"{100 * clean:.0f}% clean, {100 * robust:.0f}% under attack"
        )
        figure = example_grid(self.example, self.class_names or None)
        self.output.value = img(figure, f"{self.attack.value} at eps {eps:.4f}")


def explorer(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, **options: Any) -> Any:
    """The explorer widget over ``model`` and the first 8 ``images`` (display it in a cell);
    ``options`` as :class:`Explorer` takes them."""
    return Explorer(model, images, labels, **options).widget
