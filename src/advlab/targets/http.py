"""A model behind an HTTP endpoint (``advlab serve``) as a black-box target.

The wire format: ``POST /predict`` with JSON ``{"npy": <base64 .npy float32 (N, C, H, W)>,
"output": "scores" | "labels"}``, answered by ``{"scores": [[...]], "queries": total}`` or
``{"labels": [...], "queries": total}``; ``GET /info`` describes the model and the server's
limits. Only the standard library is used (http.client, see
:mod:`advlab.targets.http_transport`), so no web client is needed.

Nothing the endpoint says is trusted: each request has a total deadline (``timeout``) and
the whole target one too (``total_timeout``), replies are read only up to what the batch
needs, ``num_classes`` is capped, redirects are followed to the same host only, and scores
must be probabilities unless ``/info`` declares them logits (:mod:`advlab.targets.replies`).

Query counts: :attr:`HttpTarget.queries` counts each image once per answered call, like
every :class:`Target`, however many retries the call took; the attack's ``QueryBudget``
charges once per image asked. The server counts every image it answers. In the normal
case both counts are equal (:attr:`HttpTarget.server_queries` is the server's total as
last reported). When a request fails after the server has answered it (the answer was
lost on the way back and the request is retried, or a later chunk of the same call
fails), the server counts more than the client: it did the work, the attack never saw it.
"""

from __future__ import annotations

import base64
import http.client
import io
import json
import logging
import math
import time
import urllib.parse
from typing import Any

import numpy as np
import torch

from advlab.errors import AdvlabError, check
from advlab.targets.base import BudgetExceeded, OutputKind, Target
from advlab.targets.http_transport import DeadlineExceeded, ReplyRefused, fetch
from advlab.targets.replies import (
    MAX_INFO_BYTES,
    TargetUnavailable,
    check_info,
    class_names,
    parse_labels,
    parse_object,
    parse_scores,
    reply_limit,
)

log = logging.getLogger(__name__)

# Room left in a request for the JSON wrapper and the .npy header.
_ENVELOPE_BYTES = 512

__all__ = ["HttpTarget", "QueryLimitReached", "TargetRejected", "TargetUnavailable", "encode_npy"]


class TargetRejected(AdvlabError):
    """The endpoint refused a request (HTTP 4xx); the message carries the server's reason."""


class QueryLimitReached(BudgetExceeded):
    """A call would take the target past its ``max_total_queries``."""


def encode_npy(images: torch.Tensor) -> str:
    """Base64 of a float32 ``.npy`` file holding ``images`` (N, C, H, W)."""
    buffer = io.BytesIO()
    np.save(buffer, images.detach().to("cpu", torch.float32).contiguous().numpy())
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _first_line(value: object, limit: int = 200) -> str:
    text = str(value).strip()
    return (text.splitlines()[0] if text else type(value).__name__)[:limit]


