"""``advlab evaluate --suite``: the preset cascade per eps in the resumable sweep, its
sanity lines and gradient-masking checks, in results.json, the report and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest
import torch
from helpers import run_cli
from torch import nn

from advlab.errors import AdvlabError
from advlab.evaluation import AttackSpec, ResultStore, evaluate, without_timings
from advlab.evaluation.masking import CheckBudget
from advlab.evaluation.suite import SuiteSpec, sanity_warnings
from advlab.evaluation.suite_checks import suite_checks
from advlab.models import load_model
from advlab.results import Evaluation
from advlab.results.evaluation import SuiteEvaluation
from advlab.workflows import EvaluateConfig, run_evaluation
from advlab.workflows.common import load_data

CHECKS = ["randomness", "softmax", "zero-gradients", "black-box", "large-eps"]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One thread: small batches run faster so, above all on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def robust_model() -> nn.Module:
    return load_model("mnist-cnn-robust-0.1", device="cpu")


@pytest.fixture(scope="module")
def data():
    return load_data("mnist-demo", "test", 16, None, seed=0)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("quick")
    config = EvaluateConfig(model="mnist-cnn-robust-0.1", n=16, suite="quick", epsilons=[0.1],
                            batch_size=8, out=str(out), store=str(out / "s.sqlite"),
                            device="cpu", examples=2)  # fmt: skip
    return config, run_evaluation(config, progress=False)


def test_suite_alone_counts_the_worst_case_per_image_and_who_broke_it(quick_run) -> None:
    config, output = quick_run
    assert config.attacks == []
    results = output.results
    (entry,) = results["suite"]
    assert entry["suite"] == "quick" and entry["eps"] == 0.1
    assert list(entry["broken_by"]) == ["clean", "apgd-ce", "apgd-t", "robust"]
    assert sum(entry["broken_by"].values()) == 16
    assert entry["broken_by"]["robust"] == round(entry["robust_accuracy"] * 16)
    assert entry["broken_by"]["clean"] == round((1 - results["clean_accuracy"]) * 16)
    assert results["worst_case"] == {"0.1": entry["robust_accuracy"]}
    # APGD-CE ran 20 steps on every image the model got right; APGD-T 3 x 20 on the rest.
    assert 0 < entry["mean_queries"]["apgd-ce"] <= 20
    assert entry["mean_queries"]["apgd-t"] in (None, 60)
    assert entry["max_linf"] <= 0.1 + 1e-6 and entry["nan"] == 0
    assert 0 <= entry["min_pixel"] <= entry["max_pixel"] <= 1
    assert [c["name"] for c in results["checks"]] == CHECKS
    assert all(c["status"] == "pass" for c in results["checks"]) and results["warnings"] == []
    html = output.report_path.read_text()
    assert 'id="suite"' in html and "Gradient-masking checks" in html
    with ResultStore(config.store) as store:
        (run,) = store.list_runs()
        assert run["status"] == "finished" and run["units_done"] == run["units_total"] == 6
    again = Evaluation.from_dict(json.loads(output.results_path.read_text()))
    assert again.suite[0] == SuiteEvaluation.from_dict(entry)
    assert [c.name for c in again.checks] == CHECKS


def test_an_interrupted_suite_run_resumes_to_the_same_numbers(robust_model, data) -> None:
    specs = [AttackSpec("fgsm"), SuiteSpec("quick")]
    store = ResultStore(":memory:")
    stops = iter([False, False, False, True])  # two clean units, fgsm's first, then stop

    def interrupt(done) -> None:
        if next(stops, False):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        evaluate(robust_model, data, specs, [0.1], batch_size=8, store=store, progress=False,
                 on_batch=interrupt, checks=False)  # fmt: skip
    resumed = evaluate(robust_model, data, specs, [0.1], batch_size=8, store=store,
                       progress=False, checks=False).to_dict()  # fmt: skip
    fresh = evaluate(robust_model, data, specs, [0.1], batch_size=8, progress=False,
                     checks=False).to_dict()  # fmt: skip
    for results in (resumed, fresh):
        results["suite"][0].pop("seconds")
    assert without_timings(resumed) == without_timings(fresh)


def test_runs_without_a_suite_keep_their_run_id_and_results(robust_model, data) -> None:
    plain = evaluate(robust_model, data, [AttackSpec("fgsm")], [0.1], progress=False)
    with_suite = evaluate(robust_model, data, [AttackSpec("fgsm"), SuiteSpec("quick")], [0.1],
                          progress=False, checks=False)  # fmt: skip
    assert plain.run_id != with_suite.run_id
    assert not {"suite", "checks", "warnings"} & set(plain.to_dict())
    config = EvaluateConfig(attacks=["fgsm"], n=16)
    assert config.suite is None and "suite" not in config.model_dump(exclude_defaults=True)


def test_the_checks_warn_on_softmax_outputs_zero_gradients_and_randomness(
    robust_model, data
) -> None:
    _, images, labels = next(data.batches(8))
    entry = SuiteEvaluation("quick", "suite:quick-linf", "linf", 0.1, 1.0, {}, {}, {}, {},
                            0.1, 1.0, 0, 0.0, 1.0)  # fmt: skip
    none = (images[:0], labels[:0])

    def statuses(model: nn.Module) -> dict[str, str]:
        checks = suite_checks(model, images, labels, none, entry, budget=CheckBudget(steps=5))
        return {c.name: c.status for c in checks}

    softmax = nn.Sequential(robust_model, nn.Softmax(dim=1))
    assert statuses(softmax)["softmax"] == "warn"

    class Rounded(nn.Module):  # a quantized input: the gradient is zero everywhere
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return robust_model(torch.round(x))

    rounded = statuses(Rounded())
    assert rounded["zero-gradients"] == "warn" and rounded["large-eps"] == "warn"

    class Noisy(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return robust_model(x) + torch.randn(x.shape[0], 10)

    assert statuses(Noisy())["randomness"] == "warn"
    assert set(statuses(robust_model).values()) == {"pass"}


def test_sanity_lines_warn_past_eps_on_nan_and_outside_the_box() -> None:
    good = SuiteEvaluation("fast", "suite:fast-linf", "linf", 0.1, 0.5, {}, {}, {}, {},
                           0.1, 2.0, 0, 0.0, 1.0)  # fmt: skip
    assert sanity_warnings(good) == []
    bad = SuiteEvaluation("fast", "suite:fast-linf", "linf", 0.1, 0.5, {}, {}, {}, {},
                          0.2, 2.0, 3, -0.5, 1.0)  # fmt: skip
    text = " ".join(sanity_warnings(bad))
    assert "exceeds eps" in text and "3 adversarial images hold NaN" in text
    assert "outside [0, 1]" in text


def test_the_config_checks_the_suite_at_the_edge() -> None:
    assert EvaluateConfig(suite="fast").attacks == []
    assert [a.name for a in EvaluateConfig(suite="fast", attacks=["pgd"]).attacks] == ["pgd"]
    with pytest.raises(ValueError, match="unknown|Input should be"):
        EvaluateConfig(suite="slow")
    with pytest.raises(ValueError, match="needs gradients"):
        EvaluateConfig(suite="quick", target="http://127.0.0.1:1")
    with pytest.raises(ValueError, match="--attack or a --suite"):
        EvaluateConfig(attacks=[])
    with pytest.raises(AdvlabError, match="unknown suite"):
        SuiteSpec("slow")


def test_cli_prints_the_suite_table_sanity_line_and_checks(
    quick_run, capsys, tmp_path: Path
) -> None:
    config, _ = quick_run
    args = ["evaluate", "--model", "mnist-cnn-robust-0.1", "-n", "16", "--suite", "quick",
            "--eps", "0.1", "--batch-size", "8", "--examples", "2", "--device", "cpu",
            "--out", str(tmp_path / "cli"), "--store", config.store, "--no-report"]  # fmt: skip
    code, out, err = run_cli(args, capsys)  # resumes the stored run: only the checks run
    assert code == 0, err
    assert "quick suite, linf eps 0.1" in out and "apgd-ce" in out
    assert "max linf perturbation" in out and "NaNs: 0" in out
    assert "check large-eps: pass" in out


def test_publishing_a_zoo_model_records_its_suite_figures_and_refuses_other_weights(
    quick_run, tmp_path: Path
) -> None:
    config, output = quick_run
    checkpoint = Path(str(resources.files("advlab") / "zoo" / "mnist-cnn-robust-0.1.safetensors"))
    script = Path(__file__).resolve().parents[1] / "scripts" / "publish_zoo_model.py"
    args = [sys.executable, str(script), str(checkpoint), "--name", "published",
            "--description", "a test", "--config", "some.train.yaml", "--zoo", str(tmp_path),
            "--suite-results", str(Path(config.out) / "results.json")]  # fmt: skip
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    metrics = json.loads((tmp_path / "published.json").read_text())["metrics"]
    (entry,) = output.results["suite"]
    assert metrics["suite"] == "quick" and metrics["suite_n"] == 16
    assert metrics["suite_robust_accuracy"] == entry["robust_accuracy"]
    assert metrics["suite_clean_accuracy"] == output.results["clean_accuracy"]
    other = str(checkpoint).replace("robust-0.1", "robust-0.3")
    done = subprocess.run(
        [*args[:2], other, *args[3:]], capture_output=True, text=True, check=False
    )
    assert done.returncode != 0 and "evaluated other weights" in done.stderr
