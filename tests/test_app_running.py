"""The app served for real on a free port, called with gradio_client and plain HTTP."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from assistant.testing import HashEncoder
from assistant.web.server import create_app
from tests.webapp import make_index, serving


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("running")
    settings, nexus = make_index(root, HashEncoder())
    app = create_app(
        settings, nexus=nexus, feedback_log=root / "feedback.jsonl", auth=("nexus", "pw")
    )
    with serving(app) as base:
        yield base


AUTH = {"Authorization": "Basic " + base64.b64encode(b"nexus:pw").decode()}


def test_rest_api_over_http(url: str) -> None:
    assert httpx.get(f"{url}/api/health").status_code == 401
    response = httpx.get(
        f"{url}/api/search", params={"q": "shrink a container image", "k": 2}, headers=AUTH
    )
    assert response.status_code == 200
    hits = response.json()["hits"]
    assert hits[0]["source"] == "reference/docker.md" and len(hits) == 2
    health = httpx.get(f"{url}/api/health", headers=AUTH).json()
    assert health["index_loaded"] and health["documents"] == 7


def test_gradio_client_calls_ask_and_search_by_name(url: str) -> None:
    from gradio_client import Client

    client = Client(url, headers=AUTH, verbose=False)
    reply = client.predict(question="When are stale cache entries removed?", api_name="/ask")
    assert reply["answered"] and reply["hits"][0]["source"] == "guides/caching.md"
    assert reply["answer"] and reply["answer"][0]["citation"] >= 1
    assert reply["seconds"] >= 0

    follow = client.predict(
        question="and how do I invalidate it?",
        history=[
            {"role": "user", "content": "How does caching work?"},
            {"role": "assistant", "content": "Caching keeps results close. [1]"},
        ],
        api_name="/ask",
    )
    assert follow["folded"] and follow["query"].startswith("How does caching work?")

    hits = client.predict(query="pytest fixtures", k=2, mode="keyword", api_name="/search")
    assert len(hits) == 2 and hits[0]["source"] == "reference/testing.rst"


def test_gradio_client_gets_a_clear_error_for_bad_input(url: str) -> None:
    from gradio_client import Client

    client = Client(url, headers=AUTH, verbose=False)
    with pytest.raises(Exception, match="limit is 2,000"):
        client.predict(question="x" * 2500, api_name="/ask")


def test_unauthenticated_gradio_client_is_refused(url: str, tmp_path: Path) -> None:
    from gradio_client import Client

    with pytest.raises(Exception):  # noqa: B017 - the client raises its own error types
        Client(url, verbose=False)