class HttpTarget(Target):
    """A classifier served over HTTP, for example by ``advlab serve``.

    ``output=None`` takes the server's mode from ``GET /info``. Calls are split into
    requests of at most ``batch_size`` images (fewer if the server's ``max_batch`` or
    request-size limit requires). Each request must be answered in full within
    ``timeout`` seconds; one that is not is not retried (the server may still be working
    on it). Connection errors and 5xx answers are retried ``retries`` times with
    exponential backoff. ``total_timeout`` bounds the time all requests of this target
    take together (None: no bound). ``max_total_queries`` caps the images it will send.
    """

    def __init__(
        self,
        url: str,
        output: OutputKind | None = None,
        timeout: float = 10.0,
        retries: int = 2,
        batch_size: int = 64,
        max_total_queries: int | None = None,
        *,
        backoff: float = 0.25,
        total_timeout: float | None = None,
    ) -> None:
        super().__init__()
        parsed = urllib.parse.urlsplit(url.strip())
        check(parsed.scheme in ("http", "https") and bool(parsed.hostname),
              f"'{url}' is not an http(s) URL: use e.g. http://127.0.0.1:8000")  # fmt: skip
        check(timeout > 0, f"timeout must be > 0 seconds, got {timeout}")
        check(total_timeout is None or total_timeout > 0,
              f"total_timeout must be > 0 seconds, got {total_timeout}")  # fmt: skip
        check(retries >= 0, f"retries must be >= 0, got {retries}")
        check(batch_size >= 1, f"batch_size must be >= 1, got {batch_size}")
        check(max_total_queries is None or max_total_queries >= 0,
              f"max_total_queries must be >= 0, got {max_total_queries}")  # fmt: skip
        path = parsed.path.rstrip("/")
        # Accept the URL of an endpoint as well as the server's root.
        for suffix in ("/predict", "/info", "/health"):
            path = path.removesuffix(suffix)
        self.url = urllib.parse.urlunsplit((parsed.scheme, parsed.netloc, path, "", ""))
        self.timeout = float(timeout)
        self.total_timeout = total_timeout
        self.retries = int(retries)
        self.backoff = float(backoff)
        self.max_total_queries = max_total_queries
        self._run_deadline = None if total_timeout is None else time.monotonic() + total_timeout

        info = self.info()
        self.name = str(info["name"])[:200]
        self.input_shape = tuple(info["input_shape"])
        self.num_classes = int(info["num_classes"])
        self.class_names = class_names(info, self.num_classes)
        self.score_kind = info.get("scores", "probabilities")
        self.server_output: OutputKind = info["output"]
        self.server_queries = int(info["queries"])
        chosen = output or self.server_output
        check(chosen in ("scores", "labels"), f"unknown output '{chosen}': use scores or labels")
        check(not (chosen == "scores" and self.server_output == "labels"),
              f"the server at {self.url} answers labels only: use output='labels' "
              "and a decision-based attack")  # fmt: skip
        self.output = chosen
        self.batch_size = self._fit_batch(batch_size, info)

    def _fit_batch(self, batch_size: int, info: dict[str, Any]) -> int:
        size = batch_size
        server_batch = info.get("max_batch")
        if type(server_batch) is int and server_batch > 0:
            size = min(size, server_batch)
        limit = info.get("max_request_bytes")
        if type(limit) is int and limit > 0:
            image_bytes = 4 * math.prod(self.input_shape)
            fits = int(((limit - _ENVELOPE_BYTES) * 3 / 4) // image_bytes)
            check(fits >= 1,
                  f"one image ({image_bytes} bytes) does not fit the server's request limit of "
                  f"{limit} bytes: raise the server's max_request_bytes")  # fmt: skip
            size = min(size, fits)
        return max(1, size)

    def info(self) -> dict[str, Any]:
        """The server's ``GET /info`` answer, checked to describe a classifier."""
        info = self._request("GET", "/info", max_bytes=MAX_INFO_BYTES)
        return check_info(info, self.url + "/info")

    def _scores(self, images: torch.Tensor) -> torch.Tensor:
        return self._predict(images, "scores")

    def _labels(self, images: torch.Tensor) -> torch.Tensor:
        return self._predict(images, "labels")

    def _predict(self, images: torch.Tensor, kind: OutputKind) -> torch.Tensor:
        check(images.dim() == 4 and tuple(images.shape[1:]) == self.input_shape,
              f"images have shape {tuple(images.shape)} but {self.url} expects "
              f"(N, {', '.join(map(str, self.input_shape))})")  # fmt: skip
        count = images.shape[0]
        if self.max_total_queries is not None and self.queries + count > self.max_total_queries:
            raise QueryLimitReached(
                f"{count} more queries would pass max_total_queries={self.max_total_queries} "
                f"({self.queries} used): raise the limit or lower the attack's max_queries"
            )
        parts = [
            self._predict_chunk(images[start : start + self.batch_size], kind)
            for start in range(0, count, self.batch_size)
        ]
        if not parts:
            shape = (0, self.num_classes) if kind == "scores" else (0,)
            return torch.zeros(shape, dtype=torch.float32 if kind == "scores" else torch.int64)
        return torch.cat(parts)

    def _predict_chunk(self, images: torch.Tensor, kind: OutputKind) -> torch.Tensor:
        body = json.dumps({"npy": encode_npy(images), "output": kind}).encode()
        count = images.shape[0]
        limit = reply_limit(count, self.num_classes, kind)
        reply = self._request("POST", "/predict", body, max_bytes=limit)
        where = self.url + "/predict"
        if kind == "scores":
            result = parse_scores(reply, count, self.num_classes, where, self.score_kind)
        else:
            result = parse_labels(reply, count, self.num_classes, where)
        served = reply.get("queries")
        if type(served) is int:
            self.server_queries = served
        return result

    def _deadline(self, url: str) -> float:
        """This request's deadline: ``timeout`` from now, or the run's, if sooner."""
        deadline = time.monotonic() + self.timeout
        if self._run_deadline is None:
            return deadline
        if time.monotonic() >= self._run_deadline:
            raise TargetUnavailable(
                f"{url}: the target's total_timeout of {self.total_timeout:g} s is spent; "
                "raise total_timeout or query less"
            )
        return min(deadline, self._run_deadline)

    def _request(
        self, method: str, path: str, body: bytes | None = None, *, max_bytes: int
    ) -> dict[str, Any]:
        """One JSON request with retries; returns the decoded JSON object."""
        url = self.url + path
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        problem = "no attempt made"
        for attempt in range(self.retries + 1):
            deadline = self._deadline(url)
            try:
                reply = fetch(method, url, body, headers, deadline, max_bytes)
            except DeadlineExceeded:
                if self._run_deadline is not None and time.monotonic() >= self._run_deadline:
                    self._deadline(url)  # raises: the whole target's time is spent
                raise TargetUnavailable(
                    f"{url} did not answer within {self.timeout:g} s: the server is "
                    "overloaded or stuck; raise timeout or check the server"
                ) from None
            except ReplyRefused as error:
                raise TargetUnavailable(str(error)) from None
            except (http.client.HTTPException, OSError) as error:
                problem = _first_line(error)
            else:
                if reply.status < 300:
                    return parse_object(reply.body, url)
                message = _error_message(reply.body, reply.reason)
                if reply.status < 500:
                    hint = ": lower batch_size" if reply.status == 413 else ""
                    raise TargetRejected(
                        f"{url} refused the request with HTTP {reply.status}: {message}{hint}"
                    )
                problem = f"HTTP {reply.status}: {message}"
            if attempt < self.retries:
                delay = self.backoff * 2**attempt
                if self._run_deadline is not None:
                    delay = min(delay, max(0.0, self._run_deadline - time.monotonic()))
                log.info("%s %s failed (%s); retrying in %.2f s", method, url, problem, delay)
                time.sleep(delay)
        raise TargetUnavailable(
            f"cannot get an answer from {url} after {self.retries + 1} tries ({problem}): "
            "is the server running at that address?"
        )


def _error_message(body: bytes, reason: str) -> str:
    try:
        payload = json.loads(body or b"{}")
        message = payload.get("error") if isinstance(payload, dict) else None
    except (ValueError, RecursionError):
        message = None
    return _first_line(message or reason or "no message")
