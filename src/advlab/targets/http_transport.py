"""One HTTP exchange under a hard deadline and a reply-size limit (standard library only).

``http.client`` rather than urllib: urllib's timeout is per socket operation (a server
trickling a byte at a time stalls it indefinitely), it reads replies of any size, and it
follows redirects to any host. Here a watchdog shuts the socket down when the deadline
passes, whatever the server is doing; a reply is read in chunks and refused as soon as it
passes ``max_bytes``; redirects are followed only to the same scheme, host and port.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

_CHUNK = 1 << 16
_REDIRECTS = {301, 302, 303, 307, 308}
MAX_REDIRECTS = 3


class DeadlineExceeded(Exception):
    """The exchange did not finish before its deadline."""


class ReplyRefused(Exception):
    """The reply is too large, or redirects elsewhere; the message says which."""


@dataclass(frozen=True)
class Reply:
    status: int
    reason: str
    body: bytes


@dataclass(frozen=True)
class _Request:
    method: str
    url: str
    body: bytes | None
    headers: dict[str, str]


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine (localhost or a loopback address)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _origin(parts: urllib.parse.SplitResult) -> tuple[str, str, int | None]:
    default = 443 if parts.scheme == "https" else 80
    return parts.scheme, (parts.hostname or "").lower(), parts.port or default


def fetch(
    method: str,
    url: str,
    body: bytes | None,
    headers: dict[str, str],
    deadline: float,
    max_bytes: int,
) -> Reply:
    """``method url`` finished before ``time.monotonic()`` reaches ``deadline``.

    Raises :class:`DeadlineExceeded`, :class:`ReplyRefused`, or ``OSError`` /
    ``http.client.HTTPException`` for a connection that failed.
    """
    origin = _origin(urllib.parse.urlsplit(url))
    for _ in range(MAX_REDIRECTS + 1):
        reply, location = _exchange(_Request(method, url, body, headers), deadline, max_bytes)
        if location is None:
            return reply
        target = urllib.parse.urljoin(url, location)
        if _origin(urllib.parse.urlsplit(target)) != origin:
            raise ReplyRefused(
                f"{url} redirects to another host or port ({target[:200]}); advlab follows "
                "same-host redirects only: use the final URL if you trust it"
            )
        if method != "GET" and reply.status not in (307, 308):
            raise ReplyRefused(
                f"{url} answers {method} with a {reply.status} redirect to {target[:200]}: "
                "use that URL"
            )
        url = target
    raise ReplyRefused(f"{url} redirects more than {MAX_REDIRECTS} times")


def _connection(parts: urllib.parse.SplitResult, timeout: float) -> tuple[Any, str]:
    """A connection for ``parts`` (through the environment's proxy unless loopback)."""
    host = parts.hostname or ""
    port = parts.port
    path = urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, ""))
    https = parts.scheme == "https"
    proxy = None
    if not is_loopback(host) and not urllib.request.proxy_bypass(host):
        proxy = urllib.request.getproxies().get(parts.scheme)
    kind = http.client.HTTPSConnection if https else http.client.HTTPConnection
    if proxy is None:
        return kind(host, port, timeout=timeout), path
    proxied = urllib.parse.urlsplit(proxy if "://" in proxy else "http://" + proxy)
    conn = http.client.HTTPConnection(proxied.hostname or "", proxied.port, timeout=timeout)
    if https:
        conn = http.client.HTTPSConnection(proxied.hostname or "", proxied.port, timeout=timeout)
        conn.set_tunnel(host, port)
        return conn, path
    return conn, urllib.parse.urlunsplit(parts._replace(fragment=""))


def _exchange(request: _Request, deadline: float, max_bytes: int) -> tuple[Reply, str | None]:
    """One request, no redirects followed: the reply, and where it redirects (or None)."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise DeadlineExceeded
    url = request.url
    conn, path = _connection(urllib.parse.urlsplit(url), remaining)
    expired = threading.Event()

    def _abort() -> None:  # unblocks a read that the socket timeout alone would not end
        expired.set()
        sock = conn.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    watchdog = threading.Timer(remaining, _abort)
    watchdog.daemon = True
    watchdog.start()
    try:
        conn.request(request.method, path, body=request.body, headers=request.headers)
        response = conn.getresponse()
        location = response.getheader("Location") if response.status in _REDIRECTS else None
        declared = response.getheader("Content-Length")
        if declared is not None and declared.strip().isdigit() and int(declared) > max_bytes:
            raise ReplyRefused(
                f"{url} announced a reply of {int(declared)} bytes, more than the "
                f"{max_bytes} this request can need"
            )
        chunks, size = [], 0
        while chunk := response.read1(_CHUNK):
            if expired.is_set():  # on Linux a shut-down socket still reads what arrives
                raise DeadlineExceeded
            size += len(chunk)
            if size > max_bytes:
                raise ReplyRefused(
                    f"{url} sent a reply of more than {max_bytes} bytes, more than this "
                    "request can need"
                )
            chunks.append(chunk)
        reply = Reply(response.status, str(response.reason or ""), b"".join(chunks))
    except DeadlineExceeded:
        raise
    except (OSError, http.client.HTTPException) as error:
        if expired.is_set() or isinstance(error, TimeoutError) or time.monotonic() >= deadline:
            raise DeadlineExceeded from None
        raise
    finally:
        watchdog.cancel()
        conn.close()
    if expired.is_set():
        raise DeadlineExceeded
    return reply, location
