"""Load test of the running web app: N concurrent clients for a bounded time.

Each client is an asyncio task with its own HTTP connection. It picks an endpoint in turn
(``search`` is ``GET /api/search``, ``ask`` is the Gradio ``ask`` endpoint called through
Gradio's HTTP protocol: ``POST /gradio_api/call/v2/ask``, then the event stream until
``complete``), waits for the whole answer, records the latency and goes again, until the time
is up or it has made ``--max-requests`` requests. Any status other than 200, a timeout, a
connection error, a Gradio ``error`` event or a body without the expected fields counts as a
failed request.

Before and after the run it scrapes the server's ``/metrics`` and records, beside what the
clients measured, what the server counted in between (``server``): responses per endpoint by
status, their latency as the server timed it (mean from the histogram's sum and count; p50,
p95 and p99 estimated from its buckets as Prometheus' ``histogram_quantile`` does), the time
the library search itself took, and how the replies came out (answered, weak, refused).

Usage::

    # from the repository root: serve an index in a child process and load it
    .venv/bin/python -m benchmarks.load --index benchmarks/data/django-index \\
        --clients 32 --duration 60 --json benchmarks/results/load.json
    # or load a server that is already running
    .venv/bin/python -m benchmarks.load --url http://127.0.0.1:7860 --clients 8 --duration 10

With ``--user`` and ``--password`` (or ``NEXUS_AUTH_USER`` / ``NEXUS_AUTH_PASSWORD``) every
request carries basic auth.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import platform
import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from assistant.web.metrics import ANSWER_OUTCOMES
from benchmarks.common import QUESTIONS_FILE, machine, percentile, served_index

ENDPOINTS = ("search", "ask")
# The route whose responses are each endpoint's, as the server's metrics label them: a
# search is one GET; an ask is a POST that submits it and the event stream that brings the
# answer, which is timed from the stream's opening to its end.
SERVER_ROUTES = {
    "search": ("GET", "/api/search"),
    "ask": ("GET", "/gradio_api/call/{api_name}/{event_id}"),
}


@dataclass
class EndpointStats:
    """Latencies (seconds) of the requests to one endpoint that succeeded, and the failures."""

    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)

    def fail(self, reason: str) -> None:
        self.errors += 1
        if len(self.error_samples) < 5:
            self.error_samples.append(reason[:300])


@dataclass(frozen=True)
class Summary:
    """What one endpoint (or all of them) did during the run."""

    requests: int
    errors: int
    throughput_rps: float
    mean_ms: float | None
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    error_samples: list[str]


def summarize(stats: EndpointStats, seconds: float) -> Summary:
    def ms(value: float | None) -> float | None:
        return None if value is None else round(value * 1000, 1)

    done = len(stats.latencies)
    return Summary(
        requests=done + stats.errors,
        errors=stats.errors,
        throughput_rps=round(done / seconds, 2) if seconds > 0 else 0.0,
        mean_ms=ms(sum(stats.latencies) / done) if done else None,
        p50_ms=ms(percentile(stats.latencies, 50)),
        p95_ms=ms(percentile(stats.latencies, 95)),
        p99_ms=ms(percentile(stats.latencies, 99)),
        max_ms=ms(max(stats.latencies, default=None)),
        error_samples=stats.error_samples,
    )


async def call_search(client: httpx.AsyncClient, question: str) -> None:
    response = await client.get("/api/search", params={"q": question, "k": 5})
    response.raise_for_status()
    if not isinstance(response.json().get("hits"), list):
        raise ValueError(f"no hits in {response.text[:200]}")


async def call_ask(client: httpx.AsyncClient, question: str) -> None:
    """One ``ask`` through Gradio's HTTP protocol: submit, then read events to the end."""
    submitted = await client.post("/gradio_api/call/v2/ask", json={"question": question})
    submitted.raise_for_status()
    event_id = submitted.json()["event_id"]
    event = None
    async with client.stream("GET", f"/gradio_api/call/ask/{event_id}") as stream:
        stream.raise_for_status()
        async for line in stream.aiter_lines():
            if line.startswith("event:"):
                event = line.partition(":")[2].strip()
            elif line.startswith("data:") and event in ("complete", "error"):
                data = line.partition(":")[2].strip()
                if event == "error":
                    raise ValueError(f"Gradio error event: {data[:200]}")
                reply = json.loads(data)[0]
                if "hits" not in reply:
                    raise ValueError(f"no hits in the reply: {data[:200]}")
                return
    raise ValueError(f"the event stream ended without a result (last event {event!r})")


