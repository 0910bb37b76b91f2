"""Attacks on a model and its detector together: a detector is only as good as the best
attack that knows it (Carlini and Wagner 2017, "Adversarial examples are not easily
detected").

Both are the one gradient loop (:class:`~advlab.attacks.gradient.GradientAscent`) with
their own hooks: the "model" the loop differentiates is the model and the detector in one
forward (:meth:`DetectorAwareAttack._joint`: the logits and the detector's view), the
objective is the attack's (:meth:`DetectorAwareAttack._objective`), and the update keeps,
per image, the last point that fools the model and evades the detector
(:class:`KeepEvading`).
:class:`SqueezeAwarePGD` attacks feature squeezing through BPDA; :class:`DetectorAwarePGD`
the differentiable :class:`~advlab.defenses.detectors.binary.BinaryDetector`, whose logit
it simply descends while fooling the model.
"""

from __future__ import annotations

import contextlib
from abc import abstractmethod
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from advlab.attacks.base import AttackOptions, register_attack
from advlab.attacks.gradient import (
    GradientAscent,
    Objective,
    SteepestAscent,
    margin_loss,
    start_in_ball,
)
from advlab.attacks.norms import LpBall, Norm
from advlab.attacks.pgd import PGD
from advlab.defenses.detectors.base import Detector
from advlab.defenses.detectors.binary import BinaryDetector
from advlab.defenses.detectors.squeezing import FeatureSqueezingDetector, l1_distances
from advlab.errors import check
from advlab.models.context import frozen_eval

if TYPE_CHECKING:
    from typing_extensions import Unpack

#: The squeezing-aware attack's joint outputs: the logits of the image and of each squeezed copy.
Views = tuple[torch.Tensor, Sequence[torch.Tensor]]

#: ``outputs of the joint forward -> (fooled, evades)`` per image, on the real detector.
Verdict = Callable[[Any], tuple[torch.Tensor, torch.Tensor]]


class KeepEvading(SteepestAscent):
    """PGD's step, keeping per image the last point that is "fooled and undetected"
    (failing that, the last one that fools the model, else the final point).

    The loop shows it every point it evaluates, the final one included
    (:meth:`observe`); ``verdict`` reads the outputs there.
    """

    observes_last = True

    def __init__(self, ball: LpBall, step_size: float, verdict: Verdict) -> None:
        super().__init__(ball, step_size)
        self.verdict = verdict

    def begin(self, images: torch.Tensor) -> None:
        self.best = images.clone()
        self.found = torch.zeros(images.shape[0], dtype=torch.bool, device=images.device)
        self.hit = torch.zeros_like(self.found)  # fooled at some step, maybe detected

    def observe(
        self, x: torch.Tensor, outputs: Any, loss: torch.Tensor, index: torch.Tensor | None
    ) -> None:
        with torch.no_grad():
            fooled, evades = self.verdict(outputs)
            # The last evading point; failing that, the last fooling one.
            update = evades | (fooled & ~self.found)
            self.best[update] = x.detach()[update]
            self.found |= evades
            self.hit |= fooled

    def finish(self, x: torch.Tensor) -> torch.Tensor:
        self.best[~self.hit] = x[~self.hit]
        return self.best


