"""The contenders of ``bench_attacks.py``: each attack as advlab and its peers run it.

Every contender is a function ``(images, labels) -> adversarial images`` on the model's
device, built by :func:`contenders` for one attack name from :data:`ATTACKS`. Peers that do
not import (ART, foolbox) or do not implement an attack are left out; the caller logs which.
The settings follow advlab's defaults and are the same for every library: L-inf at ``eps``,
step ``eps / 4``, a random start for PGD, momentum decay 1.0 for MIM, DeepFool's 50 steps,
overshoot 0.02 and 10 candidate classes, Square's ``p_init`` 0.8.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

import advlab.attacks as ours
from advlab.attacks.precision import search_precision

Contender = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

#: Attack name -> (k, what k counts): the nominal cost in passes of the model, per image.
ATTACKS: dict[str, tuple[int, str]] = {
    "fgsm": (1, "forward+backward"),
    "pgd-10": (10, "forward+backward"),
    "pgd-50-eval": (50, "forward+backward"),
    "mim": (10, "forward+backward"),
    "deepfool": (50, "forward+backward (50 steps; stops per image once fooled)"),
    "apgd": (100, "forward+backward"),
    "square": (0, "forward"),  # k = the query budget, set by --square-queries
    "fast-suite": (1000, "forward+backward (worst case: 100 + 9 x 100)"),
    "standard-suite": (1900, "forward+backward (worst case: 100 + 9 x 100 + 9 x 100; + Square)"),
}


@dataclass(frozen=True)
class Setup:
    model: nn.Module
    eps: float
    num_classes: int
    input_shape: tuple[int, ...]
    batch_size: int
    device: torch.device
    square_queries: int
    apgd_steps: int
    #: advlab's search precision (``advlab.attacks.precision``); the peers run float32.
    precision: str = "float32"


def available(library: str) -> Any | None:
    """The peer library's module, or None where it does not import."""
    name = {"torchattacks": "torchattacks", "art": "art", "foolbox": "foolbox"}[library]
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def contenders(attack: str, setup: Setup, libraries: list[str]) -> dict[str, Contender]:
    """Library label -> contender for ``attack``; peers without that attack are absent."""
    builders = {"advlab": _advlab, "torchattacks": _torchattacks, "art": _art, "foolbox": _foolbox}
    found: dict[str, Contender] = {}
    for library in libraries:
        found.update(builders[library](attack, setup))
    return found