CALLS = {"search": call_search, "ask": call_ask}


async def client_loop(
    client: httpx.AsyncClient,
    endpoints: Iterator[str],
    questions: Iterator[str],
    stats: dict[str, EndpointStats],
    deadline: float,
    max_requests: int,
) -> None:
    for _ in range(max_requests):
        if time.monotonic() >= deadline:
            return
        endpoint, question = next(endpoints), next(questions)
        started = time.perf_counter()
        try:
            await CALLS[endpoint](client, question)
        except (httpx.HTTPError, ValueError, KeyError, IndexError) as exc:
            stats[endpoint].fail(f"{type(exc).__name__}: {exc}")
        else:
            stats[endpoint].latencies.append(time.perf_counter() - started)


async def run_load(
    url: str,
    *,
    clients: int = 8,
    duration: float = 10.0,
    endpoints: Sequence[str] = ENDPOINTS,
    questions: Sequence[str] = (),
    auth: tuple[str, str] | None = None,
    timeout: float = 30.0,
    max_requests: int = 100_000,
    seed: int = 0,
) -> dict[str, Any]:
    """Run ``clients`` concurrent clients against ``url`` for ``duration`` seconds.

    Every client stops at the deadline or after ``max_requests`` requests; a request in
    flight at the deadline may take up to ``timeout`` more seconds, and nothing runs longer.

    Returns:
        A JSON-ready dict: the settings, then ``total`` and one entry per endpoint, each with
        requests, errors, throughput and mean, p50/p95/p99/max latency in milliseconds; then
        ``server``, what the server's metrics counted meanwhile (see :func:`server_view`;
        None for a server without ``/metrics``).
    """
    questions = list(questions) or load_questions()
    stats = {name: EndpointStats() for name in endpoints}
    before = scrape(url, auth)
    rng = random.Random(seed)
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    started = time.monotonic()
    deadline = started + duration
    async with httpx.AsyncClient(base_url=url, auth=auth, timeout=timeout, limits=limits) as client:
        tasks = []
        for n in range(clients):
            # Each client starts at a different endpoint and question, so the mix stays even.
            order = itertools.cycle(
                endpoints[n % len(endpoints) :] + endpoints[: n % len(endpoints)]
            )
            mine = questions[:]
            rng.shuffle(mine)
            loop = client_loop(client, order, itertools.cycle(mine), stats, deadline, max_requests)
            tasks.append(asyncio.create_task(loop))
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=duration + timeout + 5)
    elapsed = time.monotonic() - started
    after = scrape(url, auth) if before is not None else None
    total = EndpointStats(
        latencies=[x for s in stats.values() for x in s.latencies],
        errors=sum(s.errors for s in stats.values()),
        error_samples=[x for s in stats.values() for x in s.error_samples][:5],
    )
    return {
        "url": url,
        "clients": clients,
        "duration_s": duration,
        "elapsed_s": round(elapsed, 2),
        "endpoints": list(endpoints),
        "total": asdict(summarize(total, elapsed)),
        **{name: asdict(summarize(s, elapsed)) for name, s in stats.items()},
        "server": server_view(before, after, endpoints) if before and after else None,
    }


# The samples of a scrape: (name, labels) -> value, labels as sorted (name, value) pairs.
Labels = tuple[tuple[str, str], ...]
Samples = dict[tuple[str, Labels], float]


def scrape(url: str, auth: tuple[str, str] | None = None) -> Samples | None:
    """Every sample ``/metrics`` reports now; None for a server that has no metrics."""
    response = httpx.get(f"{url}/metrics", auth=auth, timeout=60)
    if response.status_code == 404:
        return None
    response.raise_for_status()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def moved(before: Samples, after: Samples, name: str, **labels: str) -> dict[Labels, float]:
    """How much each sample called ``name`` whose labels include ``labels`` grew between
    two scrapes, by its labels (a sample new in ``after`` grew from zero)."""
    wanted = set(labels.items())
    return {
        key[1]: value - before.get(key, 0.0)
        for key, value in after.items()
        if key[0] == name and wanted <= set(key[1])
    }


