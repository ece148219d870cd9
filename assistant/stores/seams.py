"""The two seams every store meets: reading a generation, and preparing one during a build.

A store is where a generation's vectors and keyword index live: files in the generation
(:mod:`.local`, FAISS and bm25s) or a collection shared by replicas (:mod:`.milvus`). Either
way the generation keeps its manifest and chunk database; search and builds talk to the store
only through these two contracts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..ingest.chunking import Chunk
from .chunkdb import ChunkDB
from .generations import Saver
from .manifest import Manifest

__all__ = ["IndexReader", "PreparedStore", "StoreWriter"]


class IndexReader(Protocol):
    """One generation opened for searching. Thread-safe for concurrent searches.

    Chunk ids are rows of the generation: 0 .. ``manifest.chunks - 1``.
    """

    path: Path
    manifest: Manifest
    db: ChunkDB

    def check_store(self) -> None:
        """Raise unless the store can serve this generation (files are checked at open;
        a shared store is asked now)."""
        ...

    def dense_search(
        self, query: np.ndarray, n: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Chunk ids and cosines of the ``n`` chunks nearest ``query``, best first, optionally
        only among the chunk ids ``allowed``."""
        ...

    def keyword_search(
        self, text: str, n: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Chunk ids and BM25 scores of the ``n`` best keyword matches (score > 0)."""
        ...

    def heading_search(
        self, text: str, n: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Chunk ids and BM25 scores of the ``n`` chunks whose heading path best matches."""
        ...

    def vectors_of(self, ids: Sequence[int]) -> np.ndarray:
        """The vectors of chunk ids, in order (for cosines and near-duplicate checks)."""
        ...

    def stored_vectors(self) -> np.ndarray | None:
        """Every chunk's vector (row = chunk id) if this copy of the generation keeps them,
        for an incremental build to reuse; None on a replica that does not."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class PreparedStore:
    """What a store made of a build's chunks and vectors, for the new generation's manifest.

    ``files`` are written into the generation (none for a shared store); ``seconds`` times the
    store's own stages (``dense``, ``keyword``) for the build report.
    """

    index_type: str
    index_params: dict[str, int]
    store: dict[str, Any]  # the manifest's ``store`` block; empty for files in the generation
    keyword: dict[str, Any]  # how keyword search analyses and scores (BM25 parameters)
    files: tuple[tuple[str, Saver], ...] = ()
    seconds: dict[str, float] = field(default_factory=dict)


class StoreWriter(Protocol):
    """The write side of a store, in two steps around publishing the generation."""

    def prepare(
        self, chunks: Sequence[Chunk], vectors: np.ndarray, *, full: bool, progress: bool
    ) -> PreparedStore:
        """Index the build's chunks (``vectors`` row i is chunk i). ``full`` means nothing of
        an earlier build may be kept."""
        ...

    def finish(self) -> None:
        """After the generation is published: drop what only older generations needed."""
        ...
