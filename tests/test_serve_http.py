"""The model server and HttpTarget: round trips, limits, query counts and failure modes."""

from __future__ import annotations

import base64
import io
import json
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest
import torch
from helpers import free_port
from PIL import Image

from advlab.attacks.blackbox import BlackBoxAttack
from advlab.errors import AdvlabError
from advlab.serve import PredictionServer, make_server, start_server_in_thread
from advlab.targets import (
    HttpTarget,
    LocalTarget,
    QueryBudget,
    QueryLimitReached,
    TargetRejected,
    TargetUnavailable,
)
from advlab.targets.http import encode_npy

Start = Callable[..., tuple[PredictionServer, str]]


@pytest.fixture
def start(small_mnist_model) -> Iterator[Start]:
    """Start servers for the small MNIST model on free ports; stop them after the test."""
    servers: list[PredictionServer] = []

    def _start(**options: Any) -> tuple[PredictionServer, str]:
        server, _, url = start_server_in_thread(small_mnist_model, port=0, **options)
        servers.append(server)
        return server, url

    yield _start
    for server in servers:
        server.shutdown()
        server.server_close()


def _post(url: str, payload: Any) -> tuple[int, dict[str, Any]]:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    request = urllib.request.Request(url + "/predict", data=body, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _npy(array: np.ndarray, allow_pickle: bool = False) -> str:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=allow_pickle)
    return base64.b64encode(buffer.getvalue()).decode()


def test_binds_loopback_by_default(start) -> None:
    server, url = start()
    assert server.server_address[0] == "127.0.0.1"
    assert url.startswith("http://127.0.0.1:")
    with urllib.request.urlopen(url + "/health", timeout=5) as response:
        assert json.loads(response.read()) == {"status": "ok"}


def test_scores_match_local_target(start, small_mnist_model, mnist_sample) -> None:
    server, url = start()
    images = mnist_sample[0][:40]
    target = HttpTarget(url, batch_size=16)  # 3 requests: 16 + 16 + 8
    assert (target.output, target.input_shape, target.num_classes) == ("scores", (1, 28, 28), 10)
    assert target.name == "mnist-cnn"
    local = LocalTarget(small_mnist_model)
    scores = target.predict_scores(images)
    torch.testing.assert_close(scores, local.predict_scores(images), atol=1e-6, rtol=0)
    assert torch.equal(target.predict_labels(images), scores.argmax(dim=1))
    assert target.queries == server.service.queries == 80


def test_png_payload_matches_local_target(start, small_mnist_model, mnist_sample) -> None:
    _, url = start()
    pixels = (mnist_sample[0][:3] * 255).round().to(torch.uint8)
    encoded = []
    for image in pixels:
        buffer = io.BytesIO()
        Image.fromarray(image[0].numpy(), mode="L").save(buffer, format="PNG")
        encoded.append(base64.b64encode(buffer.getvalue()).decode())
    status, answer = _post(url, {"images": encoded})
    assert status == 200 and answer["queries"] == 3
    expected = LocalTarget(small_mnist_model).predict_scores(pixels.float() / 255)
    torch.testing.assert_close(torch.tensor(answer["scores"]), expected, atol=1e-6, rtol=0)


def test_label_only_server_never_reveals_scores(start, small_mnist_model, mnist_sample) -> None:
    _, url = start(output="labels")
    images = mnist_sample[0][:10]
    target = HttpTarget(url)
    assert target.output == "labels"
    expected = LocalTarget(small_mnist_model).predict_labels(images)
    assert torch.equal(target.predict_labels(images), expected)
    with pytest.raises(AdvlabError, match="labels only"):
        target.predict_scores(images)
    with pytest.raises(AdvlabError, match="labels only"):
        HttpTarget(url, output="scores")
    status, answer = _post(url, {"npy": encode_npy(images)})
    assert status == 200 and set(answer) == {"labels", "queries"}
    status, answer = _post(url, {"npy": encode_npy(images), "output": "scores"})
    assert status == 403 and "labels only" in answer["error"] and "scores" not in answer


