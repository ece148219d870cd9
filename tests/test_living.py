"""A served index that keeps itself current: files edited, added, deleted and renamed while the
real server runs with ``watch=True`` are found (or gone) in its searches, and the status panel
and ``/api/health`` say what happened."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from assistant.testing import HashEncoder
from assistant.web.render import unescape_markdown
from assistant.web.server import create_app
from assistant.web.ui import status_markdown
from tests.webapp import make_index, serving

TIMEOUT = 30.0


def eventually(check: Callable[[], Any], timeout: float = TIMEOUT) -> Any:
    """The first truthy result of ``check``, polled until ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError("the condition did not come true in time")
        time.sleep(0.1)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[dict[str, Any]]:
    settings, nexus = make_index(tmp_path, HashEncoder(), hostile=False)
    app = create_app(settings, nexus=nexus, watch=True)
    with serving(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        eventually(lambda: client.get("/api/health").json()["watch"]["watching"])
        time.sleep(0.3)  # the watches are in place once the first wait has begun
        yield {"client": client, "corpus": settings.corpus_dir, "app": app}


def found(client: httpx.Client, word: str) -> list[str]:
    """Sources of the passages a keyword search for ``word`` returns."""
    response = client.get("/api/search", params={"q": word, "k": 3, "mode": "keyword"})
    assert response.status_code == 200, response.text
    return [hit["source"] for hit in response.json()["hits"]]


def test_edits_additions_renames_and_deletions_are_searchable_while_serving(
    site: dict[str, Any],
) -> None:
    client, corpus = site["client"], site["corpus"]
    page = corpus / "guides" / "caching.md"
    page.write_text(page.read_text() + "\nZanzibar keys expire at midnight.\n")
    eventually(lambda: found(client, "zanzibar") == ["guides/caching.md"])

    (corpus / "guides" / "quantum.md").write_text("# Quantum\n\nTeleportation moves state.\n")
    eventually(lambda: found(client, "teleportation") == ["guides/quantum.md"])

    (corpus / "guides" / "quantum.md").rename(corpus / "guides" / "physics.md")
    eventually(lambda: found(client, "teleportation") == ["guides/physics.md"])

    (corpus / "guides").rename(corpus / "howtos")  # a whole folder moves
    eventually(lambda: found(client, "teleportation") == ["howtos/physics.md"])
    assert found(client, "zanzibar") == ["howtos/caching.md"]

    (corpus / "howtos" / "physics.md").unlink()
    eventually(lambda: found(client, "teleportation") == [])

    health = eventually(  # published, and the update has returned
        lambda: not (h := client.get("/api/health").json())["watch"]["building"] and h
    )
    watch = health["watch"]
    assert health["status"] == "ok" and watch["problem"] is None and watch["builds"] >= 5
    assert watch["last_change"] and watch["last_published"]
    assert health["last_build"] == {"added": 0, "modified": 0, "removed": 1, "took_in": 0}
    assert health["corpus_changed"] is False


def test_the_status_says_when_the_index_changed_and_what_it_took_in(
    site: dict[str, Any],
) -> None:
    client, corpus = site["client"], site["corpus"]
    before = client.get("/api/health").json()["built_at"]
    (corpus / "guides" / "queues.md").write_text("# Queues\n\nCelery workers consume tasks.\n")
    eventually(lambda: found(client, "celery") == ["guides/queues.md"])
    health = eventually(  # published, and the update has returned
        lambda: not (h := client.get("/api/health").json())["watch"]["building"] and h
    )
    assert health["last_build"]["took_in"] == 1 and health["last_build"]["added"] == 1
    assert health["built_at"] >= before
    panel = unescape_markdown(status_markdown(site["app"].state.service.status()))
    when = health["built_at"].replace("T", " ").replace("+", " +")
    assert f"Index updated {when}: took in 1 file, removed 0" in panel
    assert "**Live**: changes to the corpus are indexed" in panel and "failed" not in panel


def test_a_file_that_fails_to_parse_is_a_warning_not_an_outage(site: dict[str, Any]) -> None:
    client, corpus = site["client"], site["corpus"]
    (corpus / "guides" / "broken.ipynb").write_text("{ not a notebook")
    (corpus / "guides" / "queues.md").write_text("# Queues\n\nCelery workers consume tasks.\n")
    eventually(lambda: found(client, "celery") == ["guides/queues.md"])
    skipped = client.get("/api/documents").json()["skipped"]
    assert [s["source"] for s in skipped] == ["guides/broken.ipynb"]
    assert "not a valid notebook" in skipped[0]["reason"]
    health = client.get("/api/health").json()
    assert health["status"] == "ok" and health["watch"]["problem"] is None
    assert found(client, "invalidation")  # the rest answers as before
    panel = status_markdown(site["app"].state.service.status())
    assert "1 file not indexed" in panel


def test_a_failed_build_keeps_the_old_index_serving_and_says_why(site: dict[str, Any]) -> None:
    client, corpus = site["client"], site["corpus"]
    shutil.rmtree(corpus / "guides")
    shutil.rmtree(corpus / "reference")
    for stray in corpus.rglob("*"):
        if stray.is_file():
            stray.unlink()
    health = eventually(lambda: (h := client.get("/api/health").json())["watch"]["problem"] and h)
    assert "no indexable text" in health["watch"]["problem"] and health["watch"]["failed_at"]
    assert found(client, "invalidation") == ["guides/caching.md"]  # the old index answers
    panel = status_markdown(site["app"].state.service.status(refresh=True))
    assert "The last update failed" in panel and "keeps serving" in panel

    (corpus / "back.md").write_text("# Back\n\nPhoenix pages return.\n")
    eventually(lambda: found(client, "phoenix") == ["back.md"])
    eventually(lambda: client.get("/api/health").json()["watch"]["problem"] is None)


def test_fifty_saves_in_a_second_make_at_most_two_builds_while_serving(
    site: dict[str, Any],
) -> None:
    client, corpus = site["client"], site["corpus"]
    page = corpus / "guides" / "locking.md"
    original = page.read_text()
    for i in range(50):
        page.write_text(f"{original}\nSave {i}: mark{i}.\n")
        time.sleep(0.02)
    eventually(lambda: found(client, "mark49") == ["guides/locking.md"])
    time.sleep(1.5)  # anything still pending would have started by now
    watch = eventually(
        lambda: not (w := client.get("/api/health").json()["watch"])["building"] and w
    )
    assert 1 <= watch["builds"] <= 2, json.dumps(watch)
