"""The ASGI app: Starlette routes over a ``Service``, one JSON log line per request.

The guard's work is synchronous and CPU-bound, and the app calls it inline on the event loop rather than
in a thread pool: under the GIL a thread adds a hand-off to every call and no parallelism (measured in
benchmarks/RESULTS.md); parallelism comes from ``--workers``. Inline also means a request is never cut in
half by shutdown: an event's decision, audit record and commit run to the end before the loop moves on.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .._errors import PayguardError
from .metrics import CONTENT_TYPE_LATEST
from .openapi import openapi_document
from .service import Reply, Service

__all__ = ["create_app"]

JSON = "application/json"
# far above any event (a few kB) or a bank's fraud list of a million accounts, far below what hurts a worker
MAX_BODY = 64 * 1024 * 1024


class _BodyTooLargeError(PayguardError):
    """A request body past ``MAX_BODY``: answered 413 without reading the rest."""


async def _body(request: Request) -> bytes:
    """The request's body; ``_BodyTooLargeError`` past ``MAX_BODY`` (the rest is not read)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
        raise _BodyTooLargeError("body too large")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise _BodyTooLargeError("body too large")
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(
    service: Service,
    logger: Any,
    *,
    offload: bool = False,
    on_startup: Callable[[], None] | None = None,
) -> Starlette:
    """The app over ``service``. ``offload`` runs each call in Starlette's thread pool instead of inline
    (kept for the benchmark that compares the two). ``on_startup`` runs once the loop is running."""

    def answer(
        request: Request, route: str, reply: Reply, started: float, *, probe: bool = False
    ) -> Response:
        """The reply as JSON, and its log line: errors at error, refusals at warning, probes at debug."""
        status = reply.status
        line = {"method": request.method, "route": route, "status": status, **reply.log}
        line["ms"] = round((time.perf_counter() - started) * 1000, 3)
        if reply.error is not None:
            logger.error("request", **line, internal_error=reply.error)
        elif status >= 400:
            logger.warning("request", **line)
        elif probe:  # health checks and scrapes every few seconds would bury the decisions
            logger.debug("request", **line)
        else:
            logger.info("request", **line)
        return Response(orjson.dumps(reply.body), status, media_type=JSON)

    async def call(function: Callable[..., Reply], *args: Any) -> Reply:
        if offload:
            return await run_in_threadpool(function, *args)
        return function(*args)

    async def decisions(request: Request) -> Response:
        started = time.perf_counter()
        body = await _body(request)
        return answer(request, "/v1/decisions", await call(service.decide, body), started)

    async def resolution(request: Request) -> Response:
        started = time.perf_counter()
        body = await _body(request)
        reply = await call(service.resolve, request.path_params["decision_id"], body)
        return answer(request, "/v1/decisions/{decision_id}/resolution", reply, started)

    async def lists(request: Request) -> Response:
        started = time.perf_counter()
        body = await _body(request)
        reply = await call(service.set_list, request.path_params["name"], body)
        return answer(request, "/v1/lists/{name}", reply, started)

    async def ruleset(request: Request) -> Response:
        return answer(request, "/v1/ruleset", service.ruleset_info(), time.perf_counter())

    async def reload(request: Request) -> Response:
        started = time.perf_counter()
        return answer(request, "/v1/ruleset/reload", await call(service.reload), started)

    async def health(request: Request) -> Response:
        return answer(request, "/health", service.health(), time.perf_counter(), probe=True)

    async def ready(request: Request) -> Response:
        started = time.perf_counter()
        return answer(request, "/ready", await call(service.ready), started, probe=True)

    async def metrics(request: Request) -> Response:
        started = time.perf_counter()
        text = service.metrics.exposition()
        answer(request, "/metrics", Reply(200, None), started, probe=True)
        return Response(text, media_type=CONTENT_TYPE_LATEST)

    async def openapi(request: Request) -> Response:
        answer(request, "/openapi.json", Reply(200, None), time.perf_counter(), probe=True)
        return Response(orjson.dumps(openapi_document()), media_type=JSON)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        reply = Reply(exc.status_code, {"errors": [{"loc": "path", "msg": exc.detail, "code": "http"}]})
        return answer(request, request.url.path[:200], reply, time.perf_counter())

    async def too_large(request: Request, _exc: Exception) -> Response:
        message = f"the body is larger than {MAX_BODY:,} bytes"
        reply = Reply(413, {"errors": [{"loc": "body", "msg": message, "code": "too_large"}]})
        return answer(request, request.url.path[:200], reply, time.perf_counter())

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        if on_startup is not None:
            on_startup()
        yield

    routes = [
        Route("/v1/decisions", decisions, methods=["POST"]),
        Route("/v1/decisions/{decision_id}/resolution", resolution, methods=["POST"]),
        Route("/v1/lists/{name}", lists, methods=["PUT"]),
        Route("/v1/ruleset", ruleset, methods=["GET"]),
        Route("/v1/ruleset/reload", reload, methods=["POST"]),
        Route("/health", health, methods=["GET"]),
        Route("/ready", ready, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
    ]
    handlers: dict[Any, Callable[[Request, Exception], Awaitable[Response]]] = {
        HTTPException: http_error,
        _BodyTooLargeError: too_large,
    }
    return Starlette(routes=routes, exception_handlers=handlers, lifespan=lifespan)
