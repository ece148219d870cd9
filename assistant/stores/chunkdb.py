"""The chunk database: documents and chunks with their metadata, the index's source of truth.

One SQLite file per generation (``chunks.sqlite``), written once by a build and opened
read-only by every reader, whichever store holds the vectors.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import IndexCorruptError
from ..ingest.chunking import Chunk
from ..ingest.documents import paged, release_notes

__all__ = [
    "CHUNKS_DB",
    "ChunkDB",
    "CorpusRecord",
    "DocumentSummary",
    "Layout",
    "StoredDocument",
    "write_chunk_db",
]

CHUNKS_DB = "chunks.sqlite"

_SCHEMA = """
CREATE TABLE documents (
    id INTEGER PRIMARY KEY, source TEXT UNIQUE NOT NULL, title TEXT NOT NULL,
    format TEXT NOT NULL, category TEXT NOT NULL, sha256 TEXT NOT NULL, text TEXT NOT NULL
);
CREATE TABLE chunks (
    id INTEGER PRIMARY KEY, source TEXT NOT NULL, title TEXT NOT NULL, category TEXT NOT NULL,
    headings TEXT NOT NULL, text TEXT NOT NULL, start_line INTEGER NOT NULL,
    end_line INTEGER NOT NULL, key TEXT NOT NULL
);
CREATE INDEX chunks_source ON chunks(source);
CREATE INDEX chunks_category ON chunks(category);
CREATE TABLE includes (source TEXT NOT NULL, path TEXT NOT NULL, sha256 TEXT NOT NULL);
CREATE TABLE skipped (source TEXT NOT NULL, reason TEXT NOT NULL);
"""


@dataclass(frozen=True)
class StoredDocument:
    """A document as kept in the index, for reuse by incremental builds and for display."""

    source: str
    title: str
    format: str
    category: str
    sha256: str
    text: str


@dataclass(frozen=True)
class DocumentSummary:
    """One indexed document as the catalogue lists it: no text, its passage count."""

    source: str
    title: str
    format: str
    category: str
    passages: int


@dataclass(frozen=True)
class Layout:
    """Where each chunk stands, by chunk id: its document and its section (one number per
    document, and per (document, heading path)), each chunk's heading path as text, and
    its heading path as a tuple, and whether its document is release notes."""

    document: np.ndarray
    section: np.ndarray
    headings: list[str]
    paths: list[tuple[str, ...]]
    release_notes: np.ndarray


@dataclass(frozen=True)
class CorpusRecord:
    """What a build learnt about the corpus besides its documents: the files each document
    included (path -> content hash, so a change to one re-reads its includer) and the files
    it skipped, with the reason."""

    includes: dict[str, dict[str, str]] = field(default_factory=dict)
    skipped: tuple[tuple[str, str], ...] = ()


def write_chunk_db(
    path: Path,
    documents: Sequence[StoredDocument],
    chunks: Sequence[Chunk],
    record: CorpusRecord | None = None,
) -> None:
    """Write a new chunk database at ``path``; chunk ``i`` gets id ``i`` (its vector's row)."""
    record = record or CorpusRecord()
    db = sqlite3.connect(path)
    try:
        db.executescript(_SCHEMA)
        db.executemany(
            "INSERT INTO includes VALUES (?, ?, ?)",
            [(s, p, h) for s, files in record.includes.items() for p, h in files.items()],
        )
        db.executemany("INSERT INTO skipped VALUES (?, ?)", record.skipped)
        db.executemany(
            "INSERT INTO documents (source, title, format, category, sha256, text) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [(d.source, d.title, d.format, d.category, d.sha256, d.text) for d in documents],
        )
        db.executemany(
            "INSERT INTO chunks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    i,
                    c.source,
                    c.title,
                    c.category,
                    json.dumps(c.headings),
                    c.text,
                    c.start_line,
                    c.end_line,
                    c.key,
                )
                for i, c in enumerate(chunks)
            ],
        )
        db.commit()
    finally:
        db.close()