class _RandomSearch(BlackBoxAttack):
    """A minimal score-based attack, to drive a target the way real attacks do."""

    name = "test-random-search"

    def _run(self, budget: QueryBudget, images, goal, targeted):
        index = torch.arange(images.shape[0])
        adversarial = images.clone()
        scores = budget.scores(images, index)
        best = scores.gather(1, goal[:, None]).squeeze(1)
        predicted = scores.argmax(dim=1)
        while bool(budget.can_query(index).any()):
            active = index[budget.can_query(index)]
            step = self.eps * torch.randn_like(images[active]).sign()
            candidate = (images[active] + step).clamp(0, 1)
            scores = budget.scores(candidate, active)
            prob = scores.gather(1, goal[active, None]).squeeze(1)
            better = prob < best[active]
            chosen = active[better]
            adversarial[chosen], best[chosen] = candidate[better], prob[better]
            predicted[chosen] = scores[better].argmax(dim=1)
        return adversarial, self.is_adversarial(predicted, goal, targeted)


def test_server_count_equals_client_count_after_an_attack(start, mnist_sample) -> None:
    server, url = start(max_batch=8)
    images, labels = mnist_sample[0][:20], mnist_sample[1][:20]
    target = HttpTarget(url, batch_size=64)  # the server's max_batch splits it into 8s
    assert target.batch_size == 8
    result = _RandomSearch(eps=0.3, max_queries=6, seed=0)(target, images, labels)
    assert int(result.queries.sum()) == 20 * 6  # the attack's budget, charged once per image
    assert target.queries == server.service.queries == target.server_queries == 120
    assert target.info()["queries"] == 120
    assert (result.adversarial - images).abs().max() <= 0.3 + 1e-6


def test_oversized_request_gets_413_and_client_fits_its_batches(start, mnist_sample) -> None:
    _, url = start(max_request_bytes=16_384)
    big = {"npy": encode_npy(mnist_sample[0][:10])}  # about 42 KB
    status, answer = _post(url, big)
    assert status == 413 and "over the limit of 16384" in answer["error"]
    target = HttpTarget(url, batch_size=64)
    assert target.batch_size == 3  # what fits in 16 KB as base64 float32
    assert target.predict_labels(mnist_sample[0][:7]).shape == (7,)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"{not json", "not valid JSON"),
        ([1, 2, 3], "JSON object"),
        ({}, "exactly one of"),
        ({"npy": "@@@"}, "not valid base64"),
        ({"npy": _npy(np.zeros((2, 3, 28, 28), np.float32))}, "shape"),
        ({"npy": _npy(np.full((2, 1, 28, 28), np.nan, np.float32))}, "NaN"),
        ({"npy": _npy(np.full((2, 1, 28, 28), 255, np.float32))}, r"\[0, 1\]"),
        ({"npy": _npy(np.zeros((2, 1, 28, 28), np.uint8))}, "float32"),
        ({"npy": _npy(np.array([{"a": 1}], dtype=object), True)}, "object arrays"),
        ({"npy": _npy(np.zeros((9, 1, 28, 28), np.float32))}, "max_batch=8"),
        ({"images": ["aGVsbG8="]}, "not a readable PNG"),
        ({"npy": _npy(np.zeros((1, 1, 28, 28), np.float32)), "output": "logits"}, "unknown"),
    ],
)
def test_bad_payloads_get_400_with_a_message(start, payload, message) -> None:
    server, url = start(max_batch=8)
    status, answer = _post(url, payload)
    assert status == 400
    assert server.service.queries == 0  # nothing was answered
    assert re.search(message, answer["error"]), answer["error"]


def test_port_in_use_is_a_clear_error(start, small_mnist_model) -> None:
    server, _ = start()
    with pytest.raises(AdvlabError, match="already in use"):
        make_server(small_mnist_model, port=server.server_address[1])


