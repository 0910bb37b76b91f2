"""advlab serve under load and abuse (issue 14, items 5-8): bounded, never a reset or a leak."""

from __future__ import annotations

import base64
import http.client
import io
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from advlab.models import ImageClassifier
from advlab.serve import PredictionServer, start_server_in_thread

SHAPE = (1, 2, 2)


class _GatedNet(nn.Module):
    """Four pixels -> three logits; waits for ``gate`` and counts its forward passes."""

    def __init__(self, fail: bool = False) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 3)
        self.gate = threading.Event()
        self.gate.set()
        self.calls: list[int] = []
        self.fail = fail

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.gate.wait(timeout=20)
        self.calls.append(x.shape[0])
        if self.fail:
            raise RuntimeError("secret internal detail at /srv/model.py line 12")
        return self.linear(x.flatten(1))


def _model(fail: bool = False) -> tuple[ImageClassifier, _GatedNet]:
    net = _GatedNet(fail)
    return ImageClassifier(net, name="gated", input_shape=SHAPE, num_classes=3), net


@pytest.fixture
def start() -> Iterator[Callable[..., tuple[PredictionServer, str]]]:
    servers: list[PredictionServer] = []

    def _start(model: nn.Module, **options: Any) -> tuple[PredictionServer, str]:
        server, _, url = start_server_in_thread(model, port=0, **options)
        servers.append(server)
        return server, url

    yield _start
    for server in servers:
        server.shutdown()
        server.server_close()


def _npy_body(count: int = 1, pad: int = 0) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.full((count, *SHAPE), 0.5, np.float32))
    payload = {"npy": base64.b64encode(buffer.getvalue()).decode(), "pad": "x" * pad}
    return json.dumps(payload).encode()