class ChunkDB:
    """A generation's chunk database opened read-only; safe to share between threads.

    Args:
        path: The ``chunks.sqlite`` file.
        documents, chunks: The counts the manifest promises; a database that disagrees is
            damaged.

    Raises:
        IndexCorruptError: The file is unreadable or holds other counts.
    """

    def __init__(self, path: Path, *, documents: int, chunks: int) -> None:
        self.path = path
        self._expected = (documents, chunks)
        self._lock = threading.Lock()  # one connection, shared by the serving threads
        self._layout: Layout | None = None
        self._db: sqlite3.Connection | None = self._open()  # checked now, not at a search

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
        try:
            counts = db.execute(
                "SELECT (SELECT COUNT(*) FROM documents), (SELECT COUNT(*) FROM chunks)"
            ).fetchone()
        except sqlite3.DatabaseError as exc:
            db.close()
            raise IndexCorruptError(
                f"{self.path} is damaged ({exc}); rebuild with `nexus build --full`"
            ) from exc
        if tuple(counts) != self._expected:
            db.close()
            raise IndexCorruptError(
                f"{self.path} holds {counts[0]} documents and {counts[1]} chunks, the manifest "
                f"says {self._expected[0]} and {self._expected[1]}; rebuild with "
                "`nexus build --full`"
            )
        return db

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._lock:
            if self._db is None:  # closed, then used again
                self._db = self._open()
            return self._db.execute(sql, params).fetchall()

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def chunks(self, ids: Sequence[int]) -> dict[int, Chunk]:
        """Chunks by id, fetched in one query."""
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self._query(
            "SELECT id, source, title, category, headings, text, start_line, end_line "
            f"FROM chunks WHERE id IN ({marks})",
            [int(i) for i in ids],
        )
        return {
            row[0]: Chunk(
                source=row[1],
                title=row[2],
                category=row[3],
                headings=tuple(json.loads(row[4])),
                text=row[5],
                start_line=row[6],
                end_line=row[7],
            )
            for row in rows
        }

    @lru_cache(maxsize=256)  # noqa: B019 - one cache per opened database is what we want
    def ids_matching(self, category: str | None, path_glob: str | None) -> np.ndarray:
        """Chunk ids in a category and/or whose source matches a glob (``concepts/*``)."""
        clauses, params = [], []
        if category is not None:
            clauses.append("category = ?")
            params.append(category)
        if path_glob is not None:
            clauses.append("source GLOB ?")
            params.append(path_glob)
        where = " AND ".join(clauses) or "1"
        rows = self._query(f"SELECT id FROM chunks WHERE {where} ORDER BY id", params)
        return np.fromiter((r[0] for r in rows), dtype=np.int64)

    def categories(self) -> list[tuple[str, int]]:
        """Each category with its number of documents."""
        return self._query(
            "SELECT category, COUNT(*) FROM documents GROUP BY category ORDER BY category"
        )

    def documents(self) -> list[StoredDocument]:
        rows = self._query(
            "SELECT source, title, format, category, sha256, text FROM documents ORDER BY source"
        )
        return [StoredDocument(*row) for row in rows]

    def document(self, source: str) -> StoredDocument | None:
        rows = self._query(
            "SELECT source, title, format, category, sha256, text FROM documents WHERE source = ?",
            (source,),
        )
        return StoredDocument(*rows[0]) if rows else None

    def document_hashes(self) -> dict[str, str]:
        """Each document's source and content hash, without loading the texts."""
        return dict(self._query("SELECT source, sha256 FROM documents"))

    def embed_texts(self) -> list[str]:
        """Every chunk's text as the retrievers indexed it (headings first), in id order."""
        return [
            Chunk("", "", "", tuple(json.loads(h)), t, 0, 0).embed_text
            for h, t in self._query("SELECT headings, text FROM chunks ORDER BY id")
        ]

    def chunk_rows_by_source(self) -> dict[str, list[int]]:
        """Chunk ids of each document, in order; incremental builds reuse them."""
        out: dict[str, list[int]] = {}
        for cid, source in self._query("SELECT id, source FROM chunks ORDER BY id"):
            out.setdefault(source, []).append(cid)
        return out

    def ids_by_key(self) -> dict[str, int]:
        """Chunk id by content key (the last of equal chunks wins, any one serves)."""
        return dict(self._query("SELECT key, id FROM chunks"))

    def record(self) -> CorpusRecord:
        """The includes and skipped files the build recorded (none for indexes built before
        they were recorded)."""
        tables = {name for (name,) in self._query("SELECT name FROM sqlite_master")}
        includes: dict[str, dict[str, str]] = {}
        skipped: tuple[tuple[str, str], ...] = ()
        if "includes" in tables:
            for source, path, digest in self._query("SELECT source, path, sha256 FROM includes"):
                includes.setdefault(source, {})[path] = digest
        if "skipped" in tables:
            skipped = tuple(self._query("SELECT source, reason FROM skipped ORDER BY source"))
        return CorpusRecord(includes, skipped)

    def layout(self) -> Layout:
        """Each chunk's document, section and heading path, read once and kept."""
        if self._layout is None:
            rows = self._query("SELECT source, headings, start_line FROM chunks ORDER BY id")
            documents: dict[str, int] = {}
            sections: dict[tuple[str, str, int], int] = {}
            doc = [documents.setdefault(source, len(documents)) for source, _, _ in rows]
            # A page of a PDF is a section of its own, whatever heading it stands under.
            sec = [
                sections.setdefault((s, h, line if paged(s) else 0), len(sections))
                for s, h, line in rows
            ]
            heads = [json.loads(h) for _, h, _ in rows]
            notes: dict[str, bool] = {}
            for (source, _, _), h in zip(rows, heads, strict=True):
                if source not in notes:
                    notes[source] = release_notes(source, h[0] if h else "")
            self._layout = Layout(
                np.asarray(doc, np.int32),
                np.asarray(sec, np.int32),
                [" ".join(h) for h in heads],
                [tuple(h) for h in heads],
                np.asarray([notes[source] for source, _, _ in rows], dtype=bool),
            )
        return self._layout

    def catalog(self) -> list[DocumentSummary]:
        """Every document with its format, category and number of passages, by source."""
        rows = self._query(
            "SELECT d.source, d.title, d.format, d.category, COUNT(c.id) FROM documents d "
            "LEFT JOIN chunks c ON c.source = d.source GROUP BY d.source ORDER BY d.source"
        )
        return [DocumentSummary(*row) for row in rows]

    def source_keys(self) -> list[tuple[str, str]]:
        """(source, content key) of every chunk, in id order."""
        return [(s, k) for s, k in self._query("SELECT source, key FROM chunks ORDER BY id")]
