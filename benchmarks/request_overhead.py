"""What one request costs the server in metrics and logging: the request middleware around an
app that answers at once, against that app alone.

Each request goes through :class:`~assistant.web.requests.RequestMiddleware` exactly as in
the server (a request id, the route, the counters and histogram, the log line), in one
process with no network, so the difference is the middleware's own CPU time. The log line
is formatted as text and as JSON and written to a discarded stream.

    python -m benchmarks.request_overhead --requests 20000 \
        --json benchmarks/results/request-overhead.json
"""

from __future__ import annotations

import argparse
import asyncio
import io
import logging
import time
from pathlib import Path
from typing import Any

from assistant.logs import TEXT_FORMAT, JsonFormatter
from assistant.web.metrics import Metrics
from assistant.web.requests import RequestMiddleware
from benchmarks.common import command_line, machine, report


class _Route:
    path_format = "/api/search"


async def _answer(scope: Any, receive: Any, send: Any) -> None:
    """An app that answers at once, as a router would after matching ``/api/search``."""
    scope["route"] = _Route()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


async def _requests(app: Any, n: int) -> float:
    """Seconds per request of ``app`` over ``n`` requests."""

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        return None

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/api/search",
        "headers": [(b"host", b"127.0.0.1")],
        "client": ("127.0.0.1", 50000),
    }
    started = time.perf_counter()
    for _ in range(n):
        await app(dict(scope), receive, send)
    return (time.perf_counter() - started) / n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    requests_log = logging.getLogger("assistant.web.requests")
    requests_log.setLevel(logging.INFO)
    requests_log.propagate = False
    handler = logging.StreamHandler(io.StringIO())
    requests_log.addHandler(handler)

    def per_request(app: Any) -> float:
        handler.stream = io.StringIO()  # discard what the last round wrote
        asyncio.run(_requests(app, args.requests // 10))  # warm up
        return asyncio.run(_requests(app, args.requests))

    bare = per_request(_answer)
    rows = {"bare app": bare}
    for name, formatter in (("text", logging.Formatter(TEXT_FORMAT)), ("json", JsonFormatter())):
        handler.setFormatter(formatter)
        rows[f"middleware, {name} log"] = per_request(RequestMiddleware(_answer, Metrics()))
    requests_log.disabled = True
    rows["middleware, no log"] = per_request(RequestMiddleware(_answer, Metrics()))
    results = {
        "command": command_line("benchmarks.request_overhead", argv),
        "requests": args.requests,
        "microseconds_per_request": {k: round(v * 1e6, 1) for k, v in rows.items()},
        "middleware_microseconds": {k: round((v - bare) * 1e6, 1) for k, v in rows.items()},
        "machine": machine(),
    }
    report(results, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
