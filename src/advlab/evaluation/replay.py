"""A black-box target whose answers to one unit are stored, so a retry never pays twice.

See :mod:`advlab.evaluation.store.queries`: every question the unit asks is hashed and
its answer committed to the store as it arrives; on the unit's next attempt, the same
questions (the attack draws the same random numbers) are answered from the store until
the first new one, which goes to the real target.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import torch

from advlab.evaluation.store import ResultStore
from advlab.targets import Target, TargetClassifier


class ReplayTarget(Target):
    """``inner``, with the answers of unit (``attack_key``, ``eps``, ``offset``) of run
    ``run_id`` recorded in and replayed from ``store``."""

    def __init__(
        self,
        inner: Target,
        store: ResultStore,
        unit: tuple[str, str, float, int],
    ) -> None:
        super().__init__()
        self.inner, self.store, self.unit = inner, store, unit
        self.output = inner.output
        self.num_classes = inner.num_classes
        self.input_shape = tuple(inner.input_shape)
        self._stored = store.stored_answers(*unit)
        self._seq = 0
        self.replayed = 0  # questions answered from the store

    def _scores(self, images: torch.Tensor) -> torch.Tensor:
        return self._answer("scores", images, self.inner.predict_scores)

    def _labels(self, images: torch.Tensor) -> torch.Tensor:
        return self._answer("labels", images, self.inner.predict_labels)

    def _answer(
        self, kind: str, images: torch.Tensor, ask: Callable[[torch.Tensor], torch.Tensor]
    ) -> torch.Tensor:
        question = images.detach().cpu().contiguous()
        digest = hashlib.sha256(
            f"{kind}|{question.dtype}|{tuple(question.shape)}|".encode()
            + question.numpy().tobytes()
        ).hexdigest()
        seq, self._seq = self._seq, self._seq + 1
        if seq < len(self._stored) and self._stored[seq][0] == digest:
            self.replayed += 1
            return torch.from_numpy(self._stored[seq][1].copy()).to(images.device)
        del self._stored[seq:]  # a new question: from here on the real target answers
        answer = ask(images)
        self.store.write_answer(*self.unit, seq, digest, answer.detach().cpu().numpy())
        return answer


def replaying(
    model: torch.nn.Module, store: ResultStore, unit: tuple[str, str, float, int]
) -> torch.nn.Module:
    """``model`` itself, or for a query-only target its :class:`ReplayTarget` dressed as a
    model: what a unit's attack should run on."""
    if not isinstance(model, TargetClassifier):
        return model
    return TargetClassifier(ReplayTarget(model.target, store, unit), str(model.name))
