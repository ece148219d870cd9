"""Each HTTP request the app answers: its id, its route, how it ended, logged and counted.

:class:`RequestMiddleware` wraps the whole server, outside the login, so every response (a
401 or a 414 included) carries an ``X-Request-ID`` header, makes one log line and is counted
in the metrics. The id is the client's own ``X-Request-ID`` when it sends a plain one (so a
request can be followed from a load balancer or a client's log into ours), or a new one.
While a request is served its id is bound to every JSON log line (:func:`assistant.logs.bound`),
and a route that resolves a collection notes it (:func:`note_collection`) for the request's
line.
"""

from __future__ import annotations

import contextvars
import logging
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

from ..logs import bound
from .metrics import Metrics

__all__ = [
    "REQUEST_ID_HEADER",
    "UNROUTED",
    "RequestMiddleware",
    "note_collection",
    "request_id",
    "route_template",
]

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-ID"
UNROUTED = "(unrouted)"  # the route of a request that no route answered (a 404, a 401)
# What a client's id may be: a token (UUIDs, trace ids, base64), bounded, nothing that could
# break a header or a log line. Anything else is replaced, never echoed.
_CLIENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/+=@-]{0,127}")
_MAX_LOGGED_PATH = 256
_CLIENT_CLOSED = 499


@dataclass
class _Request:
    """What the log line of the request being served says; filled in as it is served."""

    id: str
    collection: str | None = None


_current: contextvars.ContextVar[_Request | None] = contextvars.ContextVar(
    "nexus_request", default=None
)


def request_id(header: str | None) -> str:
    """The id a request goes by: the client's ``X-Request-ID`` when it is a token of at most
    128 letters, digits and ``._:/+=@-``, else a new random one (32 hex digits)."""
    if header is not None and _CLIENT_ID.fullmatch(header):
        return header
    return uuid.uuid4().hex


def note_collection(name: str) -> None:
    """Name the collection the request being served answers from, in its log line."""
    request = _current.get()
    if request is not None:
        request.collection = name


def route_template(scope: dict[str, Any]) -> str:
    """The template of the route that answered (``/api/search``,
    ``/gradio_api/file={path_or_url}``), or :data:`UNROUTED`; Gradio's mounted apps (its
    MCP server) keep their mount's prefix."""
    template = getattr(scope.get("route"), "path_format", None)
    if not isinstance(template, str):
        return UNROUTED
    mounted = str(scope.get("root_path", ""))[len(str(scope.get("app_root_path", ""))) :]
    return mounted + template


class RequestMiddleware:
    """ASGI middleware giving each HTTP request an id, a log line and its place in the metrics.

    Plain ASGI, so streamed responses (Gradio's event streams) pass through untouched; a
    stream is timed to its last byte. The response is counted just before its last byte is
    sent, so a client that has its answer finds it counted.
    """

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app = app
        self._metrics = metrics

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = dict(scope.get("headers") or [])
        raw_id = headers.get(REQUEST_ID_HEADER.lower().encode())
        request = _Request(request_id(raw_id.decode("latin-1") if raw_id is not None else None))
        token = _current.set(request)
        status: int | None = None
        finished = False

        def finish() -> None:
            nonlocal finished
            if not finished:
                finished = True
                # No response at all: the client closed the request first (nginx's 499).
                answered = status if status is not None else _CLIENT_CLOSED
                self._record(scope, request, answered, time.perf_counter() - started)

        async def send_noted(message: dict[str, Any]) -> None:
            nonlocal status
            kind = message["type"]
            if kind == "http.response.start":
                status = int(message["status"])
                identity = (REQUEST_ID_HEADER.lower().encode(), request.id.encode())
                message = {**message, "headers": [*message.get("headers", []), identity]}
            elif (
                kind == "http.response.body" and not message.get("more_body", False)
            ) or kind == "http.response.pathsend":
                finish()
            await send(message)

        try:
            with bound(request_id=request.id):
                try:
                    await self.app(scope, receive, send_noted)
                except Exception:
                    if status is None:  # answer the client ourselves: the 500 carries the id
                        await send_noted(_ERROR_START)
                        await send_noted(_ERROR_BODY)
                    raise
                finally:
                    finish()  # a client that left mid-stream is counted as it left
        finally:
            _current.reset(token)

    def _record(self, scope: Any, request: _Request, status: int, seconds: float) -> None:
        method, route = str(scope.get("method", "")), route_template(scope)
        self._metrics.request(method, route, status, seconds)
        path = str(scope.get("path", ""))[:_MAX_LOGGED_PATH]
        client = scope.get("client")
        fields = {
            "request_id": request.id,
            "method": method,
            "path": path,
            "route": route,
            "status": status,
            "duration_ms": round(seconds * 1000, 1),
            "collection": request.collection,
            "client": client[0] if client else None,
        }
        where = f", collection {request.collection}" if request.collection else ""
        log.info(
            "%s %s %d %.1f ms (request %s%s)",
            method,
            path,
            status,
            seconds * 1000,
            request.id,
            where,
            extra={"fields": fields},
        )


_ERROR_TEXT = b"Internal Server Error"
_ERROR_START = {
    "type": "http.response.start",
    "status": 500,
    "headers": [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(_ERROR_TEXT)).encode()),
    ],
}
_ERROR_BODY = {"type": "http.response.body", "body": _ERROR_TEXT}
