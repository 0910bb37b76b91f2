"""advlab.evaluation on a real (small) MNIST model: numbers, invariants, resume."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from helpers import default_sigint

from advlab.attacks import FGSM
from advlab.data import ImageDataset
from advlab.errors import AdvlabError
from advlab.evaluation import (
    AttackSpec,
    BatchDone,
    Evaluation,
    ResultStore,
    derive_seed,
    evaluate,
    without_timings,
)
from advlab.evaluation.spec import run_id_of, run_identity
from advlab.models import ImageClassifier, build_model, load_model, save_checkpoint

N, BATCH = 64, 32
EPSILONS = [0.0, 0.05, 0.1, 0.2]
ATTACKS = [AttackSpec("fgsm"), AttackSpec("pgd", params={"steps": 5})]
UNITS = (N // BATCH) * (1 + len(ATTACKS) * len(EPSILONS))
REQUIRED_RESULT_KEYS = {
    "attack", "norm", "eps", "targeted", "robust_accuracy", "attack_success_rate", "mean_linf",
    "median_linf", "mean_l2", "median_l2", "mean_confidence", "mean_queries",
    "per_class_robust_accuracy", "seconds", "images_per_second", "config",
}  # fmt: skip
REQUIRED_KEYS = {
    "model", "dataset", "n", "seed", "clean_accuracy", "results", "worst_case", "split",
    "class_names", "per_class_clean_accuracy", "config", "run_id", "advlab_version", "device",
    "seconds",
}  # fmt: skip


def sample_dataset(images: torch.Tensor, labels: torch.Tensor) -> ImageDataset:
    """The first N images of ``mnist_sample`` as a data set (exact: they came from uint8)."""
    pixels = (images[:N] * 255).round().to(torch.uint8)
    names = [str(i) for i in range(10)]
    return ImageDataset("mnist-sample", "test", pixels, labels[:N].clone(), names)


@pytest.fixture(scope="module")
def data(mnist_sample: tuple[torch.Tensor, torch.Tensor]) -> ImageDataset:
    return sample_dataset(*mnist_sample)


@pytest.fixture(scope="module")
def reference_store(tmp_path_factory: pytest.TempPathFactory) -> ResultStore:
    return ResultStore(tmp_path_factory.mktemp("reference") / "results.sqlite")


@pytest.fixture(scope="module")
def sweep(
    small_mnist_model: ImageClassifier, data: ImageDataset, reference_store: ResultStore
) -> Evaluation:
    """The reference run: uninterrupted, in its own store."""
    return evaluate(small_mnist_model, data, ATTACKS, EPSILONS, batch_size=BATCH,
                    store=reference_store, progress=False,
                    run_config={"purpose": "test"})  # fmt: skip


def by_attack(evaluation: Evaluation, key: str) -> list[float]:
    return [evaluation.result(key, eps).robust_accuracy for eps in EPSILONS]


# -- the numbers ------------------------------------------------------------------------
def test_clean_accuracy_matches_the_model(
    sweep: Evaluation, small_mnist_model: ImageClassifier, data: ImageDataset
) -> None:
    with torch.no_grad():
        expected = (small_mnist_model(data.images).argmax(1) == data.labels).float().mean()
    assert sweep.clean_accuracy == pytest.approx(float(expected))
    assert sweep.clean_accuracy > 0.8


def test_misclassified_images_are_not_attacked(
    small_mnist_model: ImageClassifier, data: ImageDataset
) -> None:
    few = data.subset(np.arange(8))
    few.labels[0] = (few.labels[0] + 1) % 10  # the model is now wrong about image 0
    store = ResultStore(":memory:")
    result = evaluate(small_mnist_model, few, ATTACKS[1:], [0.2], batch_size=8, store=store,
                      progress=False)  # fmt: skip
    outcomes = store.attack_rows(result.run_id, ATTACKS[1].key, 0.2, n=8)
    assert not outcomes.clean_correct[0] and outcomes.queries[0] == 0
    assert outcomes.linf[0] == 0 and not outcomes.success[0]
    assert (outcomes.queries[outcomes.clean_correct] == 5).all()
    example = result.examples[(ATTACKS[1].key, 0.2)]
    assert torch.equal(example["adversarial"][0], example["clean"][0])
    assert result.result("pgd", 0.2).mean_queries == 5  # over the attacked images only


def test_robust_accuracy_drops_as_eps_grows(sweep: Evaluation) -> None:
    for spec in ATTACKS:
        curve = by_attack(sweep, spec.key)
        assert curve[0] == sweep.clean_accuracy  # eps 0 changes nothing
        assert all(later <= earlier for earlier, later in zip(curve, curve[1:], strict=False))
        assert curve[-1] < sweep.clean_accuracy - 0.3
    # PGD is the stronger attack: clearly so at the largest eps
    assert by_attack(sweep, ATTACKS[1].key)[-1] < by_attack(sweep, ATTACKS[0].key)[-1] - 0.1


def test_robust_accuracy_matches_a_direct_attack(
    sweep: Evaluation, small_mnist_model: ImageClassifier, data: ImageDataset
) -> None:
    # FGSM is deterministic and per image, so attacking all images at once must agree.
    images, labels = data.images, data.labels
    with torch.no_grad():
        clean_ok = small_mnist_model(images).argmax(1) == labels
    for eps in EPSILONS[1:]:
        result = FGSM(eps=eps)(small_mnist_model, images, labels)
        with torch.no_grad():
            robust = clean_ok & (small_mnist_model(result.adversarial).argmax(1) == labels)
        expected = float(robust.float().mean())
        assert sweep.result("fgsm", eps).robust_accuracy == pytest.approx(expected)


def test_worst_case_is_at_most_every_attack(sweep: Evaluation) -> None:
    assert set(sweep.worst_case) == set(EPSILONS)
    for eps in EPSILONS:
        accuracies = [sweep.result(spec.key, eps).robust_accuracy for spec in ATTACKS]
        worst = sweep.worst_case[eps]
        assert worst <= min(accuracies)
        # Union bound: it cannot lose more images than all attacks together.
        assert worst >= sweep.clean_accuracy - sum(sweep.clean_accuracy - a for a in accuracies)
    assert sweep.worst_case[0.0] == sweep.clean_accuracy


def test_success_rate_agrees_with_accuracies(sweep: Evaluation) -> None:
    for entry in sweep.results:
        assert entry.attack_success_rate is not None
        expected = sweep.clean_accuracy * (1 - entry.attack_success_rate)
        assert entry.robust_accuracy == pytest.approx(expected, abs=1e-12)
    assert sweep.result("pgd", 0.0).attack_success_rate == 0.0
    assert sweep.result("pgd", 0.2).attack_success_rate > 0.3


def test_perturbations_stay_in_the_ball(sweep: Evaluation) -> None:
    for entry in sweep.results:
        if entry.attack_success_rate == 0:
            assert entry.mean_linf is None and entry.median_l2 is None
            continue
        assert entry.mean_linf is not None and entry.median_linf is not None
        assert entry.median_linf <= entry.eps + 1e-6
        assert 0 < entry.mean_linf <= entry.eps + 1e-6
        assert entry.mean_l2 is not None and 0 < entry.mean_l2 <= entry.eps * 28 + 1e-6
        assert entry.mean_confidence is not None and 0.1 <= entry.mean_confidence <= 1
    # FGSM always steps the full eps in L-inf
    assert sweep.result("fgsm", 0.1).mean_linf == pytest.approx(0.1, abs=1e-6)


def test_queries_and_per_class(sweep: Evaluation, data: ImageDataset) -> None:
    assert sweep.result("fgsm", 0.1).mean_queries == 1
    assert sweep.result("pgd", 0.1).mean_queries == 5
    entry = sweep.result("pgd", 0.2)
    present = {str(int(label)) for label in data.labels.unique()}
    assert set(entry.per_class_robust_accuracy) == present == set(sweep.per_class_clean_accuracy)
    assert min(entry.per_class_robust_accuracy.values()) >= 0
    assert max(entry.per_class_robust_accuracy.values()) <= 1


def test_results_json_has_every_field_in_range(sweep: Evaluation, tmp_path: Path) -> None:
    results = json.loads(sweep.write_json(tmp_path / "out" / "results.json").read_text())
    assert REQUIRED_KEYS <= set(results)
    assert results["n"] == N and results["model"] == "mnist-cnn"
    assert results["config"]["purpose"] == "test" and results["config"]["batch_size"] == BATCH
    assert len(results["results"]) == len(ATTACKS) * len(EPSILONS)
    assert set(results["worst_case"]) == {str(eps) for eps in EPSILONS}
    fractions = [results["clean_accuracy"], *results["worst_case"].values()]
    for entry in results["results"]:
        assert REQUIRED_RESULT_KEYS <= set(entry)
        config = entry["config"]
        assert (config["attack"], config["eps"]) == (entry["attack"], entry["eps"])
        fractions += [entry["robust_accuracy"], entry["attack_success_rate"]]
        fractions += list(entry["per_class_robust_accuracy"].values())
        assert entry["seconds"] > 0 and entry["images_per_second"] > 0
    assert all(isinstance(x, float) and 0 <= x <= 1 for x in fractions)


def test_examples_show_one_image_per_class_of_the_first_batch_first(
    sweep: Evaluation, small_mnist_model: ImageClassifier, data: ImageDataset
) -> None:
    assert set(sweep.examples) == {(spec.key, eps) for spec in ATTACKS for eps in EPSILONS}
    example = sweep.examples[(ATTACKS[1].key, 0.2)]
    assert example["clean"].shape == example["adversarial"].shape == (8, 1, 28, 28)
    first_batch = data.labels[:BATCH].numpy()
    _, first_of_class = np.unique(first_batch, return_index=True)
    rest = np.setdiff1d(np.arange(first_batch.size), first_of_class)
    pick = torch.from_numpy(np.concatenate([np.sort(first_of_class), rest])[:8])
    assert torch.equal(example["clean"], data.images[pick])
    assert torch.equal(example["labels"], data.labels[pick])
    assert len(set(example["labels"].tolist())) == min(8, len(first_of_class))
    assert (example["adversarial"] - example["clean"]).abs().max() <= 0.2 + 1e-6
    with torch.no_grad():
        probabilities = torch.softmax(small_mnist_model(example["adversarial"]), dim=1)
    assert torch.equal(probabilities.argmax(1), example["adv_pred"])
    assert torch.allclose(probabilities.max(1).values, example["adv_conf"], atol=1e-6)


# -- resuming -------------------------------------------------------------------------
def test_a_finished_run_is_read_back_without_work(
    sweep: Evaluation,
    small_mnist_model: ImageClassifier,
    data: ImageDataset,
    reference_store: ResultStore,
) -> None:
    calls: list[BatchDone] = []
    again = evaluate(small_mnist_model, data, ATTACKS, EPSILONS, batch_size=BATCH,
                     store=reference_store, progress=False, on_batch=calls.append,
                     run_config={"purpose": "test"})  # fmt: skip
    assert calls == []
    assert again.to_dict() == sweep.to_dict()  # timings too: they come from the store
    assert reference_store.get_run(sweep.run_id) == json.loads(json.dumps(sweep.to_dict()))


def test_interrupted_run_resumes_to_the_same_numbers(
    sweep: Evaluation, small_mnist_model: ImageClassifier, data: ImageDataset, tmp_path: Path
) -> None:
    store = ResultStore(tmp_path / "results.sqlite")
    stop_after = 5  # mid-way through the first attack's units

    def interrupt(done: BatchDone) -> None:
        if done.units_done == stop_after:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        evaluate(small_mnist_model, data, ATTACKS, EPSILONS, batch_size=BATCH, store=store,
                 progress=False, on_batch=interrupt, run_config={"purpose": "test"})  # fmt: skip
    (run,) = store.list_runs()
    assert run["status"] == "interrupted" and run["units_done"] == stop_after
    assert run["run_id"] == sweep.run_id
    calls: list[BatchDone] = []
    resumed = evaluate(small_mnist_model, data, ATTACKS, EPSILONS, batch_size=BATCH,
                       store=store, progress=False, on_batch=calls.append,
                       run_config={"purpose": "test"})  # fmt: skip
    assert len(calls) == UNITS - stop_after
    assert calls[-1].units_done == calls[-1].units_total == UNITS
    assert without_timings(resumed.to_dict()) == without_timings(sweep.to_dict())
    for key, example in sweep.examples.items():
        assert all(torch.equal(example[f], resumed.examples[key][f])  # type: ignore[literal-required]
                   for f in ("adversarial", "adv_pred", "adv_conf"))  # fmt: skip
    assert store.list_runs()[0]["status"] == "finished"


CHILD = """
import sys, time, numpy as np, torch
from advlab.data import ImageDataset
from advlab.evaluation import AttackSpec, ResultStore, evaluate
from advlab.models import load_model

