"""Test helpers shipped with the package: a deterministic encoder that needs no model.

``HashEncoder`` maps each word to a fixed random direction, so texts sharing words have
similar vectors. It is fast and stable across runs and machines, which makes it right for unit
tests of chunking, storage and fusion; it knows nothing of meaning, so retrieval-quality tests
use the real model.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Literal

import numpy as np

__all__ = ["HashEncoder"]

_TOKEN = re.compile(r"\w+|[^\w\s]")
_WORD = re.compile(r"\w+")


class HashEncoder:
    """A bag-of-words encoder over hashed words, normalized like a real one.

    Args:
        dim: Vector size.
        max_tokens: Window reported to the chunker, in tokens (words and punctuation).
        name: Name recorded in manifests, so two HashEncoders can be told apart.
    """

    def __init__(self, dim: int = 64, max_tokens: int = 254, name: str = "hash-encoder") -> None:
        self.name = name
        self.backend = "hash"
        self.dim = dim
        self.max_tokens = max_tokens
        self.calls = 0
        self.texts_encoded = 0

    def _word_vector(self, word: str) -> np.ndarray:
        seed = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
        return np.random.default_rng(seed).standard_normal(self.dim).astype(np.float32)

    def encode(
        self,
        texts: Sequence[str],
        *,
        kind: Literal["query", "document"],
        progress: bool = False,
    ) -> np.ndarray:
        self.calls += 1
        self.texts_encoded += len(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                out[row] += self._word_vector(word)
            norm = float(np.linalg.norm(out[row]))
            if norm > 0:
                out[row] /= norm
            else:
                out[row, 0] = 1.0
        return out

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(_TOKEN.findall(text)) for text in texts]
