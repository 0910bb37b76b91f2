"""PGD (Madry et al. 2018) and BIM / I-FGSM (Kurakin et al. 2017)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from advlab.attacks.base import LOSSES, Attack, margin_loss, register_attack
from advlab.attacks.threat import Norm, direction, project, random_start
from advlab.errors import check


@register_attack
class PGD(Attack):
    """Projected gradient ascent on the cross-entropy, ``steps`` steps of size ``alpha``.

    ``restarts`` > 1 repeats the attack from new random starts and keeps, per image, the
    first adversarial example found (or else the one with the highest loss).
    ``loss="margin"`` ascends the Carlini-Wagner margin on the logits instead of the
    cross-entropy: the attack to use when a model's softmax saturates (distillation).
    ``early_stop=True`` stops each image at the first step where it is already fooled
    (its logits are computed for the gradient anyway): the same or higher success rate for
    a fraction of the work when only robust accuracy matters; off by default, because
    adversarial training wants the full-strength perturbation.
    """

    name = "pgd"

    def __init__(
        self,
        eps: float = 8 / 255,
        alpha: float | None = None,
        steps: int = 10,
        norm: Norm = "linf",
        *,
        random_start: bool = True,
        restarts: int = 1,
        early_stop: bool = False,
        loss: str = "ce",
        target: str | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__(eps, norm, target=target, seed=seed)
        check(loss in LOSSES, f"unknown loss '{loss}': use one of {', '.join(LOSSES)}")
        self.loss = loss
        self.early_stop = bool(early_stop)
        check(steps >= 1, f"steps must be >= 1, got {steps}")
        check(restarts >= 1, f"restarts must be >= 1, got {restarts}")
        check(alpha is None or alpha > 0, f"alpha must be > 0, got {alpha}")
        self.alpha = alpha
        self.steps = int(steps)
        self.random_start = random_start
        self.restarts = int(restarts)

    def step_size(self) -> float:
        """``alpha``, or by default 2.5 * eps / steps (Madry et al.)."""
        assert self.eps is not None
        return self.alpha if self.alpha is not None else 2.5 * self.eps / self.steps

    def _run(
        self, model: nn.Module, images: torch.Tensor, goal: torch.Tensor, targeted: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.restarts == 1:
            # Nothing to choose between: skip the forward pass that ranks the restarts.
            return self._descend(model, images, goal, targeted)
        best = images.clone()
        best_loss = torch.full(
            (images.shape[0],), -float("inf"), device=images.device, dtype=images.dtype
        )
        done = torch.zeros(images.shape[0], dtype=torch.bool, device=images.device)
        queries = torch.zeros(images.shape[0], dtype=torch.int64)
        for _ in range(self.restarts):
            # Later restarts only work on the images not yet fooled.
            active = (~done).nonzero().squeeze(1)
            if active.numel() == 0:
                break
            adversarial, spent = self._descend(model, images[active], goal[active], targeted)
            queries[active.cpu()] += spent
            with torch.no_grad():
                logits = model(adversarial)
                if self.loss == "margin":
                    loss = margin_loss(logits, goal[active], targeted)
                else:
                    loss = F.cross_entropy(logits, goal[active], reduction="none")
                    loss = -loss if targeted else loss
                predictions = logits.argmax(1)
                hit = predictions == goal[active] if targeted else predictions != goal[active]
            better = hit | (loss > best_loss[active])
            index = active[better]
            best[index] = adversarial[better]
            best_loss[index] = loss[better]
            done[active[hit]] = True
        return best, queries

    def _descend(
        self, model: nn.Module, images: torch.Tensor, goal: torch.Tensor, targeted: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One PGD run; returns the examples and the gradient steps spent on each."""
        assert self.eps is not None
        alpha = self.step_size()
        x = random_start(images, self.eps, self.norm) if self.random_start else images.clone()
        spent = torch.zeros(images.shape[0], dtype=torch.int64, device=images.device)
        if not self.early_stop:
            for _ in range(self.steps):
                grad, _ = self.loss_gradient(model, x, goal, targeted, self.loss)
                x = project(x + alpha * direction(grad, self.norm), images, self.eps, self.norm)
            return x, (spent + self.steps).cpu()
        active = torch.arange(images.shape[0], device=images.device)
        for _ in range(self.steps):
            grad, logits = self.loss_gradient(model, x[active], goal[active], targeted, self.loss)
            spent[active] += 1
            predictions = logits.argmax(1)
            fooled = predictions == goal[active] if targeted else predictions != goal[active]
            active, grad = active[~fooled], grad[~fooled]
            if active.numel() == 0:
                break
            step = x[active] + alpha * direction(grad, self.norm)
            x[active] = project(step, images[active], self.eps, self.norm)
        return x, spent.cpu()


@register_attack
class BIM(PGD):
    """Basic iterative method: PGD without a random start, step ``eps / steps`` by default."""

    name = "bim"

    def __init__(
        self,
        eps: float = 8 / 255,
        alpha: float | None = None,
        steps: int = 10,
        norm: Norm = "linf",
        *,
        target: str | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__(eps, alpha, steps, norm, random_start=False, target=target, seed=seed)

    def step_size(self) -> float:
        assert self.eps is not None
        return self.alpha if self.alpha is not None else self.eps / self.steps
