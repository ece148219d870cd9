"""The web service: REST API, document view, security, index status and live reload."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from assistant import ConfigError, build_index
from assistant.search.query import MAX_K
from assistant.testing import HashEncoder
from assistant.web.server import auth_from_env, create_app
from assistant.web.service import check_source
from assistant.web.ui import status_markdown
from tests.webapp import make_index


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("site")
    encoder = HashEncoder()
    settings, nexus = make_index(root, encoder)
    app = create_app(settings, nexus=nexus, feedback_log=root / "feedback.jsonl")
    with TestClient(app) as client:
        yield {"client": client, "settings": settings, "encoder": encoder, "root": root}


@pytest.fixture
def client(site: dict[str, Any]) -> TestClient:
    return site["client"]  # type: ignore[no-any-return]


def test_search_returns_hits_with_sources_lines_and_document_links(client: TestClient) -> None:
    response = client.get("/api/search", params={"q": "cache invalidation expiry", "k": 3})
    assert response.status_code == 200
    body = response.json()
    assert body["mode"] == "hybrid" and len(body["hits"]) == 3 and body["took_ms"] >= 0
    top = body["hits"][0]
    assert top["source"] == "guides/caching.md" and top["rank"] == 1
    assert top["start_line"] <= top["end_line"]
    assert top["url"].startswith("/document?source=guides%2Fcaching.md&start=")
    assert {"title", "heading_path", "text", "score", "relevance", "category"} <= set(top)


def test_search_filters_by_mode_and_category(client: TestClient) -> None:
    hits = client.get(
        "/api/search", params={"q": "image layers", "mode": "keyword", "category": "reference"}
    ).json()["hits"]
    assert hits and all(h["category"] == "reference" for h in hits)
    assert all(h["relevance"] is None for h in hits)  # keyword mode embeds nothing


@pytest.mark.parametrize(
    "params",
    [
        {"q": "cache", "k": 0},
        {"q": "cache", "k": MAX_K + 1},
        {"q": "cache", "mode": "fuzzy"},
    ],
)
def test_invalid_search_parameters_are_rejected(client: TestClient, params: dict[str, Any]) -> None:
    response = client.get("/api/search", params=params)
    assert response.status_code == 422
    assert response.json()["detail"]


@pytest.mark.parametrize(
    ("q", "reason"),
    [("", "empty"), ("\x00\x01", "empty"), ("x" * 2001, "the limit is 2,000")],
)
def test_an_empty_or_over_long_query_is_a_clear_400(
    client: TestClient, q: str, reason: str
) -> None:
    response = client.get("/api/search", params={"q": q})
    assert response.status_code == 400 and reason in response.json()["detail"]


def test_health_reports_the_index(client: TestClient) -> None:
    body = client.get("/api/health").json()
    assert body["index_loaded"] is True and body["model"] == "hash-encoder"
    assert body["documents"] == 7 and body["chunks"] > 7
    assert body["corpus_changed"] is False and body["rebuild_command"] is None
    assert body["built_at"] and body["generation"].startswith("gen-")


def test_openapi_documents_the_rest_api(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/api/search", "/api/health", "/api/document"} <= set(paths)
    assert client.get("/docs").status_code == 200


@pytest.mark.parametrize(
    ("source", "status"),
    [
        ("../../etc/passwd", 400),
        ("guides/../../etc/passwd", 400),
        ("/etc/passwd", 400),
        ("C:/Windows/win.ini", 400),
        ("guides\\caching.md", 400),
        ("%2e%2e/%2e%2e/etc/passwd", 404),  # decoded once: a name, and not an indexed one
        ("guides/./caching.md", 400),
        ("guides/missing.md", 404),
        ("corpus/guides/caching.md", 404),
    ],
)
def test_document_endpoints_serve_only_indexed_documents(
    client: TestClient, source: str, status: int
) -> None:
    assert client.get("/api/document", params={"source": source}).status_code == status
    assert client.get("/document", params={"source": source}).status_code == status


def test_encoded_traversal_in_the_raw_url_is_refused(client: TestClient) -> None:
    for raw in ("/api/document?source=..%2F..%2Fetc%2Fpasswd", "/document?source=%2Fetc%2Fpasswd"):
        assert client.get(raw).status_code == 400


def test_gradio_file_routes_serve_no_system_or_corpus_file(site: dict[str, Any]) -> None:
    client, corpus = site["client"], site["settings"].corpus_dir
    for path in (
        "/gradio_api/file=/etc/passwd",
        f"/gradio_api/file={corpus}/guides/hostile.md",
        "/gradio_api/file=../../etc/passwd",
        "/..%2F..%2Fetc%2Fpasswd",
    ):
        response = client.get(path)
        assert response.status_code in (403, 404), path
        assert "root:" not in response.text and "Hostile" not in response.text


def test_document_view_highlights_the_passage_and_forbids_scripts(client: TestClient) -> None:
    response = client.get(
        "/document",
        params={"source": "guides/hostile.md", "start": 3, "end": 3, "q": "cache poisoning"},
    )
    assert response.status_code == 200
    assert "script-src" not in response.headers["content-security-policy"]
    assert "default-src 'none'" in response.headers["content-security-policy"]
    page = response.text
    assert '<section id="passage"' in page and "<mark>poisoning</mark>" in page
    body = page.split("<body>")[1]
    assert "<script" not in body and "<img" not in body and "<iframe" not in body
    assert "&lt;script&gt;" in body
    doc = client.get("/api/document", params={"source": "guides/hostile.md"}).json()
    assert doc["title"] == "Hostile page" and "<script>" in doc["text"]  # JSON carries raw text


def test_gradio_page_and_its_api_are_mounted(client: TestClient) -> None:
    assert client.get("/").status_code == 200
    info = client.get("/gradio_api/info").json()
    assert {"/ask", "/search"} <= set(info["named_endpoints"])


def test_basic_auth_guards_every_route(site: dict[str, Any]) -> None:
    from assistant import Assistant

    settings = site["settings"]
    nexus = Assistant.load(settings.index_dir, settings=settings, encoder=site["encoder"])
    app = create_app(settings, nexus=nexus, auth=("ada", "s3cret"))
    good = "Basic " + base64.b64encode(b"ada:s3cret").decode()
    bad = "Basic " + base64.b64encode(b"ada:wrong").decode()
    with TestClient(app) as guarded:
        for path in ("/", "/api/health", "/api/search?q=cache", "/docs", "/gradio_api/info"):
            refused = guarded.get(path)
            assert refused.status_code == 401, path
            assert refused.headers["www-authenticate"].startswith("Basic")
            assert guarded.get(path, headers={"Authorization": bad}).status_code == 401
            assert guarded.get(path, headers={"Authorization": good}).status_code == 200, path
        assert guarded.get("/api/health", headers={"Authorization": "Basic !!"}).status_code == 401


def test_auth_settings_come_in_pairs() -> None:
    assert auth_from_env({}) is None
    assert auth_from_env({"NEXUS_AUTH_USER": "a", "NEXUS_AUTH_PASSWORD": "b"}) == ("a", "b")
    with pytest.raises(ConfigError, match="set both"):
        auth_from_env({"NEXUS_AUTH_USER": "a"})


@pytest.mark.parametrize("bad", ["", "a/../b", "/abs", "a//b", "a\x00b", "a\\b", "./a"])
def test_check_source_refuses_anything_but_an_index_path(bad: str) -> None:
    from assistant import QueryError

    with pytest.raises(QueryError):
        check_source(bad)


def test_a_rebuilt_index_is_served_without_restart_and_staleness_is_shown(
    tmp_path: Path,
) -> None:
    encoder = HashEncoder()
    settings, nexus = make_index(tmp_path, encoder, hostile=False)
    app = create_app(settings, nexus=nexus)
    service = app.state.service
    service._reload_every = 0.0  # check on every request in this test
    with TestClient(app) as client:
        query = {"q": "quantum teleportation protocol"}
        before = client.get("/api/search", params=query).json()["hits"]
        assert all(h["source"] != "guides/quantum.md" for h in before)
        new_doc = settings.corpus_dir / "guides" / "quantum.md"
        new_doc.write_text("# Quantum\n\nThe quantum teleportation protocol moves state.\n")
        health = client.get("/api/health").json()
        assert health["corpus_changed"] is True
        assert health["changes"]["added"] == ["guides/quantum.md"]
        assert health["rebuild_command"].startswith("nexus build --corpus")
        status = service.status()
        assert status.stale and status.changes.added == ["guides/quantum.md"]
        panel = status_markdown(status)
        assert "corpus changed" in panel and "nexus build --corpus" in panel

        build_index(settings.corpus_dir, settings.index_dir, settings=settings, encoder=encoder)
        hits = client.get("/api/search", params=query).json()["hits"]
        assert hits[0]["source"] == "guides/quantum.md"
        assert client.get("/api/health").json()["corpus_changed"] is False


def test_prepare_index_builds_when_missing_updates_when_stale_and_else_does_nothing(
    corpus: Path, index_dir: Path
) -> None:
    from assistant import Settings
    from assistant.build import prepare_index

    encoder = HashEncoder()
    settings = Settings(corpus_dir=corpus, index_dir=index_dir)
    first = prepare_index(settings, encoder=encoder, progress=False)
    assert first is not None and first.documents == 6 and first.embedded == first.chunks
    assert prepare_index(settings, encoder=encoder, progress=False) is None
    (corpus / "guides" / "new.md").write_text("# New\n\nA fresh page about queues.\n")
    update = prepare_index(settings, encoder=encoder, progress=False)
    assert update is not None and update.documents == 7 and 0 < update.embedded < update.chunks


def test_serve_refuses_half_configured_auth(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from assistant.cli import main

    monkeypatch.setenv("NEXUS_AUTH_USER", "ada")
    monkeypatch.delenv("NEXUS_AUTH_PASSWORD", raising=False)
    assert main(["serve", "--no-build"]) == 1
    assert "NEXUS_AUTH_PASSWORD" in capsys.readouterr().err


def test_rebuild_updates_the_served_index_or_reports_why_not(tmp_path: Path) -> None:
    import shutil

    settings, nexus = make_index(tmp_path, HashEncoder(), hostile=False)
    app = create_app(settings, nexus=nexus, allow_rebuild=True)
    service = app.state.service
    assert service.rebuild() == "Already up to date."
    (settings.corpus_dir / "guides" / "quantum.md").write_text(
        "# Quantum\n\nThe quantum teleportation protocol moves state.\n"
    )
    assert "incremental build of 7 documents" in service.rebuild()
    with TestClient(app) as client:
        hits = client.get("/api/search", params={"q": "quantum teleportation"}).json()["hits"]
        assert hits[0]["source"] == "guides/quantum.md"
        shutil.rmtree(settings.corpus_dir)
        settings.corpus_dir.mkdir()
        assert service.rebuild().startswith("Rebuild failed, the current index keeps serving")
        hits = client.get("/api/search", params={"q": "quantum teleportation"}).json()["hits"]
        assert hits[0]["source"] == "guides/quantum.md"


def test_the_rebuild_button_needs_a_login_beyond_localhost(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from assistant.cli import main

    monkeypatch.delenv("NEXUS_AUTH_USER", raising=False)
    monkeypatch.delenv("NEXUS_AUTH_PASSWORD", raising=False)
    assert main(["serve", "--no-build", "--allow-rebuild", "--host", "0.0.0.0"]) == 1
    assert "needs a login" in capsys.readouterr().err