def histogram_quantile(q: float, buckets: dict[float, float]) -> float | None:
    """The ``q``-quantile (0-1) of a histogram given as upper bound -> cumulative count, as
    Prometheus estimates it: linearly within the bucket the rank falls in; the largest finite
    bound when it falls in the last. None for an empty histogram."""
    bounds = sorted(buckets)
    total = buckets[bounds[-1]] if bounds else 0.0
    if total <= 0:
        return None
    rank, lower, below = q * total, 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if bound == float("inf"):
                return lower
            share = (rank - below) / (count - below) if count > below else 0.0
            return lower + (bound - lower) * share
        lower, below = bound, count
    return lower


def _latency(before: Samples, after: Samples, name: str, **labels: str) -> dict[str, Any]:
    """Count, mean, p50, p95 and p99 (ms) of what histogram ``name`` observed between
    scrapes, summed over the series that match ``labels``."""
    count = sum(moved(before, after, f"{name}_count", **labels).values())
    total = sum(moved(before, after, f"{name}_sum", **labels).values())
    buckets: dict[float, float] = {}
    for key, grown in moved(before, after, f"{name}_bucket", **labels).items():
        bound = float(dict(key)["le"])
        buckets[bound] = buckets.get(bound, 0.0) + grown

    def ms(seconds: float | None) -> float | None:
        return None if seconds is None else round(seconds * 1000, 1)

    return {
        "count": int(count),
        "mean_ms": ms(total / count) if count else None,
        "p50_ms": ms(histogram_quantile(0.5, buckets)),
        "p95_ms": ms(histogram_quantile(0.95, buckets)),
        "p99_ms": ms(histogram_quantile(0.99, buckets)),
    }


def server_view(before: Samples, after: Samples, endpoints: Sequence[str]) -> dict[str, Any]:
    """What the server's metrics say the run did: per endpoint its responses by status and
    their latency, the library search's latency, and the replies by outcome."""
    view: dict[str, Any] = {}
    for endpoint in endpoints:
        method, route = SERVER_ROUTES[endpoint]
        statuses = moved(before, after, "nexus_http_requests_total", method=method, route=route)
        view[endpoint] = {
            "route": f"{method} {route}",
            "responses": {dict(k)["status"]: int(v) for k, v in sorted(statuses.items()) if v},
            **_latency(
                before, after, "nexus_http_request_duration_seconds", method=method, route=route
            ),
        }
    view["library_search"] = _latency(before, after, "nexus_search_duration_seconds")
    answers = moved(before, after, "nexus_answers_total")
    view["answers"] = {
        outcome: int(sum(v for k, v in answers.items() if dict(k)["outcome"] == outcome))
        for outcome in ANSWER_OUTCOMES
    }
    return view


def load_questions(path: Path = QUESTIONS_FILE) -> list[str]:
    """The questions of a JSON-lines question set (its ``question`` field)."""
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line)["question"] for line in fh if line.strip()]


def rebuild_during(
    url: str, corpus: Path, index: Path, *, after: float, auth: tuple[str, str] | None
) -> tuple[threading.Thread, dict[str, Any]]:
    """Start a thread that, ``after`` seconds from now, runs ``nexus build`` on ``corpus``
    into the served ``index`` and records how long it took and which generation is served."""
    record: dict[str, Any] = {"corpus": str(corpus)}

    def served_generation() -> str:
        return str(httpx.get(f"{url}/api/health", auth=auth, timeout=60).json()["generation"])

    def run() -> None:
        record["generation_before"] = served_generation()
        time.sleep(after)
        started = time.monotonic()
        command = [sys.executable, "-m", "assistant.cli", "build", "--corpus", str(corpus)]
        build = subprocess.run(
            [*command, "--index", str(index), "--quiet", "--json"],
            capture_output=True,
            text=True,
        )
        record["build_seconds"] = round(time.monotonic() - started, 1)
        record["build_exit_code"] = build.returncode
        if build.returncode == 0:
            built = json.loads(build.stdout)
            record["built_generation"] = built["generation"]
            record["embedded"], record["reused"] = built["embedded"], built["reused"]
        else:
            record["build_error"] = build.stderr[-500:]

    thread = threading.Thread(target=run)
    thread.start()
    return thread, record


