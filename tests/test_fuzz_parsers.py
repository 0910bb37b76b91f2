"""Hypothesis fuzzing of the server's request parser and the client's reply parsers.

The server must answer every body with a 4xx and a clean message, never a 500, and never
allocate much more than the body; the client must turn every reply into a valid result or
a TargetUnavailable. Small budgets: these run in seconds.
"""

from __future__ import annotations

import asyncio
import base64
import json
import tracemalloc
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from advlab.models import ImageClassifier
from advlab.serve.app import PredictionApp
from advlab.serve.limits import ServeLimits
from advlab.serve.payload import RequestError, decode_npy
from advlab.serve.service import ModelService
from advlab.targets.replies import (
    TargetUnavailable,
    check_info,
    parse_labels,
    parse_object,
    parse_scores,
)

SHAPE = (1, 2, 2)
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def app() -> Any:
    net = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    model = ImageClassifier(net, name="fuzz", input_shape=SHAPE, num_classes=3)
    limits = ServeLimits(
        max_batch=8, max_request_bytes=1 << 20, request_timeout=5.0, max_pending=8,
        max_inflight_bytes=1 << 21, workers=1,
    )  # fmt: skip
    app = PredictionApp(ModelService(model, max_batch=limits.max_batch), limits)
    yield app
    app.close()


def _call(app: PredictionApp, body: bytes, headers: list[tuple[bytes, bytes]] | None = None):
    chunks = [body[i : i + 1000] for i in range(0, len(body), 1000)] or [b""]
    messages = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
        for i, chunk in enumerate(chunks)
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    if headers is None:
        headers = [(b"content-length", str(len(body)).encode())]
    scope = {"type": "http", "method": "POST", "path": "/predict", "headers": headers}
    asyncio.run(app(scope, receive, send))
    return sent[0]["status"], json.loads(sent[1]["body"])


def _npy(header: dict[str, Any], data: bytes) -> bytes:
    text = repr(header).encode()
    text += b" " * (63 - (len(text) + 10) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text + data


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(["npy", "images", "output", "x"]) | st.text(), inner)
    ),
    max_leaves=20,
)
shapes = st.lists(st.integers(min_value=0, max_value=10**16), min_size=0, max_size=5).map(tuple)
descrs = st.sampled_from(["<f4", "<f8", ">f4", "<f2", "|u1", "<i8", "|O", "<c8", "|b1", "bad"])
npy_files = st.builds(
    lambda shape, descr, fortran, data: _npy(
        {"descr": descr, "fortran_order": fortran, "shape": shape}, data
    ),
    shapes,
    descrs,
    st.booleans(),
    st.binary(max_size=200),
)


def _check_answer(status: int, answer: dict[str, Any]) -> None:
    assert status in (200, 400, 403, 411, 413), (status, answer)
    if status != 200:
        assert "Traceback" not in answer["error"] and "Error:" not in answer["error"]


@FUZZ
@given(body=st.binary(max_size=3000))
def test_server_answers_any_bytes_without_500(app, body) -> None:
    _check_answer(*_call(app, body))


@FUZZ
@given(payload=json_values)
def test_server_answers_any_json_without_500(app, payload) -> None:
    _check_answer(*_call(app, json.dumps(payload).encode()))


@FUZZ
@given(npy=npy_files, output=st.sampled_from(["scores", "labels", "logits"]))
def test_server_answers_any_npy_header_without_500(app, npy, output) -> None:
    body = json.dumps({"npy": base64.b64encode(npy).decode(), "output": output}).encode()
    _check_answer(*_call(app, body))


@FUZZ
@given(npy=npy_files)
def test_npy_decoding_allocates_no_more_than_the_body(npy) -> None:
    text = base64.b64encode(npy).decode()
    tracemalloc.start()
    try:
        decode_npy(text, SHAPE, 8)
    except RequestError:
        pass
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 4 * len(text) + 64_000


@FUZZ
@given(
    length=st.text(max_size=25),
    chunked=st.booleans(),
)
def test_server_refuses_bad_framing_cleanly(app, length, chunked) -> None:
    headers = [(b"content-length", length.encode("utf-8", "replace"))]
    if chunked:
        headers.append((b"transfer-encoding", b"chunked"))
    status, answer = _call(app, b"{}", headers)
    assert status in (400, 411, 413), answer


@FUZZ
@given(raw=st.binary(max_size=500) | json_values.map(lambda v: json.dumps(v).encode()))
def test_client_reply_parser_takes_anything(raw) -> None:
    try:
        reply = parse_object(raw, "http://x/predict")
    except TargetUnavailable:
        return
    assert isinstance(reply, dict)
    for call in (
        lambda: parse_scores(reply, 2, 3, "u", "probabilities"),
        lambda: parse_scores(reply, 2, 3, "u", "logits"),
        lambda: parse_labels(reply, 2, 3, "u"),
        lambda: check_info(reply, "u"),
    ):
        try:
            call()
        except TargetUnavailable:
            pass


@FUZZ
@given(
    scores=st.lists(
        st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), min_size=3, max_size=3),
        min_size=2,
        max_size=2,
    )
)
def test_client_accepts_only_probabilities(scores) -> None:
    try:
        result = parse_scores({"scores": scores}, 2, 3, "u", "probabilities")
    except TargetUnavailable:
        return
    assert result.shape == (2, 3) and bool((result >= -1e-5).all())
    torch.testing.assert_close(result.double().sum(1), torch.ones(2, dtype=torch.float64),
                               atol=1e-3, rtol=0)  # fmt: skip


@FUZZ
@given(labels=json_values)
def test_client_labels_are_in_range_or_refused(labels) -> None:
    try:
        result = parse_labels({"labels": labels}, 2, 3, "u")
    except TargetUnavailable:
        return
    assert result.shape == (2,) and bool(((result >= 0) & (result < 3)).all())
    assert np.issubdtype(result.numpy().dtype, np.integer)