def _advlab(attack: str, s: Setup) -> dict[str, Contender]:
    eps, model = s.eps, s.model
    alpha = eps / 4
    built: dict[str, ours.Attack | ours.Cascade] = {
        "fgsm": ours.FGSM(eps),
        "pgd-10": ours.PGD(eps, alpha, 10),
        "pgd-50-eval": ours.PGD(eps, alpha, 50, early_stop=True),
        "mim": ours.MIM(eps, alpha, 10, decay=1.0),
        "deepfool": ours.DeepFool(steps=50, overshoot=0.02, num_candidates=10),
        "apgd": ours.APGD(eps, s.apgd_steps, loss="ce", seed=0),
        "square": ours.Square(eps, max_queries=s.square_queries, p_init=0.8, seed=0),
        "fast-suite": ours.suite("fast", eps),
        "standard-suite": ours.suite("standard", eps),
    }
    runner = built[attack]

    def run(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with search_precision(s.precision):
            return runner(model, x, y).adversarial

    return {"advlab": run}


def _torchattacks(attack: str, s: Setup) -> dict[str, Contender]:
    ta = available("torchattacks")
    if ta is None:
        return {}
    eps, model = s.eps, s.model
    alpha = eps / 4
    if attack in ("fast-suite", "standard-suite"):
        return {"torchattacks": _torchattacks_chain(ta, s, standard=attack == "standard-suite")}
    built = {
        "fgsm": lambda: ta.FGSM(model, eps=eps),
        "pgd-10": lambda: ta.PGD(model, eps=eps, alpha=alpha, steps=10, random_start=True),
        "pgd-50-eval": lambda: ta.PGD(model, eps=eps, alpha=alpha, steps=50, random_start=True),
        "mim": lambda: ta.MIFGSM(model, eps=eps, alpha=alpha, steps=10, decay=1.0),
        "deepfool": lambda: ta.DeepFool(model, steps=50, overshoot=0.02),
        "apgd": lambda: ta.APGD(model, eps=eps, steps=s.apgd_steps, loss="ce", seed=0),
        "square": lambda: ta.Square(model, eps=eps, n_queries=s.square_queries, seed=0),
    }
    runner = built[attack]()
    return {"torchattacks": lambda x, y: runner(x, y)}


def _torchattacks_chain(ta: Any, s: Setup, standard: bool) -> Contender:
    """APGD-CE (100 steps), then APGD-T (100 steps, 9 targets) on the images still robust;
    for ``standard`` then FAB-T (100 steps, 9 targets) and Square (5,000 queries) likewise:
    the components of torchattacks' ``AutoAttack(version="standard")`` at the reference 100
    steps (AutoAttack itself runs them with torchattacks' default of 10)."""
    model, k = s.model, s.num_classes
    stages = [
        ta.APGD(model, eps=s.eps, steps=100, loss="ce", seed=0),
        ta.APGDT(model, eps=s.eps, steps=100, seed=0, n_classes=k),
    ]
    if standard:
        stages += [
            ta.FAB(model, eps=s.eps, steps=100, multi_targeted=True, n_classes=k, seed=0),
            ta.Square(model, eps=s.eps, n_queries=5000, seed=0),
        ]

    def run(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        adversarial = x.clone()
        for stage in stages:
            with torch.no_grad():
                robust = model(adversarial).argmax(1) == y
            if not robust.any():
                break
            adversarial[robust] = stage(x[robust], y[robust])
        return adversarial

    return run


def _art(attack: str, s: Setup) -> dict[str, Contender]:
    if available("art") is None or attack in ("fast-suite", "standard-suite"):
        return {}
    from art import attacks as art_attacks
    from art.estimators.classification import PyTorchClassifier

    classifier = PyTorchClassifier(
        s.model, loss=nn.CrossEntropyLoss(), input_shape=s.input_shape,
        nb_classes=s.num_classes, clip_values=(0.0, 1.0),
        device_type="gpu" if s.device.type == "cuda" else "cpu",
    )  # fmt: skip
    eps, batch = s.eps, s.batch_size
    evasion = art_attacks.evasion
    common = {"eps": eps, "batch_size": batch}
    built = {
        "fgsm": lambda: evasion.FastGradientMethod(classifier, norm=np.inf, **common),
        "pgd-10": lambda: evasion.ProjectedGradientDescent(
            classifier, norm=np.inf, eps_step=eps / 4, max_iter=10, num_random_init=1,
            verbose=False, **common),
        "pgd-50-eval": lambda: evasion.ProjectedGradientDescent(
            classifier, norm=np.inf, eps_step=eps / 4, max_iter=50, num_random_init=1,
            verbose=False, **common),
        "mim": lambda: evasion.MomentumIterativeMethod(
            classifier, norm=np.inf, eps_step=eps / 4, decay=1.0, max_iter=10, verbose=False,
            **common),
        "deepfool": lambda: evasion.DeepFool(
            classifier, max_iter=50, epsilon=0.02, nb_grads=10, batch_size=batch, verbose=False),
        "apgd": lambda: evasion.AutoProjectedGradientDescent(
            classifier, norm=np.inf, eps_step=2 * eps, max_iter=s.apgd_steps, nb_random_init=1,
            loss_type="cross_entropy", verbose=False, **common),
        "square": lambda: evasion.SquareAttack(
            classifier, norm=np.inf, max_iter=s.square_queries, p_init=0.8, nb_restarts=1,
            verbose=False, **common),
    }  # fmt: skip
    runner = built[attack]()

    def run(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # ART works on NumPy arrays: the host copies are part of what its users pay.
        adversarial = runner.generate(x=x.cpu().numpy(), y=y.cpu().numpy())
        return torch.from_numpy(adversarial).to(x.device)

    return {"art": run}


def _foolbox(attack: str, s: Setup) -> dict[str, Contender]:
    fb = available("foolbox")
    if fb is None:
        return {}
    eps = s.eps
    built = {
        "fgsm": lambda: (fb.attacks.FGSM(), eps),
        "pgd-10": lambda: (fb.attacks.LinfPGD(abs_stepsize=eps / 4, steps=10), eps),
        "pgd-50-eval": lambda: (fb.attacks.LinfPGD(abs_stepsize=eps / 4, steps=50), eps),
        "deepfool": lambda: (
            fb.attacks.L2DeepFoolAttack(steps=50, candidates=10, overshoot=0.02), None),
    }  # fmt: skip
    if attack not in built:
        return {}
    runner, epsilon = built[attack]()
    fmodel = fb.PyTorchModel(s.model.eval(), bounds=(0.0, 1.0), device=s.device)

    def run(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        _, clipped, _ = runner(fmodel, x, y, epsilons=epsilon)
        return clipped

    return {"foolbox": run}
