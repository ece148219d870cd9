"""What the web app serves, independent of the web: search, chat replies, documents, status.

One :class:`NexusService` is shared by the Gradio UI and the REST API. It keeps the loaded
index current (a build that publishes a new generation is picked up on the next request,
without a restart and without failing requests in flight), answers with the calibrated
relevance floor of the index's model, looks documents up only by their indexed source path,
caches the comparison of corpus and index that the status panel shows, rebuilds on request,
and keeps the feedback log of votes on answers.
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
from typing import Any

from ..build import CorpusChanges, corpus_changes, prepare_index
from ..config import SearchMode, Settings
from ..errors import AssistantError, DocumentNotFoundError, QueryError
from ..search.answer import Reply, relevance_floor, respond
from ..search.assistant import Assistant, Hit
from ..stores import DocumentSummary, StoredDocument

__all__ = ["FeedbackLog", "IndexStatus", "NexusService", "check_source"]

log = logging.getLogger(__name__)

_DRIVE = re.compile(r"^[A-Za-z]:")
_MAX_SOURCE_CHARS = 1_000


@dataclass(frozen=True)
class IndexStatus:
    """What the status panel and ``/api/health`` report about the served index."""

    index_dir: str
    generation: str
    documents: int
    chunks: int
    model: str
    built_at: str
    corpus_dir: str
    changes: CorpusChanges | None  # None when the corpus could not be compared
    problem: str | None  # why the comparison failed

    @property
    def stale(self) -> bool:
        return self.changes is not None and self.changes.stale

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


class NexusService:
    """Search, chat and document lookup over one index, kept current as builds publish.

    Args:
        nexus: The loaded assistant.
        corpus_dir: The corpus the index should reflect; the folder it was built from when
            omitted.
        feedback_log: Where votes on answers are appended (JSON lines); votes are refused
            when omitted.
        min_relevance: Lowest best-passage cosine that counts as an answer. By default the
            floor calibrated for the index's model (none for uncalibrated models).
        reload_every: Seconds between checks for a newly published index generation.
        status_ttl: Seconds a corpus comparison is reused before the corpus is re-read.
    """

    def __init__(
        self,
        nexus: Assistant,
        *,
        corpus_dir: str | Path | None = None,
        feedback_log: str | Path | None = None,
        min_relevance: float | None = None,
        reload_every: float = 2.0,
        status_ttl: float = 30.0,
    ) -> None:
        self._nexus = nexus
        self.corpus_dir = Path(corpus_dir or nexus.manifest.corpus_root)
        self.feedback = FeedbackLog(feedback_log) if feedback_log else None
        self._min_relevance = min_relevance
        self._reload_every = reload_every
        self._status_ttl = status_ttl
        self._checked_at = time.monotonic()
        self._reload_lock = threading.Lock()
        self._status: tuple[float, IndexStatus] | None = None
        self._rebuild_lock = threading.Lock()

    @property
    def settings(self) -> Settings:
        return self._nexus.settings

    @property
    def assistant(self) -> Assistant:
        """The assistant, switched to a newer index generation if a build published one.

        A failed reload (say, a damaged new generation) is logged and the current index keeps
        serving; the next check tries again.
        """
        now = time.monotonic()
        if now - self._checked_at >= self._reload_every and self._reload_lock.acquire(False):
            try:
                self._checked_at = now
                if self._nexus.reload_if_changed():
                    self._status = None
            except AssistantError as exc:
                log.warning("keeping the current index; the new one could not be opened: %s", exc)
            finally:
                self._reload_lock.release()
        return self._nexus

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
        return self.assistant.search(query, k, mode=mode, category=category or None)

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
        return respond(
            self.assistant,
            message,
            history,
            k=k,
            mode=mode,
            category=category,
            min_relevance=self.min_relevance,
        )

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
        generation is served from the next request on. Returns what happened, in words.

        Only one rebuild runs at a time; a second request while one runs is told so. Errors
        (an empty corpus, a full disk) are reported and the current index keeps serving.
        """
        if not self._rebuild_lock.acquire(blocking=False):
            return "A rebuild is already running."
        try:
            nexus = self._nexus
            settings = nexus.settings.replace(
                corpus_dir=self.corpus_dir, index_dir=nexus.index.path.parent
            )
            try:
                report = prepare_index(settings, encoder=nexus.encoder, progress=False)
            except AssistantError as exc:
                return f"Rebuild failed, the current index keeps serving: {exc}"
            self._checked_at = float("-inf")  # switch on the next request
            self._status = None
            return report.summary() if report else "Already up to date."
        finally:
            self._rebuild_lock.release()

    def store_problem(self) -> str | None:
        """Why the store behind the index cannot serve (a Milvus server away, its collection
        gone), or None when it can. Asked afresh every time: it is what health checks probe."""
        try:
            self.assistant.index.check_store()
        except AssistantError as exc:
            return str(exc)
        return None

    def status(self, refresh: bool = False) -> IndexStatus:
        """Counts, model and build time of the served index, and whether the corpus changed."""
        nexus = self.assistant
        cached = self._status
        if cached and not refresh and time.monotonic() - cached[0] < self._status_ttl:
            return cached[1]
        manifest = nexus.manifest
        changes, problem = None, None
        try:
            changes = corpus_changes(self.corpus_dir, nexus.index, settings=nexus.settings)
        except AssistantError as exc:
            problem = str(exc)
        status = IndexStatus(
            index_dir=str(nexus.index.path.parent),
            generation=manifest.generation,
            documents=manifest.documents,
            chunks=manifest.chunks,
            model=manifest.encoder_name,
            built_at=manifest.built_at,
            corpus_dir=str(self.corpus_dir),
            changes=changes,
            problem=problem,
        )
        self._status = (time.monotonic(), status)
        return status


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
