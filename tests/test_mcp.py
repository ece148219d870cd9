"""The MCP tools ``search`` and ``ask``, called by the ``mcp`` client over streamable HTTP on the
real running app, behind its login."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest

from assistant.testing import HashEncoder
from assistant.web.server import create_app
from tests.test_collections import build_django
from tests.webapp import make_index, serving

AUTH = {"Authorization": "Basic " + base64.b64encode(b"nexus:pw").decode()}
MCP = "/gradio_api/mcp/"


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("mcp")
    encoder = HashEncoder()
    settings, _ = make_index(root, encoder)
    collections = {"hub": settings.index_dir, "django": build_django(root, encoder)}
    app = create_app(settings, collections=collections, encoder=encoder, auth=("nexus", "pw"))
    with serving(app) as base:
        yield base


def session(url: str, work: Callable[[Any], Awaitable[Any]], headers: dict[str, str] = AUTH) -> Any:
    """Run ``work(session)`` in an initialized MCP client session with the app."""
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    async def run() -> Any:
        async with (
            httpx.AsyncClient(headers=headers, timeout=httpx.Timeout(30, read=300)) as http,
            streamable_http_client(url + MCP, http_client=http) as (read, write, _),
            ClientSession(read, write) as client,
        ):
            await client.initialize()
            return await work(client)

    return asyncio.run(run())


def test_the_tools_are_search_and_ask_described_for_an_agent(url: str) -> None:
    async def work(client: Any) -> Any:
        return (await client.list_tools()).tools

    tools = {tool.name: tool for tool in session(url, work)}
    assert set(tools) == {"search", "ask"}
    search = tools["search"]
    assert search.description.startswith("Search the documentation for the passages")
    assert "`source` file and the lines it comes from" in search.description
    params = search.inputSchema["properties"]
    assert search.inputSchema["required"] == ["query"]
    assert set(params) == {"query", "k", "mode", "category", "collection"}
    assert "at most 2,000 characters" in params["query"]["description"]
    assert "'hub', 'django'" in params["collection"]["description"]
    assert all(p["description"] for p in params.values())  # every parameter explained
    ask = tools["ask"]
    assert "`citation` number" in ask.description
    assert "follow-up" in ask.inputSchema["properties"]["history"]["description"]


def test_search_returns_passages_with_sources_and_line_ranges(url: str) -> None:
    async def work(client: Any) -> Any:
        hub = await client.call_tool("search", {"query": "shrink a container image", "k": 2})
        django = await client.call_tool(
            "search", {"query": "select_related foreign keys", "collection": "django"}
        )
        return hub, django

    hub, django = session(url, work)
    assert not hub.isError
    hits = json.loads(hub.content[0].text)  # JSON, as the description promises
    assert len(hits) == 2 and hits[0]["source"] == "reference/docker.md"
    assert 1 <= hits[0]["start_line"] <= hits[0]["end_line"]
    assert "multi-stage" in hits[0]["text"].lower()
    assert json.loads(django.content[0].text)[0]["source"] == "models/querysets.md"


def test_ask_answers_with_citations_and_follows_up(url: str) -> None:
    async def work(client: Any) -> Any:
        first = await client.call_tool("ask", {"question": "When are stale cache entries removed?"})
        follow = await client.call_tool(
            "ask",
            {
                "question": "and how do I invalidate it?",
                "history": [{"role": "user", "content": "How does caching work?"}],
            },
        )
        return first, follow

    first, follow = session(url, work)
    reply = json.loads(first.content[0].text)
    assert reply["answered"] and reply["hits"][0]["source"] == "guides/caching.md"
    cited = {s["citation"] for s in reply["answer"]}
    assert cited and cited <= {h["rank"] for h in reply["hits"]}
    assert json.loads(follow.content[0].text)["folded"] is True


def test_bad_input_is_a_tool_error_that_says_why(url: str) -> None:
    async def work(client: Any) -> Any:
        return (
            await client.call_tool("search", {"query": "x" * 2500}),
            await client.call_tool("search", {"query": "cache", "collection": "nope"}),
        )

    too_long, unknown = session(url, work)
    assert too_long.isError and "limit is 2,000" in too_long.content[0].text
    assert unknown.isError and "no collection 'nope'" in unknown.content[0].text


def test_the_mcp_routes_need_the_login(url: str) -> None:
    refused = httpx.post(url + MCP, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert refused.status_code == 401

    async def work(client: Any) -> Any:
        return await client.list_tools()

    wrong = {"Authorization": "Basic " + base64.b64encode(b"nexus:nope").decode()}
    with pytest.raises(Exception):  # noqa: B017 - the client wraps the 401 in its own errors
        session(url, work, headers=wrong)
