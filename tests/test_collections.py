"""One server, several collections: each answers, reloads and fails on its own (real server)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from assistant import Settings, build_index
from assistant.testing import HashEncoder
from assistant.web.server import create_app
from tests.webapp import make_index, serving

AUTH = {"Authorization": "Basic " + base64.b64encode(b"nexus:pw").decode()}

DJANGO_PAGES = {
    "models/querysets.md": (
        "# QuerySets\n\n## select_related\n\nselect_related follows foreign keys in one SQL "
        "join, so the related rows arrive with the first query.\n"
    ),
    "topics/migrations.md": (
        "# Migrations\n\nmakemigrations writes migration files; migrate applies them to the "
        "database schema.\n"
    ),
}


def build_django(root: Path, encoder: HashEncoder) -> Path:
    corpus = root / "django-docs"
    for source, text in DJANGO_PAGES.items():
        (corpus / source).parent.mkdir(parents=True, exist_ok=True)
        (corpus / source).write_text(text)
    index = root / "django-index"
    build_index(corpus, index, settings=Settings(min_chunk_tokens=8), encoder=encoder)
    return index


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("collections")
    encoder = HashEncoder()
    settings, _ = make_index(root, encoder)
    django = build_django(root, encoder)
    collections = {
        "hub": settings.index_dir,
        "django": django,
        "later": root / "later-index",  # not built yet
    }
    app = create_app(settings, collections=collections, encoder=encoder, auth=("nexus", "pw"))
    with serving(app) as url, httpx.Client(base_url=url, headers=AUTH, timeout=30) as client:
        yield {"client": client, "url": url, "app": app, "root": root, "encoder": encoder}


def test_each_collection_answers_from_its_own_index(site: dict[str, Any]) -> None:
    client = site["client"]
    hub = client.get("/api/search", params={"q": "cache invalidation", "k": 2}).json()
    assert hub["collection"] == "hub" and hub["hits"][0]["source"] == "guides/caching.md"
    django = client.get(
        "/api/search", params={"q": "select_related foreign keys", "collection": "django"}
    ).json()
    assert django["collection"] == "django"
    assert django["hits"][0]["source"] == "models/querysets.md"
    url = django["hits"][0]["url"]
    assert "collection=django" in url  # its document view names the collection
    page = client.get(url)
    assert page.status_code == 200 and "select_related" in page.text
    assert "collection" not in hub["hits"][0]["url"]  # the default's addresses stay as they were
    listing = client.get("/api/documents", params={"collection": "django"}).json()
    assert listing["total"] == 2
    doc = client.get(
        "/api/document", params={"source": "topics/migrations.md", "collection": "django"}
    )
    assert doc.status_code == 200 and doc.json()["title"] == "Migrations"
    assert client.get("/api/document", params={"source": "topics/migrations.md"}).status_code == 404


def test_an_unknown_collection_is_a_404_that_names_the_others(site: dict[str, Any]) -> None:
    response = site["client"].get("/api/search", params={"q": "cache", "collection": "nope"})
    assert response.status_code == 404
    assert "hub, django, later" in response.json()["detail"]


def test_a_broken_collection_is_reported_while_the_others_answer(site: dict[str, Any]) -> None:
    client = site["client"]
    response = client.get("/api/search", params={"q": "cache", "collection": "later"})
    assert response.status_code == 503 and "no index" in response.json()["detail"].lower()
    health = client.get("/api/health").json()
    assert health["status"] == "degraded"
    each = health["collections"]
    assert list(each) == ["hub", "django", "later"]
    assert each["hub"]["status"] == each["django"]["status"] == "ok"
    assert each["django"]["documents"] == 2 and each["hub"]["documents"] == 7
    assert each["later"] == {
        "status": "unavailable",
        "index_loaded": False,
        "index_dir": str(site["root"] / "later-index"),
        "problem": each["later"]["problem"],
    }
    assert health["documents"] == 7  # the top level describes the default collection
    assert client.get("/api/search", params={"q": "cache"}).status_code == 200


def test_a_collection_built_later_comes_online_and_each_reloads_on_its_own(
    site: dict[str, Any],
) -> None:
    client, root, encoder = site["client"], site["root"], site["encoder"]
    served = site["app"].state.collections
    served._retry_every = 0.0  # try again on the next request
    for service in served.services():
        service._reload_every = 0.0
    corpus = root / "later-docs"
    corpus.mkdir()
    (corpus / "notes.md").write_text("# Notes\n\nThe kestrel hovers over the field.\n")
    small = Settings(min_chunk_tokens=8)
    build_index(corpus, root / "later-index", settings=small, encoder=encoder)
    hits = client.get("/api/search", params={"q": "kestrel", "collection": "later"}).json()["hits"]
    assert hits[0]["source"] == "notes.md"
    hub_before = client.get("/api/health").json()["collections"]["hub"]["generation"]

    django_docs = root / "django-docs"
    (django_docs / "topics" / "signals.md").write_text("# Signals\n\npost_save receivers run.\n")
    build_index(
        django_docs, root / "django-index", settings=Settings(min_chunk_tokens=8), encoder=encoder
    )
    found = client.get(
        "/api/search", params={"q": "post_save receivers", "collection": "django"}
    ).json()
    assert found["hits"][0]["source"] == "topics/signals.md"
    health = client.get("/api/health").json()
    assert health["status"] == "ok"
    assert health["collections"]["hub"]["generation"] == hub_before
    assert health["collections"]["django"]["documents"] == 3


def test_gradio_clients_pick_a_collection_by_name(site: dict[str, Any]) -> None:
    from gradio_client import Client

    client = Client(site["url"], headers=AUTH, verbose=False)
    hits = client.predict(query="makemigrations", collection="django", api_name="/search")
    assert hits[0]["source"] == "topics/migrations.md"
    reply = client.predict(question="How do migrations change the schema?", api_name="/ask")
    assert reply["collection"] == "hub"
    with pytest.raises(Exception, match="no collection 'nope'"):
        client.predict(query="cache", collection="nope", api_name="/search")


def test_a_server_that_can_open_no_collection_says_why(tmp_path: Path) -> None:
    from assistant import IndexNotFoundError

    with pytest.raises(IndexNotFoundError):
        create_app(Settings(index_dir=tmp_path / "missing"), encoder=HashEncoder())


def test_updating_a_collection_keeps_the_options_its_index_was_built_with(
    site: dict[str, Any],
) -> None:
    # The django index was built with passages of 8 word pieces or more, the server's
    # settings ask for 24: an update takes in the new page and re-reads nothing else.
    django = site["app"].state.collections.get("django")
    (site["root"] / "django-docs" / "topics" / "admin.md").write_text(
        "# Admin\n\nThe admin site lists models.\n"
    )
    summary = django.rebuild()
    assert "(1 read anew, 0 removed)" in summary, summary
    assert django.assistant.manifest.chunking["min_chunk_tokens"] == 8


def test_serving_first_updates_each_collection_from_the_corpus_it_was_built_from(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from assistant.stores import open_index
    from assistant.web.server import _update_collection

    encoder = HashEncoder()
    index = build_django(tmp_path, encoder)
    (tmp_path / "django-docs" / "topics" / "forms.md").write_text("# Forms\n\nA form cleans.\n")
    _update_collection("django", Settings(index_dir=index), encoder)
    manifest = open_index(index).manifest
    assert manifest.documents == 3 and manifest.changes["added"] == 1
    assert manifest.chunking["min_chunk_tokens"] == 8  # built as it was
    _update_collection("later", Settings(index_dir=tmp_path / "missing"), encoder)
    assert "collection later is served as it is" in caplog.text
