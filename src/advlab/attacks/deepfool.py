"""DeepFool (Moosavi-Dezfooli et al. 2016): a minimal perturbation by local linearization."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from advlab.attacks.base import Attack, AttackOptions, check_counts, register_attack
from advlab.attacks.norms import L2, Norm
from advlab.errors import check

if TYPE_CHECKING:
    from typing_extensions import Unpack

_TINY = 1e-12
# Added to each step's length so that it lands past the linearized boundary, not on it
# (the 1e-4 of the reference implementation).
_STEP_MARGIN = 1e-4


@register_attack
class DeepFool(Attack):
    """Step to the nearest linearized class boundary until the label flips.

    At each iteration the classifier is linearized around the current point; for each of
    the ``num_candidates - 1`` runner-up classes (ranked at the clean image) the distance to
    its boundary is ``|f_k| / ||w_k||`` (dual norm: L2 for ``l2``, L1 for ``linf``), and the
    attack steps onto the nearest one. The accumulated step is scaled by ``1 + overshoot``.
    Unlike the paper, which ignores the [0, 1] box, directions that would push a pixel
    already at 0 or 1 further out are left out of the linearization (so that steps are
    not eaten by the clip).
    Images stop as soon as they are misclassified; ``queries`` counts the iterations each
    used. ``eps=None`` is unbounded; with an eps the result is projected into the ball.
    DeepFool is untargeted.
    """

    name = "deepfool"

    def __init__(
        self,
        eps: float | None = None,
        norm: Norm = L2,
        *,
        steps: int = 50,
        overshoot: float = 0.02,
        num_candidates: int = 10,
        **options: Unpack[AttackOptions],
    ) -> None:
        check(options.get("target") is None, "DeepFool is untargeted: drop target=..., or use "
              "PGD or MIM for a targeted attack")  # fmt: skip
        super().__init__(eps, norm, **options)
        check_counts(steps=steps)
        check(overshoot >= 0, f"overshoot must be >= 0, got {overshoot}")
        check(num_candidates >= 2, f"num_candidates must be >= 2, got {num_candidates}")
        self.steps = int(steps)
        self.overshoot = float(overshoot)
        self.num_candidates = int(num_candidates)

    def _run(
        self, model: nn.Module, images: torch.Tensor, goal: torch.Tensor, targeted: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        check(not targeted, "DeepFool is untargeted: call it without targets, or use PGD or "
              "MIM for a targeted attack")  # fmt: skip
        n = images.shape[0]
        adversarial = images.clone()
        queries = torch.zeros(n, dtype=torch.int64, device=images.device)
        total = torch.zeros_like(images)  # accumulated step, before the overshoot
        active = torch.arange(n, device=images.device)
        candidates = goal[:, None]
        for iteration in range(self.steps):
            if active.numel() == 0:
                break
            x = adversarial[active].requires_grad_(True)
            logits = model(x)
            if iteration == 0:
                # The candidate classes: the strongest others at the clean image, kept fixed.
                k = min(self.num_candidates, logits.shape[1]) - 1
                others = logits.detach().scatter(1, goal[:, None], -float("inf")).topk(k).indices
                candidates = torch.cat([goal[:, None], others], dim=1)  # true class first
            # Images that flipped stop here; slicing the logits keeps one graph for the rest.
            keep = (logits.argmax(1) == goal[active]).nonzero().squeeze(1)
            active = active[keep]
            if active.numel() == 0:
                break
            step = self._step(x, logits[keep], candidates[active], keep)
            queries[active] += 1
            start = images[active]
            perturbed = (start + (1 + self.overshoot) * (total[active] + step)).clamp(0.0, 1.0)
            adversarial[active] = perturbed
            # Keep only the part of the step the box allows: what the clip removed must not
            # pile up in the total, where later steps would first have to undo it.
            total[active] = (perturbed - start) / (1 + self.overshoot)
        return adversarial, queries.cpu()

    def _step(
        self, x: torch.Tensor, logits: torch.Tensor, candidates: torch.Tensor, keep: torch.Tensor
    ) -> torch.Tensor:
        """The step onto the nearest linearized boundary for each image ``x[keep]``."""
        chosen = logits.gather(1, candidates)  # (B, K): the true class first
        margins = chosen[:, 1:] - chosen[:, :1]  # f_k, negative while the label still wins
        # One backward per candidate column over the whole batch: images are independent,
        # so the gradient of the column's sum holds every image's w_k at once.
        columns = margins.shape[1]
        w = torch.stack([
            torch.autograd.grad(margins[:, j].sum(), x, retain_graph=j + 1 < columns)[0][keep]
            for j in range(columns)
        ], dim=1)  # (B, K - 1, C, H, W)  # fmt: skip
        # Pixels already at 0 or 1 cannot move further out: leave those directions out of the
        # linearization, or the clip would cancel part of every step and the attack would crawl.
        at_box = x.detach()[keep].unsqueeze(1)
        w = w.masked_fill(((at_box <= 0) & (w < 0)) | ((at_box >= 1) & (w > 0)), 0.0)
        f = margins.detach().abs()
        flat = w.flatten(2)
        dual = self.ball.dual_norm(flat, dim=2).clamp_min(_TINY)
        nearest = (f / dual).argmin(dim=1)
        rows = torch.arange(w.shape[0], device=w.device)
        w_l = w[rows, nearest]
        size = (f[rows, nearest] + _STEP_MARGIN) / dual[rows, nearest]
        return self.ball.steepest_step(w_l, size, dual[rows, nearest])
