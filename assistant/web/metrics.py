"""The app's Prometheus metrics: requests, searches, replies, builds, watch events, indexes.

The only module that imports ``prometheus_client``. Each app has a :class:`Metrics` of its
own, with its own registry, so two apps in one process (as in the tests) never mix their
counts. Counters and histograms are fed as things happen: the request middleware reports each
response (:meth:`Metrics.request`), and each collection's service reports its searches,
replies, builds and bursts of changes through a :class:`CollectionMetrics`. What an index
holds is read when Prometheus scrapes, so it is never out of date.

Label values are bounded: a route is the template a request matched (``/api/search``,
``/gradio_api/call/{api_name}/{event_id}``), never its path; methods outside HTTP's usual set
are ``other``; collections are the server's own.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Literal, get_args

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder

from ..config import SEARCH_MODES, SearchMode
from ..errors import AssistantError
from ..search.answer import Reply
from ..watch import BuildOutcome, BuildTrigger
from .collections import Collections
from .service import NexusService

__all__ = ["ANSWER_OUTCOMES", "AnswerOutcome", "CollectionMetrics", "Metrics", "answer_outcome"]

AnswerOutcome = Literal["answered", "weak", "refused"]
ANSWER_OUTCOMES: tuple[AnswerOutcome, ...] = get_args(AnswerOutcome)
_BUILD_OUTCOMES: tuple[BuildOutcome, ...] = get_args(BuildOutcome)
_BUILD_TRIGGERS: tuple[BuildTrigger, ...] = get_args(BuildTrigger)
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

# Bucket bounds, in seconds, close enough together where the values fall that a quantile
# read from them is within a bucket's width of the truth: a warm search takes milliseconds,
# a request under load up to seconds, a build of a large corpus minutes.
_REQUEST_BUCKETS = (
    *(0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5),
    *(0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0, 30.0, 60.0),
)
_SEARCH_BUCKETS = (
    *(0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05),
    *(0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0),
)
_BUILD_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)


def answer_outcome(reply: Reply) -> AnswerOutcome:
    """How a chat reply came out: ``answered``, ``weak`` (answered, but flagged as a doubtful
    match) or ``refused`` (nothing in the index was close enough)."""
    if not reply.answered:
        return "refused"
    return "weak" if reply.weak else "answered"


class Metrics:
    """The metrics of one app, in a registry of its own.

    Call :meth:`track` with the app's collections once they exist, so scrapes report their
    indexes; :meth:`collection` gives each collection's service its observer.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self.requests = Counter(
            "nexus_http_requests",
            "HTTP responses sent, by method, route template and status code.",
            ["method", "route", "status"],
            registry=registry,
        )
        self.request_seconds = Histogram(
            "nexus_http_request_duration_seconds",
            "Time from a request's arrival to the last byte of its response (a stream's whole "
            "length), by method and route template.",
            ["method", "route"],
            buckets=_REQUEST_BUCKETS,
            registry=registry,
        )
        self.search_seconds = Histogram(
            "nexus_search_duration_seconds",
            "Time the library search took, for a passage list or a chat reply, by collection "
            "and search mode (HTTP and answer composition not included).",
            ["collection", "mode"],
            buckets=_SEARCH_BUCKETS,
            registry=registry,
        )
        self.answers = Counter(
            "nexus_answers",
            "Chat replies (UI, Gradio API, MCP) by outcome: answered, weak (flagged as a "
            "doubtful match) or refused (nothing close enough to answer from).",
            ["collection", "outcome"],
            registry=registry,
        )
        self.build_seconds = Histogram(
            "nexus_build_duration_seconds",
            "Index updates this server ran, by what started them (watch, request) and how they "
            "ended (published, unchanged, failed).",
            ["collection", "trigger", "outcome"],
            buckets=_BUILD_BUCKETS,
            registry=registry,
        )
        self.bursts = Counter(
            "nexus_watch_bursts",
            "Bursts of changes the watcher saw under the collection's corpus; each starts an "
            "update.",
            ["collection"],
            registry=registry,
        )
        self.changes = Counter(
            "nexus_watch_changes",
            "File changes in those bursts (a file saved twice in one burst may count twice).",
            ["collection"],
            registry=registry,
        )
        ProcessCollector(registry=registry)  # CPU seconds, memory, open files of the server
        PlatformCollector(registry=registry)  # python_info: which Python serves

    def track(self, collections: Collections) -> None:
        """Report the indexes of ``collections`` at every scrape."""
        self.registry.register(_IndexCollector(collections))

    def collection(self, name: str) -> CollectionMetrics:
        """The observer of collection ``name``'s service."""
        return CollectionMetrics(self, name)

    def request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one response (``route`` is the route's template, never the raw path)."""
        method = method if method in _METHODS else "other"
        self.requests.labels(method, route, str(status)).inc()
        self.request_seconds.labels(method, route).observe(seconds)

    def exposition(self, accept: str = "") -> tuple[bytes, str]:
        """The metrics as a scrape asked for them (``accept``: the request's Accept header;
        OpenMetrics or Prometheus text): the body and its content type."""
        encode, content_type = choose_encoder(accept)
        return encode(self.registry), content_type


class CollectionMetrics:
    """What one collection's service reports (a :class:`~.service.ServiceObserver`).

    Every series of the collection is made here, at zero, so rates and alerts see it before
    its first search, reply or build.
    """

    def __init__(self, metrics: Metrics, name: str) -> None:
        self.name = name
        self._searches = {mode: metrics.search_seconds.labels(name, mode) for mode in SEARCH_MODES}
        self._answers = {
            outcome: metrics.answers.labels(name, outcome) for outcome in ANSWER_OUTCOMES
        }
        self._builds = {
            (trigger, outcome): metrics.build_seconds.labels(name, trigger, outcome)
            for trigger in _BUILD_TRIGGERS
            for outcome in _BUILD_OUTCOMES
        }
        self._bursts = metrics.bursts.labels(name)
        self._changes = metrics.changes.labels(name)

    def searched(self, mode: SearchMode, seconds: float) -> None:
        self._searches[mode].observe(seconds)

    def replied(self, reply: Reply) -> None:
        self._answers[answer_outcome(reply)].inc()

    def burst(self, changes: int) -> None:
        self._bursts.inc()
        self._changes.inc(changes)

    def built(self, trigger: BuildTrigger, outcome: BuildOutcome, seconds: float) -> None:
        self._builds[trigger, outcome].observe(seconds)


class _IndexCollector:
    """Each collection's index as a scrape finds it: up or not, counts, generation, model,
    build time, and whether its last update failed and its watcher runs."""

    def __init__(self, collections: Collections) -> None:
        self._collections = collections

    def collect(self) -> Iterable[Metric]:
        label = ["collection"]
        up = GaugeMetricFamily(
            "nexus_collection_up",
            "1 when the collection answers: its index is open and the store holding its "
            "vectors answers; 0 when it is unavailable (the reason is in /api/health).",
            labels=label,
        )
        documents = GaugeMetricFamily(
            "nexus_index_documents", "Documents in the served index generation.", labels=label
        )
        passages = GaugeMetricFamily(
            "nexus_index_passages",
            "Passages (chunks) in the served index generation.",
            labels=label,
        )
        info = GaugeMetricFamily(
            "nexus_index_info",
            "Always 1: the served generation, the model that embedded it and its store.",
            labels=[*label, "generation", "model", "store"],
        )
        built = GaugeMetricFamily(
            "nexus_index_built_timestamp_seconds",
            "When the served generation was built (Unix time).",
            labels=label,
        )
        failing = GaugeMetricFamily(
            "nexus_update_failed",
            "1 while the last update of the index failed (the previous index keeps serving); "
            "0 once an update succeeds.",
            labels=label,
        )
        watching = GaugeMetricFamily(
            "nexus_watch_running",
            "1 while the collection's corpus is watched for changes.",
            labels=label,
        )
        for name, service in self._services():
            if service is None:
                up.add_metric([name], 0)
                continue
            manifest = service.assistant.manifest
            update = service.updater.state()
            up.add_metric([name], 0 if service.store_problem() else 1)
            documents.add_metric([name], manifest.documents)
            passages.add_metric([name], manifest.chunks)
            info.add_metric(
                [name, manifest.generation, manifest.encoder_name, manifest.store_kind], 1
            )
            built.add_metric([name], _unix_time(manifest.built_at))
            failing.add_metric([name], 1 if update.problem else 0)
            watching.add_metric([name], 1 if update.watching else 0)
        return [up, documents, passages, info, built, failing, watching]

    def _services(self) -> Iterator[tuple[str, NexusService | None]]:
        for name in self._collections.names:
            try:
                yield name, self._collections.get(name)
            except AssistantError:
                yield name, None


def _unix_time(stamp: str) -> float:
    try:
        return datetime.fromisoformat(stamp).timestamp()
    except ValueError:
        return float("nan")
