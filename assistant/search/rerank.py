"""An optional last stage: a cross-encoder re-scores the best candidates, question and passage
read together.

Off by default: no cross-encoder weights can be installed offline with the package. Any
sentence-transformers ``CrossEncoder`` name or path works (for example
``cross-encoder/ms-marco-MiniLM-L-6-v2`` where a model hub or a local copy is available);
it loads PyTorch, and costs a forward pass per re-scored passage on every search.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import ConfigError, MissingDependencyError

__all__ = ["Reranker", "load_reranker"]


class Reranker:
    """A cross-encoder that scores (question, passage) pairs; higher is more relevant."""

    def __init__(self, model: Any, name: str) -> None:
        self._model = model
        self.name = name

    def scores(self, question: str, passages: Sequence[str]) -> list[float]:
        if not passages:
            return []
        pairs = [(question, passage) for passage in passages]
        return [float(s) for s in self._model.predict(pairs, show_progress_bar=False)]


def load_reranker(name: str, *, device: str = "cpu", offline: bool = True) -> Reranker:
    """The cross-encoder ``name`` (a sentence-transformers name or a local folder).

    Raises:
        MissingDependencyError: sentence-transformers is not installed.
        ConfigError: The model cannot be loaded (offline and not on disk, or not a
            cross-encoder).
    """
    try:
        from sentence_transformers import CrossEncoder
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependencyError(
            "a reranker needs sentence-transformers; run `make install`"
        ) from exc
    try:
        model = CrossEncoder(name, device=device, local_files_only=offline)
    except (OSError, ValueError) as exc:
        hint = " (offline: pass a local folder)" if offline else ""
        raise ConfigError(f"cannot load the reranker {name!r}{hint}: {exc}") from exc
    return Reranker(model, name)
