"""Attacks on a model and its detector together: a detector is only as good as the best
attack that knows it (Carlini and Wagner 2017, "Adversarial examples are not easily
detected").

:class:`SqueezeAwarePGD` attacks feature squeezing through BPDA; :class:`DetectorAwarePGD`
the differentiable :class:`~advlab.defenses.detectors.binary.BinaryDetector`, whose logit
it simply descends while fooling the model.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from advlab.attacks.base import Attack
from advlab.attacks.gradient import margin_loss
from advlab.attacks.norms import Norm, direction, project, random_start
from advlab.defenses.detectors.base import Detector
from advlab.defenses.detectors.binary import BinaryDetector
from advlab.defenses.detectors.squeezing import FeatureSqueezingDetector, l1_distances
from advlab.errors import check
from advlab.models.context import frozen_eval


class DetectorAwareAttack(Attack):
    """The arguments and checks shared by PGD attacks on a model and its detector.

    Subclasses keep their own ``__init__`` (its signature is the attack's ``config()``)
    and pass the shared arguments on; they implement ``_run``.
    """

    def __init__(
        self,
        detector: Detector,
        eps: float,
        alpha: float | None,
        steps: int,
        norm: Norm,
        *,
        penalty: float,
        kappa: float,
        random_start: bool,
        target: str | None,
        seed: int | None,
    ) -> None:
        super().__init__(eps, norm, target=target, seed=seed)
        check(
            detector.threshold is not None,
            "fit the detector before attacking it: detector.fit(clean_images)",
        )
        check(steps >= 1, f"steps must be >= 1, got {steps}")
        check(alpha is None or alpha > 0, f"alpha must be > 0, got {alpha}")
        self.detector = detector
        self.alpha = alpha
        self.steps = int(steps)
        self.penalty = float(penalty)
        self.kappa = float(kappa)
        self.random_start = random_start

    def _step_size(self) -> float:
        """The step size: ``alpha``, or 2.5 eps / steps (Madry et al.'s rule)."""
        assert self.eps is not None
        return self.alpha if self.alpha is not None else 2.5 * self.eps / self.steps

    def _check_own_model(self, model: nn.Module) -> None:
        check(
            model is self.detector.model,
            f"{type(self).__name__} must attack the detector's own model: pass detector.model",
        )


class SqueezeAwarePGD(DetectorAwareAttack):
    """L-inf/L2 PGD against model *and* feature-squeezing detector together.

    Each step ascends, per image::

        sum over views v in {x, squeezer_1(x), ...} of min(margin_c(v), kappa)
            - penalty * relu(score(x) - threshold / 2)    [once all views are in class c]

    where ``margin_c = z_c - max_{j != c} z_j`` for one class ``c`` shared by all views
    (the target, or for an untargeted attack the wrong class the views' softmaxes favour
    together at that step) and the squeezers are differentiated with BPDA
    (straight-through). Pushing the original and the squeezed copies into the *same* wrong
    class is what keeps the score low; once they are all there, the hinge penalty pulls the
    score under the threshold (earlier it would only pull the image back to its true
    class, where the views agree too). The forward pass is exact, so every step checks
    "fooled and undetected" on the real detector and keeps, per image, the last iterate
    that is both (else the last one that fools the model, else the final iterate).

    ``result.success`` (from the base class) only says the model was fooled: check
    ``detector.detect(result.adversarial)`` for evasion.
    """

    name = "squeeze-aware-pgd"
    detector: FeatureSqueezingDetector

    def __init__(
        self,
        detector: FeatureSqueezingDetector,
        eps: float = 0.3,
        alpha: float | None = None,
        steps: int = 40,
        norm: Norm = "linf",
        *,
        penalty: float = 10.0,
        kappa: float = 5.0,
        random_start: bool = True,
        target: str | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__(detector, eps, alpha, steps, norm, penalty=penalty, kappa=kappa,
                         random_start=random_start, target=target, seed=seed)  # fmt: skip
        check(penalty >= 0 and kappa > 0, "penalty must be >= 0 and kappa > 0")

    def _run(
        self, model: nn.Module, images: torch.Tensor, goal: torch.Tensor, targeted: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        assert self.eps is not None and self.detector.threshold is not None
        self._check_own_model(model)
        threshold = self.detector.threshold
        alpha = self._step_size()
        x = random_start(images, self.eps, self.norm) if self.random_start else images.clone()
        best = x.clone()
        found = torch.zeros(images.shape[0], dtype=torch.bool, device=images.device)
        hit = torch.zeros_like(found)  # fooled at some step, maybe detected
        for step in range(self.steps + 1):
            x = x.detach().requires_grad_(step < self.steps)
            logits, squeezed = self.detector.logits(x, bpda=True)
            score = l1_distances(logits, squeezed).amax(dim=1)
            with torch.no_grad():
                # The forward is exact (BPDA changes only gradients): a real verdict.
                fooled = margin_loss(logits, goal, targeted) > 0
                evades = fooled & (score <= threshold)
                # Keep the last evading iterate; failing that, the last fooling one.
                update = evades | (fooled & ~found)
                best[update] = x[update]
                found |= evades
                hit |= fooled
            if step == self.steps:
                break
            # One class for every view (the goal, or the wrong class the views favour
            # together): views fooled into different classes would disagree.
            common = goal if targeted else _common_wrong_class([logits, *squeezed], goal)
            margins = torch.stack([margin_loss(z, common, True) for z in [logits, *squeezed]])
            # The penalty only once every view is in the common class: earlier, it would
            # pull the image back to its true class (where the views agree, too).
            agree = (margins > 0).all(dim=0).detach()
            hinge = F.relu(score - threshold / 2) * agree
            objective = margins.clamp(max=self.kappa).sum(0) - self.penalty * hinge
            (grad,) = torch.autograd.grad(objective.sum(), x)
            x = project(
                x.detach() + alpha * direction(grad, self.norm), images, self.eps, self.norm
            )
        best[~hit] = x.detach()[~hit]
        queries = self.steps * (1 + len(self.detector.squeezers))
        return best, torch.full((images.shape[0],), queries, dtype=torch.int64)


class DetectorAwarePGD(DetectorAwareAttack):
    """L-inf/L2 PGD against model *and* :class:`BinaryDetector` together.

    Each step ascends, per image::

        min(margin(x), kappa) - penalty * relu(d(x) - threshold + slack)

    where ``margin`` is the largest wrong logit minus the true one (untargeted; the target
    logit minus the largest other for a targeted attack), ``d`` is the detector's logit
    and ``slack`` keeps the example a little inside the "clean" side. The clamp at
    ``kappa`` stops pushing the model once it is fooled with room to spare, so the
    gradient then goes to the detector. Every step checks "fooled and not flagged" on
    the real detector and keeps the last such iterate per image (else the last one that
    fools the model, else the final iterate).

    ``result.success`` (from the base class) only says the model was fooled: check
    ``detector.detect(result.adversarial)`` for evasion.
    """

    name = "detector-aware-pgd"
    detector: BinaryDetector

    def __init__(
        self,
        detector: BinaryDetector,
        eps: float = 0.3,
        alpha: float | None = None,
        steps: int = 40,
        norm: Norm = "linf",
        *,
        penalty: float = 1.0,
        kappa: float = 5.0,
        slack: float = 1.0,
        random_start: bool = True,
        target: str | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__(detector, eps, alpha, steps, norm, penalty=penalty, kappa=kappa,
                         random_start=random_start, target=target, seed=seed)  # fmt: skip
        check(penalty >= 0 and kappa > 0 and slack >= 0, "need penalty >= 0, kappa > 0, slack >= 0")
        self.slack = float(slack)

    def _run(
        self, model: nn.Module, images: torch.Tensor, goal: torch.Tensor, targeted: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        assert self.eps is not None and self.detector.threshold is not None
        self._check_own_model(model)
        threshold = self.detector.threshold
        alpha = self._step_size()
        x = random_start(images, self.eps, self.norm) if self.random_start else images.clone()
        best = x.clone()
        found = torch.zeros(images.shape[0], dtype=torch.bool, device=images.device)
        hit = torch.zeros_like(found)  # fooled at some step, maybe detected
        head = self.detector.head
        assert head is not None  # a threshold comes with a trained head
        with frozen_eval(head):
            for step in range(self.steps + 1):
                x = x.detach().requires_grad_(step < self.steps)
                logits, score = self.detector.logits(x)
                margin = margin_loss(logits, goal, targeted)
                with torch.no_grad():
                    fooled = margin > 0
                    evades = fooled & (score <= threshold)
                    # Keep the last evading iterate; failing that, the last fooling one.
                    update = evades | (fooled & ~found)
                    best[update] = x[update]
                    found |= evades
                    hit |= fooled
                if step == self.steps:
                    break
                hinge = F.relu(score - threshold + self.slack)
                objective = margin.clamp(max=self.kappa) - self.penalty * hinge
                (grad,) = torch.autograd.grad(objective.sum(), x)
                x = project(
                    x.detach() + alpha * direction(grad, self.norm), images, self.eps, self.norm
                )
        best[~hit] = x.detach()[~hit]
        return best, torch.full((images.shape[0],), self.steps, dtype=torch.int64)


def _common_wrong_class(views: Sequence[torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
    """The class other than ``labels`` with the highest softmax summed over the views."""
    with torch.no_grad():
        total = torch.stack([z.softmax(dim=1) for z in views]).sum(0)
        return total.scatter(1, labels[:, None], -1.0).argmax(dim=1)
