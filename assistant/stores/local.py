"""The local store: vectors, a FAISS index and a bm25s keyword index as files of the generation.

A generation of this store holds::

    manifest.json         what built it: encoder, chunking, counts, versions, file sizes
    chunks.sqlite         documents and chunks with their metadata (the source of truth)
    vectors.npy           float32 embeddings, row i = chunk id i (the vector source of truth)
    dense.faiss           the FAISS index over vectors.npy (derived; rebuilt if damaged)
    keyword/              the bm25s index over chunk texts (derived; rebuilt if damaged)

Opening repairs what can be repaired: a damaged FAISS or keyword index is rebuilt from the
vectors and chunks, and lost vectors are recovered from an exact FAISS index.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np

from ..config import Settings
from ..errors import IndexCorruptError
from ..ingest.chunking import Chunk
from .chunkdb import CHUNKS_DB, ChunkDB
from .generations import replace_file
from .keyword import HEADINGS, KEYWORD, KeywordIndex
from .manifest import Manifest
from .seams import PreparedStore
from .vectors import (
    DENSE,
    VECTORS,
    FaissStore,
    NumpyStore,
    VectorStore,
    exact_search,
    keeps_exact_vectors,
    load_vectors,
    resolve_index_type,
    search_params,
)

__all__ = ["LocalIndex", "LocalStore"]

log = logging.getLogger(__name__)

_T = TypeVar("_T", VectorStore, KeywordIndex)


class LocalIndex:
    """A generation of the local store opened for reading. Thread-safe for concurrent searches.

    Vectors are memory-mapped and chunk texts stay in SQLite until a hit needs them, so opening
    costs little more than reading the dense and keyword indexes.

    Args:
        generation: The generation folder.
        manifest: Its manifest.
        repair: Rebuild damaged derived files instead of failing.

    Raises:
        IndexCorruptError: A file is missing or damaged beyond repair.
    """

    def __init__(self, generation: Path, manifest: Manifest, *, repair: bool = True) -> None:
        self.path = generation
        self.manifest = manifest
        self._check_files()
        self.db = ChunkDB(
            generation / CHUNKS_DB, documents=manifest.documents, chunks=manifest.chunks
        )
        self.vectors = self._load_or_repair_vectors(repair)
        self.dense: VectorStore = self._load_or_repair(
            DENSE, self._load_dense, self._rebuild_dense, repair
        )
        self.keyword: KeywordIndex = self._load_or_repair(
            KEYWORD,
            lambda p: KeywordIndex.load(p, self.manifest.keyword),
            lambda: KeywordIndex.build(self.db.embed_texts(), self.manifest.keyword),
            repair,
        )
        self.headings: KeywordIndex = self._load_headings(repair)
        sizes = {self.dense.size, self.keyword.size, self.headings.size}
        if sizes != {len(self.vectors)}:
            raise IndexCorruptError(
                f"index files in {generation} disagree on the chunk count; "
                "rebuild with `nexus build --full`"
            )

    # Checks and repairs ------------------------------------------------------------------

    def _check_files(self) -> None:
        for name, size in self.manifest.files.items():
            path = self.path / name
            if name.startswith((DENSE, KEYWORD, HEADINGS, VECTORS)):
                continue  # checked, and repaired where possible, as each is loaded
            if not path.is_file() or path.stat().st_size != size:
                raise IndexCorruptError(
                    f"{path} is missing or truncated; rebuild with `nexus build --full`"
                )

    def _load_or_repair_vectors(self, repair: bool) -> np.ndarray:
        """The vectors file, or its rows recovered from the dense index when it is damaged.

        Flat and HNSW indexes keep an exact copy of every vector, so a lost or truncated
        ``vectors.npy`` can be written again from them without the model.
        """
        path = self.path / VECTORS
        expected = self.manifest.files.get(VECTORS)
        try:
            if expected is not None and path.stat().st_size != expected:
                raise IndexCorruptError(f"{path} is truncated; rebuild with `nexus build --full`")
            return load_vectors(path, (self.manifest.chunks, self.manifest.dim))
        except (OSError, IndexCorruptError) as exc:
            problem = exc
        if repair:
            with contextlib.suppress(Exception):
                recovered = self._vectors_from_dense()
                log.warning("%s is damaged (%s); recovered it from %s", path, problem, DENSE)
                with contextlib.suppress(OSError):
                    replace_file(NumpyStore(recovered), path)
                return recovered
        if isinstance(problem, IndexCorruptError):
            raise problem
        raise IndexCorruptError(
            f"{path} is missing or unreadable ({problem}); rebuild with `nexus build --full`"
        ) from problem

    def _vectors_from_dense(self) -> np.ndarray:
        path = self.path / DENSE
        expected = self.manifest.files.get(DENSE)
        if not keeps_exact_vectors(self.manifest.index_type):
            raise ValueError(f"{self.manifest.index_type} keeps no exact copy of the vectors")
        if expected is None or path.stat().st_size != expected:
            raise ValueError(f"{path} is damaged too")
        index = FaissStore.load(path).index
        vectors = np.asarray(index.reconstruct_n(0, index.ntotal), dtype=np.float32)
        if vectors.shape != (self.manifest.chunks, self.manifest.dim):
            raise ValueError(f"{path} holds vectors of shape {vectors.shape}")
        return vectors

    def _load_headings(self, repair: bool) -> KeywordIndex:
        """The heading field's BM25 index; built in memory for a generation from before it
        existed (nothing of a published generation is changed)."""
        params = self.manifest.keyword
        if not any(name.startswith(HEADINGS) for name in self.manifest.files):
            return KeywordIndex.build(self.db.layout().headings, params)
        return self._load_or_repair(
            HEADINGS,
            lambda p: KeywordIndex.load(p, params),
            lambda: KeywordIndex.build(self.db.layout().headings, params),
            repair,
        )

    def _load_dense(self, path: Path) -> VectorStore:
        expected = self.manifest.files.get(DENSE)
        if expected is not None and path.stat().st_size != expected:
            raise ValueError(f"size {path.stat().st_size} != {expected}")
        return FaissStore.load(path, self.manifest.index_params)

    def _rebuild_dense(self) -> VectorStore:
        m = self.manifest
        return FaissStore.build(np.asarray(self.vectors), m.index_type, m.index_params)

    def _load_or_repair(
        self, name: str, load: Callable[[Path], _T], rebuild: Callable[[], _T], repair: bool
    ) -> _T:
        path = self.path / name
        try:
            return load(path)
        except Exception as exc:
            if not repair:
                raise IndexCorruptError(
                    f"{path} is damaged ({exc}); rebuild with `nexus build --full`"
                ) from exc
            log.warning("%s is damaged (%s); rebuilding it from the stored chunks", path, exc)
        rebuilt = rebuild()
        with contextlib.suppress(OSError):
            replace_file(rebuilt, path)
        return rebuilt

    # The reader seam ---------------------------------------------------------------------

    def check_store(self) -> None:
        """Nothing to ask: the files were checked when the generation was opened."""

    def dense_search(
        self, query: np.ndarray, n: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        if allowed is None:
            scores, ids = self.dense.search(query[None, :], n)
            keep = ids[0] >= 0
            found = ids[0][keep].astype(np.int64)
            if self.manifest.index_type == "Flat":
                return found, scores[0][keep].astype(np.float32)
            # Approximate indexes score candidates from compressed codes or in graph order; the
            # stored vectors give every candidate its exact cosine for a fraction of a millisecond.
            exact = np.asarray(self.vectors[found]) @ query
            order = np.argsort(-exact, kind="stable")
            return found[order], exact[order].astype(np.float32)
        # A filter can exclude most of the index; exact search over the allowed rows stays
        # correct where an approximate index would return too few matches.
        scores, rows = exact_search(np.asarray(self.vectors[allowed]), query[None, :], n)
        keep = rows[0] >= 0
        return allowed[rows[0][keep]].astype(np.int64), scores[0][keep].astype(np.float32)

    def keyword_search(
        self, text: str, n: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        return self.keyword.search(text, n, allowed)

    def heading_search(
        self, text: str, n: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        return self.headings.search(text, n, allowed)

    def vectors_of(self, ids: Sequence[int]) -> np.ndarray:
        return np.asarray(self.vectors[list(ids)])

    def stored_vectors(self) -> np.ndarray:
        return self.vectors

    def close(self) -> None:
        self.db.close()


class LocalStore:
    """The write side of the local store: a FAISS index sized to the corpus and a BM25 index,
    both written into the new generation."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def prepare(
        self, chunks: Sequence[Chunk], vectors: np.ndarray, *, full: bool, progress: bool
    ) -> PreparedStore:
        settings = self.settings
        tick = time.perf_counter()
        index_type = resolve_index_type(
            settings.index_type, len(chunks), settings.exact_search_limit
        )
        params = search_params(index_type)
        dense = FaissStore.build(vectors, index_type, params)
        dense_seconds = time.perf_counter() - tick
        tick = time.perf_counter()
        keyword_params = KeywordIndex.params_for(settings)
        keyword = KeywordIndex.build([c.embed_text for c in chunks], keyword_params)
        headings = KeywordIndex.build([" ".join(c.headings) for c in chunks], keyword_params)
        return PreparedStore(
            index_type=index_type,
            index_params=params,
            store={},
            keyword=keyword_params,
            files=(
                (DENSE, dense.save),
                (KEYWORD, keyword.save),
                *(() if headings.empty else ((HEADINGS, headings.save),)),
            ),
            seconds={"dense": dense_seconds, "keyword": time.perf_counter() - tick},
        )

    def finish(self) -> None:
        """Nothing outlives a generation of this store: older ones are deleted whole."""