def _post(url: str, body: bytes, timeout: float = 20) -> tuple[int, dict[str, str], Any]:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request("POST", "/predict", body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        headers = {k.lower(): v for k, v in response.getheaders()}
        return response.status, headers, json.loads(response.read())
    finally:
        conn.close()


def _in_background(call: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    box: list[Any] = []
    thread = threading.Thread(target=lambda: box.append(call()), daemon=True)
    thread.start()
    return thread, box


def _wait_for(condition: Callable[[], bool], timeout: float = 10) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "timed out waiting"
        time.sleep(0.01)


def test_full_queue_answers_503_with_retry_after(start) -> None:
    model, net = _model()
    server, url = start(model, max_pending=1)
    net.gate.clear()  # the first request holds the only slot
    first, answers = _in_background(lambda: _post(url, _npy_body()))
    _wait_for(lambda: server.app.pending == 1)
    status, headers, answer = _post(url, _npy_body())
    assert status == 503 and headers["retry-after"] == "1" and "busy" in answer["error"]
    net.gate.set()
    first.join(10)
    assert answers[0][0] == 200 and server.service.queries == 1


def test_in_flight_bytes_are_capped(start) -> None:
    model, net = _model()
    server, url = start(model, max_request_bytes=64_000, max_inflight_bytes=100_000)
    net.gate.clear()
    first, answers = _in_background(lambda: _post(url, _npy_body(pad=50_000)))
    _wait_for(lambda: server.app.inflight_bytes > 0)
    status, headers, answer = _post(url, _npy_body(pad=60_000))  # would pass 100 kB
    assert status == 503 and "retry-after" in headers and "bytes" in answer["error"]
    small, small_answers = _in_background(lambda: _post(url, _npy_body()))
    _wait_for(lambda: server.app.pending == 2)  # a small one still fits
    net.gate.set()
    first.join(10)
    small.join(10)
    assert answers[0][0] == 200 and small_answers[0][0] == 200


def test_concurrent_requests_share_one_forward_pass(start) -> None:
    model, net = _model()
    server, url = start(model, max_batch=64)
    net.gate.clear()
    threads = [_in_background(lambda n=n: _post(url, _npy_body(n + 1))) for n in range(6)]
    _wait_for(lambda: server.app.pending == 6)
    time.sleep(0.2)  # all six decoded and waiting for the model
    net.gate.set()
    for thread, _ in threads:
        thread.join(10)
    answers = [box[0] for _, box in threads]
    assert all(status == 200 for status, _, _ in answers)
    assert [len(a["scores"]) for _, _, a in answers] == [1, 2, 3, 4, 5, 6]
    assert len(net.calls) <= 2 and sum(net.calls) == 21  # not six passes
    assert sorted(a["queries"] for _, _, a in answers)[-1] == server.service.queries == 21
    assert len({a["queries"] for _, _, a in answers}) == 6  # as if answered one by one


def test_two_hundred_concurrent_clients_see_no_connection_error(start) -> None:
    model, _ = _model()
    _, url = start(model, max_pending=16)
    barrier = threading.Barrier(200)
    outcomes: list[Any] = []

    def client() -> None:
        barrier.wait()
        try:
            outcomes.append(_post(url, _npy_body())[0])
        except OSError as error:
            outcomes.append(error)

    threads = [threading.Thread(target=client) for _ in range(200)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(outcomes) == 200
    assert set(outcomes) <= {200, 503}, [o for o in outcomes if o not in (200, 503)][:3]
    assert outcomes.count(200) >= 16


def test_a_slow_client_is_cut_off_by_the_whole_request_deadline(start) -> None:
    model, _ = _model()
    _, url = start(model, request_timeout=1.0)
    host, port = url.removeprefix("http://").split(":")
    began = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\n\r\n")
        reply = b""
        for _ in range(40):  # one byte every 0.25 s: each read is quick, the whole is not
            try:
                sock.sendall(b"{")
            except OSError:
                break
            sock.settimeout(0.25)
            try:
                reply += sock.recv(4096)
            except TimeoutError:
                continue
            if reply:
                break
    assert reply.startswith(b"HTTP/1.1 408"), reply[:80]
    assert time.monotonic() - began < 3


def test_a_client_that_never_finishes_its_headers_is_disconnected(start) -> None:
    model, _ = _model()
    _, url = start(model, request_timeout=1.0)
    host, port = url.removeprefix("http://").split(":")
    began = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\n")  # and then nothing
        assert sock.recv(4096) == b""  # closed by the server
    assert time.monotonic() - began < 3


def _npy_header(shape: tuple[int, ...], descr: str = "<f4") -> bytes:
    header = repr({"descr": descr, "fortran_order": False, "shape": shape}).encode()
    header += b" " * (63 - (len(header) + 10) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"npy": ' * 50_000 + b"1" + b"}" * 50_000, "nested too deeply"),
        (json.dumps({"npy": base64.b64encode(_npy_header((10**15,))).decode()}), "shape"),
        (
            json.dumps({"npy": base64.b64encode(_npy_header((10**6, 1, 2, 2))).decode()}),
            "max_batch",
        ),  # fmt: skip
        (json.dumps({"npy": base64.b64encode(_npy_header((2, 1, 2, 2))).decode()}), "holds 0"),
        (
            json.dumps({"npy": base64.b64encode(b"\x93NUMPY\x01\x00\xff\xff{").decode()}),
            "not a readable",
        ),  # fmt: skip
    ],
)
def test_bombs_get_400_with_a_clean_message(start, body, message) -> None:
    model, _ = _model()
    server, url = start(model)
    data = body if isinstance(body, bytes) else body.encode()
    status, _, answer = _post(url, data)
    assert status == 400 and message in answer["error"], answer
    assert "Error" not in answer["error"] and "Traceback" not in answer["error"]
    assert server.service.queries == 0


def test_a_failing_model_gets_500_without_internal_text(start) -> None:
    model, _ = _model(fail=True)
    _, url = start(model)
    status, _, answer = _post(url, _npy_body())
    assert (
        status == 500 and "secret" not in answer["error"] and "RuntimeError" not in answer["error"]
    )
    assert _post(url, _npy_body())[0] == 500  # still serving
