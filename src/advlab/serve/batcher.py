"""One model thread that answers concurrent requests together, in one forward pass.

Requests waiting when the model comes free are joined into one batch while they fit in
``max_batch`` images: a crowd of small requests costs a few large forward passes instead of
many small ones. A lone request is answered as soon as it arrives (no waiting for company).
"""

from __future__ import annotations

import logging
import queue
import threading
from concurrent.futures import Future

import numpy as np
import torch

from advlab.serve.service import ModelService

log = logging.getLogger(__name__)

Answer = tuple[torch.Tensor, int]  # the request's scores and the server's query total


class Batcher:
    """Feeds submitted pixel arrays to ``service.forward`` from one daemon thread."""

    def __init__(self, service: ModelService) -> None:
        self.service = service
        self._queue: queue.SimpleQueue[tuple[np.ndarray, Future[Answer]] | None] = (
            queue.SimpleQueue()
        )
        self._thread = threading.Thread(target=self._run, name="advlab-model", daemon=True)
        self._thread.start()

    def submit(self, pixels: np.ndarray) -> Future[Answer]:
        future: Future[Answer] = Future()
        self._queue.put((pixels, future))
        return future

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)

    def _take(self) -> list[tuple[np.ndarray, Future[Answer]]] | None:
        first = self._queue.get()
        if first is None:
            return None
        batch, images = [first], len(first[0])
        while images < self.service.max_batch:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                self._queue.put(None)  # stop after this batch
                break
            if images + len(item[0]) > self.service.max_batch:
                self._queue.put(item)  # to the back: it starts the next batch
                break
            batch.append(item)
            images += len(item[0])
        return batch

    def _run(self) -> None:
        while (batch := self._take()) is not None:
            try:
                scores, totals = self.service.forward([pixels for pixels, _ in batch])
            except Exception as error:  # a broken model: every waiting request hears of it
                log.exception("the model failed")
                for _, future in batch:
                    future.set_exception(error)
                continue
            start = 0
            for (pixels, future), total in zip(batch, totals, strict=True):
                future.set_result((scores[start : start + len(pixels)], total))
                start += len(pixels)
