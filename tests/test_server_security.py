"""Security of the web app: no route without a login when one is set, no file outside the index.

Routes are enumerated from the app itself (our FastAPI routes and every route Gradio mounts),
so a route added later is covered without editing this file.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.websockets import WebSocketDisconnect

from assistant.testing import HashEncoder
from assistant.web.server import create_app
from tests.test_hostile_input import HOSTILE_SNIPPETS, any_text, is_plain_utf8, queries
from tests.webapp import make_index

SECRET = "NEXUS-SECRET-7f3a"  # written to files no endpoint may serve


def all_routes(routes: Any, prefix: str = "") -> Iterator[tuple[str, frozenset[str]]]:
    """Every (path, methods) the app answers, descending into mounts and included routers.

    WebSocket routes have the method set ``{"WEBSOCKET"}``.
    """
    for route in routes:
        if hasattr(route, "original_router"):  # FastAPI's included router (Gradio uses one)
            context_prefix = getattr(getattr(route, "include_context", None), "prefix", "")
            yield from all_routes(route.original_router.routes, prefix + context_prefix)
        elif hasattr(route, "routes") and hasattr(route, "path"):  # a Mount
            yield from all_routes(route.routes, prefix + route.path)
        elif hasattr(route, "path"):
            methods = getattr(route, "methods", None) or {"WEBSOCKET"}
            yield prefix + route.path, frozenset(methods)


def concrete(path: str, value: str = "x") -> str:
    """The path with each ``{parameter}`` filled in."""
    return re.sub(r"\{[^}]+\}", value, path)


def basic(user: str | bytes, password: str | bytes) -> dict[str, str]:
    raw = (user if isinstance(user, bytes) else user.encode()) + b":"
    raw += password if isinstance(password, bytes) else password.encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


GOOD = basic("ada", "s3cret pass:word")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("secure")
    settings, nexus = make_index(root, HashEncoder())
    (root / "secret.txt").write_text(SECRET)  # beside the corpus, not in it
    (root / "corpus" / "guides" / "notes.secret").write_text(SECRET)  # in it, not indexed
    app = create_app(
        settings,
        nexus=nexus,
        feedback_log=root / "feedback.jsonl",
        auth=("ada", "s3cret pass:word"),
    )
    # Server errors become 500 responses, as over the network, so tests can check for them.
    with TestClient(app, raise_server_exceptions=False) as client:
        yield {"app": app, "client": client, "root": root, "settings": settings}


@pytest.fixture
def client(site: dict[str, Any]) -> TestClient:
    return site["client"]  # type: ignore[no-any-return]


def test_route_enumeration_sees_our_routes_and_gradios(site: dict[str, Any]) -> None:
    paths = {path for path, _ in all_routes(site["app"].routes)}
    assert {"/api/search", "/api/health", "/api/document", "/document", "/docs"} <= paths
    assert {"/", "/gradio_api/info", "/gradio_api/queue/join", "/config"} <= paths
    assert any(p.startswith("/gradio_api/file") for p in paths)
    assert len(paths) > 50


def test_every_route_and_method_requires_the_login(
    site: dict[str, Any], client: TestClient
) -> None:
    checked = 0
    for path, methods in sorted(all_routes(site["app"].routes)):
        url = concrete(path)
        for method in sorted(methods):
            if method == "WEBSOCKET":
                with pytest.raises(WebSocketDisconnect), client.websocket_connect(url):
                    pass
            else:
                response = client.request(method, url)
                assert response.status_code == 401, f"{method} {path}"
                assert response.headers["www-authenticate"] == 'Basic realm="Nexus"'
                assert SECRET not in response.text
            checked += 1
    assert checked > 60
    # Paths no route matches are refused the same way, so they reveal nothing either.
    assert client.get("/no/such/page").status_code == 401


@pytest.mark.parametrize(
    "headers",
    [
        {},
        basic("ada", "wrong"),
        basic("eve", "s3cret pass:word"),
        basic("ada", ""),
        basic("", ""),
        basic("ada", "s3cret pass:word" + "x"),
        basic("ada", "s3cret pass"),  # the password holds a colon: only the first splits
        basic("ADA", "s3cret pass:word"),
        basic("ada\x00", "s3cret pass:word"),
        basic(b"\xff\xfe", b"\xff"),
        {"Authorization": "Bearer s3cret"},
        {"Authorization": "Basic"},
        {"Authorization": "Basic !!!not-base64!!!"},
        {"Authorization": "Basic " + base64.b64encode(b"ada").decode()},  # no colon
        {"Authorization": "Basic " + "A" * 100_000},
        {"Authorization": GOOD["Authorization"] + "=="},
        {"Authorization": "Digest username=ada"},
    ],
)
def test_wrong_or_malformed_credentials_are_refused(
    client: TestClient, headers: dict[str, str]
) -> None:
    for url in ("/api/search?q=cache", "/", "/gradio_api/info", "/document?source=notes.txt"):
        assert client.get(url, headers=headers).status_code == 401, url


def test_the_right_credentials_open_the_ui_and_the_api(client: TestClient) -> None:
    for url in ("/", "/api/health", "/api/search?q=cache", "/docs", "/gradio_api/info"):
        assert client.get(url, headers=GOOD).status_code == 200, url
    lowercase_scheme = {"Authorization": GOOD["Authorization"].replace("Basic", "basic")}
    assert client.get("/api/health", headers=lowercase_scheme).status_code == 200


# --------------------------------------------------------------------------- files


def traversal_payloads(site: dict[str, Any]) -> list[str]:
    """Ways to name a file outside the index, raw (already URL-encoded where noted)."""
    root: Path = site["root"]
    index_file = next((root / "index").glob("gen-*/chunks.sqlite"))
    return [
        "../secret.txt",
        "../../secret.txt",
        "guides/../../secret.txt",
        "guides/notes.secret",
        str(root / "secret.txt"),
        str(root / "corpus" / "guides" / "caching.md"),
        str(index_file),
        "/etc/passwd",
        "//etc/passwd",
        "file:///etc/passwd",
        "~/secret.txt",
        "..\\secret.txt",
        "guides\\..\\..\\secret.txt",
        "C:\\secret.txt",
        "guides/caching.md\x00.txt",
        "．．/secret.txt",  # fullwidth dots
        "..%2fsecret.txt",  # still encoded after the query string is decoded once
        "%2e%2e/secret.txt",
        "..%c0%afsecret.txt",
        "guides/" + "../" * 50 + "secret.txt",
        "x" * 5_000,
    ]


def encoded(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")


def test_document_endpoints_never_serve_a_file_outside_the_index(
    site: dict[str, Any], client: TestClient
) -> None:
    for payload in traversal_payloads(site):
        for endpoint in ("/api/document", "/document"):
            # Both the encoded form and a double-encoded one, as a proxy might pass it on.
            for value in (encoded(payload), encoded(encoded(payload))):
                response = client.get(f"{endpoint}?source={value}", headers=GOOD)
                assert response.status_code in (400, 404), (endpoint, payload)
                assert SECRET not in response.text and "root:x:0:0" not in response.text
                assert "SQLite format" not in response.text


def test_a_document_in_the_index_is_served(client: TestClient) -> None:
    response = client.get("/api/document?source=guides%2Fcaching.md", headers=GOOD)
    assert response.status_code == 200 and response.json()["source"] == "guides/caching.md"


# Streams that stay open by design (Gradio's heartbeat); they serve no file either way.
STREAMING = ("/gradio_api/heartbeat/",)


def routes_with_parameters(app: Any) -> list[str]:
    return sorted(
        {
            path
            for path, methods in all_routes(app.routes)
            if "GET" in methods and "{" in path and not path.startswith(STREAMING)
        }
    )


def fetch(url: str) -> tuple[int | None, str]:
    """Status and the first 64 KB of the body, over real HTTP; None if the server broke off."""
    import httpx

    try:
        with httpx.stream("GET", url, timeout=5, headers=GOOD) as response:
            body = b""
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > 65_536:
                    break
            return response.status_code, body.decode("utf-8", "replace")
    except httpx.HTTPError:
        return None, ""


@pytest.fixture(scope="module")
def served(site: dict[str, Any]) -> Iterator[str]:
    """The same index served over real HTTP, for routes whose answers are streams."""
    from assistant import Assistant
    from tests.webapp import serving

    settings = site["settings"]
    nexus = Assistant.load(settings.index_dir, settings=settings, encoder=HashEncoder())
    app = create_app(settings, nexus=nexus, auth=("ada", "s3cret pass:word"))
    with serving(app) as url:
        yield url


def test_no_route_with_a_path_parameter_serves_files_outside_the_index(
    site: dict[str, Any], served: str, tmp_path: Path
) -> None:
    (tmp_path / "secret.txt").write_text(SECRET)  # the working directory of this test
    root: Path = site["root"]
    routes = routes_with_parameters(site["app"])
    assert any("/file" in p for p in routes) and any("/static/" in p for p in routes)
    payloads = [
        "../secret.txt",
        "../../../secret.txt",
        "..\\secret.txt",
        "secret.txt",
        str(tmp_path / "secret.txt"),
        str(root / "secret.txt"),
        str(next((root / "index").glob("gen-*/chunks.sqlite"))),
        "/etc/passwd",
    ]
    answered = 0
    for route in routes:
        for payload in payloads:
            url = served + concrete(route, encoded(payload))
            status, body = fetch(url)
            assert SECRET not in body and "root:x:0:0" not in body, url
            assert "SQLite format" not in body, url
            assert status != 200, url
            answered += status is not None
    assert answered > len(routes) * len(payloads) // 2


def test_over_long_paths_get_a_client_error(served: str) -> None:
    for route in ("/static/", "/assets/", "/svelte/"):
        status, _ = fetch(served + route + "x" * 5_000)
        assert status is not None and 400 <= status < 500, route


def test_the_gradio_proxy_does_not_reach_the_local_machine(client: TestClient) -> None:
    for target in ("http://127.0.0.1:22/", "http://localhost/etc/passwd", "file:///etc/passwd"):
        response = client.get(f"/gradio_api/proxy={target}", headers=GOOD)
        assert response.status_code in (400, 403, 404), target


# --------------------------------------------------------------------------- hostile queries


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    # What a URL can carry: UTF-8, short enough for the client's URL limit (2.5x our limit).
    q=queries.map(lambda text: text.encode("utf-8", "replace").decode()[:5_000]),
    k=st.sampled_from(["5", "0", "-1", "999999999999", "abc", "1e3", ""]),
    mode=st.sampled_from(["hybrid", "keyword", "<script>", "", "semantic\x00"]),
    category=st.none() | any_text.map(lambda text: text.encode("utf-8", "replace").decode()),
)
def test_the_search_api_answers_any_query_with_hits_or_a_client_error(
    client: TestClient, q: str, k: str, mode: str, category: str | None
) -> None:
    params = {"q": q, "k": k, "mode": mode, **({"category": category} if category else {})}
    response = client.get("/api/search", params=params, headers=GOOD)
    assert response.status_code in (200, 400, 422), (response.status_code, response.text[:300])
    body = response.json()
    if response.status_code == 200:
        assert len(body["hits"]) <= int(k)
    else:
        assert body["detail"]


@pytest.mark.parametrize(
    "question", [q for q in HOSTILE_SNIPPETS if is_plain_utf8(q)] + ["x" * 100_000, "", "\x00\x01"]
)
def test_the_gradio_ask_endpoint_answers_hostile_questions_or_says_why_not(
    served: str, question: str
) -> None:
    import asyncio

    import httpx

    from benchmarks.load import call_ask

    async def ask() -> str | None:
        auth = ("ada", "s3cret pass:word")
        async with httpx.AsyncClient(base_url=served, auth=auth, timeout=30) as http:
            try:
                await call_ask(http, question)
            except ValueError as exc:
                return str(exc)
        return None

    refusal = asyncio.run(ask())
    if refusal is not None:  # refused: with the reason, never a server failure
        assert "Gradio error event" in refusal
        assert "limit is 2,000" in refusal or "empty" in refusal, refusal
