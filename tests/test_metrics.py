"""``/metrics`` of the served app, scraped over HTTP after real requests: what an operator's
Prometheus would read (requests per route, search latency per mode, replies refused, each
collection's index, builds and watch events), and nothing it should not (raw paths)."""

from __future__ import annotations

import base64
import shutil
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from assistant import Settings
from assistant.testing import HashEncoder
from assistant.web.metrics import answer_outcome
from assistant.web.requests import UNROUTED
from assistant.web.server import create_app
from tests.webapp import make_index, serving

AUTH = {"Authorization": "Basic " + base64.b64encode(b"ops:pw").decode()}
ANSWERABLE = "When are stale cache entries removed?"  # its best passage's cosine: 0.42
NONSENSE = "zebra quantum lullaby"  # 0.09: below the floor this app is given


class Scrape:
    """One scrape of ``/metrics``, parsed as Prometheus parses it."""

    def __init__(self, text: str) -> None:
        self.samples = [
            (sample.name, sample.labels, sample.value)
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        ]

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples called ``name`` whose labels include ``labels``."""
        return sum(v for n, have, v in self.samples if n == name and labels.items() <= have.items())

    def labels(self, name: str, label: str) -> set[str]:
        return {have[label] for n, have, _ in self.samples if n == name and label in have}


def scrape(client: httpx.Client) -> Scrape:
    response = client.get("/metrics")
    assert response.status_code == 200, response.text
    return Scrape(response.text)


def eventually(check: Callable[[], Any], timeout: float = 30.0) -> Any:
    """The first truthy result of ``check``, polled until ``timeout``."""
    deadline = time.monotonic() + timeout
    while not (result := check()):
        if time.monotonic() > deadline:
            raise AssertionError("the condition did not come true in time")
        time.sleep(0.1)
    return result


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Two collections behind a login: ``hub`` (built) and ``later`` (not built yet)."""
    root = tmp_path_factory.mktemp("metrics")
    encoder = HashEncoder()
    settings, _ = make_index(root, encoder)
    app = create_app(
        settings,
        collections={"hub": settings.index_dir, "later": root / "not-built"},
        encoder=encoder,
        auth=("ops", "pw"),
        min_relevance=0.3,
    )
    with serving(app) as url, httpx.Client(base_url=url, headers=AUTH, timeout=30) as client:
        yield {"app": app, "client": client, "url": url}


def ask(client: httpx.Client, question: str) -> dict[str, Any]:
    """One reply of the Gradio ``ask`` endpoint, through Gradio's HTTP protocol."""
    import json

    event = client.post("/gradio_api/call/v2/ask", json={"question": question}).json()
    stream = client.get(f"/gradio_api/call/ask/{event['event_id']}").text
    data = stream.split("event: complete\ndata:", 1)[1].strip().splitlines()[0]
    return json.loads(data)[0]  # type: ignore[no-any-return]


def test_metrics_ask_for_the_same_login_as_every_other_route(site: dict[str, Any]) -> None:
    assert httpx.get(f"{site['url']}/metrics").status_code == 401
    client = site["client"]
    plain = client.get("/metrics")
    assert plain.status_code == 200 and plain.headers["content-type"].startswith("text/plain")
    openmetrics = client.get("/metrics", headers={"Accept": "application/openmetrics-text"})
    assert openmetrics.headers["content-type"].startswith("application/openmetrics-text")
    assert openmetrics.text.rstrip().endswith("# EOF")


def test_requests_are_counted_by_route_template_method_and_status(site: dict[str, Any]) -> None:
    client = site["client"]
    before = scrape(client)
    for question in ("cache invalidation", "docker layers"):
        assert client.get("/api/search", params={"q": question}).status_code == 200
    assert client.get("/api/search", params={"q": ""}).status_code == 400
    missing = {"source": "guides/missing-7c1e.md"}
    assert client.get("/api/document", params=missing).status_code == 404
    assert client.get("/api/search", params={"q": "x", "collection": "later"}).status_code == 503
    assert client.get("/no/such/page-7c1e").status_code == 404
    assert client.request("BREW", "/api/search").status_code in (404, 405)
    assert httpx.get(f"{site['url']}/api/health").status_code == 401  # no login
    after = scrape(client)

    def grew(**labels: str) -> float:
        name = "nexus_http_requests_total"
        return after.value(name, **labels) - before.value(name, **labels)

    assert grew(method="GET", route="/api/search", status="200") == 2
    assert grew(method="GET", route="/api/search", status="400") == 1
    assert grew(method="GET", route="/api/search", status="503") == 1
    assert grew(method="GET", route="/api/document", status="404") == 1
    assert grew(method="GET", route=UNROUTED, status="404") == 1
    assert grew(method="GET", route=UNROUTED, status="401") == 1  # refused before routing
    assert grew(method="other") == 1  # a made-up method is not a label of its own
    timed = {"name": "nexus_http_request_duration_seconds_count", "route": "/api/search"}
    assert after.value(**timed, method="GET") - before.value(**timed, method="GET") == 4
    # Labels are templates: nothing a client typed becomes a series of its own.
    routes = after.labels("nexus_http_requests_total", "route")
    assert not [r for r in routes if "7c1e" in r or "?" in r], routes
    assert "BREW" not in after.labels("nexus_http_requests_total", "method")


