"""The defended model and the layers defenses add: what every defense has in common.

A defense never leaves the model type: :class:`DefendedClassifier` *is* an
:class:`~advlab.models.ImageClassifier` (pixels in [0, 1], same ``input_shape``,
``num_classes``, ``class_names``), so every attack and evaluation takes it unchanged::

    defended = defend(model, JpegCompression(quality=75), BitDepthReduction(bits=4))

Each layer a defense adds is a :class:`DefenseLayer` and says what an honest evaluation
must know about it: ``differentiable = False`` (its gradient is zero: plain gradient
attacks see a *masked* gradient, use BPDA) and ``randomized = True`` (every call draws
new randomness: use EOT). :mod:`advlab.defenses.adaptive` reads these flags to build the
adaptive attack's surrogate.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterable
from typing import Literal

import torch
from torch import nn

from advlab.errors import AdvlabError, check
from advlab.models.classifier import ImageClassifier


class DefenseLayer(nn.Module):
    """A module a defense adds; says whether it is differentiable and whether it is random."""

    differentiable: bool = True
    randomized: bool = False
    #: The name in the defense registry ("jpeg", "bits", ...), used in model names.
    spec_name: str = ""
    #: The attributes that configure the layer, in the order :meth:`params` lists them.
    param_names: tuple[str, ...] = ()

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.params().items())

    def params(self) -> dict[str, object]:
        """The layer's configuration (for names, reprs and reports)."""
        return {name: getattr(self, name) for name in self.param_names}


