"""Nexus: semantic search over a folder of documentation, with sources.

Public API::

    from assistant import Assistant, Settings, build_index

    report = build_index("corpus", "index")
    nexus = Assistant.load("index")
    hits = nexus.search("how do I avoid race conditions?", k=5)

Heavy modules (numpy, FAISS, the model) load on first use, so ``import assistant`` is quick.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .config import Settings
from .errors import (
    AssistantError,
    CollectionNotFoundError,
    CollectionUnavailableError,
    ConfigError,
    CorpusNotFoundError,
    DocumentNotFoundError,
    EmptyCorpusError,
    IndexCorruptError,
    IndexMismatchError,
    IndexNotFoundError,
    IndexWriteError,
    MissingDependencyError,
    QueryError,
    StoreError,
)

if TYPE_CHECKING:
    from .build import BuildReport, CorpusChanges, build_index, corpus_changes
    from .search.assistant import Assistant, Hit

__all__ = [
    "Assistant",
    "AssistantError",
    "BuildReport",
    "CollectionNotFoundError",
    "CollectionUnavailableError",
    "ConfigError",
    "CorpusChanges",
    "CorpusNotFoundError",
    "DocumentNotFoundError",
    "EmptyCorpusError",
    "Hit",
    "IndexCorruptError",
    "IndexMismatchError",
    "IndexNotFoundError",
    "IndexWriteError",
    "MissingDependencyError",
    "QueryError",
    "Settings",
    "StoreError",
    "build_index",
    "corpus_changes",
]

_LAZY = {
    "Assistant": "search.assistant",
    "Hit": "search.assistant",
    "BuildReport": "build",
    "build_index": "build",
    "CorpusChanges": "build",
    "corpus_changes": "build",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from importlib import import_module

        value = getattr(import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
