"""The web app: the Gradio chat UI and a small REST API on one FastAPI server.

Routes::

    /                 the chat UI (Gradio); its API endpoints ``/ask`` and ``/search`` for
                      gradio_client
    /api/search       GET ?q=&k=&mode=&category=  → JSON hits
    /api/health       GET → index loaded, counts, model, build time, corpus changed since?
    /api/documents    GET ?q=&limit=&offset=  → what was indexed, and what was skipped (why)
    /api/document     GET ?source=  → one indexed document as JSON
    /document         GET ?source=&start=&end=&q=  → the document view (HTML)
    /docs, /openapi.json   the REST API's OpenAPI description

Optional HTTP basic auth (``NEXUS_AUTH_USER`` / ``NEXUS_AUTH_PASSWORD``) guards every route,
Gradio's included, because it is enforced as middleware around the whole server.

This module deliberately has no ``from __future__ import annotations``: FastAPI reads the route
signatures at runtime, including limits taken from the settings.
"""

import base64
import binascii
import html
import logging
import secrets
import time
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

from fastapi import FastAPI, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse

from ..build import prepare_index
from ..config import SearchMode, Settings
from ..errors import (
    ConfigError,
    DocumentNotFoundError,
    QueryError,
    StoreError,
)
from ..search.query import MAX_FILTER_CHARS, MAX_K
from .render import document_url, hit_dict, render_document
from .service import NexusService

if TYPE_CHECKING:
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


