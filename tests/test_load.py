"""The served app under concurrent load, and while builds publish new index generations.

The server runs on 127.0.0.1 on a free port and is stopped after each module; every load
loop is bounded both in requests and in seconds.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from assistant import build_index
from assistant.testing import HashEncoder
from assistant.web.server import create_app
from benchmarks.load import histogram_quantile, main, percentile, run_load
from tests.webapp import make_index, serving

QUESTIONS = [
    "When are stale cache entries removed?",
    "How does optimistic locking detect a conflict?",
    "What does a CORS preflight request check?",
    "How do pytest fixtures share setup?",
    "Why use multi-stage Docker builds?",
]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("load")
    encoder = HashEncoder()
    settings, nexus = make_index(root, encoder, hostile=False)
    app = create_app(settings, nexus=nexus)
    app.state.service._reload_every = 0.2  # pick up new builds quickly in these tests
    with serving(app) as url:
        yield {"url": url, "settings": settings, "encoder": encoder}


def test_percentiles_interpolate_between_ranks() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 99) == pytest.approx(99.01)
    assert percentile([], 50) is None


def test_quantiles_from_histogram_buckets_interpolate_as_prometheus_does() -> None:
    # 10 observations up to 0.1 s, 30 more up to 0.2 s, none above: the median is the
    # 20th, a third of the way into the second bucket.
    buckets = {0.1: 10.0, 0.2: 40.0, 0.5: 40.0, float("inf"): 40.0}
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.1 + 0.1 * (10 / 30))
    assert histogram_quantile(0.25, buckets) == pytest.approx(0.1)
    assert histogram_quantile(0.1, buckets) == pytest.approx(0.04)
    # A rank in the open-ended bucket is reported as the largest finite bound.
    assert histogram_quantile(0.99, {0.1: 1.0, float("inf"): 2.0}) == pytest.approx(0.1)
    assert histogram_quantile(0.5, {0.1: 0.0, float("inf"): 0.0}) is None


def test_a_short_load_of_search_and_ask_has_no_errors(site: dict[str, Any]) -> None:
    started = time.monotonic()
    result = asyncio.run(
        run_load(site["url"], clients=8, duration=3, questions=QUESTIONS, max_requests=200)
    )
    assert time.monotonic() - started < 3 + 30 + 5
    assert result["total"]["errors"] == 0, result["total"]["error_samples"]
    for endpoint in ("search", "ask"):
        assert result[endpoint]["requests"] >= 4, result  # each client makes one at least
        assert (
            result[endpoint]["p50_ms"] <= result[endpoint]["p95_ms"] <= result[endpoint]["p99_ms"]
        )
    # What the server counted meanwhile is what the clients did.
    server = result["server"]
    searches, asks = result["search"]["requests"], result["ask"]["requests"]
    assert server["search"]["responses"] == {"200": searches}
    assert server["search"]["count"] == searches
    assert sum(server["answers"].values()) == asks
    assert server["library_search"]["count"] == searches + asks
    assert server["ask"]["route"] == "GET /gradio_api/call/{api_name}/{event_id}"
    for timed in (server["search"], server["library_search"]):
        assert 0 < timed["p50_ms"] <= timed["p95_ms"] and timed["mean_ms"] > 0
    # The library search is a part of the round trip the client timed.
    assert server["library_search"]["mean_ms"] < result["total"]["mean_ms"]


def test_failed_requests_are_counted_not_hidden(site: dict[str, Any]) -> None:
    # An empty question is refused by both endpoints; each refusal is an error of the load.
    result = asyncio.run(
        run_load(site["url"], clients=2, duration=20, questions=["\x00"], max_requests=3)
    )
    assert result["total"]["errors"] == result["total"]["requests"] == 6
    assert result["server"]["search"]["responses"] == {"400": 3}  # refused, and counted so
    assert result["server"]["library_search"]["count"] == 0
    assert any("400" in s for s in result["search"]["error_samples"])
    assert any("error" in s.lower() for s in result["ask"]["error_samples"])


def test_the_command_line_writes_json_and_fails_on_errors(
    site: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "load.json"
    args = ["--url", site["url"], "--clients", "2", "--duration", "1", "--json", str(out)]
    assert main(args) == 0
    assert "total" in capsys.readouterr().out
    import json

    result = json.loads(out.read_text())
    assert result["clients"] == 2 and result["total"]["errors"] == 0
    assert result["command"].startswith("benchmarks/load.py --url")


def test_rebuilding_while_the_server_is_loaded_fails_no_request_and_switches(
    site: dict[str, Any],
) -> None:
    settings, encoder = site["settings"], site["encoder"]
    page = settings.corpus_dir / "guides" / "teleport.md"
    question = "quantum teleportation protocol"
    outcome: dict[str, Any] = {}

    def load() -> None:
        outcome["result"] = asyncio.run(
            run_load(site["url"], clients=6, duration=6, questions=[question, *QUESTIONS])
        )

    loader = threading.Thread(target=load)
    loader.start()
    try:
        time.sleep(1)
        for n in range(3):
            page.write_text(f"# Teleport\n\nThe quantum teleportation protocol, take {n}.\n")
            build_index(settings.corpus_dir, settings.index_dir, settings=settings, encoder=encoder)
            time.sleep(0.5)
    finally:
        loader.join(timeout=60)
    result = outcome["result"]
    assert result["total"]["errors"] == 0, result["total"]["error_samples"]
    assert result["total"]["requests"] >= 12

    import httpx

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the service checks for new builds every 0.2 s
        hits = httpx.get(f"{site['url']}/api/search", params={"q": question}).json()["hits"]
        if hits[0]["source"] == "guides/teleport.md":
            break
        time.sleep(0.2)
    assert hits[0]["source"] == "guides/teleport.md" and "take 2" in hits[0]["text"]


@pytest.mark.slow
@pytest.mark.model
def test_app_py_served_in_a_child_process_holds_a_short_load(
    corpus: Path, index_dir: Path, real_encoder: object
) -> None:
    from benchmarks.load import served_index

    build_index(corpus, index_dir, encoder=real_encoder)  # type: ignore[arg-type]
    with served_index(index_dir) as url:
        result = asyncio.run(run_load(url, clients=4, duration=5, questions=QUESTIONS))
    assert result["total"]["errors"] == 0, result["total"]["error_samples"]
    assert result["search"]["requests"] > 4 and result["ask"]["requests"] > 4
