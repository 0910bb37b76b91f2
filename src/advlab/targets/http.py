"""A model behind an HTTP endpoint (``advlab serve``) as a black-box target.

The wire format: ``POST /predict`` with JSON ``{"npy": <base64 .npy float32 (N, C, H, W)>,
"output": "scores" | "labels"}``, answered by ``{"scores": [[...]], "queries": total}`` or
``{"labels": [...], "queries": total}``; ``GET /info`` describes the model and the server's
limits. Only the standard library is used (urllib), so no web client is needed.

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
import ipaddress
import json
import logging
import math
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import numpy as np
import torch

from advlab.errors import AdvlabError, check
from advlab.targets.base import BudgetExceeded, OutputKind, Target

log = logging.getLogger(__name__)

# Room left in a request for the JSON wrapper and the .npy header.
_ENVELOPE_BYTES = 512


class TargetUnavailable(AdvlabError):
    """The endpoint is down, too slow, or answered with something that is not a valid reply."""


class TargetRejected(AdvlabError):
    """The endpoint refused a request (HTTP 4xx); the message carries the server's reason."""


class QueryLimitReached(BudgetExceeded):
    """A call would take the target past its ``max_total_queries``."""


def encode_npy(images: torch.Tensor) -> str:
    """Base64 of a float32 ``.npy`` file holding ``images`` (N, C, H, W)."""
    buffer = io.BytesIO()
    np.save(buffer, images.detach().to("cpu", torch.float32).contiguous().numpy())
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _first_line(value: object, limit: int = 200) -> str:
    text = str(value).strip()
    return (text.splitlines()[0] if text else type(value).__name__)[:limit]


class HttpTarget(Target):
    """A classifier served over HTTP, for example by ``advlab serve``.

    ``output=None`` takes the server's mode from ``GET /info``. Calls are split into
    requests of at most ``batch_size`` images (fewer if the server's ``max_batch`` or
    request-size limit requires). Connection errors and 5xx answers are retried
    ``retries`` times with exponential backoff; a request that takes longer than
    ``timeout`` seconds is not retried (the server may still be working on it).
    ``max_total_queries`` caps the images this target will ever send.
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
    ) -> None:
        super().__init__()
        parsed = urllib.parse.urlsplit(url.strip())
        check(parsed.scheme in ("http", "https") and bool(parsed.hostname),
              f"'{url}' is not an http(s) URL: use e.g. http://127.0.0.1:8000")  # fmt: skip
        check(timeout > 0, f"timeout must be > 0 seconds, got {timeout}")
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
        self.retries = int(retries)
        self.backoff = float(backoff)
        self.max_total_queries = max_total_queries
        # Proxies from the environment would intercept requests to a local server.
        handlers = [urllib.request.ProxyHandler({})] if _is_loopback(parsed.hostname or "") else []
        self._opener = urllib.request.build_opener(*handlers)

        info = self.info()
        self.name = str(info["name"])
        self.input_shape = tuple(info["input_shape"])
        self.num_classes = int(info["num_classes"])
        names = info.get("class_names")
        self.class_names = (
            [str(n) for n in names]
            if isinstance(names, list) and len(names) == self.num_classes
            else [str(i) for i in range(self.num_classes)]
        )
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
        size = min(batch_size, int(info.get("max_batch") or batch_size))
        limit = info.get("max_request_bytes")
        if isinstance(limit, int) and limit > 0:
            image_bytes = 4 * math.prod(self.input_shape)
            fits = int(((limit - _ENVELOPE_BYTES) * 3 / 4) // image_bytes)
            check(fits >= 1,
                  f"one image ({image_bytes} bytes) does not fit the server's request limit of "
                  f"{limit} bytes: raise the server's max_request_bytes")  # fmt: skip
            size = min(size, fits)
        return max(1, size)

    def info(self) -> dict[str, Any]:
        """The server's ``GET /info`` answer, checked to describe a classifier."""
        info = self._request("GET", "/info")
        shape = info.get("input_shape")
        valid = (
            isinstance(shape, list)
            and len(shape) == 3
            and all(isinstance(v, int) and v > 0 for v in shape)
            and isinstance(info.get("num_classes"), int)
            and info["num_classes"] > 0
            and info.get("output") in ("scores", "labels")
            and isinstance(info.get("queries"), int)
            and "name" in info
        )
        if not valid:
            raise TargetUnavailable(
                f"{self.url}/info did not describe a model (expected name, input_shape, "
                "num_classes, output, queries): is this an advlab server?"
            )
        return info

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
        reply = self._request("POST", "/predict", body)
        count = images.shape[0]
        try:
            if kind == "scores":
                values = np.asarray(reply["scores"], dtype=np.float32)
                valid = values.shape == (count, self.num_classes) and bool(
                    np.isfinite(values).all()
                )
                result = torch.from_numpy(values)
            else:
                labels = np.asarray(reply["labels"])
                valid = labels.shape == (count,) and labels.dtype.kind in "iu"
                result = torch.from_numpy(labels.astype(np.int64))
                valid = valid and bool(((result >= 0) & (result < self.num_classes)).all())
        except (KeyError, TypeError, ValueError):
            valid = False
        if not valid:
            raise TargetUnavailable(
                f"{self.url}/predict answered without valid {kind} for {count} images "
                f"and {self.num_classes} classes: check that the server is an advlab server"
            )
        served = reply.get("queries")
        if isinstance(served, int):
            self.server_queries = served
        return result

    def _request(self, method: str, path: str, body: bytes | None = None) -> dict[str, Any]:
        """One JSON request with retries; returns the decoded JSON object."""
        url = self.url + path
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        problem = "no attempt made"
        for attempt in range(self.retries + 1):
            request = urllib.request.Request(url, data=body, headers=headers, method=method)
            try:
                with self._opener.open(request, timeout=self.timeout) as response:
                    raw = response.read()
                break
            except urllib.error.HTTPError as error:
                message = self._error_message(error)
                if error.code < 500:
                    hint = ": lower batch_size" if error.code == 413 else ""
                    raise TargetRejected(
                        f"{url} refused the request with HTTP {error.code}: {message}{hint}"
                    ) from None
                problem = f"HTTP {error.code}: {message}"
            except (TimeoutError, urllib.error.URLError) as error:
                reason = getattr(error, "reason", error)
                if isinstance(error, TimeoutError) or isinstance(reason, TimeoutError):
                    raise TargetUnavailable(
                        f"{url} did not answer within {self.timeout:g} s: the server is "
                        "overloaded or stuck; raise timeout or check the server"
                    ) from None
                problem = _first_line(reason)
            except (http.client.HTTPException, ConnectionError, OSError) as error:
                problem = _first_line(error)
            if attempt < self.retries:
                delay = self.backoff * 2**attempt
                log.info("%s %s failed (%s); retrying in %.2f s", method, url, problem, delay)
                time.sleep(delay)
        else:
            raise TargetUnavailable(
                f"cannot get an answer from {url} after {self.retries + 1} tries ({problem}): "
                "is the server running at that address?"
            )
        try:
            reply = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError):
            reply = None
        if not isinstance(reply, dict):
            raise TargetUnavailable(
                f"{url} answered with something that is not a JSON object "
                f"({raw[:60]!r}): check that the URL points at an advlab server"
            )
        return reply

    @staticmethod
    def _error_message(error: urllib.error.HTTPError) -> str:
        try:
            payload = json.loads(error.read() or b"{}")
            message = payload.get("error") if isinstance(payload, dict) else None
        except (OSError, ValueError):
            message = None
        return _first_line(message or error.reason or "no message")
