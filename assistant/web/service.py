"""What the web app serves, independent of the web: search, chat replies, documents, status.

One :class:`NexusService` serves one index (a collection) to the Gradio UI, the REST API and
the MCP tools. It keeps the loaded index current (a build that publishes a new generation is
picked up on the next request, or at once when this service made it, without a restart and
without failing requests in flight), answers with the calibrated relevance floor of the
index's model, looks documents up only by their indexed source path, caches the comparison of
corpus and index that the status panel shows, rebuilds on request or whenever the corpus
changes (through one :class:`~assistant.watch.IndexUpdater`, so builds never overlap),
keeps the feedback log of votes on answers, and tells a :class:`ServiceObserver` (the app's
metrics) how long each search took, how each reply came out and what its builds did.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from ..build import BuildReport, CorpusChanges, corpus_changes, kept_settings
from ..config import SearchMode, Settings
from ..errors import AssistantError, DocumentNotFoundError, QueryError
from ..search.answer import Reply, relevance_floor, respond
from ..search.assistant import Assistant, Hit
from ..stores import DocumentSummary, StoredDocument
from ..watch import IndexUpdater, UpdateObserver, UpdateRunning, UpdateState

__all__ = ["FeedbackLog", "IndexStatus", "NexusService", "ServiceObserver", "check_source"]

log = logging.getLogger(__name__)

_DRIVE = re.compile(r"^[A-Za-z]:")
_MAX_SOURCE_CHARS = 1_000


@dataclass(frozen=True)
class IndexStatus:
    """What the status panel and ``/api/health`` report about the served index.

    ``last_build`` counts what the build of the served generation took in (``added``,
    ``modified``, ``removed``; empty for indexes built before builds recorded it).
    ``update`` is the state of this server's builds (watching, building, the last failure);
    ``reload_problem`` why a newly published generation could not be switched to.
    """

    index_dir: str
    generation: str
    documents: int
    chunks: int
    model: str
    built_at: str
    corpus_dir: str
    changes: CorpusChanges | None  # None when the corpus could not be compared
    problem: str | None  # why the comparison failed
    last_build: dict[str, int]
    skipped: int
    update: UpdateState
    reload_problem: str | None = None

    @property
    def stale(self) -> bool:
        return self.changes is not None and self.changes.stale

    @property
    def taken_in(self) -> int:
        """Documents the served generation's build read anew."""
        return self.last_build.get("added", 0) + self.last_build.get("modified", 0)

    @property
    def rebuild_command(self) -> str:
        return f"nexus build --corpus {self.corpus_dir} --index {self.index_dir}"


def check_source(source: str) -> str:
    """A document path as the index names it, or QueryError for anything that is not one.

    Index sources are forward-slash paths relative to the corpus root. Absolute paths, drive
    letters, backslashes, ``.``/``..`` segments and control characters are refused before the
    index is even asked, so no user-supplied path ever reaches the file system.
    """
    segments = source.split("/")
    if (
        not source
        or len(source) > _MAX_SOURCE_CHARS
        or source.startswith("/")
        or _DRIVE.match(source)
        or "\\" in source
        or any(ord(ch) < 32 for ch in source)
        or any(seg in ("", ".", "..") for seg in segments)
    ):
        raise QueryError(f"{source[:80]!r} is not the path of a document in the index")
    return source


class ServiceObserver(UpdateObserver, Protocol):
    """What one collection's service reports as it serves, beside its builds and bursts."""

    def searched(self, mode: SearchMode, seconds: float) -> None:
        """A library search in ``mode`` took ``seconds`` (for a passage list or a chat reply)."""

    def replied(self, reply: Reply) -> None:
        """A chat reply went out: answered, flagged weak, or refused (nothing close enough)."""


