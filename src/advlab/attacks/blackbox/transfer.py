"""Transfer attack: craft on local surrogate models with a white-box attack, query once.

The surrogates (one model, or an ensemble whose logits are averaged) are attacked with
any registered white-box attack; the target then sees each crafted image exactly once,
to decide success. :meth:`Transfer.craft` exposes the crafting step so that one crafted
batch can be scored against many targets (a transfer matrix) with
:func:`evaluate_transfer`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from advlab.attacks.base import Attack, AttackOptions, get_attack, register_attack
from advlab.attacks.blackbox.base import BlackBoxAttack
from advlab.attacks.norms import LINF, Norm
from advlab.errors import AdvlabError, check
from advlab.targets import QueryBudget, Target, as_target

if TYPE_CHECKING:
    from typing_extensions import Unpack


class SurrogateEnsemble(nn.Module):
    """Several models seen as one: the average of their logits."""

    def __init__(self, models: Sequence[nn.Module]) -> None:
        super().__init__()
        check(len(models) > 0, "a transfer attack needs at least one surrogate model")
        self.members = nn.ModuleList(models)
        first = models[0]
        self.num_classes = int(getattr(first, "num_classes", 0) or 0)
        self.input_shape = tuple(getattr(first, "input_shape", ()) or ())

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.stack([member(images) for member in self.members]).mean(dim=0)


@register_attack
class Transfer(BlackBoxAttack):
    """Adversarial examples crafted on surrogates, spending one target query per image.

    ``surrogates`` are ``nn.Module`` objects (taking images in [0, 1]) or model specs for
    :func:`advlab.models.load_model` (loaded on first use). ``attack`` names the white-box
    attack run on them (default MIM, which transfers well), configured with ``eps``,
    ``norm`` and ``attack_params``. Targets ("random" or "least-likely") are chosen with
    the surrogate, so that no target query is spent on choosing them.
    """

    name = "transfer"
    output_kind = "labels"

    def __init__(
        self,
        eps: float = 8 / 255,
        norm: Norm = LINF,
        *,
        surrogates: Sequence[nn.Module | str] | None = None,
        attack: str = "mim",
        attack_params: dict[str, Any] | None = None,
        **options: Unpack[AttackOptions],
    ) -> None:
        super().__init__(eps, norm, max_queries=1, **options)
        # Optional in the signature only so that a config without it gets this sentence.
        check(bool(surrogates), "Transfer needs surrogate models: pass surrogates=[model or name]")
        assert surrogates is not None
        attack_cls = get_attack(attack)
        check(attack_cls.needs_gradients,
              f"'{attack}' is black-box: transfer needs a white-box one, e.g. mim")  # fmt: skip
        self.attack = attack_cls.name
        self.attack_params = dict(attack_params or {})
        try:
            self._crafter: Attack = attack_cls(
                eps=eps, norm=norm, seed=self.seed, **self.attack_params
            )
        except TypeError as error:
            raise AdvlabError(f"bad attack_params for '{attack}': {error}") from None
        # What config() reports: names, not modules.
        self.surrogates = [_describe(model) for model in surrogates]
        self._sources = list(surrogates)
        self._ensemble: SurrogateEnsemble | None = None

    # -- public -------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        # The ``attack`` parameter would shadow the attack's own name in the config.
        config = super().config()
        config["surrogate_attack"] = config.pop("attack")
        return {"attack": self.name, **config}

    def craft(
        self, images: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Adversarial examples for ``images`` crafted on the surrogates only (no query)."""
        surrogate = self.surrogate(images.device)
        goal_labels = labels if targets is None else targets
        result = self._crafter(surrogate, images, goal_labels, targets)
        return result.adversarial

    def surrogate(self, device: torch.device | None = None) -> SurrogateEnsemble:
        """The surrogate ensemble (registry models are loaded on the first call)."""
        if self._ensemble is None:
            from advlab.models import load_model  # lazy: attacks stay light to import

            models = [
                load_model(source, device=device) if isinstance(source, str) else source
                for source in self._sources
            ]
            self._ensemble = SurrogateEnsemble(models)
        return self._ensemble

    # -- BlackBoxAttack -----------------------------------------------------------------
    def _scores(self, session: QueryBudget, images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.surrogate(images.device)(images)

    def _num_classes(self, session: QueryBudget) -> int | None:
        return None  # the surrogate's: no target query is spent on choosing targets

    def _run(
        self, budget: QueryBudget, images: torch.Tensor, goal: torch.Tensor, targeted: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        adversarial = self.craft(images, goal, goal if targeted else None)
        index = torch.arange(images.shape[0], device=images.device)
        predictions = budget.labels(adversarial, index)
        return adversarial, self.is_adversarial(predictions, goal, targeted)


def evaluate_transfer(
    adversarial: torch.Tensor,
    labels: torch.Tensor,
    target: nn.Module | Target,
    targets: torch.Tensor | None = None,
) -> torch.Tensor:
    """Which crafted examples fool ``target`` (one label query each), as a bool tensor.

    Untargeted: the target's label differs from ``labels``; with ``targets``: it equals
    the target class.
    """
    check(adversarial.shape[0] == labels.shape[0],
          f"got {adversarial.shape[0]} images but {labels.shape[0]} labels")  # fmt: skip
    answerer = as_target(target, "labels")
    predictions = answerer.predict_labels(adversarial.detach()).to(labels.device)
    if targets is not None:
        return predictions == targets.to(labels.device)
    return predictions != labels


def _describe(model: nn.Module | str) -> str:
    if isinstance(model, str):
        return model
    if isinstance(model, nn.Module):
        return str(getattr(model, "name", "") or type(model).__name__)
    raise AdvlabError(f"surrogates must be models or model names, got {type(model).__name__}")
