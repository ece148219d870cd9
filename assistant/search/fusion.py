"""Fusion: merge what the dense and keyword retrievers found into one ranking.

The default adds each retriever's standardized scores (``zscore``), the keyword list weighted
by how steeply its scores fall for this query (:func:`keyword_peak`): flat BM25 lists, where
the query's words are common, add mostly noise. ``minmax`` and ``rrf`` (reciprocal ranks) are
the alternatives measured in the benchmarks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..config import SearchMode, Settings

__all__ = [
    "PEAK_RANK",
    "Candidates",
    "add_document_evidence",
    "demote",
    "diversify",
    "fuse",
    "keyword_peak",
    "keyword_share",
    "normalize_scores",
    "reciprocal_rank_fusion",
    "score_fusion",
]

# The keyword list's peak compares its best score with the score at this rank.
PEAK_RANK = 10


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
    measured (the full keyword weight applies). ``heading_ids`` / ``heading_scores`` are the
    heading field's BM25 list (hybrid mode only).
    """

    query_vector: np.ndarray | None
    dense_ids: np.ndarray
    dense_scores: np.ndarray
    keyword_ids: np.ndarray
    keyword_scores: np.ndarray
    keyword_peak: float | None = None
    heading_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    heading_scores: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))

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
    """Hybrid ranking of the candidates of the retrievers, best first.

    The keyword list weighs ``settings.keyword_weight`` and the heading field's list
    ``settings.heading_weight``, both scaled by :func:`keyword_share` of the keyword list's
    peak (flat BM25 scores say the query's words are common: both lexical lists then count
    less); the weights are one number per query, so passages with equal scores stay tied.
    """
    share = keyword_share(found.keyword_peak, settings.keyword_peak_low, settings.keyword_peak_high)
    weight, heading = settings.keyword_weight * share, settings.heading_weight * share
    lists = [
        (found.dense_ids, found.dense_scores, 1.0 - weight),
        (found.keyword_ids, found.keyword_scores, weight),
        (found.heading_ids, found.heading_scores, heading),
    ]
    lists = [entry for entry in lists if len(entry[0]) and entry[2] > 0]
    if settings.fusion == "rrf":
        return reciprocal_rank_fusion(
            [ids.tolist() for ids, _, _ in lists], k=settings.rrf_k, weights=[w for *_, w in lists]
        )
    return score_fusion(
        [(ids, scores) for ids, scores, _ in lists], [w for *_, w in lists], settings.fusion
    )


def add_document_evidence(
    ranked: Sequence[tuple[int, float]], document_of: np.ndarray, weight: float, passages: int
) -> list[tuple[int, float]]:
    """``ranked`` with each passage's score raised by ``weight`` times the mean of the best
    (up to ``passages``) scores of its document among the candidates, best first.

    A passage from a document whose other passages also match the question beats a lone
    lucky match elsewhere, and one whose document matches only weakly elsewhere loses to it;
    the mean (not the sum) keeps a long document with many weak matches from outweighing a
    short one that answers.
    """
    if weight <= 0 or not ranked:
        return list(ranked)
    best: dict[int, list[float]] = {}
    for cid, score in sorted(ranked, key=lambda pair: -pair[1]):
        scores = best.setdefault(int(document_of[cid]), [])
        if len(scores) < passages:
            scores.append(score)
    evidence = {doc: sum(s) / len(s) for doc, s in best.items()}
    raised = [(cid, score + weight * evidence[int(document_of[cid])]) for cid, score in ranked]
    return sorted(raised, key=lambda pair: -pair[1])


def demote(
    ranked: Sequence[tuple[int, float]], demoted: np.ndarray, penalty: float
) -> list[tuple[int, float]]:
    """``ranked`` with the chunks flagged in ``demoted`` (by chunk id) lowered by ``penalty``,
    best first: they stay findable when they match far better than anything else."""
    if penalty <= 0 or not demoted.any():
        return list(ranked)
    lowered = [(cid, score - penalty * bool(demoted[cid])) for cid, score in ranked]
    return sorted(lowered, key=lambda pair: -pair[1])


def diversify(
    ranked: Sequence[tuple[int, float]], document_of: np.ndarray, cap: int
) -> list[tuple[int, float]]:
    """``ranked`` with at most ``cap`` passages of one document before every other document's
    have had their turn: the rest follow, in order, so a document that is the only good
    source still fills the list. 0 keeps the order as it is."""
    if cap <= 0:
        return list(ranked)
    kept: list[tuple[int, float]] = []
    later: list[tuple[int, float]] = []
    count: dict[int, int] = {}
    for cid, score in ranked:
        document = int(document_of[cid])
        count[document] = count.get(document, 0) + 1
        (kept if count[document] <= cap else later).append((cid, score))
    return kept + later
