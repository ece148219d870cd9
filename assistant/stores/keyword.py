"""The keyword index: BM25 over chunk texts (bm25s), analysed as :mod:`assistant.analysis` says."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..analysis import KEYWORD_ANALYSIS, keyword_token_ids, keyword_tokens, load_bm25s, split_mode
from ..config import Settings

__all__ = ["HEADINGS", "KEYWORD", "KeywordIndex"]

KEYWORD = "keyword"
HEADINGS = "headings"  # BM25 over each chunk's heading path alone: the heading field


class KeywordIndex:
    """BM25 over chunk texts (bm25s), with English stop words and Snowball stemming; code
    names are indexed by their parts too (``Settings.split_identifiers``).

    ``params`` are recorded in each index's manifest; an index is always searched with the
    parameters it was built with, so indexes built before an option existed keep working.
    """

    params: ClassVar[dict[str, Any]] = {
        "method": "lucene",
        "k1": 1.2,
        "b": 0.75,
        **KEYWORD_ANALYSIS,
    }

    @classmethod
    def params_for(cls, settings: Settings) -> dict[str, Any]:
        """The parameters a new build records: the defaults with the settings' BM25 options."""
        return {
            **cls.params,
            "k1": settings.keyword_k1,
            "b": settings.keyword_b,
            "split_identifiers": settings.split_identifiers,
        }

    def __init__(
        self, retriever: Any, params: dict[str, Any] | None = None, *, size: int = 0
    ) -> None:
        self.retriever = retriever  # None for an index of texts without a single word
        self.split_mode = split_mode(self.params if params is None else params)
        self._size = size

    @classmethod
    def build(cls, texts: Sequence[str], params: dict[str, Any] | None = None) -> KeywordIndex:
        """BM25 over ``texts``; texts without a word to index (a corpus whose passages have no
        headings, for the heading field) make an index that finds nothing, and saves none."""
        p = dict(params) if params is not None else cls.params
        tokenized = keyword_token_ids(texts, p)
        if not tokenized.vocab:
            return cls(None, p, size=len(texts))
        retriever = load_bm25s().BM25(method=p["method"], k1=p["k1"], b=p["b"])
        retriever.index(tokenized, show_progress=False)
        return cls(retriever, p)

    @property
    def empty(self) -> bool:
        """Whether there is no word in the index (nothing to save; every search finds none)."""
        return self.retriever is None

    @classmethod
    def load(cls, path: Path, params: dict[str, Any] | None = None) -> KeywordIndex:
        """Open a saved index; ``params`` are those it was built with (from the manifest)."""
        retriever = load_bm25s().BM25.load(str(path), mmap=True, show_progress=False, verbosity=0)
        return cls(retriever, params)

    def save(self, path: Path) -> None:
        self.retriever.save(str(path), show_progress=False)

    @property
    def size(self) -> int:
        return self._size if self.retriever is None else int(self.retriever.scores["num_docs"])

    def tokenize(self, query: str) -> list[str]:
        return list(_query_tokens(query, self.split_mode))

    def search(
        self, query: str, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` chunk ids by BM25 score (score > 0 only), best first: (ids, scores),
        optionally only among the chunk ids ``allowed``."""
        if self.retriever is None:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        vocab = self.retriever.vocab_dict
        tokens = [t for t in self.tokenize(query) if t in vocab]
        if not tokens or k <= 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        scores = np.asarray(self.retriever.get_scores(tokens), dtype=np.float32)
        if allowed is not None:
            mask = np.zeros(len(scores), dtype=np.float32)
            mask[allowed] = 1.0
            scores = scores * mask
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        top = top[scores[top] > 0]
        return top.astype(np.int64), scores[top]


@lru_cache(maxsize=4096)
def _query_tokens(query: str, mode: str) -> tuple[str, ...]:
    """A query's keyword tokens, analysed once for the body and heading fields alike (and
    for a question asked again)."""
    return tuple(keyword_tokens([query], {"split_identifiers": mode})[0])