class DetectorAwareAttack(PGD):
    """PGD on a model and its fitted detector: the arguments, checks and loop they share.

    Its ``__init__`` is :class:`SqueezeAwarePGD`'s; a subclass writes only the arguments
    it adds or gives another default, and passes the rest on as ``*args``/``**kwargs``
    (its signature, as :mod:`inspect` and ``config()`` see it, still names them all).
    Subclasses set ``detector_type`` and write the hooks: :meth:`_joint` (model and
    detector in one differentiable forward), :meth:`_objective` and :meth:`_verdict` on
    its output, and the forwards one step costs (:meth:`_forwards_per_step`).
    """

    detector_type: ClassVar[type[Detector]]
    #: The detector runs the very model it was fitted on: search on it, not a copy.
    search_copy = False

    def __init__(
        self,
        detector: Detector,
        eps: float = 0.3,
        alpha: float | None = None,
        steps: int = 40,
        norm: Norm = "linf",
        *,
        penalty: float = 10.0,
        kappa: float = 5.0,
        random_start: bool = True,
        **options: Unpack[AttackOptions],
    ) -> None:
        super().__init__(eps, alpha, steps, norm, random_start=random_start, **options)
        check(
            isinstance(detector, self.detector_type),
            f"{type(self).__name__} attacks a {self.detector_type.__name__}, "
            f"got {type(detector).__name__}",
        )
        check(
            detector.threshold is not None,
            "fit the detector before attacking it: detector.fit(clean_images)",
        )
        check(penalty >= 0 and kappa > 0, "penalty must be >= 0 and kappa > 0")
        self.detector = detector
        self.penalty = float(penalty)
        self.kappa = float(kappa)

    # -- hooks ------------------------------------------------------------------------
    @abstractmethod
    def _joint(self, x: torch.Tensor) -> Any:
        """Model and detector on ``x`` in one differentiable forward (the loop's model)."""

    @abstractmethod
    def _objective(self, targeted: bool, threshold: float) -> Objective:
        """``(joint outputs, goal) -> per-image loss`` to ascend."""

    @abstractmethod
    def _verdict(self, goal: torch.Tensor, targeted: bool, threshold: float) -> Verdict:
        """``joint outputs -> (fooled, evades)``, per image."""

    def _forwards_per_step(self) -> int:
        """The model forwards one step costs (its query count)."""
        return 1

    @contextlib.contextmanager
    def _context(self) -> Iterator[None]:
        """Held while the loop runs (the binary detector's head in eval mode)."""
        yield

    # -- the loop ---------------------------------------------------------------------
    def _run(
        self, model: nn.Module, images: torch.Tensor, goal: torch.Tensor, targeted: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        check(
            model is self.detector.model,
            f"{type(self).__name__} must attack the detector's own model: pass detector.model",
        )
        assert self.eps is not None and self.detector.threshold is not None
        threshold = self.detector.threshold
        verdict = self._verdict(goal, targeted, threshold)
        loop = GradientAscent(
            self.ball, self.eps, self.steps, objective=self._objective(targeted, threshold),
            update=KeepEvading(self.ball, self.step_size(), verdict),
            start=start_in_ball(self.ball, self.eps) if self.random_start else None,
            channels_last=False,
        )  # fmt: skip
        with self._context():
            adversarial, _ = loop.run(self._joint, images, goal)
        queries = self.steps * self._forwards_per_step()
        return adversarial, torch.full((images.shape[0],), queries, dtype=torch.int64)


@register_attack
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
    detector_type = FeatureSqueezingDetector
    detector: FeatureSqueezingDetector

    def _forwards_per_step(self) -> int:
        return 1 + len(self.detector.squeezers)  # each squeezed copy is one more forward

    def _joint(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The logits of ``x`` and of each squeezed copy (BPDA)."""
        return self.detector.logits(x, bpda=True)

    def _verdict(self, goal: torch.Tensor, targeted: bool, threshold: float) -> Verdict:
        def verdict(outputs: Views) -> tuple[torch.Tensor, torch.Tensor]:
            # The forward is exact (BPDA changes only gradients): a real verdict.
            fooled = margin_loss(outputs[0], goal, targeted) > 0
            return fooled, fooled & (_score(outputs) <= threshold)

        return verdict

    def _objective(self, targeted: bool, threshold: float) -> Objective:
        def objective(outputs: Views, goal: torch.Tensor) -> torch.Tensor:
            views = [outputs[0], *outputs[1]]
            # One class for every view (the goal, or the wrong class the views favour
            # together): views fooled into different classes would disagree.
            common = goal if targeted else _common_wrong_class(views, goal)
            margins = torch.stack([margin_loss(z, common, True) for z in views])
            # The penalty only once every view is in the common class: earlier, it would
            # pull the image back to its true class (where the views agree, too).
            agree = (margins > 0).all(dim=0).detach()
            hinge = F.relu(_score(outputs) - threshold / 2) * agree
            return margins.clamp(max=self.kappa).sum(0) - self.penalty * hinge

        return objective


@register_attack
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
    detector_type = BinaryDetector
    detector: BinaryDetector

    def __init__(
        self,
        detector: BinaryDetector,
        *args: Any,
        penalty: float = 1.0,
        kappa: float = 5.0,
        slack: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(detector, *args, penalty=penalty, kappa=kappa, **kwargs)
        check(penalty >= 0 and kappa > 0 and slack >= 0, "need penalty >= 0, kappa > 0, slack >= 0")
        self.slack = float(slack)

    def _joint(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The model's logits and the detector's logit."""
        return self.detector.logits(x)

    def _verdict(self, goal: torch.Tensor, targeted: bool, threshold: float) -> Verdict:
        def verdict(
            outputs: tuple[torch.Tensor, torch.Tensor],
        ) -> tuple[torch.Tensor, torch.Tensor]:
            logits, score = outputs
            fooled = margin_loss(logits, goal, targeted) > 0
            return fooled, fooled & (score <= threshold)

        return verdict

    def _objective(self, targeted: bool, threshold: float) -> Objective:
        def objective(
            outputs: tuple[torch.Tensor, torch.Tensor], goal: torch.Tensor
        ) -> torch.Tensor:
            logits, score = outputs
            margin = margin_loss(logits, goal, targeted)
            hinge = F.relu(score - threshold + self.slack)
            return margin.clamp(max=self.kappa) - self.penalty * hinge

        return objective

    @contextlib.contextmanager
    def _context(self) -> Iterator[None]:
        head = self.detector.head
        assert head is not None  # a threshold comes with a trained head
        with frozen_eval(head):
            yield


def _score(outputs: Views) -> torch.Tensor:
    """The feature-squeezing score from the logits of an image and its squeezed copies."""
    return l1_distances(*outputs).amax(dim=1)


def _common_wrong_class(views: Sequence[torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
    """The class other than ``labels`` with the highest softmax summed over the views."""
    with torch.no_grad():
        total = torch.stack([z.softmax(dim=1) for z in views]).sum(0)
        return total.scatter(1, labels[:, None], -1.0).argmax(dim=1)
