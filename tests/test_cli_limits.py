"""The server's limits and the black-box client's deadlines, as the CLI exposes them:
``advlab serve --max-pending ...`` and ``advlab evaluate --target URL --target-timeout ...``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import run_cli

from advlab.serve import start_server_in_thread
from advlab.targets import HttpTarget
from advlab.workflows import load_target
from advlab.workflows.config import EvaluateConfig


def test_serve_passes_its_limits_to_the_server(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: dict[str, Any] = {}
    monkeypatch.setattr("advlab.serve.run_server", lambda *args, **kwargs: seen.update(kwargs))
    limits = ["--max-pending", "3", "--max-inflight-bytes", "5000000", "--request-timeout",
              "2.5", "--workers", "2", "--max-request-bytes", "2000000"]  # fmt: skip
    code, _, err = run_cli(["serve", "--device", "cpu", *limits], capsys)
    assert code == 0, err
    assert {key: seen[key] for key in ("max_pending", "max_inflight_bytes", "request_timeout",
                                       "workers", "max_request_bytes")} == {
        "max_pending": 3, "max_inflight_bytes": 5_000_000, "request_timeout": 2.5,
        "workers": 2, "max_request_bytes": 2_000_000,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("option", "message"),
    [(["--max-pending", "0"], "max_pending must be >= 1"),
     (["--request-timeout", "0"], "request_timeout must be > 0"),
     (["--workers", "0"], "--workers must be >= 1"),
     (["--max-request-bytes", "4096", "--max-inflight-bytes", "2048"], "max_inflight_bytes")],
)  # fmt: skip
def test_serve_refuses_bad_limits_in_one_line(
    option: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(["serve", "--device", "cpu", "--port", "0", *option], capsys)
    assert code == 2 and message in err and "Traceback" not in err


@pytest.fixture
def url(small_mnist_model):
    server, _, address = start_server_in_thread(small_mnist_model, port=0)
    yield address
    server.shutdown()
    server.server_close()


def test_load_target_passes_the_deadlines(url: str) -> None:
    classifier = load_target(url, timeout=3.0, retries=0, total_timeout=60.0)
    assert isinstance(classifier.target, HttpTarget)
    assert (classifier.target.timeout, classifier.target.retries) == (3.0, 0)
    assert classifier.target.total_timeout == 60.0
    default = load_target(url).target
    assert (default.timeout, default.retries, default.total_timeout) == (10.0, 2, None)


def test_evaluate_target_deadlines_round_trip_and_leave_the_run_the_same(
    url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[dict[str, Any]] = []
    real = HttpTarget.__init__

    def spy(self: HttpTarget, *args: Any, **kwargs: Any) -> None:
        seen.append(kwargs)
        real(self, *args, **kwargs)

    monkeypatch.setattr(HttpTarget, "__init__", spy)
    out, store = tmp_path / "out", tmp_path / "results.sqlite"
    base = ["evaluate", "--target", url, "-a", "square:max_queries=10", "-e", "0.1", "--n", "4",
            "--device", "cpu", "--no-report", "--quiet", "--out", str(out),
            "--store", str(store)]  # fmt: skip
    code, _, err = run_cli([*base, "--target-timeout", "4", "--target-retries", "1",
                            "--target-total-timeout", "120"], capsys)  # fmt: skip
    assert code == 0, err
    assert seen[-1] == {"timeout": 4.0, "retries": 1, "total_timeout": 120.0}
    written = yaml.safe_load((out / "config.yaml").read_text())
    assert (written["target_timeout"], written["target_retries"]) == (4.0, 1)
    assert written["target_total_timeout"] == 120.0
    # The deadlines say how to reach the endpoint, not what is computed: the same run
    # resumes into its folder under other values, and --config repeats them.
    code, _, err = run_cli([*base, "--target-timeout", "7"], capsys)
    assert code == 0, err
    assert seen[-1]["timeout"] == 7.0
    code, _, err = run_cli(["evaluate", "--config", str(out / "config.yaml"), "--quiet"], capsys)
    assert code == 0, err
    assert seen[-1] == {"timeout": 7.0, "retries": 2, "total_timeout": None}


def test_evaluate_config_checks_the_deadlines() -> None:
    from advlab.errors import AdvlabError

    with pytest.raises(AdvlabError, match="target_timeout"):
        EvaluateConfig.from_mapping({"target_timeout": 0})
    with pytest.raises(AdvlabError, match="target_retries"):
        EvaluateConfig.from_mapping({"target-retries": -1})
    assert EvaluateConfig.from_mapping({"target_total_timeout": 5}).target_limits() == {
        "timeout": 10.0, "retries": 2, "total_timeout": 5.0,
    }  # fmt: skip
