"""How much one server takes on: the bounds of ``advlab serve``, checked once, in one place.

:func:`advlab.serve.make_server` (and ``serve``, ``run_server``, ``start_server_in_thread``)
take these fields as keyword arguments; the app, the model service and uvicorn each read
theirs from the one :class:`ServeLimits`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from advlab.errors import check

DEFAULT_MAX_REQUEST_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_INFLIGHT_BYTES = 128 * 1024 * 1024
DEFAULT_MAX_PENDING = 64


@dataclass(frozen=True)
class ServeLimits:
    """The bounds of a server; beyond each, a request gets a clean error, never a reset.

    ``max_batch`` images per request (and per joined forward pass); a body over
    ``max_request_bytes`` is answered 413, one slower than ``request_timeout`` seconds 408.
    ``max_pending`` requests are admitted at once and their bodies hold at most
    ``max_inflight_bytes`` (default: twice ``max_request_bytes``, at least 128 MiB); beyond
    either, 503 with ``Retry-After``. ``workers`` threads decode requests (default: the
    CPUs, at most 4); ``max_connections`` is uvicorn's own backstop.
    """

    max_batch: int = 256
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    request_timeout: float = 30.0
    max_pending: int = DEFAULT_MAX_PENDING
    max_inflight_bytes: int | None = None
    workers: int | None = None
    max_connections: int = 1000

    def __post_init__(self) -> None:
        size = self.max_request_bytes
        check(size >= 1024, f"max_request_bytes must be >= 1024, got {size}")
        check(self.request_timeout > 0,
              f"request_timeout must be > 0 seconds, got {self.request_timeout}")  # fmt: skip
        check(self.max_pending >= 1, f"max_pending must be >= 1, got {self.max_pending}")
        check(self.inflight_budget >= size,
              f"max_inflight_bytes ({self.inflight_budget}) must be >= max_request_bytes "
              f"({size})")  # fmt: skip

    @property
    def inflight_budget(self) -> int:
        """``max_inflight_bytes``, or its default."""
        default = max(DEFAULT_MAX_INFLIGHT_BYTES, 2 * self.max_request_bytes)
        return int(self.max_inflight_bytes or default)

    @property
    def decode_threads(self) -> int:
        """``workers``, or its default."""
        return int(self.workers or min(4, os.cpu_count() or 1))

    @property
    def connections(self) -> int:
        """uvicorn's connection limit: never below what the app itself admits."""
        return max(self.max_connections, 2 * self.max_pending)
