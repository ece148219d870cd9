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

from ..analysis import asks_about_changes
from ..config import SEARCH_MODES, SearchMode, Settings
from ..encoders import (
    Encoder,
    canonical_model_name,
    encoder_mismatch,
    load_encoder,
    serving_backend,
)
from ..errors import AssistantError, IndexMismatchError, QueryError
from ..ingest.chunking import HEADING_SEPARATOR, Chunk
from ..stores import IndexReader, Layout, Manifest, current_generation, open_index
from .fusion import (
    PEAK_RANK,
    Candidates,
    add_document_evidence,
    demote,
    diversify,
    fuse,
    keyword_peak,
)
from .query import check_filter, check_k, clean_query
from .rerank import Reranker

__all__ = ["Assistant", "Hit"]

log = logging.getLogger(__name__)

# The chunker repeats at most a few sentences between neighbours: far less than this.
_MAX_OVERLAP_CHARS = 1_500


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

    def __init__(
        self,
        index: IndexReader,
        encoder: Encoder,
        settings: Settings,
        reranker: Reranker | None = None,
    ) -> None:
        _check_encoder(index.manifest, encoder)
        self.index = index
        self.encoder = encoder
        self.settings = settings
        self.reranker = reranker
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
        reranker = None
        if settings.reranker:
            from .rerank import load_reranker

            reranker = load_reranker(
                settings.reranker, device=settings.device, offline=settings.offline
            )
        return cls(index, encoder, settings, reranker)

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

    def query_vector(self, query: str) -> np.ndarray:
        """The question's vector as a search embeds it (cached with the search's)."""
        return self._embed_query(clean_query(query, self.settings.max_query_chars))

    def similarity(self, a: str, b: str) -> float:
        """The cosine of two questions' vectors: how much they share a topic."""
        return float(self.query_vector(a) @ self.query_vector(b))

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
        heading_ids, heading_scores = empty_ids, empty_scores
        if mode == "hybrid" and self.settings.heading_weight > 0:
            heading_ids, heading_scores = index.heading_search(text, n, allowed)
        return Candidates(
            qvec,
            dense_ids,
            dense_scores,
            keyword_ids,
            keyword_scores,
            peak,
            heading_ids,
            heading_scores,
        )

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
        layout = index.db.layout()
        if mode == "hybrid":
            ranked = add_document_evidence(
                fuse(found, settings),
                layout.document,
                settings.document_weight,
                settings.document_passages,
            )
            if not asks_about_changes(text):  # release notes answer just that kind
                ranked = demote(ranked, layout.release_notes, settings.release_notes_penalty)
        else:
            ranked = found.ranking(mode)
        if self.reranker is not None:
            ranked = self._rerank(index, text, ranked)
        ranked = _one_per_section(ranked, layout.section)
        if dedupe:  # enough left over for the diversity cap and the cards to choose from
            ranked = _drop_near_duplicates(index, ranked, 2 * k, settings.dedupe_threshold)
        ranked = diversify(ranked, layout.document, settings.max_per_document)
        return self._hits(index, found, _cards(ranked, layout, settings.context_chunks, k))

    def _rerank(
        self, index: IndexReader, question: str, ranked: list[tuple[int, float]]
    ) -> list[tuple[int, float]]:
        """The best candidates in the order the cross-encoder scores them, the rest after."""
        assert self.reranker is not None
        head = ranked[: self.settings.rerank_candidates]
        chunks = index.db.chunks([cid for cid, _ in head])
        scores = self.reranker.scores(question, [chunks[cid].embed_text for cid, _ in head])
        rescored = sorted(zip([cid for cid, _ in head], scores, strict=True), key=lambda p: -p[1])
        return rescored + ranked[len(head) :]

    def _hits(self, index: IndexReader, found: Candidates, cards: list[_Card]) -> list[Hit]:
        """The cards as hits: each passage shown with the passages around it."""
        ids = [card.chunk_id for card in cards]
        chunks = index.db.chunks(sorted({cid for card in cards for cid in card.shown}))
        qvec = found.query_vector
        cosines = (index.vectors_of(ids) @ qvec).tolist() if qvec is not None and ids else []
        dense_rank = {cid: r for r, cid in enumerate(found.dense_ids.tolist(), start=1)}
        keyword_rank = {cid: r for r, cid in enumerate(found.keyword_ids.tolist(), start=1)}
        hits = []
        for position, card in enumerate(cards, 1):
            chunk, parts = chunks[card.chunk_id], [chunks[i] for i in card.shown]
            hits.append(
                Hit(
                    rank=position,
                    score=card.score,
                    source=chunk.source,
                    title=chunk.title,
                    headings=chunk.headings,
                    text=_joined(chunk.headings, parts),
                    start_line=min(part.start_line for part in parts),
                    end_line=max(part.end_line for part in parts),
                    category=chunk.category,
                    chunk_id=card.chunk_id,
                    dense_score=float(cosines[position - 1]) if cosines else None,
                    dense_rank=dense_rank.get(card.chunk_id),
                    keyword_rank=keyword_rank.get(card.chunk_id),
                )
            )
        return hits


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


