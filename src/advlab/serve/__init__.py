"""Serve a model over HTTP (an ASGI app on uvicorn), to attack it as a black box.

``advlab serve`` runs :func:`run_server`; :class:`advlab.targets.HttpTarget` is the client.
"""

from advlab.serve.limits import DEFAULT_MAX_REQUEST_BYTES, ServeLimits
from advlab.serve.payload import RequestError
from advlab.serve.server import (
    PredictionServer,
    make_server,
    run_server,
    serve,
    start_server_in_thread,
)
from advlab.serve.service import ModelService

__all__ = [
    "DEFAULT_MAX_REQUEST_BYTES",
    "ModelService",
    "PredictionServer",
    "RequestError",
    "ServeLimits",
    "make_server",
    "run_server",
    "serve",
    "start_server_in_thread",
]
