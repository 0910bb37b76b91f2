"""The attack framework: configuration, input checks, model context and the final clip.

An attack is a configured object that does not hold the model::

    result = PGD(eps=8 / 255, alpha=2 / 255, steps=10)(model, images, labels)

Subclasses implement :meth:`Attack._run` only. :meth:`Attack.__call__` checks the
inputs, puts the model in eval mode with parameter gradients off (and restores both),
picks targets (:func:`pick_targets`, the one picker of white-box, black-box and transfer
attacks), and after the attack clips the result into the epsilon ball and [0, 1]
itself, so a buggy attack can never return an out-of-bounds example. Black-box attacks
(:mod:`advlab.attacks.blackbox`) use the same ``__call__`` and override its hooks: a
query budget instead of the model, success as verified by their own queries.
"""

from __future__ import annotations

import inspect
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar, TypedDict

import torch
from torch import nn

from advlab.attacks.gradient import layout
from advlab.attacks.norms import LINF, LpBall, Norm, get_norm
from advlab.attacks.result import AttackResult
from advlab.attacks.search import search_model
from advlab.errors import AdvlabError, check
from advlab.models.context import frozen_eval
from advlab.targets import Target

if TYPE_CHECKING:
    from typing_extensions import Self

TARGET_STRATEGIES = ("random", "least-likely")


class AttackOptions(TypedDict, total=False):
    """The keyword options every attack takes (their defaults: :class:`Attack`'s ``__init__``).

    A subclass ends its signature with ``**options: Unpack[AttackOptions]`` and passes them
    on (see :meth:`Attack.__init_subclass__` for how its signature still names them).
    """

    target: str | None
    seed: int | None


def check_inputs(images: Any, labels: Any, model: Any = None, targets: Any = None) -> None:
    """One-line errors for the inputs users most often get wrong."""
    check(isinstance(images, torch.Tensor), "images must be a torch.Tensor of shape (N, C, H, W)")
    check(isinstance(labels, torch.Tensor), "labels must be a torch.Tensor of class indices")
    check(images.dim() == 4, f"images must have shape (N, C, H, W), got {tuple(images.shape)}")
    check(images.is_floating_point(), f"images must be float in [0, 1], got dtype {images.dtype}")
    check(labels.dim() == 1 and labels.shape[0] == images.shape[0],
          f"labels must have shape ({images.shape[0]},), got {tuple(labels.shape)}")  # fmt: skip
    check(not labels.is_floating_point(), "labels must be integer class indices")
    if images.numel():
        check(not bool(torch.isnan(images).any()), "images contain NaN values: clean the input")
        low, high = float(images.min()), float(images.max())
        check(low >= 0.0 and high <= 1.0,
              f"images must be in [0, 1] (got {low:.3g}..{high:.3g}): divide uint8 pixels by 255 "
              "and let the model normalize")  # fmt: skip
    shape = getattr(model, "input_shape", None)
    if shape and all(shape):
        check(tuple(images.shape[1:]) == tuple(shape),
              f"images have shape {tuple(images.shape[1:])} but the model expects {tuple(shape)}; "
              "check the channel count and image size")  # fmt: skip
    num_classes = getattr(model, "num_classes", 0)
    if num_classes and labels.numel():
        low, high = int(labels.min()), int(labels.max())
        check(low >= 0 and high < num_classes,
              f"labels must be in [0, {num_classes - 1}], got {low}..{high}")  # fmt: skip
    if targets is not None:
        check(isinstance(targets, torch.Tensor) and targets.shape == labels.shape
              and not targets.is_floating_point(),
              "targets must be a tensor of class indices, one per image")  # fmt: skip
        if num_classes and targets.numel():
            low, high = int(targets.min()), int(targets.max())
            check(low >= 0 and high < num_classes,
                  f"targets must be in [0, {num_classes - 1}], got {low}..{high}")  # fmt: skip