class NexusService:
    """Search, chat and document lookup over one index, kept current as builds publish.

    Args:
        nexus: The loaded assistant.
        corpus_dir: The corpus the index should reflect; the folder it was built from when
            omitted.
        feedback_log: Where votes on answers are appended (JSON lines, or a log shared by the
            collections of one server); votes are refused when omitted.
        min_relevance: Lowest best-passage cosine that counts as an answer. By default the
            floor calibrated for the index's model (none for uncalibrated models).
        reload_every: Seconds between checks for a newly published index generation.
        status_ttl: Seconds a corpus comparison is reused before the corpus is re-read.
        name: The collection this service answers for (shown in health and feedback).
        observer: Told of every search, reply, build and burst of changes (the metrics).
    """

    def __init__(
        self,
        nexus: Assistant,
        *,
        corpus_dir: str | Path | None = None,
        feedback_log: FeedbackLog | str | Path | None = None,
        min_relevance: float | None = None,
        reload_every: float = 2.0,
        status_ttl: float = 30.0,
        name: str = "default",
        observer: ServiceObserver | None = None,
    ) -> None:
        self._nexus = nexus
        self.name = name
        self._observer = observer
        self.corpus_dir = Path(corpus_dir or nexus.manifest.corpus_root)
        self.feedback = (
            feedback_log
            if isinstance(feedback_log, FeedbackLog)
            else FeedbackLog(feedback_log)
            if feedback_log
            else None
        )
        self._min_relevance = min_relevance
        self._reload_every = reload_every
        self._status_ttl = status_ttl
        self._checked_at = time.monotonic()
        self._reload_lock = threading.Lock()
        self._reload_problem: str | None = None
        self._compared: tuple[float, CorpusChanges | None, str | None] | None = None
        built_as = kept_settings(nexus.settings, nexus.manifest)
        self.updater = IndexUpdater(
            built_as.replace(corpus_dir=self.corpus_dir, index_dir=nexus.index.path.parent),
            encoder=nexus.encoder,
            on_publish=self._published,
            observer=observer,
        )

    @property
    def settings(self) -> Settings:
        return self._nexus.settings

    @property
    def assistant(self) -> Assistant:
        """The assistant, switched to a newer index generation if a build published one.

        A failed reload (say, a damaged new generation) is logged, shown in the status, and
        the current index keeps serving; the next check tries again.
        """
        if time.monotonic() - self._checked_at >= self._reload_every:
            self._reload(wait=False)
        return self._nexus

    def _reload(self, *, wait: bool) -> None:
        if not self._reload_lock.acquire(blocking=wait):
            return  # another thread is checking right now
        try:
            self._checked_at = time.monotonic()
            if self._nexus.reload_if_changed():
                self._compared = None
            self._reload_problem = None
        except AssistantError as exc:
            self._reload_problem = str(exc)
            log.warning("keeping the current index; the new one could not be opened: %s", exc)
        finally:
            self._reload_lock.release()

    def _published(self, report: BuildReport) -> None:
        """A build of ours published a generation: switch to it before the next search."""
        self._reload(wait=True)

    def start_watching(self) -> None:
        """Update the index whenever files under the corpus change (in the background)."""
        self.updater.start()

    def stop_watching(self) -> None:
        self.updater.stop()

    @property
    def min_relevance(self) -> float | None:
        if self._min_relevance is not None:
            return self._min_relevance
        return relevance_floor(self._nexus.manifest.encoder_name)

    def search(
        self,
        query: str,
        k: int | None = None,
        mode: SearchMode | None = None,
        category: str | None = None,
    ) -> list[Hit]:
        """Passages for a query (see :meth:`Assistant.search`).

        Raises:
            QueryError: The query is empty or longer than ``settings.max_query_chars``.
        """
        started = time.perf_counter()
        hits = self.assistant.search(query, k, mode=mode, category=category or None)
        if self._observer is not None:
            self._observer.searched(mode or self.settings.mode, time.perf_counter() - started)
        return hits

    def ask(
        self,
        message: str,
        history: Sequence[Any] | None = None,
        *,
        k: int | None = None,
        mode: SearchMode | None = None,
        category: str | None = None,
    ) -> Reply:
        """A chat reply (see :func:`assistant.search.answer.respond`) with this index's floor."""
        reply = respond(
            self.assistant,
            message,
            history,
            k=k,
            mode=mode,
            category=category,
            min_relevance=self.min_relevance,
        )
        if self._observer is not None:
            self._observer.searched(mode or self.settings.mode, reply.seconds)
            self._observer.replied(reply)
        return reply

    def categories(self) -> list[str]:
        """The corpus's top-level folders that hold documents (the category filter's choices)."""
        return [name for name, _ in self.assistant.index.db.categories() if name]

    def document(self, source: str) -> StoredDocument:
        """The indexed document with this source path.

        Raises:
            QueryError: ``source`` is not shaped like an index path (``../x``, ``/etc/x`` ...).
            DocumentNotFoundError: No such document is in the index.
        """
        doc = self.assistant.index.db.document(check_source(source))
        if doc is None:
            raise DocumentNotFoundError(f"no document {source!r} in the index")
        return doc

    def catalog(self, query: str = "") -> list[DocumentSummary]:
        """The indexed documents whose source or title holds ``query`` (any case), by source."""
        wanted = query.strip().casefold()
        return [
            doc
            for doc in self.assistant.index.db.catalog()
            if not wanted or wanted in doc.source.casefold() or wanted in doc.title.casefold()
        ]

    def skipped(self) -> list[tuple[str, str]]:
        """The files the last build left out, with the reason for each."""
        return list(self.assistant.index.db.record().skipped)

    def rebuild(self) -> str:
        """Update the index from the corpus (incrementally) with the loaded model; the new
        generation is served from then on. Returns what happened, in words.

        Only one build runs at a time, the watcher's included; a request while one runs is
        told so. Errors (an empty corpus, a full disk) are reported and the current index
        keeps serving.
        """
        try:
            report = self.updater.update(wait=False)
        except UpdateRunning:
            return "A rebuild is already running."
        except AssistantError as exc:
            return f"Rebuild failed, the current index keeps serving: {exc}"
        return report.summary() if report else "Already up to date."

    def store_problem(self) -> str | None:
        """Why the store behind the index cannot serve (a Milvus server away, its collection
        gone), or None when it can. Asked afresh every time: it is what health checks probe."""
        try:
            self.assistant.index.check_store()
        except AssistantError as exc:
            return str(exc)
        return None

    def status(self, refresh: bool = False) -> IndexStatus:
        """Counts, model and build time of the served index, what its build took in, whether
        the corpus changed since, and what this server's builds are doing."""
        nexus = self.assistant
        index = nexus.index
        compared = self._compared
        if compared is None or refresh or time.monotonic() - compared[0] >= self._status_ttl:
            changes, problem = None, None
            try:
                changes = corpus_changes(self.corpus_dir, index, settings=nexus.settings)
            except AssistantError as exc:
                problem = str(exc)
            compared = self._compared = (time.monotonic(), changes, problem)
        manifest = index.manifest
        return IndexStatus(
            index_dir=str(index.path.parent),
            generation=manifest.generation,
            documents=manifest.documents,
            chunks=manifest.chunks,
            model=manifest.encoder_name,
            built_at=manifest.built_at,
            corpus_dir=str(self.corpus_dir),
            changes=compared[1],
            problem=compared[2],
            last_build=dict(manifest.changes),
            skipped=manifest.skipped,
            update=self.updater.state(),
            reload_problem=self._reload_problem,
        )


class FeedbackLog:
    """Thumbs up/down on answers, appended as JSON lines for the quality work to mine.

    Each line holds the time (UTC), the vote, the question, the query searched and the hits
    shown (source, lines, scores). Appends are serialized so concurrent votes never interleave.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def record(self, reply: Mapping[str, Any], vote: str) -> dict[str, Any]:
        """Append one vote (``up`` or ``down``) on a reply (as from :meth:`Reply.to_dict`)."""
        if vote not in ("up", "down"):
            raise ValueError(f"a vote is 'up' or 'down', got {vote!r}")
        entry = {
            "time": datetime.now(UTC).isoformat(timespec="seconds"),
            "vote": vote,
            "collection": reply.get("collection"),
            "question": reply.get("question"),
            "query": reply.get("query"),
            "answered": reply.get("answered"),
            "hits": [
                {k: h.get(k) for k in ("rank", "source", "start_line", "end_line", "score")}
                for h in reply.get("hits", [])
            ],
        }
        line = json.dumps(entry, ensure_ascii=False) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as out:
                out.write(line)
        return entry
