"""The HTTP server: :class:`advlab.serve.app.PredictionApp` on uvicorn.

uvicorn is a production ASGI server: an asyncio event loop holds every connection
(thousands cost no threads), the listen backlog is 2048, HTTP parsing is h11's (or
httptools'), and it drains an unread body itself, so a refused client sees its answer
rather than a reset. The model runs in one thread, decoding in a small pool. A connection
must deliver its first request's headers within ``request_timeout`` and every body in full
within it (:mod:`advlab.serve.app`); uvicorn closes idle keep-alive connections after 5 s.
"""

from __future__ import annotations

import errno
import logging
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvicorn
from torch import nn
from uvicorn.protocols.http.h11_impl import H11Protocol

from advlab.errors import AdvlabError, check
from advlab.serve.app import PredictionApp
from advlab.serve.limits import ServeLimits
from advlab.serve.service import ModelService
from advlab.targets.base import OutputKind
from advlab.targets.http_transport import is_loopback

log = logging.getLogger(__name__)

BACKLOG = 2048


def _protocol(header_timeout: float) -> type[H11Protocol]:
    """uvicorn's h11 protocol, closing a connection whose first request line and headers
    have not arrived within ``header_timeout`` (uvicorn times only idle keep-alives)."""

    class Protocol(H11Protocol):
        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self.loop.call_later(header_timeout, self._drop_if_silent)

        def _drop_if_silent(self) -> None:
            if self.cycle is None and not self.transport.is_closing():
                self.transport.close()

    return Protocol


class PredictionServer:
    """A listening socket, the app and the uvicorn server that joins them.

    ``serve_forever()`` blocks until ``shutdown()`` (from another thread) or Ctrl-C;
    ``server_close()`` releases the socket and the model thread.
    """

    def __init__(self, sock: socket.socket, app: PredictionApp, max_connections: int) -> None:
        self.socket = sock
        self.app = app
        self.service: ModelService = app.service
        self.server_address: tuple[Any, ...] = sock.getsockname()
        config = uvicorn.Config(
            app,
            http=_protocol(app.limits.request_timeout),
            lifespan="off",
            log_config=None,  # leave the application's logging alone
            access_log=False,
            backlog=BACKLOG,
            limit_concurrency=max_connections,  # a backstop: the app's own 503s come first
            timeout_keep_alive=5,
            timeout_graceful_shutdown=5,
        )
        self._server = uvicorn.Server(config)
        self._stopped = threading.Event()

    @property
    def url(self) -> str:
        host, port = str(self.server_address[0]), self.server_address[1]
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    @property
    def max_request_bytes(self) -> int:
        return self.app.limits.max_request_bytes

    def info(self) -> dict[str, Any]:
        return self.app.info()

    def serve_forever(self, poll_interval: float = 0.1) -> None:
        """Serve until shutdown; ``poll_interval`` is accepted for compatibility."""
        self._stopped.clear()
        try:
            self._server.run(sockets=[self.socket])
        finally:
            self._stopped.set()

    def shutdown(self) -> None:
        self._server.should_exit = True
        self._stopped.wait(timeout=15)

    def server_close(self) -> None:
        self.socket.close()
        self.app.close()


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)
    except OSError as error:
        sock.close()
        if error.errno == errno.EADDRINUSE:
            raise AdvlabError(
                f"port {port} on {host} is already in use: pick another with --port"
            ) from None
        raise AdvlabError(f"cannot listen on {host}:{port} ({error}): check --host") from None
    except (OverflowError, TypeError, UnicodeError):
        sock.close()
        raise AdvlabError(f"cannot listen on {host}:{port}: check --host") from None
    return sock


def make_server(
    model: nn.Module,
    host: str = "127.0.0.1",
    port: int = 8000,
    output: OutputKind = "scores",
    **limits: Any,
) -> PredictionServer:
    """A bound, not yet running server for ``model``; ``port=0`` picks a free port.

    ``limits`` are :class:`~advlab.serve.limits.ServeLimits`' fields (``max_batch``,
    ``max_request_bytes``, ``request_timeout``, ``max_pending``, ``max_inflight_bytes``,
    ``workers``, ``max_connections``), as keyword arguments.
    """
    check(0 <= port <= 65535, f"port must be in 0..65535, got {port}")
    bounds = ServeLimits(**limits)
    service = ModelService(model, output, bounds.max_batch)
    sock = _listen(host, port)
    app = PredictionApp(service, bounds)
    if not is_loopback(host):
        log.warning("listening on %s: anyone who can reach this address can query the model", host)
    return PredictionServer(sock, app, bounds.connections)


def serve(model: nn.Module, *, ready: Callable[[str], None] | None = None, **options: Any) -> int:
    """Serve ``model`` until Ctrl-C; returns the number of images answered.

    ``ready`` is called with the server's URL once it listens (the CLI prints it);
    ``options`` are :func:`make_server`'s (host, port, output and the limits).
    """
    server = make_server(model, **options)
    log.info("serving %s (%s) at %s", server.service.name, server.service.output, server.url)
    if ready is not None:
        ready(server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        log.info("stopping: %d queries answered", server.service.queries)
        server.server_close()
    return server.service.queries


def run_server(
    model_spec: str,
    weights: str | Path | None = None,
    *,
    device: str | None = None,
    ready: Callable[[str], None] | None = None,
    **options: Any,
) -> int:
    """Load a model as ``advlab.models.load_model`` does and serve it until Ctrl-C;
    ``options`` are :func:`make_server`'s."""
    from advlab.models import load_model  # here: the server module itself needs no registry

    return serve(load_model(model_spec, weights, device), ready=ready, **options)


def start_server_in_thread(
    model: nn.Module, *, port: int = 0, **options: Any
) -> tuple[PredictionServer, threading.Thread, str]:
    """Start a server in a daemon thread; returns ``(server, thread, url)``. ``options``
    are :func:`make_server`'s; ``port`` 0 (the default here) picks a free port.

    Stop it with ``server.shutdown(); server.server_close()``.
    """
    server = make_server(model, port=port, **options)
    thread = threading.Thread(target=server.serve_forever, name="advlab-serve", daemon=True)
    thread.start()
    return server, thread, server.url