class _Substitute(torch.autograd.Function):
    """Forward: the given output, bit for bit; backward: zero, or the gradient unchanged."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, output: torch.Tensor, identity: bool) -> torch.Tensor:
        ctx.identity = identity
        return output.clone()

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        return (grad if ctx.identity else torch.zeros_like(grad)), None, None


def substitute(
    x: torch.Tensor, output: torch.Tensor, gradient: Literal["zero", "identity"]
) -> torch.Tensor:
    """``output`` in the forward pass, with a gradient w.r.t. ``x`` that is zero (what
    autograd sees through a quantizer or a codec) or the identity (BPDA's straight-through).

    Returning zeros rather than cutting the graph keeps ``torch.autograd.grad`` working, so
    a plain gradient attack runs and meets the masked gradient instead of crashing. The
    forward is ``output`` exactly (``x + (f(x) - x).detach()`` would round differently).
    """
    return _Substitute.apply(x, output, gradient == "identity")


class Compose(DefenseLayer):
    """Preprocessors applied in order; non-differentiable / random if any step is."""

    def __init__(self, *steps: nn.Module) -> None:
        super().__init__()
        self.steps = nn.ModuleList(steps)

    @property
    def differentiable(self) -> bool:  # type: ignore[override]
        return all(is_differentiable(step) for step in self.steps)

    @property
    def randomized(self) -> bool:  # type: ignore[override]
        return any(is_randomized(step) for step in self.steps)

    def extra_repr(self) -> str:
        return ""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for step in self.steps:
            x = step(x)
        return x

    def __len__(self) -> int:
        return len(self.steps)


def chain(*steps: nn.Module | None) -> nn.Module:
    """One preprocessing module for ``steps`` in order, flattening nested Compose."""
    flat: list[nn.Module] = []
    for step in steps:
        if step is None or isinstance(step, nn.Identity):
            continue
        flat.extend(step.steps if isinstance(step, Compose) else [step])
    if not flat:
        return nn.Identity()
    return flat[0] if len(flat) == 1 else Compose(*flat)


def is_differentiable(module: nn.Module) -> bool:
    """False if any defense layer inside ``module`` masks its gradient."""
    if isinstance(module, DefenseLayer):
        return bool(module.differentiable)
    return all(is_differentiable(child) for child in module.children())


def is_randomized(module: nn.Module) -> bool:
    """True if any defense layer inside ``module`` draws randomness on each call."""
    if isinstance(module, DefenseLayer):
        return bool(module.randomized)
    return any(is_randomized(child) for child in module.children())


def describe(module: nn.Module) -> str:
    """A short name such as ``jpeg(quality=75)+bits(bits=4)`` for a defense layer."""
    if isinstance(module, Compose):
        return "+".join(describe(step) for step in module.steps)
    name = getattr(module, "spec_name", None) or type(module).__name__
    params = module.params() if isinstance(module, DefenseLayer) else {}
    args = ",".join(f"{k}={v}" for k, v in params.items())
    return f"{name}({args})" if args else name


class DefendedClassifier(ImageClassifier):
    """``model`` with ``preprocess`` in front (and possibly a modified ``net``).

    The forward is ``net(normalize(preprocess(x)))``: preprocessing acts in pixel space,
    before the wrapped model's own normalization. ``net`` and ``normalize`` are the wrapped
    model's own modules (shared, not copied), so a defense costs no memory and leaves the
    wrapped model as it was. Wrapping a DefendedClassifier again chains the preprocessing
    (the new one runs first) instead of nesting.
    """

    base_name: str
    preprocess: nn.Module

    def __init__(
        self,
        model: ImageClassifier,
        preprocess: nn.Module | None = None,
        *,
        net: nn.Module | None = None,
        name: str | None = None,
    ) -> None:
        if not isinstance(model, ImageClassifier):
            raise AdvlabError(
                f"defenses wrap an advlab ImageClassifier, got {type(model).__name__}: "
                "load the model with advlab.models.load_model"
            )
        inner_pre: nn.Module | None = None
        base_name: str = model.name
        if isinstance(model, DefendedClassifier) and _composes_as_defended(model):
            inner_pre, base_name = model.preprocess, model.base_name
            base_net, normalize = model.net, model.normalize
        elif type(model).forward is ImageClassifier.forward:
            base_net, normalize = model.net, model.normalize
        else:
            # A model with its own forward (e.g. EOT): keep it whole as the network.
            base_net, normalize = model, nn.Identity()
        super().__init__(
            net if net is not None else base_net,
            name=model.name,
            input_shape=model.input_shape,  # type: ignore[arg-type]
            num_classes=model.num_classes,
            mean=model.mean,
            std=model.std,
            class_names=model.class_names,
        )
        self.normalize = normalize
        self.preprocess = chain(preprocess, inner_pre)
        self.base_name = base_name
        self.name = name or self._default_name()

    def _default_name(self) -> str:
        if isinstance(self.preprocess, nn.Identity):
            return self.base_name
        return f"{self.base_name}+{describe(self.preprocess)}"

    @property
    def differentiable(self) -> bool:
        return is_differentiable(self.preprocess) and is_differentiable(self.net)

    @property
    def randomized(self) -> bool:
        return is_randomized(self.preprocess) or is_randomized(self.net)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.normalize(self.preprocess(x)))


def _composes_as_defended(model: nn.Module) -> bool:
    """A DefendedClassifier whose forward is the standard one can be flattened."""
    return isinstance(model, DefendedClassifier) and (
        type(model).forward is DefendedClassifier.forward
    )


def defend(model: ImageClassifier, *preprocessors: nn.Module) -> DefendedClassifier:
    """``model`` behind ``preprocessors``, applied in the order given."""
    for step in preprocessors:
        check(
            isinstance(step, nn.Module),
            f"a preprocessing defense must be an nn.Module, got {type(step).__name__}",
        )
    return DefendedClassifier(model, chain(*preprocessors))


def share_structure(net: nn.Module) -> nn.Module:
    """A copy of ``net``'s module tree that shares every parameter and buffer.

    Lets a defense change the network's structure (insert a layer) without copying the
    weights and without touching the caller's model.
    """
    memo = {id(t): t for t in itertools.chain(net.parameters(), net.buffers())}
    return copy.deepcopy(net, memo)


def iter_leaves(module: nn.Module) -> Iterable[tuple[str, nn.Module]]:
    return ((name, m) for name, m in module.named_modules() if not list(m.children()))
