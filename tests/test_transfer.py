"""Transfer matrices: numbers checked against the attacks run by hand, files, CLI."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import run_cli
from PIL import Image

from advlab.attacks import FGSM, MIM, Attack
from advlab.cli import main as cli_main
from advlab.data import load_dataset
from advlab.errors import AdvlabError
from advlab.evaluation import AttackSpec
from advlab.evaluation.transfer import CSV_COLUMNS, TransferMatrix, transfer_matrix
from advlab.models import build_model, get_entry, load_model, save_checkpoint
from advlab.reports.transfer import save_transfer_heatmaps, write_transfer_report

EPS = 0.15
SPECS = [AttackSpec("fgsm"), AttackSpec("mim", params={"steps": 3})]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # These models are tiny: a second thread buys nothing, and on a busy machine its
    # synchronization makes every step many times slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data():
    return load_dataset("mnist-demo", n=64, seed=2)


@pytest.fixture(scope="module")
def small():
    """A second architecture, an MLP trained for a moment (about 85% accurate)."""
    torch.manual_seed(0)
    train = load_dataset("mnist-demo", n=1500, seed=7)
    model = build_model("mnist-mlp", hidden=64)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(3):
        order = torch.randperm(len(train))  # the demo set is sorted by class
        for start in range(0, len(train), 50):
            index = order[start : start + 50]
            optimizer.zero_grad()
            images = train.pixels[index].float() / 255
            F.cross_entropy(model(images), train.labels[index]).backward()
            optimizer.step()
    return model.eval()


@pytest.fixture(scope="module")
def models(small):
    return {"mnist-cnn": load_model("mnist-cnn"), "small": small}


@pytest.fixture(scope="module")
def matrix(models, data) -> TransferMatrix:
    # Two batches, so that per-batch crafting and merging are exercised too.
    return transfer_matrix(models, None, SPECS, [EPS], data, batch_size=32, seed=0, progress=False)


def _labels(model: torch.nn.Module, images: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return model(images).argmax(1).numpy()


@pytest.mark.parametrize("attack", [FGSM(eps=EPS), MIM(eps=EPS, steps=3)], ids=["fgsm", "mim"])
def test_cells_match_the_attack_run_by_hand(matrix, models, data, attack):
    images, labels = data.images, data.labels.numpy()
    correct = {name: _labels(model, images) == labels for name, model in models.items()}
    crafted = {name: attack(model, images, data.labels) for name, model in models.items()}
    for source, result in crafted.items():
        for target, target_model in models.items():
            cell = matrix.cell(attack.name, EPS, source, target)
            adv_pred = _labels(target_model, result.adversarial)
            both = correct[source] & correct[target]
            assert cell.n_both_correct == int(both.sum())
            assert cell.success_rate == pytest.approx(float((adv_pred != labels)[both].mean()))
            assert cell.target_adversarial_accuracy == pytest.approx((adv_pred == labels).mean())
            assert cell.target_clean_accuracy == pytest.approx(correct[target].mean())
            assert cell.white_box == (source == target)
            if source == target:
                # The diagonal is the white-box success rate the attack itself reports.
                white_box = result.success.numpy()[correct[source]].mean()
                assert cell.success_rate == pytest.approx(float(white_box))
    # Off the diagonal, images the target gets wrong even when clean do not count as
    # transferred: counting them (over the source's correct images only) would inflate it.
    cross = matrix.cell(attack.name, EPS, "mnist-cnn", "small")
    fooled = _labels(models["small"], crafted["mnist-cnn"].adversarial) != labels
    assert cross.n_both_correct < correct["mnist-cnn"].sum()
    assert cross.success_rate < fooled[correct["mnist-cnn"]].mean()


def test_transfer_is_weaker_than_white_box(matrix):
    for source, target in (("mnist-cnn", "small"), ("small", "mnist-cnn")):
        white = matrix.cell("mim", EPS, source, source).success_rate
        assert matrix.cell("mim", EPS, source, target).success_rate < white


def test_examples_are_crafted_once_per_source(models, data, monkeypatch):
    calls: list[str] = []
    original = Attack.__call__

    def counting(self, model, images, labels, targets=None):
        calls.append(next(name for name, m in models.items() if m is model))
        return original(self, model, images, labels, targets)

    monkeypatch.setattr(Attack, "__call__", counting)
    targets = {**models, "third": build_model("mnist-mlp", hidden=8).eval()}
    subset = data.subset(np.arange(48))
    result = transfer_matrix(
        models, targets, [AttackSpec("fgsm")], [0.1, 0.2], subset, batch_size=16, progress=False
    )
    # 2 sources x 2 eps x 3 batches, whatever the number of targets.
    assert sorted(calls) == ["mnist-cnn"] * 6 + ["small"] * 6
    assert len(result.cells) == 2 * 3 * 2 and result.complete


def test_json_and_csv_hold_the_numbers(matrix, tmp_path):
    saved = json.loads(matrix.write_json(tmp_path / "transfer.json").read_text())
    assert saved["kind"] == "transfer" and saved["complete"] is True
    assert saved["dataset"] == "mnist-demo" and saved["n"] == 64 and saved["seed"] == 0
    assert saved["sources"] == saved["targets"] == ["mnist-cnn", "small"]
    grid = matrix.matrix("fgsm", EPS)  # rows = sources, columns = targets
    assert grid[0][1] == matrix.cell("fgsm", EPS, "mnist-cnn", "small").success_rate
    assert grid[1][0] == matrix.cell("fgsm", EPS, "small", "mnist-cnn").success_rate
    assert len(saved["models"]["small"]["weights_sha256"]) == 64
    mim = next(a for a in saved["attacks"] if a["name"] == "mim")
    assert mim["params"] == {"steps": 3} and mim["config"][str(EPS)]["eps"] == EPS
    assert mim["config"][str(EPS)]["decay"] == 1.0  # the full configuration, defaults too
    rows = list(csv.DictReader(io.StringIO(matrix.write_csv(tmp_path / "t.csv").read_text())))
    assert list(rows[0]) == list(CSV_COLUMNS) and len(rows) == len(matrix.cells) == 8
    for row, cell, stored in zip(rows, matrix.cells, saved["cells"], strict=True):
        assert float(row["success_rate"]) == cell.success_rate == stored["success_rate"]
        assert int(row["n_both_correct"]) == cell.n_both_correct == stored["n_both_correct"]
        assert float(row["target_adversarial_accuracy"]) == cell.target_adversarial_accuracy
        assert (row["source"], row["target"]) == (cell.source, cell.target)


def test_same_seed_same_numbers_and_partial_updates(models, data):
    subset = data.subset(np.arange(24))
    snapshots: list[int] = []
    runs = [
        transfer_matrix(
            models,
            None,
            [AttackSpec("pgd", params={"steps": 2})],
            [0.2],
            subset,
            seed=5,
            progress=False,
            on_update=lambda m: snapshots.append(len(m.cells) * (not m.complete)),
        )
        for _ in range(2)
    ]
    numbers = [[(c.success_rate, c.n_both_correct) for c in run.cells] for run in runs]
    assert numbers[0] == numbers[1]
    assert snapshots == [2, 4, 2, 4]  # written after each source, before the run is complete


def test_models_that_do_not_fit_are_refused(models, data):
    other_classes = build_model("mnist-cnn", width=4, hidden=8, num_classes=5)
    other_classes.num_classes = 5
    with pytest.raises(AdvlabError, match="different numbers of classes"):
        transfer_matrix(models, {"five": other_classes}, SPECS, [EPS], data, progress=False)
    rgb = build_model("cifar-resnet18", width=4)
    with pytest.raises(AdvlabError, match="expects images of shape"):
        transfer_matrix({"rgb": rgb}, models, SPECS, [EPS], data, progress=False)
    with pytest.raises(AdvlabError, match="two different models"):
        transfer_matrix(models, {"small": load_model("mnist-cnn")}, SPECS, [EPS], data)


def test_heatmaps_and_report(matrix, tmp_path):
    results = matrix.to_dict()
    results["targets"] = ["mnist-cnn", "<b>small</b>"]  # untrusted names are escaped
    for cell in results["cells"]:
        cell["target"] = "<b>small</b>" if cell["target"] == "small" else cell["target"]
    paths = save_transfer_heatmaps(results, tmp_path)
    assert [p.name for p in paths] == [
        "transfer-fgsm-linf-eps0.15.png",
        "transfer-mim-linf_steps=3-eps0.15.png",
    ]
    pixels = [np.asarray(Image.open(path).convert("RGB")) for path in paths]
    assert pixels[0].shape[0] > 150 and not np.array_equal(pixels[0], pixels[1])
    html = write_transfer_report(results, tmp_path / "transfer.html").read_text()
    assert html.count("data:image/png;base64,") == 2
    assert "&lt;b&gt;small&lt;/b&gt;" in html and "<b>small</b>" not in html
    rate = matrix.cell("mim", EPS, "small", "mnist-cnn").success_rate
    assert f"{100 * rate:.1f}%" in html


def test_resnet_family_is_registered():
    for depth, accuracy in ((32, 0.9263), (44, 0.9310), (56, 0.9339)):
        entry = get_entry(f"cifar-resnet{depth}")
        assert entry.weights is not None and entry.weights.accuracy == accuracy
        assert entry.weights.filename.startswith(f"resnet{depth}-" + entry.weights.sha256[:8])
        assert entry.dataset == "cifar10" and entry.input_shape == (3, 32, 32)


def test_resnet_weights_load_from_the_data_dir(data_dir):
    model = load_model("cifar-resnet32")  # checks the file's sha256 on the way
    assert sum(p.numel() for p in model.parameters()) == 464_154
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 10)


# -- command line -------------------------------------------------------------------------


@pytest.fixture
def checkpoint(small, tmp_path) -> Path:
    meta = {"architecture": "mnist-mlp", "arch_kwargs": {"hidden": 64}}
    return save_checkpoint(small.net, tmp_path / "small.safetensors", meta)


def test_cli_end_to_end(checkpoint, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cli_main.console, "width", 200)  # no wrapped cells in captured output
    out = tmp_path / "out"
    args = [
        "transfer",
        "--source",
        "mnist-cnn",
        "--source",
        str(checkpoint),
        "--dataset",
        "mnist-demo",
        "--n",
        "32",
        "--attack",
        "fgsm",
        "--attack",
        "mim:steps=2",
        "--eps",
        "51/255",
        "--out",
        str(out),
        "--report",
        "--device",
        "cpu",
    ]
    code, stdout, err = run_cli(args, capsys)
    assert code == 0, err
    saved = json.loads((out / "transfer.json").read_text())
    assert saved["complete"] and saved["epsilons"] == [51 / 255] and len(saved["cells"]) == 8
    assert saved["config"]["targets"] == ["mnist-cnn", str(checkpoint)]  # default: the sources
    for cell in saved["cells"]:
        assert f"{100 * cell['success_rate']:.1f}% (n={cell['n_both_correct']})" in stdout
    assert "fgsm-linf eps=0.2" in stdout and "mim-linf[steps=2] eps=0.2" in stdout
    assert len((out / "transfer.csv").read_text().splitlines()) == 9
    assert sorted(p.name for p in out.glob("*.png")) == [
        "transfer-fgsm-linf-eps0.2.png",
        "transfer-mim-linf_steps=2-eps0.2.png",
    ]
    assert (out / "transfer.html").read_text().count("data:image/png;base64,") == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--source", "nope", "--eps", "0.1"], "unknown model 'nope'"),
        (["--source", "mnist-cnn"], "give at least one --eps"),
        (["--eps", "0.1"], "give at least one --source"),
        (["--source", "mnist-cnn", "--eps", "0.1", "--attack", "fgsm:bogus=1"], "bad option"),
        (["--source", "mnist-cnn", "--source", "mnist-cnn", "--eps", "0.1"], "listed twice"),
        (["--source", "mnist-cnn", "--eps", "8"], "L-inf eps is in [0, 1]"),
    ],
)
def test_cli_mistakes_give_one_line(args, message, tmp_path, capsys):
    extra = ["--dataset", "mnist-demo", "--n", "8", "--out", str(tmp_path), "--quiet"]
    code, _, err = run_cli(["transfer", *args, *extra], capsys)
    assert code == 2 and message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_cli_refuses_models_of_different_shapes(checkpoint, tmp_path, capsys):
    rgb = build_model("cifar-resnet18", width=4)
    rgb_file = save_checkpoint(
        rgb.net,
        tmp_path / "rgb.safetensors",
        {"architecture": "cifar-resnet18", "arch_kwargs": {"width": 4}},
    )
    base = ["transfer", "--eps", "0.1", "--n", "8", "--out", str(tmp_path / "o"), "--quiet"]
    code, _, err = run_cli(
        [*base, "--source", str(checkpoint), "--target", str(rgb_file), "--dataset", "mnist-demo"],
        capsys,
    )
    assert code == 2 and "expects images of shape (3, 32, 32)" in err
    code, _, err = run_cli([*base, "--source", str(checkpoint)], capsys)
    assert code == 2 and "pass --dataset" in err


def _without_timings(matrix: TransferMatrix) -> dict:
    out = matrix.to_dict()
    out.pop("seconds")
    for cell in out["cells"]:
        cell.pop("craft_seconds")
    return out


def test_an_interrupted_matrix_resumes_from_the_store(models, data, matrix, tmp_path, monkeypatch):
    from advlab.evaluation import ResultStore
    from advlab.evaluation import transfer as transfer_module

    original = transfer_module._craft_and_classify
    calls: list[str] = []

    def counted(spec, *args, **kwargs):
        calls.append(spec.key)
        if len(calls) == interrupt_at:
            raise KeyboardInterrupt
        return original(spec, *args, **kwargs)

    monkeypatch.setattr(transfer_module, "_craft_and_classify", counted)
    path = tmp_path / "store.sqlite"
    options = {"batch_size": 32, "seed": 0, "progress": False}
    interrupt_at = 3  # two of the four (attack, source) crafts are done
    with ResultStore(path) as store, pytest.raises(KeyboardInterrupt):
        transfer_matrix(models, None, SPECS, [EPS], data, store=store, **options)
    with ResultStore(path) as store:
        (run,) = store.list_runs()
        assert (run["status"], run["units_done"], run["units_total"]) == ("interrupted", 2, 4)
        calls.clear()
        interrupt_at = 0
        resumed = transfer_matrix(models, None, SPECS, [EPS], data, store=store, **options)
        assert len(calls) == 2  # only the crafts that were not stored
        assert _without_timings(resumed) == _without_timings(matrix)
        assert store.get_run(run["run_id"]) == json.loads(json.dumps(resumed.to_dict()))
        calls.clear()
        again = transfer_matrix(models, None, SPECS, [EPS], data, store=store, **options)
        assert not calls and _without_timings(again) == _without_timings(matrix)