def test_server_down_fails_fast_with_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    began = time.monotonic()
    with pytest.raises(TargetUnavailable, match=f"{url}/info.*3 tries"):
        HttpTarget(url, retries=2, backoff=0.01)
    assert time.monotonic() - began < 3


class _Stub(BaseHTTPRequestHandler):
    """A fake server: a valid /info, and /predict that misbehaves as ``mode`` says."""

    mode = "ok"
    failures = 0  # flaky mode: answer 503 this many times first

    def log_message(self, *args: Any) -> None:
        pass

    def _reply(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802
        info = {"name": "stub", "input_shape": [1, 2, 2], "num_classes": 3,
                "output": "scores", "queries": 0}  # fmt: skip
        body = b"<html>oops</html>" if self.mode == "bad-info" else json.dumps(info).encode()
        self._reply(200, body)

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers["Content-Length"]))
        cls = type(self)
        if self.mode == "slow":
            time.sleep(2)
        if self.mode == "garbage":
            return self._reply(200, b"<html>surprise</html>")
        if self.mode == "wrong-shape":
            return self._reply(200, json.dumps({"scores": [[1.0]], "queries": 1}).encode())
        if self.mode == "flaky" and cls.failures > 0:
            cls.failures -= 1
            return self._reply(503, b'{"error": "warming up"}')
        scores = [[0.2, 0.3, 0.5]] * 2
        self._reply(200, json.dumps({"scores": scores, "queries": 2}).encode())


@pytest.fixture
def stub() -> Iterator[Callable[[str], str]]:
    servers: list[ThreadingHTTPServer] = []

    def _start(mode: str, failures: int = 0) -> str:
        handler = type("Handler", (_Stub,), {"mode": mode, "failures": failures})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield _start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_slow_server_times_out_without_retrying(stub) -> None:
    target = HttpTarget(stub("slow"), timeout=0.3, retries=2)
    began = time.monotonic()
    with pytest.raises(TargetUnavailable, match=r"did not answer within 0\.3 s"):
        target.predict_scores(torch.rand(2, 1, 2, 2))
    assert time.monotonic() - began < 1.5  # one try, not three
    assert target.queries == 0


@pytest.mark.parametrize(
    ("mode", "message"),
    [("garbage", "not a JSON object"), ("wrong-shape", "without valid scores")],
)
def test_garbage_answers_are_clear_errors(stub, mode, message) -> None:
    target = HttpTarget(stub(mode))
    with pytest.raises(TargetUnavailable, match=message):
        target.predict_scores(torch.rand(2, 1, 2, 2))


def test_garbage_info_is_a_clear_error(stub) -> None:
    with pytest.raises(TargetUnavailable, match="not a JSON object"):
        HttpTarget(stub("bad-info"))


def test_5xx_is_retried_and_counted_once(stub) -> None:
    target = HttpTarget(stub("flaky", failures=2), retries=2, backoff=0.01)
    scores = target.predict_scores(torch.rand(2, 1, 2, 2))
    assert scores.shape == (2, 3) and target.queries == 2
    failing = HttpTarget(stub("flaky", failures=5), retries=1, backoff=0.01)
    with pytest.raises(TargetUnavailable, match="HTTP 503: warming up"):
        failing.predict_scores(torch.rand(2, 1, 2, 2))


def test_client_side_rejections(start, stub, mnist_sample) -> None:
    target = HttpTarget(stub("ok"), max_total_queries=3)
    target.predict_scores(torch.rand(2, 1, 2, 2))
    with pytest.raises(QueryLimitReached, match="max_total_queries=3"):
        target.predict_scores(torch.rand(2, 1, 2, 2))
    with pytest.raises(AdvlabError, match="not an http"):
        HttpTarget("ftp://example.org")
    _, url = start()
    # An image that fails the server's checks comes back as the server's message.
    with pytest.raises(TargetRejected, match=r"HTTP 400: .*\[0, 1\]"):
        HttpTarget(url + "/predict").predict_scores(mnist_sample[0][:2] * 2)
