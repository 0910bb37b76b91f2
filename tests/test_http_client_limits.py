"""HttpTarget against a hostile endpoint (issue 14, items 2, 9, 10): deadlines and sizes hold."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import torch

from advlab.targets import HttpTarget, TargetUnavailable

INFO = {"name": "stub", "input_shape": [1, 2, 2], "num_classes": 3, "output": "scores",
        "queries": 0}  # fmt: skip


class _Hostile(BaseHTTPRequestHandler):
    """A valid /info, then a /predict that misbehaves as ``mode`` says."""

    mode = "ok"
    info: dict[str, Any] = INFO
    other = ""  # the URL of another server, for redirects

    def log_message(self, *args: Any) -> None:
        pass

    def _reply(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {"Content-Length": str(len(body))}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802
        if self.mode == "redirect-away" and self.path == "/info":
            return self._reply(302, b"", {"Location": self.other + "/info", "Content-Length": "0"})
        if self.mode == "redirect-here" and self.path == "/info":
            return self._reply(302, b"", {"Location": "/v2/info", "Content-Length": "0"})
        self._reply(200, json.dumps(self.info).encode())

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers["Content-Length"]))
        if self.mode == "trickle":  # a valid-looking reply, one byte every 0.2 s
            body = json.dumps({"scores": [[0.2, 0.3, 0.5]] * 2, "queries": 2}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            for byte in body:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(0.2)
            return None
        if self.mode == "huge-declared":
            return self._reply(200, b"{}", {"Content-Length": str(300 * 1024 * 1024)})
        if self.mode == "huge-stream":  # no length: read until the server closes
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            try:
                for _ in range(200):
                    self.wfile.write(b" " * 65536)
            except OSError:
                pass
            return None
        if self.mode == "slow":
            time.sleep(0.4)
        scores = {"negative": [[-1.0, -2.0, -3.0]] * 2, "logits": [[1.0, 2.0, 3.0]] * 2}.get(
            self.mode, [[0.2, 0.3, 0.5]] * 2
        )
        self._reply(200, json.dumps({"scores": scores, "queries": 2}).encode())


@pytest.fixture
def hostile() -> Iterator[Callable[..., str]]:
    servers: list[ThreadingHTTPServer] = []

    def _start(mode: str, host: str = "127.0.0.1", **attributes: Any) -> str:
        handler = type("Handler", (_Hostile,), {"mode": mode, **attributes})
        server = ThreadingHTTPServer((host, 0), handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
        return f"http://{host}:{server.server_address[1]}"

    yield _start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_a_trickling_reply_is_cut_off_at_the_request_deadline(hostile) -> None:
    target = HttpTarget(hostile("trickle"), timeout=1.0, retries=2)
    began = time.monotonic()
    with pytest.raises(TargetUnavailable, match=r"did not answer within 1 s"):
        target.predict_scores(torch.rand(2, 1, 2, 2))
    assert time.monotonic() - began < 2.0  # one try of 1 s, not 3 x (reply length x 0.2 s)
    assert target.queries == 0


def test_the_whole_target_has_a_deadline(hostile) -> None:
    target = HttpTarget(hostile("slow"), timeout=5.0, total_timeout=1.0)
    began = time.monotonic()
    with pytest.raises(TargetUnavailable, match="total_timeout of 1 s"):
        for _ in range(10):
            target.predict_scores(torch.rand(2, 1, 2, 2))
    assert time.monotonic() - began < 2.0


@pytest.mark.parametrize("mode", ["huge-declared", "huge-stream"])
def test_replies_larger_than_the_batch_needs_are_refused(hostile, mode) -> None:
    target = HttpTarget(hostile(mode))
    with pytest.raises(TargetUnavailable, match="bytes") as info:
        target.predict_scores(torch.rand(2, 1, 2, 2))
    assert "more than" in str(info.value)


def test_absurd_class_counts_are_refused(hostile) -> None:
    url = hostile("ok", info={**INFO, "num_classes": 10**7})
    began = time.monotonic()
    with pytest.raises(TargetUnavailable, match="10000000 classes"):
        HttpTarget(url)
    assert time.monotonic() - began < 1.0


def test_redirects_to_another_host_are_refused(hostile) -> None:
    elsewhere = hostile("ok", host="127.0.0.2")
    with pytest.raises(TargetUnavailable, match="same-host redirects only"):
        HttpTarget(hostile("redirect-away", other=elsewhere))
    assert HttpTarget(hostile("redirect-here")).num_classes == 3  # same host: followed


def test_scores_that_are_not_probabilities_name_the_endpoint(hostile) -> None:
    url = hostile("negative")
    target = HttpTarget(url)
    with pytest.raises(TargetUnavailable, match=f"{url}/predict returned scores that are not"):
        target.predict_scores(torch.rand(2, 1, 2, 2))
    with pytest.raises(TargetUnavailable, match="not probabilities"):
        HttpTarget(hostile("logits")).predict_scores(torch.rand(2, 1, 2, 2))


def test_logits_declared_in_info_are_turned_into_probabilities(hostile) -> None:
    target = HttpTarget(hostile("logits", info={**INFO, "scores": "logits"}))
    scores = target.predict_scores(torch.rand(2, 1, 2, 2))
    expected = torch.softmax(torch.tensor([[1.0, 2.0, 3.0]] * 2), dim=1)
    torch.testing.assert_close(scores, expected)
