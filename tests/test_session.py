"""advlab.evaluation.session: the pieces every evaluation job shares."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from advlab.data import load_dataset
from advlab.errors import AdvlabError
from advlab.evaluation import ResultStore
from advlab.evaluation.session import check_fit, check_fits, predict, seeded, session
from advlab.models import ImageClassifier, build_model


def _status(path: Path) -> str:
    with ResultStore(path) as store:
        return store.list_runs()[0]["status"]


@pytest.mark.parametrize(
    ("error", "status"), [(KeyboardInterrupt, "interrupted"), (RuntimeError, "failed")]
)
def test_a_run_that_stops_is_marked(tmp_path: Path, error: type, status: str) -> None:
    path = tmp_path / "store.sqlite"
    with ResultStore(path) as store, pytest.raises(error):
        with session(store, "r1", {"kind": "test"}, {}, 2) as run:
            assert not run.resumed and run.done == set()
            store.write_part("r1", "a", {}, 1.0)
            raise error
    assert _status(path) == status
    with ResultStore(path) as store, session(store, "r1", {"kind": "test"}, {}, 2) as run:
        assert run.resumed and run.done == {("a", 0.0, 0)}
        run.finish({"x": 1})
    assert _status(path) == "finished"


def test_an_interrupt_after_finishing_leaves_the_run_finished(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    with ResultStore(path) as store, pytest.raises(KeyboardInterrupt):
        with session(store, "r1", {"kind": "test"}, {}, 1) as run:
            run.finish({"x": 1})
            raise KeyboardInterrupt
    assert _status(path) == "finished"


def test_predict_reads_tensors_and_data_sets_alike(small_mnist_model: ImageClassifier) -> None:
    data = load_dataset("mnist-demo", n=20, seed=0)
    from_data = predict(small_mnist_model, data, batch_size=7)
    from_tensor = predict(small_mnist_model, data.images, batch_size=7)
    with torch.no_grad():
        direct = small_mnist_model(data.images).argmax(1)
    assert from_data.dtype == torch.int64 and torch.equal(from_data, direct)
    assert torch.equal(from_tensor, direct)
    assert predict(small_mnist_model, data.images[:0]).shape == (0,)


def test_fit_checks_name_the_mismatch(small_mnist_model: ImageClassifier) -> None:
    data = load_dataset("mnist-demo", n=20, seed=0)
    check_fit(small_mnist_model, data)
    other = build_model("mnist-mlp")
    other.num_classes = 5  # type: ignore[misc]
    with pytest.raises(AdvlabError, match="different numbers of classes"):
        check_fits({"a": small_mnist_model, "b": other}, data)


def test_seeded_restores_the_global_generator() -> None:
    torch.manual_seed(1)
    expected = torch.rand(3)
    torch.manual_seed(1)
    with seeded(7):
        first = torch.rand(3)
    assert torch.equal(torch.rand(3), expected)
    with seeded(7):
        assert torch.equal(torch.rand(3), first)
