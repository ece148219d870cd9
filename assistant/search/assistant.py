"""Search one index: the :class:`Assistant` that answers queries with :class:`Hit` passages.

A search embeds the query, asks the store for each retriever's candidates, fuses them
(:mod:`.fusion`), drops near-duplicate passages and returns the best, each with its source,
heading path and line range.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..config import SEARCH_MODES, SearchMode, Settings
from ..encoders import (
    Encoder,
    canonical_model_name,
    encoder_mismatch,
    load_encoder,
    serving_backend,
)
from ..errors import AssistantError, IndexMismatchError, QueryError
from ..ingest.chunking import HEADING_SEPARATOR
from ..stores import IndexReader, Manifest, current_generation, open_index
from .fusion import PEAK_RANK, Candidates, fuse, keyword_peak
from .query import check_filter, check_k, clean_query

__all__ = ["Assistant", "Hit"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Hit:
    """One retrieved passage and why it ranked where it did.

    ``score`` is the fused score in hybrid mode (see ``Settings.fusion``), the cosine similarity
    in semantic mode and the BM25 score in keyword mode. ``dense_score`` is the cosine between
    query and passage whenever the query was embedded; ``dense_rank`` and ``keyword_rank`` are
    1-based positions in each retriever's own list, ``None`` when it did not return the passage.
    """

    rank: int
    score: float
    source: str
    title: str
    headings: tuple[str, ...]
    text: str
    start_line: int
    end_line: int
    category: str
    chunk_id: int
    dense_score: float | None = None
    dense_rank: int | None = None
    keyword_rank: int | None = None

    @property
    def heading_path(self) -> str:
        return HEADING_SEPARATOR.join(self.headings)


class Assistant:
    """Searches one index with the encoder that built it.

    Example:
        >>> nexus = Assistant.load("index")                       # doctest: +SKIP
        >>> hits = nexus.search("how do I avoid race conditions?", k=3)  # doctest: +SKIP
        >>> hits[0].source, hits[0].heading_path                  # doctest: +SKIP
    """

    def __init__(self, index: IndexReader, encoder: Encoder, settings: Settings) -> None:
        _check_encoder(index.manifest, encoder)
        self.index = index
        self.encoder = encoder
        self.settings = settings
        self._embed_query = lru_cache(maxsize=1024)(self._embed_uncached)

    @classmethod
    def load(
        cls,
        index_dir: str | Path = "index",
        *,
        settings: Settings | None = None,
        encoder: Encoder | None = None,
        model: str | None = None,
    ) -> Assistant:
        """Open an index and the encoder it was built with.

        The encoder runs on ``settings.backend`` when its vectors match the index's (torch and
        onnx are interchangeable), otherwise on the backend that built the index.

        Args:
            index_dir: The index folder.
            settings: Search defaults (mode, k, fusion) and the encoder backend;
                ``Settings()`` when omitted.
            encoder: A loaded encoder to use instead of loading one.
            model: The model the caller expects; a different model in the manifest is an
                error rather than silently wrong answers.

        Raises:
            IndexNotFoundError: Nothing is built at ``index_dir``, or the Milvus collection it
                was built into is missing.
            IndexMismatchError: The index was built with another model or format, or the
                collection's vectors have another dimension.
            IndexCorruptError: A file is damaged beyond repair.
            StoreError: The Milvus server the index lives on cannot be reached.
        """
        settings = settings or Settings()
        index = _open_served(Path(index_dir), settings)
        built_with = index.manifest.encoder_name
        if model is not None and canonical_model_name(model) != built_with:
            index.close()
            raise IndexMismatchError(
                f"the index at {index_dir} was built with {built_with!r} but {model!r} was "
                f"requested; rebuild with `nexus build --full --model {model}` or drop --model"
            )
        if encoder is None:
            built_on = str(index.manifest.encoder.get("backend", "torch"))
            backend = serving_backend(settings.backend, built_on)
            if backend != settings.backend:
                log.info("the index was built on %s; embedding queries on it too", built_on)
            encoder = load_encoder(
                settings.replace(backend=backend),
                built_with,
                earlier_exports=[Path(index_dir) / "encoders"],  # where older indexes kept one
            )
        return cls(index, encoder, settings)

    @property
    def manifest(self) -> Manifest:
        return self.index.manifest

    def reload_if_changed(self) -> bool:
        """Switch to a newer generation if a build published one; True if it switched.

        Searches already running finish on the old generation; new ones use the new one.
        """
        latest = current_generation(self.index.path.parent)
        if latest == self.index.path:
            return False
        fresh = _open_served(self.index.path.parent, self.settings, self.encoder)
        old, self.index = self.index, fresh
        log.info("switched to index generation %s", fresh.manifest.generation)
        del old  # closed when the last search using it lets go
        return True

    def _embed_uncached(self, query: str) -> np.ndarray:
        vector: np.ndarray = self.encoder.encode([query], kind="query")[0]
        vector.setflags(write=False)
        return vector

    def candidates(
        self,
        text: str,
        n: int,
        *,
        mode: SearchMode = "hybrid",
        allowed: np.ndarray | None = None,
    ) -> Candidates:
        """Each retriever's top ``n`` chunks for an already cleaned query, before fusion.

        ``mode`` decides which retrievers run; ``allowed`` restricts both to these chunk ids.
        """
        return self._candidates(self.index, text, n, mode, allowed)

    def _candidates(
        self,
        index: IndexReader,
        text: str,
        n: int,
        mode: SearchMode,
        allowed: np.ndarray | None,
    ) -> Candidates:
        empty_ids, empty_scores = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        qvec = self._embed_query(text) if mode != "keyword" else None
        dense_ids, dense_scores = empty_ids, empty_scores
        if qvec is not None:
            dense_ids, dense_scores = index.dense_search(qvec, n, allowed)
        keyword_ids, keyword_scores, peak = empty_ids, empty_scores, None
        if mode != "semantic":
            keyword_ids, keyword_scores = index.keyword_search(text, max(n, PEAK_RANK), allowed)
            peak = keyword_peak(keyword_scores)
            keyword_ids, keyword_scores = keyword_ids[:n], keyword_scores[:n]
        return Candidates(qvec, dense_ids, dense_scores, keyword_ids, keyword_scores, peak)

    def search(
        self,
        query: str,
        k: int | None = None,
        *,
        mode: SearchMode | None = None,
        category: str | None = None,
        path: str | None = None,
        dedupe: bool = True,
    ) -> list[Hit]:
        """The passages that best answer ``query``, best first.

        Args:
            query: A question or keywords, at most ``settings.max_query_chars`` characters;
                control characters are dropped.
            k: Number of hits; ``settings.top_k`` by default.
            mode: ``hybrid`` (default), ``semantic`` or ``keyword``.
            category: Only documents in this top-level folder (``concepts``).
            path: Only documents whose path matches this glob (``concepts/cach*``).
            dedupe: Drop passages nearly identical to a better one.

        Raises:
            QueryError: The query is empty or too long, ``k`` or ``mode`` is invalid, or a
                filter is longer than ``MAX_FILTER_CHARS`` (see :mod:`.query`).
        """
        settings = self.settings
        k = settings.top_k if k is None else k
        mode = mode or settings.mode
        if mode not in SEARCH_MODES:
            raise QueryError(f"mode must be one of {', '.join(SEARCH_MODES)}, got {mode!r}")
        k = check_k(k)
        check_filter("category", category)
        check_filter("path", path)
        text = clean_query(query, settings.max_query_chars)
        index = self.index  # one generation for the whole search, even if a reload happens
        allowed = None
        if category is not None or path is not None:
            allowed = index.db.ids_matching(category, path)
            if len(allowed) == 0:
                return []
        n = max(settings.candidates, 3 * k)
        found = self._candidates(index, text, n, mode, allowed)
        ranked = fuse(found, settings) if mode == "hybrid" else found.ranking(mode)
        qvec = found.query_vector
        dense_ids, keyword_ids = found.dense_ids.tolist(), found.keyword_ids.tolist()

        if dedupe:
            ranked = _drop_near_duplicates(index, ranked, k, settings.dedupe_threshold)
        ranked = ranked[:k]
        ids = [cid for cid, _ in ranked]
        chunks = index.db.chunks(ids)
        cosines = (index.vectors_of(ids) @ qvec).tolist() if qvec is not None and ids else []
        dense_rank = {cid: r for r, cid in enumerate(dense_ids, start=1)}
        keyword_rank = {cid: r for r, cid in enumerate(keyword_ids, start=1)}
        return [
            Hit(
                rank=position,
                score=float(score),
                source=chunks[cid].source,
                title=chunks[cid].title,
                headings=chunks[cid].headings,
                text=chunks[cid].text,
                start_line=chunks[cid].start_line,
                end_line=chunks[cid].end_line,
                category=chunks[cid].category,
                chunk_id=int(cid),
                dense_score=float(cosines[position - 1]) if cosines else None,
                dense_rank=dense_rank.get(cid),
                keyword_rank=keyword_rank.get(cid),
            )
            for position, (cid, score) in enumerate(ranked, start=1)
        ]


def _open_served(
    index_dir: Path, settings: Settings, encoder: Encoder | None = None
) -> IndexReader:
    """The generation served from ``index_dir``, its store checked (and, given ``encoder``,
    that it was built by it); closed again when a check fails, so no handle leaks."""
    index = open_index(index_dir, settings=settings)
    try:
        index.check_store()
        if encoder is not None:
            _check_encoder(index.manifest, encoder)
    except AssistantError:
        index.close()
        raise
    return index


def _check_encoder(manifest: Manifest, encoder: Encoder) -> None:
    """Refuse an encoder whose vectors would not be comparable with the index's."""
    mismatch = encoder_mismatch(manifest.encoder, encoder)
    if mismatch is None:
        return
    if encoder.name != manifest.encoder_name or encoder.dim != manifest.dim:
        hint = (
            f"rebuild with `nexus build --full --model {encoder.name}` or load the index "
            "without a model"
        )
    else:
        hint = "rebuild with `nexus build --full`"
    raise IndexMismatchError(f"cannot search this index with the encoder: {mismatch}; {hint}")


def _drop_near_duplicates(
    index: IndexReader, ranked: list[tuple[int, float]], k: int, threshold: float
) -> list[tuple[int, float]]:
    """Keep a hit only if no better kept hit has a cosine above ``threshold`` with it."""
    if len(ranked) < 2:
        return ranked
    pool = ranked[: 3 * k]
    vectors = index.vectors_of([cid for cid, _ in pool])
    kept: list[int] = []
    for i in range(len(pool)):
        if kept and float(np.max(vectors[kept] @ vectors[i])) > threshold:
            continue
        kept.append(i)
        if len(kept) == k:
            break
    return [pool[i] for i in kept]
