"""The exceptions Nexus raises, one family so callers can catch them all.

::

    AssistantError
    ├── ConfigError(ValueError)            a setting has an invalid value
    ├── CorpusNotFoundError(FileNotFoundError)
    ├── EmptyCorpusError                   nothing indexable in the corpus folder
    ├── IndexNotFoundError(FileNotFoundError)
    ├── IndexMismatchError                 index built by another model or format
    ├── IndexCorruptError                  an index file is missing, truncated or inconsistent
    ├── IndexWriteError(OSError)           the new index could not be written; the old one stays
    ├── QueryError(ValueError)             an empty or unusable query
    ├── DocumentNotFoundError(LookupError) no such document in the index
    ├── CollectionNotFoundError(LookupError)  the server has no collection of that name
    ├── CollectionUnavailableError(ConnectionError)  a collection's index cannot be opened now
    ├── StoreError(ConnectionError)       the vector store server failed or is unreachable
    └── MissingDependencyError(ImportError)

Each subclasses the built-in a caller would already expect, so ``except ValueError`` keeps
working. Messages say what happened and what to do about it.
"""

from __future__ import annotations

__all__ = [
    "AssistantError",
    "CollectionNotFoundError",
    "CollectionUnavailableError",
    "ConfigError",
    "CorpusNotFoundError",
    "DocumentNotFoundError",
    "EmptyCorpusError",
    "IndexCorruptError",
    "IndexMismatchError",
    "IndexNotFoundError",
    "IndexWriteError",
    "MissingDependencyError",
    "QueryError",
    "StoreError",
    "first_line",
]


class AssistantError(Exception):
    """Base class of every error Nexus raises on purpose."""


class ConfigError(AssistantError, ValueError):
    """A setting (argument, environment variable or CLI flag) has an invalid value."""


class CorpusNotFoundError(AssistantError, FileNotFoundError):
    """The corpus folder does not exist or is not a folder."""


class EmptyCorpusError(AssistantError):
    """The corpus folder holds no document that could be indexed."""


class IndexNotFoundError(AssistantError, FileNotFoundError):
    """No built index exists at the given folder."""


class IndexMismatchError(AssistantError):
    """The index was built with another encoder or an incompatible format version."""


class IndexCorruptError(AssistantError):
    """An index file is missing, truncated or disagrees with the manifest."""


class IndexWriteError(AssistantError, OSError):
    """Writing a new index failed (disk full, permissions); the previous index is untouched."""


class QueryError(AssistantError, ValueError):
    """A query that cannot be searched, such as an empty one."""


class MissingDependencyError(AssistantError, ImportError):
    """An optional package is needed for this feature and is not installed."""


class DocumentNotFoundError(AssistantError, LookupError):
    """No document with the requested source path is in the index."""


class CollectionNotFoundError(AssistantError, LookupError):
    """The server answers from no collection of the requested name."""


class CollectionUnavailableError(AssistantError, ConnectionError):
    """A collection the server was given cannot be opened now (its index is missing or
    damaged); the others keep answering, and it is retried."""


class StoreError(AssistantError, ConnectionError):
    """The vector store server (Milvus) cannot be reached or keeps failing; retry later."""


def first_line(exc: BaseException) -> str:
    """What went wrong, in one line: library errors (FAISS, Milvus) can carry whole traces."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
