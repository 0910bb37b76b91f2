"""The ASGI application behind ``advlab serve``: routing, admission, bodies, deadlines.

Plain ASGI, no framework: the app needs three routes and full control over how a body is
read (into one preallocated buffer, under a byte budget and a deadline), which is exactly
the part a framework would hide. Every answer is JSON; every error a client can cause is a
status code with ``{"error": "<one sentence>"}`` and never internal exception text.

Bounds, all checked before the body is read:

* at most ``max_pending`` requests are admitted at once (reading, decoding, waiting for the
  model); one more is answered 503 with ``Retry-After``;
* the admitted bodies hold at most ``max_inflight_bytes`` together (503 beyond);
* a body over ``max_request_bytes`` is refused with 413;
* the whole body must arrive within ``request_timeout`` seconds (408 after), however
  slowly it trickles in.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from advlab.serve.batcher import Batcher
from advlab.serve.limits import ServeLimits
from advlab.serve.payload import RequestError, parse_json
from advlab.serve.service import ModelService

log = logging.getLogger(__name__)

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

# An oversized body is read and dropped (by the server) up to this size before the
# connection is closed, so that a client still sending sees the 413 rather than a reset.
DRAIN_LIMIT = 256 * 1024 * 1024
RETRY_AFTER_SECONDS = 1


class _Refused(Exception):
    """A request answered with an error and extra headers (e.g. 503 with Retry-After)."""

    def __init__(self, status: int, message: str, headers: list[tuple[bytes, bytes]]) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers


class PredictionApp:
    """``POST /predict``, ``GET /info``, ``GET /health`` for one :class:`ModelService`,
    within ``limits`` (``max_batch`` is the service's own)."""

    def __init__(self, service: ModelService, limits: ServeLimits) -> None:
        self.service = service
        self.limits = limits
        self.batcher = Batcher(service)
        self._pool = ThreadPoolExecutor(
            max_workers=limits.decode_threads, thread_name_prefix="advlab-decode"
        )
        # Only touched from the event loop's thread: no lock needed.
        self.pending = 0
        self.inflight_bytes = 0

    def info(self) -> dict[str, Any]:
        return {
            **self.service.info(),
            "max_request_bytes": self.limits.max_request_bytes,
            "max_pending": self.limits.max_pending,
        }

    def close(self) -> None:
        self.batcher.close()
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # lifespan and websockets: nothing to do
        method, path = scope["method"], scope["path"]
        try:
            if method in ("GET", "HEAD"):
                status, payload = self._get(path)
                await _send_json(send, status, payload)
            elif method == "POST" and path == "/predict":
                await self._predict(scope, receive, send)
            elif method == "POST":
                await _send_json(send, 404, {"error": f"no endpoint {path}: POST to /predict"})
            else:
                message = f"method {method} not allowed: use GET or POST"
                await _send_json(send, 405, {"error": message})
        except Exception:  # a bug: answer without internals, log, keep serving
            log.exception("%s %s failed", method, path)
            await _send_json(send, 500, {"error": "the server failed: see its log"})

    def _get(self, path: str) -> tuple[int, dict[str, Any]]:
        if path == "/health":
            return 200, {"status": "ok"}
        if path == "/info":
            return 200, self.info()
        if path == "/predict":
            return 405, {"error": "use POST for /predict"}
        return 404, {"error": f"no endpoint {path}: use /predict, /info or /health"}

    async def _predict(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            length = self._content_length(scope)
        except _Refused as refused:
            await _send_json(send, refused.status, {"error": refused.message}, refused.headers)
            return
        except RequestError as error:
            await _send_json(send, error.status, {"error": error.message})
            return
        busy = self.pending >= self.limits.max_pending
        if busy or self.inflight_bytes + length > self.limits.inflight_budget:
            what = "requests" if busy else "bytes of requests"
            retry = [(b"retry-after", str(RETRY_AFTER_SECONDS).encode())]
            await _send_json(
                send, 503, {"error": f"the server is busy ({what} in flight): retry later"}, retry
            )
            return
        self.pending += 1
        self.inflight_bytes += length
        try:
            status, answer, headers = await self._answer(receive, length)
        finally:
            self.pending -= 1
            self.inflight_bytes -= length
        await _send_json(send, status, answer, headers)

    async def _answer(
        self, receive: Receive, length: int
    ) -> tuple[int, dict[str, Any] | bytes, list[tuple[bytes, bytes]]]:
        loop, timeout = asyncio.get_running_loop(), self.limits.request_timeout
        try:
            body = await asyncio.wait_for(_read_body(receive, length), timeout)
        except asyncio.TimeoutError:
            message = f"the request body did not arrive within {timeout:g} s"
            return 408, {"error": message}, [(b"connection", b"close")]
        except RequestError as error:
            return error.status, {"error": error.message}, [(b"connection", b"close")]
        try:
            kind, pixels = await loop.run_in_executor(self._pool, self._decode, body)
        except RequestError as error:
            return error.status, {"error": error.message}, []
        del body  # the pixels are a view of the decoded bytes, not of the body
        try:
            scores, total = await asyncio.wrap_future(self.batcher.submit(pixels))
        except Exception:
            return 500, {"error": "the model failed on this request: see the server's log"}, []
        answer = self.service.answer(kind, scores, total)
        return 200, await loop.run_in_executor(self._pool, _encode, answer), []

    def _decode(self, body: bytearray) -> Any:
        return self.service.decode(parse_json(body))

    def _content_length(self, scope: Scope) -> int:
        headers = dict(scope["headers"])
        if b"transfer-encoding" in headers:
            raise RequestError(411, "send the body with a Content-Length header, not chunked")
        raw = headers.get(b"content-length")
        if raw is None:
            raise RequestError(411, "the request needs a Content-Length header")
        text = raw.decode("latin-1")
        if not text.isdigit() or len(text) > 18:
            raise RequestError(400, f"invalid Content-Length '{text[:40]}'")
        length, limit = int(text), self.limits.max_request_bytes
        if length > limit:
            close = [(b"connection", b"close")] if length > DRAIN_LIMIT else []
            raise _Refused(
                413,
                f"the request has {length} bytes, over the limit of {limit}: "
                "send fewer images per request",
                close,
            )
        return length


async def _read_body(receive: Receive, length: int) -> bytearray:
    """The body in one buffer of ``length`` bytes, filled in place as chunks arrive."""
    body = bytearray(length)
    view = memoryview(body)
    got = 0
    try:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise RequestError(400, "the client went away before sending the whole body")
            chunk = message.get("body", b"")
            if got + len(chunk) > length:
                raise RequestError(400, "the body is longer than its Content-Length")
            view[got : got + len(chunk)] = chunk
            got += len(chunk)
            if not message.get("more_body", False):
                break
    finally:
        view.release()
    if got != length:
        raise RequestError(400, f"the body has {got} bytes but Content-Length says {length}")
    return body


def _encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


async def _send_json(
    send: Send,
    status: int,
    payload: dict[str, Any] | bytes,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    body = payload if isinstance(payload, bytes) else _encode(payload)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
