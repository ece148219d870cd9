"""The PyTorch backend: a sentence-transformers model, normalized output, batched."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from ..errors import ConfigError, MissingDependencyError
from .models import canonical_model_name, model_location

__all__ = ["SentenceTransformerEncoder"]


class SentenceTransformerEncoder:
    """A sentence-transformers model, normalized output, batched, on CPU unless told otherwise.

    Args:
        name: Model name or local path; aliases of all-MiniLM-L6-v2 use the packaged weights.
        device: Torch device, default ``cpu``.
        batch_size: Texts per forward pass.
        offline: Load only from local files (no hub traffic).

    Raises:
        MissingDependencyError: sentence-transformers is not installed.
        ConfigError: The model cannot be loaded (unknown name offline, broken folder).
    """

    def __init__(
        self, name: str, *, device: str = "cpu", batch_size: int = 8, offline: bool = True
    ) -> None:
        try:
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as transformers_logging
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise MissingDependencyError(
                "sentence-transformers is not installed; run `make install` "
                "(or pip install sentence-transformers)"
            ) from exc
        self.name = canonical_model_name(name)
        self.backend = "torch"
        self.batch_size = batch_size
        location = model_location(name)
        # A weights progress bar on every model load is noise.
        transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
        try:
            self._model: Any = SentenceTransformer(
                location, device=device, local_files_only=offline
            )
        except (OSError, ValueError) as exc:
            hint = " (offline mode: pass a local folder)" if offline else ""
            raise ConfigError(f"cannot load embedding model {name!r}{hint}: {exc}") from exc
        dim, window = self._model.get_embedding_dimension(), self._model.max_seq_length
        if dim is None or window is None:
            raise ConfigError(f"model {name!r} does not declare its output size and input window")
        self.dim = int(dim)
        self.max_tokens = int(window) - 2  # [CLS] and [SEP]
        self._tokenizer = self._model.tokenizer

    def encode(
        self, texts: Sequence[str], *, kind: Literal["query", "document"], progress: bool = False
    ) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        method = self._model.encode_query if kind == "query" else self._model.encode_document
        vectors = method(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=progress,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        encoded = self._tokenizer(
            list(texts),
            add_special_tokens=False,
            return_attention_mask=False,
            return_token_type_ids=False,
            verbose=False,
        )
        return [len(ids) for ids in encoded["input_ids"]]
