"""Every response of the served app carries a request id, and every request makes one log line
with it: as text by default, as JSON with ``--log-format json``."""

from __future__ import annotations

import base64
import contextvars
import json
import logging
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from assistant.logs import JsonFormatter, bound
from assistant.testing import HashEncoder
from assistant.web.requests import REQUEST_ID_HEADER, request_id
from assistant.web.server import create_app
from tests.webapp import make_index, serving

AUTH = {"Authorization": "Basic " + base64.b64encode(b"ops:pw").decode()}
GENERATED = re.compile(r"[0-9a-f]{32}")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("request-log")
    settings, nexus = make_index(root, HashEncoder(), hostile=False)
    app = create_app(settings, nexus=nexus, auth=("ops", "pw"))
    with serving(app) as url, httpx.Client(base_url=url, headers=AUTH, timeout=30) as client:
        yield {"app": app, "client": client, "url": url}


def line_of(caplog: pytest.LogCaptureFixture, rid: str) -> dict[str, Any]:
    """The JSON log line of the request with id ``rid``."""
    formatted = [json.loads(JsonFormatter().format(r)) for r in caplog.records]
    (line,) = [entry for entry in formatted if entry.get("request_id") == rid]
    return line


def test_a_clients_request_id_is_returned_and_logged_with_the_request(
    site: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="assistant.web.requests")
    rid = "trace-4bf92f3577b34da6a3ce929d0e0e4736"
    question = {"q": "private question about caching", "collection": "default"}
    response = site["client"].get("/api/search", params=question, headers={REQUEST_ID_HEADER: rid})
    assert response.status_code == 200 and response.headers[REQUEST_ID_HEADER] == rid
    line = line_of(caplog, rid)
    assert line["level"] == "INFO" and line["logger"] == "assistant.web.requests"
    assert line["method"] == "GET" and line["route"] == line["path"] == "/api/search"
    assert line["status"] == 200 and line["duration_ms"] > 0
    assert line["collection"] == "default" and line["client"] == "127.0.0.1"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", line["time"])
    assert "private question" not in json.dumps(line)  # questions stay out of the log
    text = next(r.getMessage() for r in caplog.records if rid in r.getMessage())
    assert text.startswith("GET /api/search 200 ") and "collection default" in text


@pytest.mark.parametrize(
    "sent",
    ["x" * 129, "two words", 'quote"d', "naïve", "-leading-dash", "<script>"],
)
def test_an_unusable_request_id_is_replaced_not_echoed(site: dict[str, Any], sent: str) -> None:
    headers = {REQUEST_ID_HEADER: sent.encode("utf-8")}  # the raw bytes, as any client sends
    response = site["client"].get("/api/health", headers=headers)
    assert response.status_code == 200
    assert GENERATED.fullmatch(response.headers[REQUEST_ID_HEADER])


def test_every_response_carries_an_id_refusals_and_errors_included(
    site: dict[str, Any], caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.INFO, logger="assistant.web.requests")
    client, url = site["client"], site["url"]
    answers = {
        "no login": httpx.get(f"{url}/api/health"),
        "not found": client.get("/no/such/page"),
        "too long": client.get("/" + "a" * 2000),
        "bad query": client.get("/api/search", params={"q": ""}),
        "page": client.get("/"),
    }

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(site["app"].state.service, "search", broken)
    answers["server error"] = client.get("/api/search", params={"q": "cache"})
    statuses = {what: r.status_code for what, r in answers.items()}
    assert statuses == {
        "no login": 401,
        "not found": 404,
        "too long": 414,
        "bad query": 400,
        "page": 200,
        "server error": 500,
    }
    ids = [r.headers[REQUEST_ID_HEADER] for r in answers.values()]
    assert all(GENERATED.fullmatch(i) for i in ids) and len(set(ids)) == len(ids)
    for response in answers.values():  # each has its one line, with its own status
        assert line_of(caplog, response.headers[REQUEST_ID_HEADER])["status"] == (
            response.status_code
        )


def test_lines_written_while_a_request_is_served_carry_its_id() -> None:
    formatter = JsonFormatter()
    record = logging.LogRecord("assistant.x", logging.WARNING, __file__, 1, "slow %s", ("x",), None)
    assert "request_id" not in json.loads(formatter.format(record))
    seen: list[dict[str, Any]] = []

    def write() -> None:
        seen.append(json.loads(formatter.format(record)))

    with bound(request_id="r-1"):
        context = contextvars.copy_context()  # as Starlette hands a request to its thread pool
        worker = threading.Thread(target=context.run, args=(write,))
        worker.start()
        worker.join()
    assert seen == [{**seen[0], "request_id": "r-1", "level": "WARNING", "message": "slow x"}]
    assert "request_id" not in json.loads(formatter.format(record))


def test_a_traceback_goes_into_the_json_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record = logging.LogRecord("a", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "failed" and "ValueError: boom" in line["exception"]


def test_request_ids_are_bounded_tokens() -> None:
    assert request_id("4bf92f35-77b3-4da6-a3ce-929d0e0e4736") == (
        "4bf92f35-77b3-4da6-a3ce-929d0e0e4736"
    )
    assert request_id("Root=1-5759e988-bd862e3fe1be46a994272793") == (
        "Root=1-5759e988-bd862e3fe1be46a994272793"
    )
    assert request_id("a" * 128) == "a" * 128
    for unusable in (None, "", "a" * 129, "a b", "a\nb", "ünï"):
        assert GENERATED.fullmatch(request_id(unusable))


def test_serve_takes_the_log_format_from_the_flag_or_the_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from assistant.cli import main

    given: list[str] = []
    monkeypatch.setattr(
        "assistant.web.server.serve", lambda *a, **kw: given.append(kw["log_format"])
    )
    monkeypatch.delenv("NEXUS_AUTH_USER", raising=False)
    monkeypatch.delenv("NEXUS_AUTH_PASSWORD", raising=False)
    monkeypatch.delenv("NEXUS_LOG_FORMAT", raising=False)
    assert main(["serve", "--no-build"]) == 0
    assert main(["serve", "--no-build", "--log-format", "json"]) == 0
    monkeypatch.setenv("NEXUS_LOG_FORMAT", "json")
    assert main(["serve", "--no-build"]) == 0
    assert main(["serve", "--no-build", "--log-format", "text"]) == 0
    assert given == ["text", "json", "json", "text"]
    assert main(["serve", "--no-build", "--log-format", "xml"]) != 0
    assert "'xml' is not one of 'text', 'json'" in capsys.readouterr().err


@pytest.mark.model
def test_app_py_writes_one_json_object_a_line(
    default_build: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from benchmarks.common import served_app

    monkeypatch.setenv("NEXUS_ENCODER_CACHE", str(default_build.encoder_cache))  # its export
    log = tmp_path / "server.log"
    rid = "check-json-log-1"
    args = ["--log-format", "json"]
    with served_app(default_build.index_dir, args=args, auth=False, log=log) as (url, _):
        response = httpx.get(
            f"{url}/api/search", params={"q": "cache"}, headers={REQUEST_ID_HEADER: rid}
        )
        assert response.status_code == 200 and response.headers[REQUEST_ID_HEADER] == rid
    entries = [json.loads(line) for line in log.read_text().splitlines()]  # each line parses
    loggers = {entry["logger"] for entry in entries}
    assert "uvicorn.error" in loggers  # uvicorn's own lines too, in the same format
    (line,) = [entry for entry in entries if entry.get("request_id") == rid]
    assert line["route"] == "/api/search" and line["status"] == 200
    assert not [entry for entry in entries if entry["logger"] == "uvicorn.access"]
