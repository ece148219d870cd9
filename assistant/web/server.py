"""The web app: the Gradio chat UI, its MCP server and a small REST API on one FastAPI server.

Routes::

    /                 the chat UI (Gradio); its API endpoints ``/ask`` and ``/search`` for
                      gradio_client
    /gradio_api/mcp/  the MCP server (streamable HTTP): the tools ``ask`` and ``search``
    /api/search       GET ?q=&k=&mode=&category=&collection=  → JSON hits
    /api/health       GET → each collection: index loaded, counts, model, build time, what
                      the last build took in, the watcher, corpus changed since?
    /api/documents    GET ?q=&limit=&offset=&collection=  → what was indexed, and skipped (why)
    /api/document     GET ?source=&collection=  → one indexed document as JSON
    /document         GET ?source=&start=&end=&q=&collection=  → the document view (HTML)
    /metrics          GET → Prometheus metrics (see ``metrics``)
    /docs, /openapi.json   the REST API's OpenAPI description

One server answers from one or several collections (indexes), each by name; requests that
name none go to the first. Optional HTTP basic auth (``NEXUS_AUTH_USER`` /
``NEXUS_AUTH_PASSWORD``) guards every route, Gradio's, MCP's and the metrics included, because
it is enforced as middleware around the whole server. Around it, every response gets an
``X-Request-ID``, a log line and its count in the metrics (see ``requests``).

This module deliberately has no ``from __future__ import annotations``: FastAPI reads the route
signatures at runtime, including limits taken from the settings.
"""

import base64
import binascii
import contextlib
import html
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

from fastapi import FastAPI, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from ..build import kept_settings, prepare_index
from ..config import SearchMode, Settings
from ..errors import (
    AssistantError,
    CollectionNotFoundError,
    CollectionUnavailableError,
    ConfigError,
    DocumentNotFoundError,
    IndexMismatchError,
    QueryError,
    StoreError,
)
from ..logs import LogFormat, use_log_format
from ..search.query import MAX_FILTER_CHARS, MAX_K
from .collections import DEFAULT_NAME, Collections
from .metrics import Metrics
from .render import document_url, hit_dict, render_document
from .requests import RequestMiddleware, note_collection
from .service import FeedbackLog, NexusService

if TYPE_CHECKING:
    from ..encoders import Encoder
    from ..search.assistant import Assistant

__all__ = [
    "AUTH_PASSWORD_ENV",
    "AUTH_USER_ENV",
    "BasicAuthMiddleware",
    "PathLengthMiddleware",
    "auth_from_env",
    "create_app",
    "serve",
]

log = logging.getLogger(__name__)

AUTH_USER_ENV = "NEXUS_AUTH_USER"
AUTH_PASSWORD_ENV = "NEXUS_AUTH_PASSWORD"
MAX_PATH_CHARS = 1024  # well above any path the app serves, below file-name limits

# The document view shows untrusted text: forbid every script, plugin, frame and remote load.
_DOCUMENT_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'none'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'self'"
)


def auth_from_env(environ: Mapping[str, str]) -> tuple[str, str] | None:
    """Basic-auth credentials from ``NEXUS_AUTH_USER`` and ``NEXUS_AUTH_PASSWORD``, if set.

    Raises:
        ConfigError: Only one of the two is set, or one is empty.
    """
    user, password = environ.get(AUTH_USER_ENV), environ.get(AUTH_PASSWORD_ENV)
    if user is None and password is None:
        return None
    if not user or not password:
        raise ConfigError(
            f"set both {AUTH_USER_ENV} and {AUTH_PASSWORD_ENV} (non-empty) to require a login, "
            "or neither to serve without one"
        )
    return user, password