def test_search_latency_is_timed_per_mode_and_replies_by_outcome(site: dict[str, Any]) -> None:
    client = site["client"]
    before = scrape(client)
    for mode in ("keyword", "keyword", "semantic"):
        assert client.get("/api/search", params={"q": "pytest fixtures", "mode": mode}).is_success
    assert ask(client, ANSWERABLE)["answered"] is True
    assert ask(client, NONSENSE)["answered"] is False
    after = scrape(client)

    def grew(name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    searches = "nexus_search_duration_seconds_count"
    assert grew(searches, collection="hub", mode="keyword") == 2
    assert grew(searches, collection="hub", mode="semantic") == 1
    assert grew(searches, collection="hub", mode="hybrid") == 2  # each reply searched once
    assert grew("nexus_answers_total", collection="hub", outcome="answered") == 1
    assert grew("nexus_answers_total", collection="hub", outcome="refused") == 1
    assert grew("nexus_answers_total", outcome="weak") == 0
    # The library search is a part of its request, timed apart from the HTTP round trip.
    searched = grew("nexus_search_duration_seconds_sum", mode="keyword")
    served = grew("nexus_http_request_duration_seconds_sum", route="/api/search")
    assert 0 < searched < served


def test_each_collection_reports_its_index_and_whether_it_answers(site: dict[str, Any]) -> None:
    client = site["client"]
    metrics = scrape(client)
    health = client.get("/api/health").json()["collections"]["hub"]
    assert metrics.value("nexus_collection_up", collection="hub") == 1
    assert metrics.value("nexus_collection_up", collection="later") == 0
    assert metrics.value("nexus_index_documents", collection="hub") == health["documents"] == 7
    assert metrics.value("nexus_index_passages", collection="hub") == health["chunks"]
    info = [labels for name, labels, _ in metrics.samples if name == "nexus_index_info"]
    assert info == [
        {
            "collection": "hub",
            "generation": health["generation"],
            "model": "hash-encoder",
            "store": "faiss",
        }
    ]
    built = metrics.value("nexus_index_built_timestamp_seconds", collection="hub")
    assert built == datetime.fromisoformat(health["built_at"]).timestamp()
    assert metrics.labels("nexus_index_documents", "collection") == {"hub"}  # none for later
    assert metrics.value("nexus_update_failed", collection="hub") == 0


def test_builds_and_watch_events_are_counted_while_the_index_lives(tmp_path: Path) -> None:
    settings, nexus = make_index(tmp_path, HashEncoder(), hostile=False)
    app = create_app(settings, nexus=nexus, watch=True)
    corpus = settings.corpus_dir
    with serving(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        first = eventually(lambda: (m := scrape(client)).value("nexus_watch_running") and m)
        time.sleep(0.3)  # the watches are in place once the first wait has begun
        documents = first.value("nexus_index_documents")
        assert app.state.service.rebuild() == "Already up to date."  # the Rebuild button's call
        (corpus / "guides" / "queues.md").write_text("# Queues\n\nWorkers take jobs in turn.\n")
        grown = eventually(
            lambda: (
                (m := scrape(client)).value("nexus_index_documents") == documents + 1
                and m.value("nexus_build_duration_seconds_count", outcome="published")
                and m
            )
        )
        builds = "nexus_build_duration_seconds_count"
        assert grown.value(builds, trigger="request", outcome="unchanged") == 1
        assert grown.value(builds, trigger="watch", outcome="published") >= 1
        assert grown.value("nexus_watch_bursts_total") >= 1
        assert grown.value("nexus_watch_changes_total") >= 1
        generation = client.get("/api/health").json()["generation"]
        assert grown.labels("nexus_index_info", "generation") == {generation}
        assert generation not in first.labels("nexus_index_info", "generation")

        for entry in corpus.iterdir():  # an empty corpus cannot be built
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        failed = eventually(lambda: (m := scrape(client)).value("nexus_update_failed") and m)
        assert failed.value(builds, trigger="watch", outcome="failed") >= 1
        assert failed.value("nexus_index_documents") == documents + 1  # the last index serves
        assert failed.value("nexus_collection_up") == 1


def test_every_app_keeps_its_own_counts(site: dict[str, Any], tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from assistant import Assistant

    hub = site["app"].state.collections.get("hub")
    settings = Settings(index_dir=hub.assistant.index.path.parent)
    nexus = Assistant.load(settings.index_dir, settings=settings, encoder=HashEncoder())
    with TestClient(create_app(settings, nexus=nexus)) as other:
        first = Scrape(other.get("/metrics").text)
        assert first.value("nexus_http_requests_total", route="/api/search") == 0
        assert scrape(site["client"]).value("nexus_http_requests_total", route="/api/search") > 0


def test_a_reply_is_answered_weak_or_refused() -> None:
    from dataclasses import replace

    from assistant.search.answer import Reply

    refused = Reply("q", "q", False, (), (), (), 0.01)
    answered = replace(refused, hits=(object(),))  # type: ignore[arg-type]
    assert answer_outcome(refused) == "refused"
    assert answer_outcome(answered) == "answered"
    assert answer_outcome(replace(answered, weak=True)) == "weak"
