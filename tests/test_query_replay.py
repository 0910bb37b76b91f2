"""A sweep against a query-only target that fails midway: the retry pays no query twice
and ends with the numbers of an uninterrupted run (issue 14, item 3)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from advlab.data import load_dataset
from advlab.evaluation import AttackSpec, ResultStore, evaluate, without_timings
from advlab.models import ImageClassifier
from advlab.targets import LocalTarget, Target, TargetClassifier

ATTACKS = [AttackSpec("square", params={"max_queries": 40})]


class Endpoint(Target):
    """A local model behind a counter, as a remote endpoint would bill it; it drops the
    connection at its ``fail_at``-th request."""

    def __init__(self, model: ImageClassifier, fail_at: int | None = None) -> None:
        super().__init__()
        self.local = LocalTarget(model)
        self.num_classes, self.input_shape = self.local.num_classes, self.local.input_shape
        self.requests, self.fail_at = 0, fail_at

    def _scores(self, images: torch.Tensor) -> torch.Tensor:
        self.requests += 1
        if self.requests == self.fail_at:
            raise ConnectionError("the endpoint went away")
        return self.local.predict_scores(images)


def _sweep(endpoint: Endpoint, store: ResultStore | None):
    data = load_dataset("mnist-demo", n=16, seed=4)
    target = TargetClassifier(endpoint, "endpoint")
    return evaluate(target, data, ATTACKS, [0.2], batch_size=8, store=store, progress=False,
                    examples=0)  # fmt: skip


def test_a_failed_unit_pays_no_query_twice(
    small_mnist_model: ImageClassifier, tmp_path: Path
) -> None:
    uninterrupted = Endpoint(small_mnist_model)
    reference = _sweep(uninterrupted, None)
    # Requests: 2 clean batches, then the first attack unit; fail inside the second.
    flaky = Endpoint(small_mnist_model, fail_at=uninterrupted.requests - 5)
    with ResultStore(tmp_path / "store.sqlite") as store:
        with pytest.raises(ConnectionError):
            _sweep(flaky, store)
        assert store.list_runs()[0]["status"] == "failed"
        paid_before = flaky.local.queries
        retry = Endpoint(small_mnist_model)
        resumed = _sweep(retry, store)
        # Every image-query the uninterrupted run paid, paid exactly once over both tries.
        assert paid_before + retry.local.queries == uninterrupted.local.queries
        assert retry.requests < uninterrupted.requests - 10
        leftover = store._conn.execute("SELECT count(*) FROM queries").fetchone()[0]
        assert leftover == 0  # the answers are dropped once their unit is stored
    assert (
        without_timings(resumed.to_dict())["results"]
        == (without_timings(reference.to_dict())["results"])
    )
