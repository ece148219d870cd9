"""The manifest: what a generation is and how it was built, as ``manifest.json`` (never pickle)."""

from __future__ import annotations

import contextlib
import json
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import IndexCorruptError, IndexMismatchError

__all__ = ["MANIFEST", "SCHEMA_VERSION", "Manifest", "library_versions", "read_manifest"]

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Manifest:
    """What an index is and how it was built; stored as ``manifest.json``, never pickled."""

    schema_version: int
    generation: str
    built_at: str
    encoder: dict[str, Any]  # name, backend, dim, max_tokens, probe, export (ONNX folder)
    normalize: bool
    metric: str
    index_type: str  # FAISS factory string actually used
    chunking: dict[str, int]  # chunk_tokens, chunk_overlap, min_chunk_tokens
    keyword: dict[str, Any]  # bm25 method, k1, b, stemmer, stopwords, split_identifiers
    corpus_root: str
    corpus_fingerprint: str
    documents: int
    chunks: int
    skipped: int
    files: dict[str, int]  # file name -> size in bytes, to detect truncation
    versions: dict[str, str] = field(default_factory=dict)
    index_params: dict[str, int] = field(default_factory=dict)  # efSearch, nprobe
    index_choice: dict[str, Any] = field(default_factory=dict)  # requested type, exact limit
    store: dict[str, Any] = field(default_factory=dict)  # where vectors live; empty = FAISS files
    readers: dict[str, int] = field(default_factory=dict)  # format -> reader version; none = 1
    # Documents this build took in (added, modified) and dropped (removed); {} if unrecorded.
    changes: dict[str, int] = field(default_factory=dict)

    @property
    def encoder_name(self) -> str:
        return str(self.encoder["name"])

    @property
    def dim(self) -> int:
        return int(self.encoder["dim"])

    @property
    def store_kind(self) -> str:
        """``faiss`` for an index held in its own files, ``milvus`` for a shared collection."""
        return str(self.store.get("kind", "faiss"))

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        data = json.loads(text)
        if data.get("schema_version") != SCHEMA_VERSION:
            raise IndexMismatchError(
                f"index format version {data.get('schema_version')!r} is not the supported "
                f"version {SCHEMA_VERSION}; rebuild it with `nexus build --full`"
            )
        known = cls.__dataclass_fields__
        values = {k: v for k, v in data.items() if k in known}
        for name, value in values.items():
            expected = _JSON_TYPES[str(known[name].type).split("[")[0]]
            if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
                raise TypeError(f"{name} is {value!r}, not {expected.__name__}")
        return cls(**values)


_JSON_TYPES: dict[str, type] = {"int": int, "str": str, "bool": bool, "dict": dict}


def library_versions() -> dict[str, str]:
    """Versions of the libraries that shape an index, recorded for whoever debugs it later."""
    from importlib import metadata

    versions = {"python": platform.python_version()}
    for dist in ("nexus-assistant", "numpy", "faiss-cpu", "bm25s", "sentence-transformers"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[dist] = metadata.version(dist)
    return versions


def read_manifest(generation: Path) -> Manifest:
    """The manifest of a generation folder.

    Raises:
        IndexCorruptError: It is missing or unreadable.
        IndexMismatchError: It is of another format version.
    """
    try:
        return Manifest.from_json((generation / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise IndexCorruptError(
            f"{generation / MANIFEST} is missing; rebuild with `nexus build --full`"
        ) from None
    except (ValueError, TypeError) as exc:
        raise IndexCorruptError(
            f"{generation / MANIFEST} is unreadable ({exc}); rebuild with `nexus build --full`"
        ) from exc
