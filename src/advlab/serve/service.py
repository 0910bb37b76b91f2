"""The model behind the server: checked requests in, scores or labels out, every image counted.

Kept apart from HTTP so that it can be tested and reused without a socket. Concurrent
requests are answered in one forward pass where they fit in ``max_batch`` images together
(:class:`advlab.serve.batcher.Batcher`); the answers and the query count are the same as
if they had come one after the other.
"""

from __future__ import annotations

import threading
import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

from advlab import __version__
from advlab.errors import check
from advlab.serve.payload import RequestError, decode_images
from advlab.targets.base import LocalTarget, OutputKind


class ModelService:
    """Answers prediction requests for one model; thread-safe.

    In ``"labels"`` mode the answers carry the top-1 label only, and requests for
    scores are refused (403): the scores never leave the process. ``queries`` is the
    number of images answered so far (the server's own count of queries).
    """

    def __init__(self, model: nn.Module, output: OutputKind = "scores", max_batch: int = 256):
        check(output in ("scores", "labels"), f"unknown output '{output}': use scores or labels")
        check(max_batch >= 1, f"max_batch must be >= 1, got {max_batch}")
        shape = tuple(getattr(model, "input_shape", ()) or ())
        check(len(shape) == 3,
              "the model has no input_shape (C, H, W): load it with advlab.models.load_model "
              "or wrap it in an ImageClassifier")  # fmt: skip
        self.input_shape: tuple[int, int, int] = (int(shape[0]), int(shape[1]), int(shape[2]))
        self.name = str(getattr(model, "name", type(model).__name__))
        self.output: OutputKind = output
        self.max_batch = int(max_batch)
        # LocalTarget queries under no_grad in eval mode and counts every image answered.
        self._target = LocalTarget(model, "scores")
        self.num_classes = self._target.num_classes
        check(self.num_classes > 0, "the model has no num_classes: wrap it in an ImageClassifier")
        names = getattr(model, "class_names", None)
        self.class_names = [str(n) for n in names] if names else None
        parameter = next(iter(model.parameters()), None)
        self.device = parameter.device if parameter is not None else torch.device("cpu")
        self._lock = threading.Lock()

    @property
    def queries(self) -> int:
        return self._target.queries

    def info(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "name": self.name,
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "output": self.output,
            "scores": "probabilities",  # softmax outputs, never logits
            "queries": self.queries,
            "max_batch": self.max_batch,
            "advlab_version": __version__,
        }
        if self.class_names is not None:
            info["class_names"] = self.class_names
        return info

    def decode(self, payload: Any) -> tuple[OutputKind, np.ndarray]:
        """The answer kind and the checked pixels of one JSON request, or a RequestError."""
        kind = payload.get("output", self.output) if isinstance(payload, dict) else self.output
        if kind not in ("scores", "labels"):
            raise RequestError(400, f"unknown output '{kind}': use scores or labels")
        if kind == "scores" and self.output == "labels":
            raise RequestError(403, "this server answers labels only: ask for output 'labels'")
        return kind, decode_images(payload, self.input_shape, self.max_batch)

    def forward(self, batches: list[np.ndarray]) -> tuple[torch.Tensor, list[int]]:
        """Scores for the images of several requests in one pass, and each one's query total.

        The totals are those the requests would have seen answered one after the other.
        """
        with warnings.catch_warnings():
            # The pixels are a read-only view of the request's bytes; the model only reads them.
            warnings.simplefilter("ignore", UserWarning)
            arrays = [torch.from_numpy(pixels) for pixels in batches]
        images = arrays[0] if len(arrays) == 1 else torch.cat(arrays)
        # One model call at a time: the model is shared, and the count must stay exact.
        with self._lock:
            before = self._target.queries
            scores = self._target.predict_scores(images.to(self.device))
        totals = (before + np.cumsum([len(b) for b in batches])).tolist()
        return scores, [int(total) for total in totals]

    @staticmethod
    def answer(kind: OutputKind, scores: torch.Tensor, total: int) -> dict[str, Any]:
        if kind == "labels":
            return {"labels": scores.argmax(dim=1).tolist(), "queries": total}
        return {"scores": scores.float().cpu().tolist(), "queries": total}

    def predict(self, payload: Any) -> dict[str, Any]:
        """Answer one decoded JSON request, or raise :class:`RequestError`."""
        kind, pixels = self.decode(payload)
        scores, (total,) = self.forward([pixels])
        return self.answer(kind, scores, total)