def check_eps(eps: float | None, norm: str) -> None:
    ball = get_norm(norm)
    if eps is None:
        return
    check(isinstance(eps, (int, float)) and not isinstance(eps, bool) and math.isfinite(eps),
          f"eps must be a number, got {eps!r}")  # fmt: skip
    check(eps >= 0, f"eps must be >= 0, got {eps}")
    ball.check_eps(eps)


def check_counts(**counts: int) -> None:
    """Each of ``counts`` (steps, restarts, ...) is at least 1."""
    for key, value in counts.items():
        check(value >= 1, f"{key} must be >= 1, got {value}")


def pick_targets(
    strategy: str | None,
    labels: torch.Tensor,
    targets: torch.Tensor | None,
    scores: Callable[[], torch.Tensor],
    num_classes: int | None = None,
) -> torch.Tensor | None:
    """The target class of each image, or ``None`` for an untargeted attack.

    Explicit ``targets`` (checked by :func:`check_inputs`) win; else ``strategy`` picks
    them: "least-likely" takes the argmin of ``scores()`` (logits or probabilities of the
    images, computed only when needed), "random" a uniform class other than the true one.
    ``num_classes`` defaults to the width of ``scores()``. White-box, black-box and
    transfer attacks all pick their targets here, each with its own ``scores``.
    """
    if targets is not None:
        return targets.to(labels.device).long()
    if strategy is None:
        return None
    check(num_classes is None or num_classes > 0,
          "targeted black-box attacks need the target's number of classes")  # fmt: skip
    if strategy == "least-likely":
        return scores().argmin(dim=1)
    if num_classes is None:
        num_classes = scores().shape[1]
    # random: uniform over the classes other than the true one
    offset = torch.randint(1, num_classes, labels.shape, device=labels.device)
    return (labels + offset) % num_classes