def report(result: dict[str, Any]) -> str:
    """A small table for people."""
    lines = [
        f"{result['clients']} clients for {result['duration_s']:.0f}s against {result['url']}",
        f"{'endpoint':<10}{'requests':>10}{'errors':>8}{'req/s':>9}"
        f"{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}",
    ]
    for name in [*result["endpoints"], "total"]:
        s = result[name]
        cells = [
            s[key] if s[key] is not None else float("nan") for key in ("p50_ms", "p95_ms", "p99_ms")
        ]
        lines.append(
            f"{name:<10}{s['requests']:>10}{s['errors']:>8}{s['throughput_rps']:>9.1f}"
            + "".join(f"{c:>9.1f}" for c in cells)
        )
    for sample in result["total"]["error_samples"]:
        lines.append(f"error: {sample}")
    server = result.get("server")
    if server:
        lines.append("what the server's /metrics counted meanwhile:")
        for name in [*result["endpoints"], "library_search"]:
            s = server[name]
            answered = ", ".join(f"{n} × {code}" for code, n in s.get("responses", {}).items())
            lines.append(
                f"{name:<15}{s['count']:>7} timed  mean {s['mean_ms']} ms  p50 {s['p50_ms']} ms"
                f"  p95 {s['p95_ms']} ms  p99 {s['p99_ms']} ms"
                f"{'  (' + answered + ')' if answered else ''}"
            )
        lines.append("replies: " + ", ".join(f"{k} {v}" for k, v in server["answers"].items()))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--url", help="A running Nexus web app.")
    target.add_argument("--index", type=Path, help="Serve this index in a child process.")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--duration", type=float, default=60.0, help="Seconds of load.")
    parser.add_argument("--endpoint", action="append", choices=ENDPOINTS, dest="endpoints")
    parser.add_argument("--questions", type=Path, default=QUESTIONS_FILE)
    parser.add_argument("--timeout", type=float, default=30.0, help="Per request, seconds.")
    parser.add_argument("--max-requests", type=int, default=100_000, help="Per client.")
    parser.add_argument("--user", default=os.environ.get("NEXUS_AUTH_USER"))
    parser.add_argument("--password", default=os.environ.get("NEXUS_AUTH_PASSWORD"))
    parser.add_argument("--json", type=Path, help="Also write the result here.")
    parser.add_argument(
        "--rebuild",
        type=Path,
        metavar="CORPUS",
        help="With --index: rebuild the served index from CORPUS halfway through the load, "
        "and check the server switches to it without a failed request.",
    )
    args = parser.parse_args(argv)
    auth = (args.user, args.password) if args.user and args.password else None
    host = machine()  # its load average before the run: other work sharing the cores

    def go(url: str) -> dict[str, Any]:
        return asyncio.run(
            run_load(
                url,
                clients=args.clients,
                duration=args.duration,
                endpoints=tuple(args.endpoints or ENDPOINTS),
                questions=load_questions(args.questions),
                auth=auth,
                timeout=args.timeout,
                max_requests=args.max_requests,
            )
        )

    if args.url:
        result = go(args.url)
    else:
        with served_index(args.index) as url:
            if args.rebuild:
                rebuilding, record = rebuild_during(
                    url, args.rebuild, args.index, after=args.duration / 2, auth=auth
                )
            result = go(url)
            if args.rebuild:
                rebuilding.join()
                time.sleep(3)  # the server looks for a new generation every 2 s
                health = httpx.get(f"{url}/api/health", auth=auth, timeout=60).json()
                record["generation_after"] = health["generation"]
                result["rebuild"] = record
        result["index"] = str(args.index)
    result["command"] = " ".join(["benchmarks/load.py", *(argv or sys.argv[1:])])
    result["machine"] = {
        **host,
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
    }
    print(report(result))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    rebuild = result.get("rebuild")
    if rebuild:
        print(f"rebuild: {json.dumps(rebuild)}")
        if rebuild.get("generation_after") != rebuild.get("built_generation"):
            return 1
    return 1 if result["total"]["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