def create_app(
    settings: Settings,
    *,
    nexus: "Assistant | None" = None,
    corpus_dir: str | Path | None = None,
    feedback_log: str | Path | None = None,
    auth: tuple[str, str] | None = None,
    min_relevance: float | None = None,
    allow_rebuild: bool = False,
) -> FastAPI:
    """The FastAPI app serving the chat UI at ``/`` and the REST API under ``/api``.

    Args:
        settings: Index folder and search defaults.
        nexus: An assistant already loaded (tests pass one built with a small encoder);
            ``Assistant.load(settings.index_dir)`` otherwise.
        corpus_dir: The corpus the index should reflect (for the staleness warning);
            ``settings.corpus_dir`` by default.
        feedback_log: JSON-lines file that thumbs up/down votes are appended to.
        auth: ``(user, password)`` to require HTTP basic auth on every route.
        min_relevance: Override the model's calibrated "nothing relevant" floor.
        allow_rebuild: Show a button that updates the index from the corpus; anyone who can
            open the page can press it, so serve it behind ``auth`` or on localhost only.

    Raises:
        IndexNotFoundError: No index is built at ``settings.index_dir``.
    """
    import gradio as gr

    from ..search.assistant import Assistant
    from .ui import UI_CSS, build_ui

    if nexus is None:
        nexus = Assistant.load(settings.index_dir, settings=settings)
    service = NexusService(
        nexus,
        corpus_dir=corpus_dir or settings.corpus_dir,
        feedback_log=feedback_log,
        min_relevance=min_relevance,
    )
    app = FastAPI(
        title="Nexus",
        summary="Semantic search over backend-engineering documentation, with sources.",
        version="0.1.0",
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.service = service

    @app.exception_handler(QueryError)
    async def bad_query(request: Request, exc: QueryError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.exception_handler(StoreError)
    async def store_down(request: Request, exc: StoreError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503)

    @app.exception_handler(DocumentNotFoundError)
    async def no_document(request: Request, exc: DocumentNotFoundError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    max_chars = settings.max_query_chars

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
    ) -> dict[str, Any]:
        """The passages that best answer `q`, best first, each with its source and lines."""
        started = time.perf_counter()
        hits = service.search(q, k, mode, category)
        return {
            "query": q,
            "mode": mode or settings.mode,
            "took_ms": round((time.perf_counter() - started) * 1000, 2),
            "hits": [hit_dict(h) for h in hits],
        }

    @app.get("/api/health", tags=["status"])
    def api_health() -> dict[str, Any]:
        """Whether an index is loaded, its counts, model and build time, and whether the
        corpus changed since it was built (with the command to rebuild). ``status`` is
        ``degraded`` when the store holding the vectors (a Milvus server) cannot serve."""
        status = service.status()
        changes = status.changes
        store_problem = service.store_problem()
        return {
            "status": "degraded" if store_problem else "ok",
            "index_loaded": True,
            "store": {"kind": service.assistant.manifest.store_kind, "problem": store_problem},
            "documents": status.documents,
            "chunks": status.chunks,
            "model": status.model,
            "built_at": status.built_at,
            "generation": status.generation,
            "corpus_changed": changes.stale if changes else None,
            "changes": (
                {"added": changes.added, "modified": changes.modified, "removed": changes.removed}
                if changes
                else None
            ),
            "problem": status.problem,
            "rebuild_command": status.rebuild_command if status.stale else None,
        }

    @app.get("/api/documents", tags=["documents"])
    def api_documents(
        q: Annotated[
            str, Query(max_length=MAX_FILTER_CHARS, description="Only sources or titles with this")
        ] = "",
        limit: Annotated[int, Query(ge=1, le=MAX_K, description="Documents per page")] = 100,
        offset: Annotated[int, Query(ge=0, description="Documents to skip")] = 0,
    ) -> dict[str, Any]:
        """What was indexed: each document with its format, category and passage count (a
        page of them, by source), and every file the build skipped, with the reason."""
        found = service.catalog(q)
        return {
            "total": len(found),
            "documents": [
                {**asdict(doc), "url": document_url(doc.source)}
                for doc in found[offset : offset + limit]
            ],
            "skipped": [{"source": s, "reason": r} for s, r in service.skipped()],
        }

    @app.get("/api/document", tags=["documents"])
    def api_document(
        source: Annotated[str, Query(description="Source path as the index names it")],
    ) -> dict[str, Any]:
        """One indexed document. Only documents in the index are served; anything else,
        path tricks included, is 400 or 404."""
        doc = service.document(source)
        return {
            "source": doc.source,
            "title": doc.title,
            "format": doc.format,
            "category": doc.category,
            "text": doc.text,
            "url": document_url(doc.source),
        }

    @app.get("/document", response_class=HTMLResponse, include_in_schema=False)
    def document_view(
        source: str,
        start: Annotated[int | None, Query(ge=1)] = None,
        end: Annotated[int | None, Query(ge=1)] = None,
        q: Annotated[str, Query(max_length=max_chars)] = "",
    ) -> HTMLResponse:
        """The whole document with the passage's lines highlighted; nothing in it runs."""
        try:
            doc = service.document(source)
        except QueryError as exc:
            return _document_page("Not a document", html.escape(str(exc)), 400)
        except DocumentNotFoundError as exc:
            return _document_page("Not found", html.escape(str(exc)), 404)
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

    blocks = build_ui(service, allow_rebuild=allow_rebuild)
    app = cast(
        FastAPI, gr.mount_gradio_app(app, blocks, path="/", css=UI_CSS, footer_links=["api"])
    )
    app.add_middleware(PathLengthMiddleware)
    if auth is not None:  # outermost: nothing answers before the login is checked
        app.add_middleware(BasicAuthMiddleware, username=auth[0], password=auth[1])
    return app


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
) -> None:
    """Bring the index up to date with the corpus (unless ``build`` is False) and serve.

    Raises:
        AssistantError: The corpus or index cannot be read (the message says what to do).
        ConfigError: The rebuild button is asked for beyond localhost without a login.
    """
    import uvicorn

    local = host in ("127.0.0.1", "localhost", "::1")
    if allow_rebuild and auth is None and not local:
        raise ConfigError(
            f"the rebuild button is for administrators: serving it on {host} needs a login "
            f"({AUTH_USER_ENV} and {AUTH_PASSWORD_ENV}), or serve on 127.0.0.1"
        )

    from ..encoders import load_encoder
    from ..search.assistant import Assistant

    encoder = load_encoder(settings) if build else None
    if build:
        report = prepare_index(settings, encoder=encoder)
        log.info(report.summary() if report else "index is up to date with the corpus")
    nexus = Assistant.load(settings.index_dir, settings=settings, encoder=encoder)
    app = create_app(
        settings, nexus=nexus, feedback_log=feedback_log, auth=auth, allow_rebuild=allow_rebuild
    )
    if auth is None and not local:
        log.warning(
            "serving on %s without a login; set %s and %s to require one",
            host,
            AUTH_USER_ENV,
            AUTH_PASSWORD_ENV,
        )
    uvicorn.run(app, host=host, port=port, log_level="info")
