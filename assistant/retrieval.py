"""Search a loaded index: dense and keyword retrieval, rank fusion, filters, deduplication."""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from .chunking import HEADING_SEPARATOR
from .config import SEARCH_MODES, SearchMode, Settings
from .embedding import (
    SAME_ENCODER_COSINE,
    Encoder,
    canonical_model_name,
    load_encoder,
    probe_similarity,
    probe_vector,
    serving_backend,
)
from .errors import AssistantError, IndexMismatchError, QueryError
from .store import LoadedIndex, Manifest, current_generation, open_index

__all__ = [
    "MAX_FILTER_CHARS",
    "MAX_K",
    "Assistant",
    "Candidates",
    "Hit",
    "clean_query",
    "fuse",
    "keyword_peak",
    "keyword_share",
    "normalize_scores",
    "reciprocal_rank_fusion",
    "score_fusion",
]

log = logging.getLogger(__name__)

_WHITESPACE = re.compile(r"\s+")
MAX_K = 1000
# Filters name folders and short globs; a longer one is a mistake or an attack, not a filter.
MAX_FILTER_CHARS = 512
# The keyword list's peak compares its best score with the score at this rank.
PEAK_RANK = 10


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


def clean_query(query: str, max_chars: int) -> str:
    """The query with control characters removed, whitespace collapsed, trimmed to a length.

    Raises:
        QueryError: Nothing searchable is left.
    """
    if not isinstance(query, str):
        raise QueryError(f"a query must be text, got {type(query).__name__}")
    head = query[: max_chars * 4]  # bound the work on absurdly long input
    kept = "".join(" " if unicodedata.category(ch)[0] in "CZ" else ch for ch in head)
    cleaned = _WHITESPACE.sub(" ", kept).strip()[:max_chars].strip()
    if not cleaned:
        raise QueryError("the question is empty; type a few words about what you are looking for")
    return cleaned


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[int]], k: int = 60, weights: Sequence[float] | None = None
) -> list[tuple[int, float]]:
    """Fuse ranked id lists: each id scores the sum of ``weight / (k + rank)`` over lists.

    Ties keep the order in which ids first appear, so the result is deterministic.
    """
    weights = weights or [1.0] * len(rankings)
    scores: dict[int, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + weight / (k + rank)
    return sorted(scores.items(), key=lambda pair: -pair[1])


@dataclass(frozen=True)
class Candidates:
    """What each retriever found for one query, best first, before fusion.

    ``query_vector`` is None when the query was not embedded (keyword mode).
    ``keyword_peak`` is :func:`keyword_peak` of the keyword list; None when it was not
    measured (the full keyword weight applies).
    """

    query_vector: np.ndarray | None
    dense_ids: np.ndarray
    dense_scores: np.ndarray
    keyword_ids: np.ndarray
    keyword_scores: np.ndarray
    keyword_peak: float | None = None

    def ranking(self, mode: SearchMode) -> list[tuple[int, float]]:
        """One retriever's own list: cosines in semantic mode, BM25 scores in keyword mode."""
        ids, scores = (
            (self.dense_ids, self.dense_scores)
            if mode == "semantic"
            else (self.keyword_ids, self.keyword_scores)
        )
        return list(zip(ids.tolist(), scores.tolist(), strict=True))


def normalize_scores(scores: np.ndarray, method: str) -> np.ndarray:
    """Put one retriever's scores on a common scale: ``minmax`` to [0, 1], ``zscore`` to
    mean 0 and unit spread over the candidates."""
    scores = np.asarray(scores, dtype=np.float64)
    if len(scores) == 0:
        return scores
    if method == "minmax":
        low, span = scores.min(), np.ptp(scores)
        return (scores - low) / span if span > 0 else np.ones_like(scores)
    spread = scores.std()
    return (scores - scores.mean()) / spread if spread > 0 else np.zeros_like(scores)


def score_fusion(
    lists: Sequence[tuple[np.ndarray, np.ndarray]],
    weights: Sequence[float],
    method: str = "zscore",
) -> list[tuple[int, float]]:
    """Fuse (ids, scores) lists by a weighted sum of normalized scores.

    An id missing from a list gets that list's lowest normalized score, since it ranked below
    everything the retriever returned. Equal inputs give exactly equal sums, so identical
    documents stay tied.
    """
    normalized = [(ids, normalize_scores(scores, method)) for ids, scores in lists]
    floors = [float(z.min()) if len(z) else 0.0 for _, z in normalized]
    fused = dict.fromkeys((item for ids, _ in normalized for item in ids.tolist()), 0.0)
    for (ids, z), floor, weight in zip(normalized, floors, weights, strict=True):
        own = dict(zip(ids.tolist(), z.tolist(), strict=True))
        for item in fused:
            fused[item] += weight * own.get(item, floor)
    return sorted(fused.items(), key=lambda pair: -pair[1])


def keyword_peak(scores: np.ndarray) -> float:
    """How far BM25's scores fall from the best to the tenth, relative to the best: 1 - s10 / s1
    (``scores`` sorted best first); 1 when fewer than ten passages match, 0 when none does.

    Rare query words single out a few passages and the list falls steeply; common or scattered
    words (web questions over code, as in CoSQA) give a flat list whose order is mostly noise.
    """
    if len(scores) == 0 or scores[0] <= 0:
        return 0.0
    tenth = float(scores[PEAK_RANK - 1]) if len(scores) >= PEAK_RANK else 0.0
    return 1.0 - tenth / float(scores[0])


def keyword_share(peak: float | None, low: float, high: float) -> float:
    """The share of the keyword weight a query gets: 0 at a peak of ``low`` or below, 1 at
    ``high`` or above (or when the peak is unknown), in proportion between."""
    if peak is None or peak >= high:
        return 1.0
    if peak <= low:
        return 0.0
    return (peak - low) / (high - low)


def fuse(found: Candidates, settings: Settings) -> list[tuple[int, float]]:
    """Hybrid ranking of the candidates of both retrievers, best first.

    The keyword list weighs ``settings.keyword_weight`` scaled by :func:`keyword_share` of its
    peak; the weight is one number per query, so passages with equal scores stay tied.
    """
    weight = settings.keyword_weight * keyword_share(
        found.keyword_peak, settings.keyword_peak_low, settings.keyword_peak_high
    )
    if settings.fusion == "rrf":
        return reciprocal_rank_fusion(
            [found.dense_ids.tolist(), found.keyword_ids.tolist()],
            k=settings.rrf_k,
            weights=[1.0 - weight, weight],
        )
    return score_fusion(
        [(found.dense_ids, found.dense_scores), (found.keyword_ids, found.keyword_scores)],
        [1.0 - weight, weight],
        settings.fusion,
    )


class Assistant:
    """Searches one index with the encoder that built it.

    Example:
        >>> nexus = Assistant.load("index")                       # doctest: +SKIP
        >>> hits = nexus.search("how do I avoid race conditions?", k=3)  # doctest: +SKIP
        >>> hits[0].source, hits[0].heading_path                  # doctest: +SKIP
    """

    def __init__(self, index: LoadedIndex, encoder: Encoder, settings: Settings) -> None:
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
                cache_dir=Path(index_dir) / "encoders",
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
        index: LoadedIndex,
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
            query: A question or keywords; control characters are dropped and queries longer
                than ``settings.max_query_chars`` are trimmed.
            k: Number of hits; ``settings.top_k`` by default.
            mode: ``hybrid`` (default), ``semantic`` or ``keyword``.
            category: Only documents in this top-level folder (``concepts``).
            path: Only documents whose path matches this glob (``concepts/cach*``).
            dedupe: Drop passages nearly identical to a better one.

        Raises:
            QueryError: The query is empty, ``k`` or ``mode`` is invalid, or a filter is
                longer than ``MAX_FILTER_CHARS``.
        """
        settings = self.settings
        k = settings.top_k if k is None else k
        mode = mode or settings.mode
        if mode not in SEARCH_MODES:
            raise QueryError(f"mode must be one of {', '.join(SEARCH_MODES)}, got {mode!r}")
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
            raise QueryError(f"k must be a whole number between 1 and {MAX_K}, got {k!r}")
        _check_filter("category", category)
        _check_filter("path", path)
        text = clean_query(query, settings.max_query_chars)
        index = self.index  # one generation for the whole search, even if a reload happens
        allowed = None
        if category is not None or path is not None:
            allowed = index.ids_matching(category, path)
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
        chunks = index.chunks(ids)
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


def _check_filter(name: str, value: object) -> None:
    if value is None:
        return
    if isinstance(value, str) and len(value) <= MAX_FILTER_CHARS:
        try:
            value.encode("utf-8")
            return
        except UnicodeEncodeError:  # lone surrogates, as a JSON body can carry
            pass
    raise QueryError(
        f"{name} must be text of at most {MAX_FILTER_CHARS} characters; "
        "use a folder name or a short glob such as concepts/cach*"
    )


def _open_served(
    index_dir: Path, settings: Settings, encoder: Encoder | None = None
) -> LoadedIndex:
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
    """Refuse an encoder whose vectors would not be comparable with the index's.

    Names can agree while weights differ (an upgraded model package), so the encoder must also
    reproduce the probe vector recorded at build time.
    """
    if encoder.name != manifest.encoder_name or encoder.dim != manifest.dim:
        raise IndexMismatchError(
            f"the index was built with {manifest.encoder_name!r} ({manifest.dim} dimensions) "
            f"but the encoder is {encoder.name!r} ({encoder.dim} dimensions); rebuild with "
            f"`nexus build --full --model {encoder.name}` or load the index without a model"
        )
    similarity = probe_similarity(manifest.encoder.get("probe", []), probe_vector(encoder))
    if similarity < SAME_ENCODER_COSINE:
        raise IndexMismatchError(
            f"the model {encoder.name!r} now embeds text differently from when the index was "
            f"built (probe cosine {similarity:.3f}); rebuild with `nexus build --full`"
        )


def _drop_near_duplicates(
    index: LoadedIndex, ranked: list[tuple[int, float]], k: int, threshold: float
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