def _one_per_section(
    ranked: list[tuple[int, float]], section_of: np.ndarray
) -> list[tuple[int, float]]:
    """The best passage of each section: the others are shown around it (see ``_hits``)."""
    seen: set[int] = set()
    kept = []
    for cid, score in ranked:
        section = int(section_of[cid])
        if section not in seen:
            seen.add(section)
            kept.append((cid, score))
    return kept


@dataclass(frozen=True)
class _Card:
    """A ranked passage and the passages shown with it (itself included, in document order)."""

    chunk_id: int
    score: float
    shown: tuple[int, ...]


def _cards(ranked: list[tuple[int, float]], layout: Layout, width: int, k: int) -> list[_Card]:
    """The first ``k`` ranked passages, each with up to ``width`` passages on each side: before
    it from its own section, after it from its section and the sections nested in it (an
    answer often stands under a sub-heading right after the passage that matched). A passage
    already shown on a better card does not get a card of its own."""
    cards: list[_Card] = []
    seen: set[int] = set()
    last = len(layout.section) - 1
    for cid, score in ranked:
        if cid in seen:
            continue
        path, section = layout.paths[cid], layout.section[cid]
        low = high = cid
        while low > 0 and cid - low < width and layout.section[low - 1] == section:
            low -= 1
        while high < last and high - cid < width and _continues(layout, high + 1, section, path):
            high += 1
        shown = tuple(range(low, high + 1))
        seen.update(shown)
        cards.append(_Card(int(cid), float(score), shown))
        if len(cards) == k:
            break
    return cards


def _continues(layout: Layout, cid: int, section: int, path: tuple[str, ...]) -> bool:
    """Whether chunk ``cid`` belongs with a card of ``section`` (heading ``path``): it is in
    that section, or in one nested under it in the same document."""
    if layout.section[cid] == section:
        return True
    other = layout.paths[cid]
    same_document = layout.document[cid] == layout.document[cid - 1]
    return same_document and len(other) > len(path) and other[: len(path)] == path


def _joined(headings: tuple[str, ...], parts: list[Chunk]) -> str:
    """Consecutive passages as one text, without the overlap the chunker repeats between
    them (the start of one is the end of the one before); a passage from a nested section
    opens with its heading."""
    joined, shown_path = parts[0].text, headings
    for part in parts[1:]:
        text = part.text
        head = text[:40]
        at = joined.rfind(head, max(0, len(joined) - _MAX_OVERLAP_CHARS)) if head else -1
        if at >= 0 and text.startswith(joined[at:]):
            text = text[len(joined) - at :]
        if part.headings != shown_path:
            shown_path = part.headings
            text = f"#### {part.headings[-1]}\n\n{text.lstrip()}"
        if text.strip():
            joined += "\n\n" + text.lstrip()
    return joined


def _drop_near_duplicates(
    index: IndexReader, ranked: list[tuple[int, float]], k: int, threshold: float
) -> list[tuple[int, float]]:
    """The first ``k`` hits that no better kept hit has a cosine above ``threshold`` with."""
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
