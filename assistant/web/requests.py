"""Each HTTP request the app answers: its route, how it ended, counted in the metrics.

:class:`RequestMiddleware` wraps the whole server, outside the login, so every response (a
401 or a 414 included) is counted.
"""

from __future__ import annotations

import time
from typing import Any

from .metrics import Metrics

__all__ = ["UNROUTED", "RequestMiddleware", "route_template"]

UNROUTED = "(unrouted)"  # the route of a request that no route answered (a 404, a 401)
_CLIENT_CLOSED = 499


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
    """ASGI middleware giving each HTTP request its place in the metrics.

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
        status: int | None = None
        finished = False

        def finish() -> None:
            nonlocal finished
            if not finished:
                finished = True
                # No response at all: the client closed the request first (nginx's 499).
                answered = status if status is not None else _CLIENT_CLOSED
                method, route = str(scope.get("method", "")), route_template(scope)
                self._metrics.request(method, route, answered, time.perf_counter() - started)

        async def send_noted(message: dict[str, Any]) -> None:
            nonlocal status
            kind = message["type"]
            if kind == "http.response.start":
                status = int(message["status"])
            elif (
                kind == "http.response.body" and not message.get("more_body", False)
            ) or kind == "http.response.pathsend":
                finish()
            await send(message)

        try:
            await self.app(scope, receive, send_noted)
        except Exception:
            if status is None:  # Starlette answers 500 outside of us
                status = 500
            raise
        finally:
            finish()  # a client that left mid-stream is counted as it left
