"""Black-box targets: something that answers a batch of images with scores or a label.

A black-box attack receives a :class:`Target`, never the ``nn.Module``: the target's
only methods return detached tensors computed without autograd, so an attack cannot
read a gradient even by mistake. Every answered image counts one query, per image, and
a :class:`QueryBudget` refuses to answer beyond ``max_queries``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Literal

import torch
from torch import nn

from advlab.errors import AdvlabError, check
from advlab.models.context import frozen_eval

OutputKind = Literal["scores", "labels"]


class BudgetExceeded(AdvlabError):
    """An attack asked for more queries than its budget allows (a bug in the attack)."""


class Target(ABC):
    """A classifier that can only be queried.

    ``output`` says what it reveals: ``"scores"`` (class probabilities) or ``"labels"``
    (top-1 only, for decision-based attacks). ``queries`` is the total answered so far.
    """

    output: OutputKind = "scores"
    num_classes: int = 0
    input_shape: tuple[int, ...] = ()

    def __init__(self) -> None:
        self.queries = 0

    def predict_scores(self, images: torch.Tensor) -> torch.Tensor:
        """Class probabilities, (N, num_classes), detached on the images' device."""
        if self.output != "scores":
            raise AdvlabError("this target answers with labels only: use a decision-based attack")
        scores = self._scores(images)
        self.queries += images.shape[0]
        return scores.detach().to(images.device)

    def predict_labels(self, images: torch.Tensor) -> torch.Tensor:
        labels = self._labels(images)
        self.queries += images.shape[0]
        return labels.detach().to(images.device)

    @abstractmethod
    def _scores(self, images: torch.Tensor) -> torch.Tensor: ...

    def _labels(self, images: torch.Tensor) -> torch.Tensor:
        return self._scores(images).argmax(dim=1)


class LocalTarget(Target):
    """A local model queried like a remote one: no autograd, eval mode, softmax outputs."""

    def __init__(self, model: nn.Module, output: OutputKind = "scores") -> None:
        super().__init__()
        check(output in ("scores", "labels"), f"unknown output '{output}': use scores or labels")
        self._model = model  # private: attacks only ever see the query methods
        # Listed once: walking the modules for every query cost ~0.4 ms, a fifth of a
        # ResNet-20 query on a few images.
        self._parts = list(model.modules())
        self._first_parameter = next(iter(model.parameters()), None)
        self.output = output
        self.num_classes = int(getattr(model, "num_classes", 0) or 0)
        self.input_shape = tuple(getattr(model, "input_shape", ()) or ())

    @torch.no_grad()
    def _scores(self, images: torch.Tensor) -> torch.Tensor:
        device = (self._first_parameter if self._first_parameter is not None else images).device
        images = images.detach().to(device)
        if any(part.training for part in self._parts):  # put in eval mode for this query
            with frozen_eval(self._model):
                return torch.softmax(self._model(images), dim=1)
        return torch.softmax(self._model(images), dim=1)


class TargetClassifier(nn.Module):
    """A query-only target dressed as a model, so evaluations can count its clean accuracy.

    ``forward`` returns log-probabilities (softmax of them gives the target's scores; for
    a label-only target, one-hot). It holds no parameters and no gradient flows through
    it: only black-box attacks can run on it, and they unwrap it back to the target.
    """

    def __init__(self, target: Target, name: str) -> None:
        super().__init__()
        self.target = target
        self.name = name
        self.num_classes = target.num_classes
        self.input_shape = tuple(target.input_shape)
        self.class_names = [str(i) for i in range(self.num_classes)]

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.target.output == "scores":
            return self.target.predict_scores(images).clamp_min(1e-12).log()
        labels = self.target.predict_labels(images)
        one_hot = torch.full((labels.shape[0], max(self.num_classes, 1)), -30.0)
        return one_hot.to(images.device).scatter_(1, labels.view(-1, 1), 0.0)


def as_target(model_or_target: nn.Module | Target, output: OutputKind = "scores") -> Target:
    if isinstance(model_or_target, Target):
        return model_or_target
    if isinstance(model_or_target, TargetClassifier):
        return model_or_target.target
    if isinstance(model_or_target, nn.Module):
        return LocalTarget(model_or_target, output)
    raise AdvlabError(f"expected a model or a Target, got {type(model_or_target).__name__}")


class QueryBudget:
    """Per-image query counters with a hard limit, shared by one attack run."""

    def __init__(self, target: Target, n: int, max_queries: int, device: torch.device) -> None:
        check(max_queries >= 1, f"max_queries must be >= 1, got {max_queries}")
        self.target = target
        self.max_queries = int(max_queries)
        self.used = torch.zeros(n, dtype=torch.int64, device=device)
        #: Where success is judged, when the queries go to a faster copy of ``target``
        #: (a local model with its batch norms folded); ``None``: ``target`` itself.
        self.judge: Target | None = None

    def remaining(self, index: torch.Tensor) -> torch.Tensor:
        return self.max_queries - self.used[index]

    def can_query(self, index: torch.Tensor) -> torch.Tensor:
        """Boolean mask over ``index``: which images may still be queried once more."""
        return self.used[index] < self.max_queries

    def _charge(self, index: torch.Tensor) -> None:
        if index.numel() == 0:
            return
        # Count repeats: an image may appear several times in one batch of queries.
        charge = torch.bincount(index, minlength=self.used.numel())
        if bool((self.used + charge > self.max_queries).any()):
            raise BudgetExceeded(
                f"attack tried to exceed its budget of {self.max_queries} queries per image"
            )
        self.used += charge

    def scores(self, images: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """Scores for ``images``, the i-th belonging to image ``index[i]`` of the run."""
        self._charge(index)
        return self.target.predict_scores(images)

    def labels(self, images: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        self._charge(index)
        return self.target.predict_labels(images)
