"""Every command's run, repeated from its own config.yaml; results folders guarded; the
same jobs called from Python with the same config objects."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import yaml
from helpers import run_cli

from advlab.errors import AdvlabError
from advlab.workflows import (
    EvaluateConfig,
    TrainConfig,
    TransferConfig,
    run_evaluation,
    run_transfer,
)

TIMING = {"seconds", "images_per_second", "created", "finished", "started", "updated",
          "training_seconds", "inference_seconds_per_image", "inference_slowdown",
          "craft_seconds"}  # fmt: skip


def _comparable(value):
    """A result without the fields that measure time."""
    if isinstance(value, dict):
        return {k: _comparable(v) for k, v in value.items() if k not in TIMING}
    if isinstance(value, list):
        return [_comparable(v) for v in value]
    return value


def _diff(a, b, path=""):
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in set(a) | set(b) for d in _diff(a.get(k), b.get(k), f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [
            d
            for i, (x, y) in enumerate(zip(a, b, strict=True))
            for d in _diff(x, y, f"{path}[{i}]")
        ]
    return [] if a == b or path.rsplit(".", 1)[-1] in TIMING else [path]


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("ADVLAB_HOME", str(tmp_path / "home"))
    return tmp_path


def _commands(home: Path, data_dir: Path) -> dict[str, tuple[list[str], str]]:
    """Each command, small, and the results file it writes."""
    store = ["--store", str(home / "store.sqlite")]
    quick = ["--device", "cpu", "--quiet"]
    return {
        "evaluate": (["evaluate", "--attack", "fgsm", "--attack", "pgd:steps=3", "--eps", "0.1",
                      "--n", "12", "--no-report", *store, *quick], "results.json"),
        "attack": (["attack", "--attack", "fgsm", "--eps", "8/255", "--n", "8", *quick],
                   "attack.json"),
        "defend": (["defend", "--defense", "bits:bits=1", "--attack", "fgsm", "--eps", "0.3",
                    "--n", "8", "--no-checks", "--no-report", *store, "--device", "cpu"],
                   "defend.json"),
        "detect": (["detect", "--dataset", "mnist-demo", "--fit-split", "test", "--n", "16",
                    "--n-fit", "32", "--attack", "fgsm", "--eps", "0.3", "--no-adaptive",
                    *quick], "detection.json"),
        "transfer": (["transfer", "--source", "mnist-cnn", "--source", "mnist-mlp", "--attack",
                      "fgsm", "--eps", "0.1", "--n", "8", *quick], "transfer.json"),
        "train": (["train", "--arch", "width=4", "--arch", "hidden=16", "--n-train", "200",
                   "--epochs", "1", "--num-threads", "1", "--data-dir", str(data_dir),
                   *quick], "history.json"),
    }  # fmt: skip


@pytest.mark.parametrize("command", ["evaluate", "attack", "defend", "detect", "transfer", "train"])
def test_config_yaml_of_a_run_repeats_it(command, home, data_dir, capsys):
    args, results_file = _commands(home, data_dir)[command]
    out = home / "run"
    code, _, err = run_cli([*args, "--out", str(out)], capsys)
    assert code == 0, err
    first = json.loads((out / results_file).read_text())
    written = (out / "config.yaml").read_text()
    stamp = (out / results_file).stat().st_mtime_ns

    # The run's own config.yaml, and nothing else, repeats it into the same folder.
    code, stdout, err = run_cli([command, "--config", str(out / "config.yaml")], capsys)
    assert code == 0, err
    again = json.loads((out / results_file).read_text())
    assert _comparable(again) == _comparable(first), _diff(again, first)
    assert (out / "config.yaml").read_text() == written
    if command in ("evaluate", "defend"):  # resumed from the store, not run twice
        assert again["run_id"] == first["run_id"]
        code, listing, _ = run_cli(["runs", "--store", str(home / "store.sqlite")], capsys)
        assert listing.count(first["run_id"][:12]) == 1
    if command == "defend":
        assert "resumed run" in stdout and "2 of 2 rows" in stdout
    if command == "train":  # a finished run only reports
        assert (out / results_file).stat().st_mtime_ns == stamp


@pytest.mark.parametrize("command", ["evaluate", "attack", "transfer"])
def test_a_different_run_never_overwrites_a_results_folder_without_force(
    command, home, data_dir, capsys
):
    args, results_file = _commands(home, data_dir)[command]
    out = home / "run"
    assert run_cli([*args, "--out", str(out)], capsys)[0] == 0
    before = (out / results_file).read_text()
    changed = [*args, "--seed", "7", "--out", str(out)]
    code, _, err = run_cli(changed, capsys)
    assert code == 2 and "holds the results of a different run" in err and "'seed'" in err
    assert "--force" in err and len(err.strip().splitlines()) == 1
    assert (out / results_file).read_text() == before
    code, _, err = run_cli([*changed, "--force"], capsys)
    assert code == 0, err
    assert yaml.safe_load((out / "config.yaml").read_text())["seed"] == 7


def test_results_without_a_config_yaml_count_as_another_run(home, capsys):
    out = home / "old"
    out.mkdir()
    (out / "results.json").write_text("{}")
    code, _, err = run_cli(["evaluate", "--n", "4", "--out", str(out), "--quiet"], capsys)
    assert code == 2 and "holds results of another run" in err


@pytest.mark.parametrize(
    ("command", "text", "hint"),
    [
        ("evaluate", "atacks: [fgsm]\n", "did you mean 'attacks'?"),
        ("evaluate", "epsilon: [0.1]\n", "did you mean 'epsilons'?"),
        ("defend", "defences: ['jpeg']\n", "did you mean 'defenses'?"),
        ("detect", "detecter: squeeze\n", "did you mean 'detector'?"),
        ("transfer", "sources: [mnist-cnn]\neps: [0.1]\ntargts: [mnist-mlp]\n",
         "did you mean 'targets'?"),
        ("attack", "attak: fgsm\n", "did you mean 'attack'?"),
        ("train", "epoch: 3\n", "did you mean 'epochs'?"),
        ("train", "adversarial: {eps: 0.1, stpes: 3}\n", "did you mean 'steps'?"),
    ],
)  # fmt: skip
def test_unknown_config_keys_are_refused_with_the_nearest_one(home, capsys, command, text, hint):
    config = home / "c.yaml"
    config.write_text(text)
    code, _, err = run_cli([command, "--config", str(config), "--out", str(home / "o")], capsys)
    assert code == 2 and "unknown option" in err and hint in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (home / "o").exists()


def test_an_old_option_style_config_file_still_reads(home, capsys):
    config = home / "c.yaml"
    config.write_text("attack: ['fgsm']\neps: ['8/255']\nn: 6\n")
    code, _, err = run_cli(["evaluate", "--config", str(config), "--out", str(home / "o"),
                            "--n", "5", "--no-report", "--quiet"], capsys)  # fmt: skip
    assert code == 0, err
    saved = yaml.safe_load((home / "o" / "config.yaml").read_text())
    assert saved["n"] == 5  # the command line wins over the file
    assert saved["attacks"] == [{"name": "fgsm", "norm": "linf", "params": {}}]
    assert saved["epsilons"] == [8 / 255]


@pytest.mark.parametrize("command", ["evaluate", "attack", "defend", "detect", "transfer"])
def test_out_that_is_a_file_or_unwritable_is_refused_before_any_work(
    command, home, data_dir, capsys, monkeypatch
):
    def no_work(*args, **kwargs):
        raise AssertionError("the model was loaded before --out was checked")

    monkeypatch.setattr(f"advlab.workflows.{command}.load_model", no_work, raising=False)
    monkeypatch.setattr("advlab.models.load_model", no_work)
    args, _ = _commands(home, data_dir)[command]
    existing = home / "a-file"
    existing.write_text("not a folder")
    code, _, err = run_cli([*args, "--out", str(existing)], capsys)
    assert code == 2 and "is a file, not a folder" in err
    assert len(err.strip().splitlines()) == 1 and existing.read_text() == "not a folder"
    # /proc takes no new folders, not even from root (a chmod-ed folder would not stop root).
    code, _, err = run_cli([*args, "--out", "/proc/advlab-results/out"], capsys)
    assert code == 2 and "cannot write to --out /proc/advlab-results/out" in err
    assert len(err.strip().splitlines()) == 1


def test_n_larger_than_the_data_set_is_said_in_one_line(home, capsys, caplog):
    out = home / "all"
    with caplog.at_level(logging.WARNING, logger="advlab"):
        code, _, err = run_cli(["attack", "--attack", "fgsm", "--n", "99999", "--out", str(out),
                                "--device", "cpu", "--quiet"], capsys)  # fmt: skip
    assert code == 0, err
    notes = [r.getMessage() for r in caplog.records if "99999" in r.getMessage()]
    assert notes == ["--n 99999 is more than the 5000 test images of mnist-demo: using all 5000"]
    assert json.loads((out / "attack.json").read_text())["n"] == 5000


def test_the_python_api_runs_the_same_config(home):
    config = TransferConfig(sources=["mnist-cnn"], targets=["mnist-mlp"], attacks=["fgsm"],
                            epsilons=["8/255"], dataset="mnist-demo", n=8, device="cpu",
                            out=str(home / "t"))  # fmt: skip
    output = run_transfer(config, progress=False)
    assert output.matrix.n == 8 and len(output.matrix.cells) == 1
    assert TransferConfig.from_yaml(home / "t" / "config.yaml") == config
    evaluation = EvaluateConfig(attacks=["fgsm"], epsilons=[0.1], n=4, out=str(home / "e"),
                                report=False, store=str(home / "s.sqlite"))  # fmt: skip
    result = run_evaluation(evaluation, progress=False)
    assert result.results["n"] == 4
    with pytest.raises(AdvlabError, match="different run"):
        run_evaluation(evaluation.model_copy(update={"n": 5}), progress=False)
    run_evaluation(evaluation.model_copy(update={"n": 5}), progress=False, force=True)


def test_a_black_box_target_refuses_gradient_attacks_in_the_config():
    with pytest.raises(ValueError, match="needs gradients"):
        EvaluateConfig(target="http://127.0.0.1:1", attacks=["pgd"])


def test_python_m_advlab_training_is_advlab_train(home, data_dir):
    from advlab.training.__main__ import main

    out = home / "alias"
    config = home / "tiny.train.yaml"
    config.write_text(yaml.safe_dump({
        "model": "mnist-cnn", "arch_kwargs": {"width": 4, "hidden": 16}, "dataset": "mnist",
        "data_dir": str(data_dir), "epochs": 1, "n_train": 200, "n_val": 100,
        "out_dir": str(out), "num_threads": 1,
    }))  # fmt: skip
    assert main(["--config", str(config), "--no-progress"]) == 0
    saved = TrainConfig.from_yaml(out / "config.yaml")
    assert saved.epochs == 1 and saved.out_dir == out and not saved.distill
    assert (out / "best.safetensors").is_file()
    assert main(["--config", str(home / "missing.yaml")]) == 2


def test_train_refuses_the_folder_of_a_different_run(home, data_dir, capsys):
    args, _ = _commands(home, data_dir)["train"]
    out = home / "run"
    assert run_cli([*args, "--out", str(out)], capsys)[0] == 0
    best = (out / "best.safetensors").read_bytes()
    code, _, err = run_cli([*args, "--seed", "7", "--out", str(out)], capsys)
    assert code == 2 and "holds the results of a different run" in err and "'seed'" in err
    assert "--force" not in err and (out / "best.safetensors").read_bytes() == best
    assert yaml.safe_load((out / "config.yaml").read_text())["seed"] == 0
