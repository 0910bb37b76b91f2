"""Cheap checks for gradient masking (Athalye, Carlini and Wagner 2018; Carlini et al. 2019).

A defense that hides or breaks gradients makes gradient attacks fail without being
robust. Five signs of it, each a comparison whose order is known for a model with
useful gradients::

    checks = gradient_masking_checks(defended, images, labels, eps=0.3)
    for check in checks:
        print(check.name, check.status, check.numbers)

- ``iterative``: PGD succeeds at least as often as one-step FGSM;
- ``white-box``: PGD succeeds at least as often as the black-box Square attack;
- ``eps-sweep``: robust accuracy falls towards 0 as eps grows;
- ``unbounded``: with eps covering the whole image box, the attack succeeds on every image;
- ``more-effort``: twice the steps and a second random start add little.

The checks attack the model as given, with plain attacks: a ``warn`` says that the plain
numbers of this model are not to be trusted, and the adaptive ones (BPDA, EOT, an attack
on the logits) are the ones to report. Success is judged on the model itself, one
forward pass per image (one random draw for a random defense), and counted over the
images it classifies correctly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from advlab.attacks import FGSM, PGD, Attack, Square
from advlab.attacks.norms import Norm, get_norm
from advlab.errors import check
from advlab.evaluation.session import predict, run_attack
from advlab.models import ImageClassifier
from advlab.results import Check

CHECKS = ("iterative", "white-box", "eps-sweep", "unbounded", "more-effort")


@dataclass(frozen=True)
class CheckBudget:
    """How hard the checks attack: PGD steps, Square queries, the seed, the batch size."""

    steps: int = 20
    square_queries: int = 200
    seed: int = 0
    batch_size: int = 256

    def __post_init__(self) -> None:
        check(self.steps >= 1 and self.square_queries >= 1, "steps and square_queries must be >= 1")


def unbounded_eps(norm: Norm, image_shape: Sequence[int]) -> float:
    """The smallest eps whose ball covers the whole [0, 1] box around any image."""
    return get_norm(norm).box_diameter(image_shape)


def eps_sweep(eps: float, norm: Norm, image_shape: Sequence[int]) -> list[float]:
    """``eps, 2 eps, 4 eps, ...`` up to the first value at or past half the unbounded eps."""
    top = unbounded_eps(norm, image_shape)
    values = [eps]
    while values[-1] < top / 2:
        values.append(min(2 * values[-1], top))
    return values


def gradient_masking_checks(
    model: ImageClassifier,
    images: torch.Tensor,
    labels: torch.Tensor,
    eps: float,
    *,
    norm: Norm = "linf",
    budget: CheckBudget = CheckBudget(),
    margin: float = 0.05,
    large_eps_accuracy: float = 0.05,
) -> list[Check]:
    """Run the five checks on ``model`` at ``eps``; see the module docstring.

    ``margin`` is how many points of success rate (a fraction) a comparison may go the
    wrong way before it warns; ``large_eps_accuracy`` the robust accuracy tolerated at
    the sweep's largest eps. The unbounded attack must succeed on every image. Keep
    ``images`` small (about 100): the checks run nine attacks.
    """
    check(images.shape[0] > 0, "the gradient-masking checks need at least one image")
    check(eps > 0, f"the gradient-masking checks need eps > 0, got {eps}")
    steps, seed, batch_size = budget.steps, budget.seed, budget.batch_size
    images, labels = images.detach().cpu(), labels.detach().cpu()
    n = images.shape[0]
    # Only the images the model gets right are attacked (one draw for a random model).
    correct = predict(model, images, batch_size) == labels
    x, y = images[correct], labels[correct]
    if x.shape[0] == 0:
        why = "the model misclassifies every image: nothing to attack"
        return [Check(name, "warn", {}, why) for name in CHECKS]

    def fooled(attack: Attack) -> torch.Tensor:
        adversarial = run_attack(attack, model, x, y, batch_size)
        return predict(model, adversarial, batch_size) != y

    def rate(attack: Attack) -> float:
        return float(fooled(attack).float().mean())

    def robust(attack: Attack) -> float:
        return float((~fooled(attack)).sum()) / n

    # Only success counts here, so PGD may stop on each image once it is fooled; not on a
    # random model, where "fooled" by one draw says little about the next.
    stop = not bool(getattr(model, "randomized", False))
    fgsm = rate(FGSM(eps=eps, norm=norm, seed=seed))
    pgd = rate(PGD(eps=eps, steps=steps, norm=norm, early_stop=stop, seed=seed))
    strong = rate(PGD(eps=eps, steps=2 * steps, norm=norm, restarts=2, early_stop=stop,
                      seed=seed))  # fmt: skip
    square = rate(Square(eps=eps, norm=norm, max_queries=budget.square_queries, seed=seed))
    # No random start: only the gradient can move the image, which is what is tested.
    sweep = eps_sweep(eps, norm, images.shape[1:])
    curve = [robust(PGD(eps=e, steps=steps, norm=norm, random_start=False, early_stop=stop,
                        seed=seed)) for e in sweep]  # fmt: skip
    top = unbounded_eps(norm, images.shape[1:])
    unbounded = rate(PGD(eps=top, steps=steps, norm=norm, random_start=False, early_stop=stop,
                         seed=seed))  # fmt: skip
    attacked = int(x.shape[0])

    rises = max(
        [0.0] + [later - earlier for earlier, later in zip(curve[:-1], curve[1:], strict=True)]
    )
    curve_numbers = {
        f"robust_accuracy@{e:.4g}": value for e, value in zip(sweep, curve, strict=True)
    }
    return [
        _compare("iterative", fgsm, pgd, margin, "fgsm_success", "pgd_success",
                 "one-step FGSM beats PGD: the loss surface is not what PGD follows"),
        _compare("white-box", square, pgd, margin, "square_success", "pgd_success",
                 "black-box Square beats white-box PGD: the gradients mislead"),
        Check(
            "eps-sweep",
            "warn" if curve[-1] > large_eps_accuracy or rises > margin else "pass",
            {**curve_numbers, "largest_rise": rises},
            f"robust accuracy at eps {sweep[-1]:.4g} is {curve[-1]:.1%}"
            + (" (should be about 0)" if curve[-1] > large_eps_accuracy else "")
            + (f"; it rises by {rises:.1%} as eps grows" if rises > margin else ""),
        ),
        Check(
            "unbounded",
            "pass" if unbounded >= 1.0 else "warn",
            {"unbounded_eps": top, "unbounded_success": unbounded, "attacked": attacked},
            f"PGD with eps {top:.4g} (the whole image box) fools "
            f"{round(unbounded * attacked)} of {attacked} images"
            + ("" if unbounded >= 1.0 else ": it should fool every one"),
        ),
        _compare("more-effort", strong, pgd, margin, "strong_pgd_success", "pgd_success",
                 f"PGD with {2 * steps} steps and 2 restarts adds more than "
                 f"{margin:.0%} success: the plain attack has not converged"),
    ]  # fmt: skip


def _compare(
    name: str, high: float, low: float, margin: float, high_key: str, low_key: str, why: str
) -> Check:
    """Warn if ``high`` (which should not exceed ``low``) does so by more than ``margin``."""
    warn = high > low + margin
    relation = ">" if warn else "<="
    text = f"{high_key} {high:.1%} {relation} {low_key} {low:.1%} + {margin:.0%}"
    text = f"{why} ({text})" if warn else text
    return Check(name, "warn" if warn else "pass", {high_key: high, low_key: low}, text)