class Attack(ABC):
    """Base class of every attack. Subclasses set ``name`` and implement ``_run``.

    :meth:`__call__` is a template for white-box and black-box attacks alike: it checks
    the inputs, seeds the RNG, opens a session on the model (:meth:`_session`: the model
    in eval mode here, a query budget for black-box attacks), picks the targets, runs
    :meth:`_run` and turns its output into an :class:`AttackResult` (:meth:`_result`).
    """

    name: ClassVar[str] = ""
    #: White-box attacks read gradients; black-box ones never may.
    needs_gradients: ClassVar[bool] = True
    #: Search on a stand-in for the model (:mod:`advlab.attacks.search`): a copy with its
    #: batch norms folded into the layers before them and its weights channels-last
    #: (:mod:`advlab.attacks.fold`; the same function to float rounding and cheaper per
    #: step on CPU, ~15% for a ResNet-20, ~2x forward for an MNIST CNN), in bfloat16 or
    #: compiled where asked; success is still judged on the model itself. False: on the
    #: model itself. Adversarial training turns it off (its weights change every batch,
    #: and so would the copy), and so do attacks that must run the very model they are given.
    search_copy: bool = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Spell out what a subclass's ``__init__`` passes on, in its signature.

        The signature :mod:`inspect` sees lists every parameter by name: ``config()``,
        ``advlab attacks`` and ``help()`` read it. ``**options`` stands for
        :class:`AttackOptions`; a subclass of a concrete attack writes only the parameters
        it adds, and ``*args`` and ``**kwargs`` stand for its parent's positional and
        keyword-only parameters that it does not name itself.
        """
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is not None:
            parent = inspect.signature(super(cls, cls).__init__)
            init.__signature__ = _spelled_out(inspect.signature(init), parent)

    def __new__(cls, *args: Any, **kwargs: Any) -> Self:
        """Check the call against the spelled-out signature, which is the attack's contract:
        what ``**options`` and ``**kwargs`` pass on, a parent may accept for other reasons."""
        if args or kwargs:  # (copy and pickle call it bare)
            try:
                inspect.signature(cls.__init__).bind(None, *args, **kwargs)
            except TypeError as error:
                raise TypeError(f"{cls.__name__}.__init__() {error}") from None
        return super().__new__(cls)

    def __init__(
        self,
        eps: float | None,
        norm: Norm = LINF,
        *,
        target: str | None = None,
        seed: int | None = None,
    ) -> None:
        check_eps(eps, norm)
        if target is not None:
            strategies = " or ".join(TARGET_STRATEGIES)
            check(target in TARGET_STRATEGIES,
                  f"unknown target strategy '{target}': use {strategies}")  # fmt: skip
        self.eps = None if eps is None else float(eps)
        self.norm: Norm = norm
        self.target = target
        self.seed = seed

    # -- public -----------------------------------------------------------------------
    @property
    def targeted(self) -> bool:
        return self.target is not None

    @property
    def ball(self) -> LpBall:
        """The threat model's norm object (``self.norm`` is its name)."""
        return get_norm(self.norm)

    def config(self) -> dict[str, Any]:
        """The attack's full configuration (stored beside every result)."""
        params = inspect.signature(type(self).__init__).parameters
        config = {key: getattr(self, key) for key in params if key != "self" and hasattr(self, key)}
        return {"attack": self.name, **config}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if k != "attack")
        return f"{type(self).__name__}({args})"

    def __call__(
        self,
        model: nn.Module | Target,
        images: torch.Tensor,
        labels: torch.Tensor,
        targets: torch.Tensor | None = None,
    ) -> AttackResult:
        """Attack ``images`` (float in [0, 1]) of true class ``labels``, towards ``targets``.

        ``model`` is an ``nn.Module`` taking images in [0, 1]; black-box attacks also take
        a query-only :class:`advlab.targets.Target`. Images of another float dtype than
        the model's parameters (float64, say) are converted to it: the result has the
        model's dtype.
        """
        generator_state: Any = None
        try:
            with self._session(model, images, labels, targets) as session:
                images = images.detach().to(_model_dtype(model, images))
                labels = labels.detach().long()
                generator_state = self._seed_rng(images.device)
                targets = pick_targets(
                    self.target, labels, targets, _once(lambda: self._scores(session, images)),
                    self._num_classes(session),
                )  # fmt: skip
                goal = targets if targets is not None else labels
                search = session
                if isinstance(session, nn.Module) and self.search_copy:
                    search = search_model(session, images)
                output = self._run(search, images, goal, targets is not None)
                return self._result(session, images, goal, targets, *output)
        finally:
            self._restore_rng(generator_state)

    # -- for subclasses ---------------------------------------------------------------
    @abstractmethod
    def _run(
        self, model: Any, images: torch.Tensor, goal: torch.Tensor, targeted: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(adversarial, queries per image)``; ``goal`` is labels or targets."""

    @contextmanager
    def _session(
        self, model: Any, images: torch.Tensor, labels: torch.Tensor, targets: Any
    ) -> Iterator[Any]:
        """What ``_run`` attacks: the checked model, in eval mode without parameter grads."""
        check(isinstance(model, nn.Module),
              f"model must be a torch.nn.Module taking images in [0, 1], "
              f"got {type(model).__name__}")  # fmt: skip
        check_inputs(images, labels, model, targets)
        with frozen_eval(model):
            yield model

    def _scores(self, session: Any, images: torch.Tensor) -> torch.Tensor:
        """Per-class scores of the clean images, to rank target classes."""
        with torch.no_grad():
            return session(images)

    def _num_classes(self, session: Any) -> int | None:
        return None  # the width of the logits

    def _result(
        self,
        session: Any,
        images: torch.Tensor,
        goal: torch.Tensor,
        targets: torch.Tensor | None,
        adversarial: torch.Tensor,
        queries: torch.Tensor,
    ) -> AttackResult:
        """Clip into the ball and the box; success is judged on the model itself when read."""
        adversarial = self._clip(adversarial.detach(), images)
        targeted = targets is not None

        def judge() -> torch.Tensor:
            with frozen_eval(session), torch.no_grad():
                x = adversarial.contiguous(memory_format=layout(adversarial))
                return self.is_adversarial(session(x).argmax(1), goal, targeted)

        queries = queries.to(torch.int64).cpu()
        return AttackResult(adversarial, judge, queries, targets)  # type: ignore[arg-type]

    @staticmethod
    def is_adversarial(
        predictions: torch.Tensor, goal: torch.Tensor, targeted: bool
    ) -> torch.Tensor:
        """Per image: the prediction is the target class, or (untargeted) not the label."""
        return predictions == goal if targeted else predictions != goal

    # -- internals --------------------------------------------------------------------
    def _clip(self, adversarial: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        if self.eps is None:
            return adversarial.clamp(0.0, 1.0)
        return self.ball.project(adversarial, images, self.eps)

    def _seed_rng(self, device: torch.device) -> Any:
        if self.seed is None:
            return None
        state = (torch.get_rng_state(),
                 torch.cuda.get_rng_state(device) if device.type == "cuda" else None)  # fmt: skip
        torch.manual_seed(self.seed)
        return state

    @staticmethod
    def _restore_rng(state: Any) -> None:
        if state is None:
            return
        torch.set_rng_state(state[0])
        if state[1] is not None:
            torch.cuda.set_rng_state(state[1])


def _spelled_out(own: inspect.Signature, parent: inspect.Signature) -> inspect.Signature:
    """``own`` with ``*args``, ``**kwargs`` and ``**options`` replaced by what they carry."""
    kind = inspect.Parameter
    inherited = [p for p in parent.parameters.values() if p.name not in own.parameters]
    parameters: list[inspect.Parameter] = []
    for p in own.parameters.values():
        if p.kind is kind.VAR_POSITIONAL:
            parameters += [q for q in inherited if q.kind is kind.POSITIONAL_OR_KEYWORD]
        elif p.kind is kind.VAR_KEYWORD:
            # What ``*args`` did not take: a user's ``def __init__(self, eps, **kwargs)``
            # passes the parent's positional parameters on by keyword.
            placed = {q.name for q in parameters}
            keywords = [q.replace(kind=kind.KEYWORD_ONLY) for q in inherited
                        if q.name not in placed and q.kind is not kind.VAR_KEYWORD]  # fmt: skip
            if p.name == "options":  # **options: Unpack[AttackOptions]
                keywords = [q for q in keywords if q.name in AttackOptions.__annotations__]
            parameters += keywords
        else:
            parameters.append(p)
    return own.replace(parameters=parameters)


def _model_dtype(model: Any, images: torch.Tensor) -> torch.dtype:
    """What the attack computes in: the model's floating parameters' dtype, else the images'.

    A query-only target is asked in the images' dtype (it converts what it sends).
    """
    if not isinstance(model, nn.Module):
        return images.dtype
    params = (p for p in model.parameters() if p.is_floating_point())
    return next((p.dtype for p in params), images.dtype)


def _once(compute: Callable[[], torch.Tensor]) -> Callable[[], torch.Tensor]:
    """``compute`` called at most once, its result remembered."""
    cache: list[torch.Tensor] = []

    def value() -> torch.Tensor:
        if not cache:
            cache.append(compute())
        return cache[0]

    return value


ATTACKS: dict[str, type[Attack]] = {}


def register_attack(cls: type[Attack]) -> type[Attack]:
    """Class decorator: make ``cls`` available by its ``name`` (CLI, configs)."""
    check(bool(cls.name), f"{cls.__name__} needs a name")
    ATTACKS[cls.name] = cls
    return cls


def get_attack(name: str) -> type[Attack]:
    key = name.lower().replace("_", "-")
    if key not in ATTACKS:
        raise AdvlabError(f"unknown attack '{name}': use one of {', '.join(sorted(ATTACKS))}")
    return ATTACKS[key]
