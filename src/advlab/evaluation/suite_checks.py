"""The gradient-masking checks a suite run ends with (AutoAttack's ``checks.py`` and
ART's unbounded-eps check), cheap enough to run every time.

- ``randomness``: two forward passes of the same images give the same logits (a
  random model needs EOT, which the suite does not do);
- ``softmax``: the outputs are logits, not probabilities (a softmax output flattens
  the cross-entropy and its gradient);
- ``zero-gradients``: no image has an all-zero input gradient of the loss;
- ``black-box``: the black-box Square attack breaks none of the images every
  white-box attack left robust (for the standard suite: its own Square stage);
- ``large-eps``: a gradient attack with eps covering the whole image box reaches
  robust accuracy about 0.

A ``warn`` says the suite's number may be an overestimate: see docs/suite.md.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch import nn
from torch.nn import functional

import advlab.evaluation.metrics as metrics
from advlab.attacks import PGD, Square
from advlab.attacks.norms import Norm
from advlab.data import ImageDataset
from advlab.evaluation.masking import CheckBudget, unbounded_eps
from advlab.evaluation.session import model_device, predict, run_attack
from advlab.evaluation.store import ResultStore
from advlab.evaluation.suite import sanity_warnings
from advlab.models.context import frozen_eval
from advlab.results import Check
from advlab.results.evaluation import Evaluation, SuiteEvaluation

log = logging.getLogger(__name__)


def end_suite(
    evaluation: Evaluation,
    model: nn.Module,
    dataset: ImageDataset,
    store: ResultStore,
    batch_size: int,
    seed: int | None,
    check_n: int = 100,
) -> None:
    """Add the sanity lines of ``evaluation.suite`` and (``seed`` not None) the checks at
    its largest eps, on the first ``check_n`` images, to ``evaluation`` as warnings."""
    for entry in evaluation.suite:
        evaluation.warnings.extend(sanity_warnings(entry))
    if seed is not None:
        entry = max(evaluation.suite, key=lambda e: e.eps)
        n = len(dataset)
        _, images, labels = next(dataset.batches(min(check_n, n)))
        outcomes = store.attack_rows(evaluation.run_id, entry.key, entry.eps, n)
        clean = store.clean_rows(evaluation.run_id, n)
        robust = np.flatnonzero(metrics.robust_correct(outcomes, clean.labels))[:check_n]
        survivors = _images_at(dataset, robust, batch_size)
        budget = CheckBudget(seed=seed, batch_size=batch_size)
        evaluation.checks = suite_checks(model, images, labels, survivors, entry, budget=budget)
        evaluation.warnings.extend(
            f"gradient masking? {c.name}: {c.explanation}" for c in evaluation.checks
            if c.status == "warn"
        )  # fmt: skip
    for text in evaluation.warnings:
        log.warning("%s", text)


def _images_at(
    dataset: ImageDataset, positions: np.ndarray, batch_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The images and labels at ``positions`` (sorted) of ``dataset``."""
    images, labels = [], []
    for offset in sorted({int(p) // batch_size * batch_size for p in positions}):
        _, batch, batch_labels = next(dataset.batches(batch_size, start=offset))
        local = positions[(positions >= offset) & (positions < offset + batch_size)] - offset
        images.append(batch[local])
        labels.append(batch_labels[local])
    if not images:
        shape = tuple(dataset.image_shape)
        return torch.zeros((0, *shape)), torch.zeros(0, dtype=torch.int64)
    return torch.cat(images), torch.cat(labels)


def suite_checks(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    survivors: tuple[torch.Tensor, torch.Tensor],
    entry: SuiteEvaluation,
    *,
    budget: CheckBudget = CheckBudget(),
    large_eps_accuracy: float = 0.01,
) -> list[Check]:
    """The five checks on ``images`` (about 100) and, for ``black-box``, on
    ``survivors`` (images the suite left robust at ``entry.eps``)."""
    device = model_device(model)
    x, y = images.to(device), labels.to(device)
    norm: Norm = "l2" if entry.norm == "l2" else "linf"
    with frozen_eval(model), torch.no_grad():
        first, second = model(x).float(), model(x).float()
    spread = float((first - second).abs().max()) if first.numel() else 0.0
    probabilities = bool(first.numel()) and bool(
        (first >= 0).all() and torch.allclose(first.sum(1), torch.ones(len(first), device=device),
                                              atol=1e-3)
    )  # fmt: skip
    checks = [
        Check("randomness", "warn" if spread > 1e-5 else "pass", {"max_logit_change": spread},
              "two forward passes of the same images differ by up to "
              f"{spread:.3g}: a random model needs EOT" if spread > 1e-5 else
              "the model is deterministic"),
        Check("softmax", "warn" if probabilities else "pass", {},
              "the model outputs probabilities (rows sum to 1): give the logits" if probabilities
              else "the model outputs logits"),
        _zero_gradients(model, x, y),
        _black_box(model, survivors, entry, norm, budget),
    ]  # fmt: skip
    top = unbounded_eps(norm, tuple(images.shape[1:]))
    attack = PGD(eps=top, steps=budget.steps, norm=norm, random_start=False, early_stop=True,
                 seed=budget.seed)  # fmt: skip
    adversarial = run_attack(attack, model, images, labels, budget.batch_size)
    accuracy = float((predict(model, adversarial, budget.batch_size) == labels).float().mean())
    warn = accuracy > large_eps_accuracy
    checks.append(Check(
        "large-eps", "warn" if warn else "pass", {"eps": top, "robust_accuracy": accuracy},
        f"PGD with eps {top:.4g} (the whole image box) leaves robust accuracy {accuracy:.1%}"
        + (": it should reach about 0" if warn else ""),
    ))  # fmt: skip
    return checks


def _zero_gradients(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Check:
    with frozen_eval(model), torch.enable_grad():
        inputs = x.detach().clone().requires_grad_(True)
        loss = functional.cross_entropy(model(inputs).float(), y, reduction="sum")
        (gradient,) = torch.autograd.grad(loss, inputs)
    zero = int((gradient.flatten(1).abs().amax(1) == 0).sum())
    return Check("zero-gradients", "warn" if zero else "pass", {"zero_gradient_images": zero},
                 f"{zero} of {len(x)} images have an all-zero input gradient"
                 + (": the gradients are masked" if zero else ""))  # fmt: skip


def _black_box(
    model: nn.Module,
    survivors: tuple[torch.Tensor, torch.Tensor],
    entry: SuiteEvaluation,
    norm: Norm,
    budget: CheckBudget,
) -> Check:
    if "square" in entry.broken_by:  # the suite ran Square after every white-box attack
        broken = entry.broken_by["square"]
        source = "the suite's Square stage"
    else:
        images, labels = survivors
        queries, batch_size = budget.square_queries, budget.batch_size
        square = Square(eps=entry.eps, norm=norm, max_queries=queries, seed=budget.seed)
        adversarial = run_attack(square, model, images, labels, batch_size)
        broken = (
            int((predict(model, adversarial, batch_size) != labels).sum()) if len(images) else 0
        )
        source = f"Square ({queries} queries) on {len(images)} images the suite left robust"
    return Check("black-box", "warn" if broken else "pass", {"black_box_breaks": broken},
                 f"{source} broke {broken} images every white-box attack failed on"
                 + (": the gradients mislead" if broken else ""))  # fmt: skip