class BasicAuthMiddleware:
    """ASGI middleware requiring HTTP basic auth on every HTTP and WebSocket request.

    Written as plain ASGI (not Starlette's BaseHTTPMiddleware) so streamed responses, such as
    Gradio's server-sent events, pass through untouched.
    """

    def __init__(self, app: Any, username: str, password: str, realm: str = "Nexus") -> None:
        self.app = app
        self._expected = (username.encode(), password.encode())
        self._realm = realm

    def _authorized(self, header: bytes | None) -> bool:
        if not header or header[:6].lower() != b"basic ":
            return False
        try:
            user, _, password = base64.b64decode(header[6:].strip(), validate=True).partition(b":")
        except (binascii.Error, ValueError):
            return False
        # Compare both parts, always, in constant time.
        same_user = secrets.compare_digest(user, self._expected[0])
        same_password = secrets.compare_digest(password, self._expected[1])
        return same_user and same_password

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        header = dict(scope.get("headers") or []).get(b"authorization")
        if self._authorized(header):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        body = b"Authentication required: log in with the Nexus user name and password.\n"
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"www-authenticate", f'Basic realm="{self._realm}"'.encode()),
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class PathLengthMiddleware:
    """ASGI middleware answering 414 to request paths longer than any route Nexus serves.

    Some of Gradio's file routes turn an over-long file name into a server error (the file
    system refuses the name); refusing such paths up front keeps every answer a client error.
    """

    def __init__(self, app: Any, max_chars: int = MAX_PATH_CHARS) -> None:
        self.app = app
        self._max_chars = max_chars

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if (
            scope["type"] != "http"
            or len(scope.get("raw_path") or scope.get("path", "")) <= self._max_chars
        ):
            await self.app(scope, receive, send)
            return
        body = b"The request path is too long.\n"
        await send(
            {
                "type": "http.response.start",
                "status": 414,
                "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _json_error(status: int) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    """An exception handler that answers ``status`` with the error's message as ``detail``."""

    async def handler(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=status)

    return handler


def create_app(
    settings: Settings,
    *,
    nexus: "Assistant | None" = None,
    collections: Mapping[str, Path] | None = None,
    encoder: "Encoder | None" = None,
    corpus_dir: str | Path | None = None,
    feedback_log: str | Path | None = None,
    auth: tuple[str, str] | None = None,
    min_relevance: float | None = None,
    allow_rebuild: bool = False,
    watch: bool = False,
) -> FastAPI:
    """The FastAPI app serving the chat UI at ``/``, MCP and the REST API under ``/api``.

    Args:
        settings: Index folder and search defaults.
        nexus: An assistant already loaded (tests pass one built with a small encoder);
            ``Assistant.load(settings.index_dir)`` otherwise. Serves as the one collection
            ``default``.
        collections: Collection name → index folder, to serve several indexes (the first is
            the default); each is kept in step with the corpus its index was built from.
        encoder: A loaded encoder for the collections' indexes; by default each model is
            loaded once and shared by the collections it built.
        corpus_dir: The corpus the single index should reflect (for the staleness warning and
            the watcher); ``settings.corpus_dir`` by default.
        feedback_log: JSON-lines file that thumbs up/down votes are appended to.
        auth: ``(user, password)`` to require HTTP basic auth on every route.
        min_relevance: Override the model's calibrated "nothing relevant" floor.
        allow_rebuild: Show a button that updates the index from the corpus; anyone who can
            open the page can press it, so serve it behind ``auth`` or on localhost only.
        watch: Update each collection's index whenever files under its corpus change, while
            the app runs.

    Raises:
        AssistantError: No collection can be opened (for one index: the reason it cannot,
            such as ``IndexNotFoundError`` when nothing is built at ``settings.index_dir``).
    """
    import gradio as gr

    from .ui import UI_CSS, build_ui

    feedback = FeedbackLog(feedback_log) if feedback_log else None
    loaded: list[Encoder] = [encoder] if encoder is not None else []
    metrics = Metrics()

    def open_service(name: str, index_dir: Path) -> NexusService:
        if nexus is not None and collections is None:
            assistant = nexus
        else:
            assistant = _load_sharing(index_dir, settings.replace(index_dir=index_dir), loaded)
        corpus = (corpus_dir or settings.corpus_dir) if collections is None else None
        return NexusService(
            assistant,
            corpus_dir=corpus,
            feedback_log=feedback,
            min_relevance=min_relevance,
            name=name,
            observer=metrics.collection(name),
        )

    running = False

    def opened(service: NexusService) -> None:
        if watch and running:  # a collection that came online while the app runs
            service.start_watching()

    specs = dict(collections) if collections else {DEFAULT_NAME: settings.index_dir}
    served = Collections(specs, open_service, on_open=opened)
    if next(served.services(), None) is None:
        raise served.first_error()
    metrics.track(served)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        nonlocal running
        running = True
        if watch:
            for service in served.services():
                service.start_watching()
        try:
            yield
        finally:
            running = False
            for service in served.services():
                service.stop_watching()

    app = FastAPI(
        title="Nexus",
        summary="Semantic search over backend-engineering documentation, with sources.",
        version="0.1.0",
        docs_url="/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.collections = served
    app.state.service = next(served.services())  # the default's, when it is open

    # Each error a request can meet, as the status that says whose problem it is.
    statuses: dict[type[Exception], int] = {
        QueryError: 400,
        DocumentNotFoundError: 404,
        CollectionNotFoundError: 404,
        StoreError: 503,
        CollectionUnavailableError: 503,
    }
    for error, status in statuses.items():
        app.add_exception_handler(error, _json_error(status))

    max_chars = settings.max_query_chars
    pick = Query(
        max_length=MAX_FILTER_CHARS,
        description=f"Which collection: {', '.join(served.names)} (default {served.default})",
    )

    def link_name(service: NexusService) -> str | None:
        """The collection named in document addresses: none for the default."""
        return None if service.name == served.default else service.name

    def chosen(collection: str | None) -> NexusService:
        """The service of the collection a request names, noted in the request's log line."""
        service = served.get(collection)
        note_collection(service.name)
        return service

    @app.get("/api/search", tags=["search"])
    def api_search(
        q: Annotated[
            str,
            Query(description=f"The question or keywords, at most {max_chars:,} characters"),
        ],
        k: Annotated[int, Query(ge=1, le=MAX_K, description="Number of passages")] = (
            settings.top_k
        ),
        mode: Annotated[SearchMode | None, Query(description="hybrid, semantic or keyword")] = (
            None
        ),
        category: Annotated[
            str | None,
            Query(max_length=MAX_FILTER_CHARS, description="Only this top-level folder"),
        ] = None,
        collection: Annotated[str | None, pick] = None,
    ) -> dict[str, Any]:
        """The passages that best answer `q`, best first, each with its source and lines."""
        service = chosen(collection)
        started = time.perf_counter()
        hits = service.search(q, k, mode, category)
        return {
            "query": q,
            "mode": mode or service.settings.mode,
            "collection": service.name,
            "took_ms": round((time.perf_counter() - started) * 1000, 2),
            "hits": [hit_dict(h, link_name(service)) for h in hits],
        }

    @app.get("/api/health", tags=["status"])
    def api_health() -> dict[str, Any]:
        """Each collection's state: whether its index is loaded, its counts, model and build
        time, what its last build took in, what the watcher is doing (``watch``: the last
        failed update and why) and whether the corpus changed since (with the command to
        rebuild). The top level describes the default collection; ``status`` is ``degraded``
        when a collection cannot serve (its index cannot be opened, or the store holding its
        vectors, a Milvus server, is away)."""
        each = {name: _collection_health(served, name) for name in served.names}
        default = each[served.default]
        healthy = all(entry["status"] == "ok" for entry in each.values())
        return {**default, "status": "ok" if healthy else "degraded", "collections": each}

    @app.get("/api/documents", tags=["documents"])
    def api_documents(
        q: Annotated[
            str, Query(max_length=MAX_FILTER_CHARS, description="Only sources or titles with this")
        ] = "",
        limit: Annotated[int, Query(ge=1, le=MAX_K, description="Documents per page")] = 100,
        offset: Annotated[int, Query(ge=0, description="Documents to skip")] = 0,
        collection: Annotated[str | None, pick] = None,
    ) -> dict[str, Any]:
        """What was indexed: each document with its format, category and passage count (a
        page of them, by source), and every file the build skipped, with the reason."""
        service = chosen(collection)
        found = service.catalog(q)
        link = link_name(service)
        return {
            "total": len(found),
            "documents": [
                {**asdict(doc), "url": document_url(doc.source, collection=link)}
                for doc in found[offset : offset + limit]
            ],
            "skipped": [{"source": s, "reason": r} for s, r in service.skipped()],
        }

    @app.get("/api/document", tags=["documents"])
    def api_document(
        source: Annotated[str, Query(description="Source path as the index names it")],
        collection: Annotated[str | None, pick] = None,
    ) -> dict[str, Any]:
        """One indexed document. Only documents in the index are served; anything else,
        path tricks included, is 400 or 404."""
        service = chosen(collection)
        doc = service.document(source)
        return {
            "source": doc.source,
            "title": doc.title,
            "format": doc.format,
            "category": doc.category,
            "text": doc.text,
            "url": document_url(doc.source, collection=link_name(service)),
        }

    @app.get("/metrics", tags=["status"], response_class=Response)
    def prometheus_metrics(request: Request) -> Response:
        """Prometheus metrics: requests and latency per route, search latency per mode,
        replies answered, weak and refused, each collection's index (documents, passages,
        generation, build time, up), the builds this server ran and the changes it saw.
        OpenMetrics when the scraper asks for it, Prometheus text otherwise."""
        body, content_type = metrics.exposition(request.headers.get("accept", ""))
        return Response(body, headers={"Content-Type": content_type})

    @app.get("/document", response_class=HTMLResponse, include_in_schema=False)
    def document_view(
        source: str,
        start: Annotated[int | None, Query(ge=1)] = None,
        end: Annotated[int | None, Query(ge=1)] = None,
        q: Annotated[str, Query(max_length=max_chars)] = "",
        collection: Annotated[str | None, pick] = None,
    ) -> HTMLResponse:
        """The whole document with the passage's lines highlighted; nothing in it runs."""
        try:
            doc = chosen(collection).document(source)
        except (QueryError, CollectionNotFoundError) as exc:
            return _document_page("Not a document", html.escape(str(exc)), 400)
        except DocumentNotFoundError as exc:
            return _document_page("Not found", html.escape(str(exc)), 404)
        except CollectionUnavailableError as exc:
            return _document_page("Unavailable", html.escape(str(exc)), 503)
        return _document_page(doc.title, render_document(doc, start, end, q), 200)

    def _document_page(title: str, body: str, status_code: int) -> HTMLResponse:
        page = (
            '<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(title)} · Nexus</title>"
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<style>{UI_CSS}{_PAGE_CSS}</style></head><body>"
            f'<nav><a href="/">← Nexus</a></nav>{body}</body></html>'
        )
        return HTMLResponse(
            page,
            status_code=status_code,
            headers={"Content-Security-Policy": _DOCUMENT_CSP, "X-Content-Type-Options": "nosniff"},
        )

    blocks = build_ui(served, allow_rebuild=allow_rebuild, live_status=watch)
    app = cast(
        FastAPI,
        gr.mount_gradio_app(
            app, blocks, path="/", css=UI_CSS, footer_links=["api"], mcp_server=True
        ),
    )
    if not getattr(blocks, "mcp_server", False):  # gradio only logs why, and serves without
        log.warning("the MCP server is off: %s", getattr(blocks, "mcp_error", "unknown reason"))
    app.add_middleware(PathLengthMiddleware)
    if auth is not None:  # nothing inside answers before the login is checked
        app.add_middleware(BasicAuthMiddleware, username=auth[0], password=auth[1])
    # Outermost: every response, a refused login included, carries its id and is logged and
    # counted.
    app.add_middleware(RequestMiddleware, metrics=metrics)
    return app


def _load_sharing(index_dir: Path, settings: Settings, loaded: "list[Encoder]") -> "Assistant":
    """Open an index with a model already loaded when it gives that index's vectors (the
    probe check decides), else with its own, which later indexes may then share."""
    from ..search.assistant import Assistant

    for encoder in loaded:
        try:
            return Assistant.load(index_dir, settings=settings, encoder=encoder)
        except IndexMismatchError:
            continue
    nexus = Assistant.load(index_dir, settings=settings)
    loaded.append(nexus.encoder)
    return nexus


def _collection_health(served: Collections, name: str) -> dict[str, Any]:
    """What ``/api/health`` says about one collection."""
    problem = served.problem(name)
    if problem is not None:
        return {
            "status": "unavailable",
            "index_loaded": False,
            "index_dir": str(served.index_dir(name)),
            "problem": problem,
        }
    service = served.get(name)
    status = service.status()
    changes, update = status.changes, status.update
    store_problem = service.store_problem()
    return {
        "status": "degraded" if store_problem else "ok",
        "index_loaded": True,
        "index_dir": status.index_dir,
        "store": {"kind": service.assistant.manifest.store_kind, "problem": store_problem},
        "documents": status.documents,
        "chunks": status.chunks,
        "model": status.model,
        "built_at": status.built_at,
        "generation": status.generation,
        "last_build": (
            {**status.last_build, "took_in": status.taken_in} if status.last_build else None
        ),
        "watch": {
            "corpus": update.corpus_dir,
            "watching": update.watching,
            "building": update.building,
            "builds": update.builds,
            "last_change": update.last_change,
            "last_published": update.finished,
            "failed_at": update.failed,
            "problem": update.problem,
        },
        "reload_problem": status.reload_problem,
        "corpus_changed": changes.stale if changes else None,
        "changes": (
            {"added": changes.added, "modified": changes.modified, "removed": changes.removed}
            if changes
            else None
        ),
        "problem": status.problem,
        "rebuild_command": status.rebuild_command if status.stale else None,
    }


_PAGE_CSS = """
body { max-width: 60rem; margin: 0 auto; padding: 1rem 1.5rem; font-family: system-ui, sans-serif;
  line-height: 1.5; color: #1f2937; }
nav a { text-decoration: none; }
pre { background: #f6f8fa; padding: .75rem; overflow-x: auto; border-radius: 6px; }
.nexus-source-lines > span { display: block; }
.nexus-ln { display: inline-block; width: 3.5em; color: #9ca3af; user-select: none; }
"""


def serve(
    settings: Settings,
    *,
    host: str = "127.0.0.1",
    port: int = 7860,
    build: bool = True,
    feedback_log: str | Path | None = "feedback.jsonl",
    auth: tuple[str, str] | None = None,
    allow_rebuild: bool = False,
    watch: bool = False,
    collections: Mapping[str, Path] | None = None,
    log_format: LogFormat = "text",
) -> None:
    """Bring the indexes up to date with their corpora (unless ``build`` is False) and serve.

    Without ``collections`` one index is served, ``settings.index_dir``, built from
    ``settings.corpus_dir``; with them, each collection's index is updated from the corpus it
    was built from (one not built yet is served as unavailable until it is). Log lines go to
    stderr as ``log_format`` says (text, or one JSON object a line), one line per request
    among them, uvicorn's included.

    Raises:
        AssistantError: The corpus or index cannot be read (the message says what to do).
        ConfigError: The rebuild button is asked for beyond localhost without a login.
    """
    import uvicorn

    use_log_format(log_format)
    local = host in ("127.0.0.1", "localhost", "::1")
    if allow_rebuild and auth is None and not local:
        raise ConfigError(
            f"the rebuild button is for administrators: serving it on {host} needs a login "
            f"({AUTH_USER_ENV} and {AUTH_PASSWORD_ENV}), or serve on 127.0.0.1"
        )

    from ..encoders import load_encoder

    encoder = load_encoder(settings) if build else None
    if build and collections is None:
        report = prepare_index(settings, encoder=encoder)
        log.info(report.summary() if report else "index is up to date with the corpus")
    elif build and collections:
        for name, index_dir in collections.items():
            _update_collection(name, settings.replace(index_dir=index_dir), encoder)
    app = create_app(
        settings,
        collections=collections,
        encoder=encoder,
        feedback_log=feedback_log,
        auth=auth,
        allow_rebuild=allow_rebuild,
        watch=watch,
    )
    if auth is None and not local:
        log.warning(
            "serving on %s without a login; set %s and %s to require one",
            host,
            AUTH_USER_ENV,
            AUTH_PASSWORD_ENV,
        )
    # Uvicorn's own lines go through our handlers, in our format; our request lines stand in
    # for its access log (they add the route, the time taken and the request id).
    uvicorn.run(app, host=host, port=port, log_level="info", log_config=None, access_log=False)


def _update_collection(name: str, settings: Settings, encoder: "Encoder | None") -> None:
    """Update one collection's index from the corpus it was built from, if it can be read;
    a collection that cannot be updated is served as it is, and says why in the log."""
    from ..stores import open_index

    try:
        index = open_index(settings.index_dir, settings=settings)
        manifest = index.manifest
        index.close()
        built_as = kept_settings(settings, manifest)  # as its watcher will update it
        report = prepare_index(
            built_as.replace(corpus_dir=Path(manifest.corpus_root)), encoder=encoder
        )
    except AssistantError as exc:
        log.warning("collection %s is served as it is: %s", name, exc)
        return
    log.info("collection %s: %s", name, report.summary() if report else "up to date")
