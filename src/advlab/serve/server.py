"""The HTTP server: ``POST /predict``, ``GET /info``, ``GET /health`` over the standard library.

``http.server.ThreadingHTTPServer`` and nothing else: no web framework to install. Every
error a client can cause is answered with a status code and ``{"error": "<one sentence>"}``;
the body is never unpickled and never read past ``max_request_bytes``.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import logging
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from torch import nn

from advlab.errors import AdvlabError, check
from advlab.serve.payload import RequestError
from advlab.serve.service import ModelService
from advlab.targets.base import OutputKind

log = logging.getLogger(__name__)

DEFAULT_MAX_REQUEST_BYTES = 64 * 1024 * 1024
# An oversized body is read and dropped up to this size before answering 413, so that
# the client, still sending, sees the answer rather than a reset connection.
_DRAIN_LIMIT = 256 * 1024 * 1024
_CHUNK = 1 << 16


class PredictionServer(ThreadingHTTPServer):
    """A threading HTTP server holding one :class:`ModelService`."""

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        service: ModelService,
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
        request_timeout: float = 30.0,
    ) -> None:
        self.service = service
        self.max_request_bytes = int(max_request_bytes)
        self.request_timeout = float(request_timeout)
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = str(host)
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def info(self) -> dict[str, Any]:
        return {**self.service.info(), "max_request_bytes": self.max_request_bytes}


class _Handler(BaseHTTPRequestHandler):
    server: PredictionServer
    server_version = "advlab-serve"

    def setup(self) -> None:
        # A socket timeout per connection: a client that stalls cannot hold a thread forever.
        self.request.settimeout(self.server.request_timeout)
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        if self.path == "/health":
            self._send(200, {"status": "ok"})
        elif self.path == "/info":
            self._send(200, self.server.info())
        elif self.path == "/predict":
            self._send(405, {"error": "use POST for /predict"})
        else:
            self._send(404, {"error": f"no endpoint {self.path}: use /predict, /info or /health"})

    def do_POST(self) -> None:
        if self.path != "/predict":
            self._send(404, {"error": f"no endpoint {self.path}: POST to /predict"})
            return
        try:
            payload = self._read_json()
            answer = self.server.service.predict(payload)
        except RequestError as error:
            self._send(error.status, {"error": error.message})
            return
        except Exception as error:  # a bug or a broken model: answer, log, keep serving
            log.exception("prediction failed")
            self._send(500, {"error": f"the server failed: {type(error).__name__}: {error}"})
            return
        self._send(200, answer)

    def _read_json(self) -> Any:
        if self.headers.get("Transfer-Encoding"):
            raise RequestError(411, "send the body with a Content-Length header, not chunked")
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            raise RequestError(411, "the request needs a Content-Length header")
        try:
            length = int(length_text)
        except ValueError:
            raise RequestError(400, f"invalid Content-Length '{length_text}'") from None
        if length < 0:
            raise RequestError(400, f"invalid Content-Length '{length_text}'")
        limit = self.server.max_request_bytes
        if length > limit:
            self._drain(length)
            raise RequestError(
                413,
                f"the request has {length} bytes, over the limit of {limit}: "
                "send fewer images per request",
            )
        body = self.rfile.read(length)
        try:
            return json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise RequestError(400, f"the body is not valid JSON ({error})") from None

    def _drain(self, length: int) -> None:
        if length > _DRAIN_LIMIT:
            self.close_connection = True
            return
        remaining = length
        try:
            while remaining > 0:
                chunk = self.rfile.read(min(_CHUNK, remaining))
                if not chunk:
                    break
                remaining -= len(chunk)
        except OSError:
            self.close_connection = True

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        body = json.dumps(payload, separators=(",", ":")).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError as error:  # the client went away; the images were counted anyway
            log.info("could not send the answer to %s: %s", self.address_string(), error)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def make_server(
    model: nn.Module,
    host: str = "127.0.0.1",
    port: int = 8000,
    output: OutputKind = "scores",
    max_batch: int = 256,
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
    request_timeout: float = 30.0,
) -> PredictionServer:
    """A bound, not yet running server for ``model``; ``port=0`` picks a free port."""
    check(0 <= port <= 65535, f"port must be in 0..65535, got {port}")
    check(max_request_bytes >= 1024, f"max_request_bytes must be >= 1024, got {max_request_bytes}")
    check(request_timeout > 0, f"request_timeout must be > 0 seconds, got {request_timeout}")
    service = ModelService(model, output, max_batch)
    try:
        server = PredictionServer((host, port), service, max_request_bytes, request_timeout)
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            raise AdvlabError(
                f"port {port} on {host} is already in use: pick another with --port"
            ) from None
        raise AdvlabError(f"cannot listen on {host}:{port} ({error}): check --host") from None
    if not _is_loopback(host):
        log.warning("listening on %s: anyone who can reach this address can query the model", host)
    return server


def serve(
    model: nn.Module,
    host: str = "127.0.0.1",
    port: int = 8000,
    output: OutputKind = "scores",
    max_batch: int = 256,
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
    request_timeout: float = 30.0,
    ready: Callable[[str], None] | None = None,
) -> int:
    """Serve ``model`` until Ctrl-C; returns the number of images answered.

    ``ready`` is called with the server's URL once it listens (the CLI prints it).
    """
    server = make_server(model, host, port, output, max_batch, max_request_bytes, request_timeout)
    log.info("serving %s (%s) at %s", server.service.name, output, server.url)
    if ready is not None:
        ready(server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        log.info("stopping: %d queries answered", server.service.queries)
    finally:
        server.server_close()
    return server.service.queries


def run_server(
    model_spec: str,
    weights: str | Path | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    output: OutputKind = "scores",
    device: str | None = None,
    max_batch: int = 256,
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
    request_timeout: float = 30.0,
    ready: Callable[[str], None] | None = None,
) -> int:
    """Load a model as ``advlab.models.load_model`` does and serve it until Ctrl-C."""
    from advlab.models import load_model  # here: the server module itself needs no registry

    model = load_model(model_spec, weights, device)
    return serve(model, host, port, output, max_batch, max_request_bytes, request_timeout, ready)


def start_server_in_thread(
    model: nn.Module,
    host: str = "127.0.0.1",
    port: int = 0,
    output: OutputKind = "scores",
    **options: Any,
) -> tuple[PredictionServer, threading.Thread, str]:
    """Start a server in a daemon thread; returns ``(server, thread, url)``.

    Stop it with ``server.shutdown(); server.server_close()``.
    """
    server = make_server(model, host, port, output, **options)
    # A short poll interval: shutdown() waits up to one interval for the loop to notice.
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.05},
        name="advlab-serve",
        daemon=True,
    )
    thread.start()
    return server, thread, server.url