torch.set_num_threads({threads})
arrays = np.load({data!r})
data = ImageDataset("mnist-sample", "test", torch.from_numpy(arrays["pixels"]),
                    torch.from_numpy(arrays["labels"]), [str(i) for i in range(10)])
model = load_model({model!r})

def wait_to_be_killed(done):
    print("unit", done.units_done, flush=True)
    if done.units_done == {stop_after}:
        print("ready", flush=True)
        time.sleep(60)

evaluate(model, data, [AttackSpec("pgd", params={{"steps": 5}})], {epsilons},
         batch_size={batch}, store=ResultStore({store!r}), progress=False,
         on_batch=wait_to_be_killed)
"""


@pytest.mark.parametrize("kill", [signal.SIGINT, signal.SIGKILL], ids=["sigint", "sigkill"])
def test_run_killed_resumes_to_the_same_numbers(
    sweep: Evaluation,
    small_mnist_model: ImageClassifier,
    data: ImageDataset,
    tmp_path: Path,
    kill: signal.Signals,
) -> None:
    """Ctrl-C marks the run interrupted; after kill -9 the store finds its process gone."""
    model_path = save_checkpoint(small_mnist_model.net, tmp_path / "model.safetensors", {
        "architecture": "mnist-cnn", "arch_kwargs": {"width": 8, "hidden": 32}, "name": "mnist-cnn",
    })  # fmt: skip
    np.savez(tmp_path / "data.npz", pixels=data.pixels.numpy(), labels=data.labels.numpy())
    # A smaller sweep than the reference (PGD at two eps): each unit has its own seed, so
    # its numbers must still equal the reference's entries for the same attack and eps.
    store_path, stop_after, epsilons = tmp_path / "results.sqlite", 3, EPSILONS[2:]
    script = CHILD.format(threads=torch.get_num_threads(), data=str(tmp_path / "data.npz"),
                          model=str(model_path), stop_after=stop_after, epsilons=epsilons,
                          batch=BATCH, store=str(store_path))  # fmt: skip
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             preexec_fn=default_sigint)  # fmt: skip
    try:
        assert child.stdout is not None
        lines = []
        for line in child.stdout:
            lines.append(line.strip())
            if line.strip() == "ready":
                break
        child.send_signal(kill)
        _, stderr = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    assert "ready" in lines, stderr
    assert child.returncode != 0
    assert "KeyboardInterrupt" in stderr if kill == signal.SIGINT else child.returncode == -kill
    store = ResultStore(store_path)
    (run,) = store.list_runs()
    assert (run["status"], run["units_done"]) == ("interrupted", stop_after)
    calls: list[BatchDone] = []
    resumed = evaluate(load_model(str(model_path)), data, ATTACKS[1:], epsilons,
                       batch_size=BATCH, store=store, progress=False,
                       on_batch=calls.append)  # fmt: skip
    assert resumed.run_id == run["run_id"] and len(calls) == run["units_total"] - stop_after
    expected = without_timings(sweep.to_dict())
    assert without_timings(resumed.to_dict())["results"] == [
        entry for entry in expected["results"] if entry["key"] == ATTACKS[1].key
        and entry["eps"] in epsilons
    ]  # fmt: skip
    assert resumed.clean_accuracy == sweep.clean_accuracy


# -- identity and seeds ---------------------------------------------------------------
def identity_id(model: torch.nn.Module, data: ImageDataset, **change: Any) -> str:
    args: dict[str, Any] = {"attacks": ATTACKS, "epsilons": EPSILONS, "batch_size": BATCH}
    args.update({"seed": 0, **change})
    return run_id_of(run_identity(model, data, **args))


def test_run_id_changes_with_everything_that_changes_the_numbers(
    sweep: Evaluation, small_mnist_model: ImageClassifier, data: ImageDataset
) -> None:
    base = identity_id(small_mnist_model, data)
    assert base == sweep.run_id
    changed = {
        identity_id(small_mnist_model, data, seed=1),
        identity_id(small_mnist_model, data, batch_size=16),
        identity_id(small_mnist_model, data, epsilons=EPSILONS[:3]),
        identity_id(small_mnist_model, data, attacks=[AttackSpec("pgd", params={"steps": 6})]),
        identity_id(small_mnist_model, data.subset(np.arange(1, N))),
        identity_id(build_model("mnist-cnn", width=8, hidden=32), data),  # other weights
    }
    assert base not in changed and len(changed) == 6


def test_unit_seeds_are_distinct_and_stable() -> None:
    units = [(key, eps, at) for key in ("fgsm", "pgd") for eps in EPSILONS for at in (0, 32)]
    seeds = {derive_seed(0, *unit) for unit in units}
    assert len(seeds) == 2 * len(EPSILONS) * 2
    assert derive_seed(0, "pgd-linf", 0.1, 32) == derive_seed(0, "pgd-linf", 0.1, 32)
    assert all(0 <= seed < 2**63 for seed in seeds)


def test_targeted_attack_counts_hits_on_the_target(
    small_mnist_model: ImageClassifier, data: ImageDataset
) -> None:
    spec = AttackSpec("pgd", params={"steps": 5, "target": "random"})
    evaluation = evaluate(small_mnist_model, data.subset(np.arange(32)), [spec], [0.3],
                          batch_size=32, progress=False, examples=0)  # fmt: skip
    result = evaluation.results[0]
    assert result.targeted and result.config["target"] == "random"
    assert result.attack_success_rate is not None and 0 < result.attack_success_rate < 1
    # a hit on another class is a miss on the true one, but a miss on the target may be too
    clean = evaluation.clean_accuracy
    assert result.robust_accuracy <= clean * (1 - result.attack_success_rate) + 1e-12
    assert evaluation.examples == {}


# -- user errors ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("attacks", "epsilons", "message"),
    [
        ([AttackSpec("nope")], [0.1], "unknown attack"),
        ([AttackSpec("pgd", params={"stepz": 3})], [0.1], "bad option"),
        ([AttackSpec("pgd", params={"eps": 0.1})], [0.1], "through the sweep"),
        ([AttackSpec("fgsm")], [0.1, 0.1], "repeat"),
        ([AttackSpec("fgsm")], [], "at least one eps"),
        ([AttackSpec("fgsm"), AttackSpec("fgsm")], [0.1], "listed twice"),
        ([AttackSpec("fgsm")], [math.nan], "finite"),
        ([AttackSpec("fgsm")], [8.0], "pixel units"),
    ],
)
def test_bad_sweeps_fail_before_any_work(
    small_mnist_model: ImageClassifier,
    data: ImageDataset,
    attacks: list[AttackSpec],
    epsilons: list[float],
    message: str,
) -> None:
    with pytest.raises(AdvlabError, match=message):
        evaluate(small_mnist_model, data, attacks, epsilons, progress=False)


def test_model_and_data_must_fit(data: ImageDataset) -> None:
    with pytest.raises(AdvlabError, match="expects images of shape"):
        evaluate(build_model("cifar-resnet20"), data, ATTACKS, [0.1], progress=False)


def test_silent_without_progress(
    small_mnist_model: ImageClassifier, data: ImageDataset, capsys: pytest.CaptureFixture[str]
) -> None:
    evaluate(small_mnist_model, data.subset(np.arange(8)), ATTACKS[:1], [0.1], progress=False)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
