"""Stores: where a built index lives, and the only way in or out of it.

An index folder holds generations (:mod:`.generations`); each generation has a manifest
(:mod:`.manifest`) and a chunk database (:mod:`.chunkdb`), and its vectors and keyword index
live in a store: files of the generation (:mod:`.local`: FAISS and bm25s) or a Milvus
collection that replicas share (:mod:`.milvus`). The choice is made here, once, from the
settings when building and from the manifest when reading; everything else talks to a store
through the seams in :mod:`.seams`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..config import DEFAULT_COLLECTION, Settings
from ..errors import AssistantError
from ..ingest.chunking import Chunk
from .chunkdb import (
    CHUNKS_DB,
    CorpusRecord,
    DocumentSummary,
    Layout,
    StoredDocument,
    write_chunk_db,
)
from .generations import GenerationWriter, current_generation
from .manifest import Manifest, read_manifest
from .seams import IndexReader, PreparedStore, StoreWriter
from .vectors import VECTORS, NumpyStore

__all__ = [
    "CorpusRecord",
    "DocumentSummary",
    "IndexReader",
    "Layout",
    "Manifest",
    "PreparedStore",
    "StoreWriter",
    "StoredDocument",
    "current_generation",
    "open_index",
    "read_manifest",
    "resolve_store",
    "store_writer",
    "write_generation",
]


def open_index(
    index_dir: Path | str, *, repair: bool = True, settings: Settings | None = None
) -> IndexReader:
    """Open the generation currently served from ``index_dir``, on the store its manifest names.

    An index on a shared store (Milvus) is opened at the manifest's URI unless
    ``settings.milvus_uri`` names another, with ``settings.milvus_token``; nothing is asked of
    the store until a search (or :meth:`IndexReader.check_store`).

    Raises:
        IndexNotFoundError: Nothing has been built there.
        IndexMismatchError: The index has an unsupported format version.
        IndexCorruptError: A file is missing or damaged beyond repair.
    """
    generation = current_generation(Path(index_dir))
    manifest = read_manifest(generation)
    if manifest.store_kind == "milvus":
        from .milvus import MilvusIndex

        return MilvusIndex.open(generation, manifest, settings or Settings())
    from .local import LocalIndex

    return LocalIndex(generation, manifest, repair=repair)


def resolve_store(settings: Settings, index_dir: Path | str) -> Settings:
    """``settings`` with the store to build into made explicit.

    What is not given follows the index being updated, so a plain ``nexus build`` keeps the
    store, Milvus address and collection it was first built with; a new index goes to FAISS,
    or for Milvus to the collection ``nexus_chunks`` of a milvus-lite folder beside it.
    """
    try:
        built = read_manifest(current_generation(Path(index_dir))).store
    except AssistantError:
        built = {}
    kind = settings.store if settings.store != "auto" else built.get("kind", "faiss")
    if kind != "milvus":
        return settings.replace(store=kind)
    same = built.get("kind") == "milvus"
    return settings.replace(
        store=kind,
        milvus_uri=settings.milvus_uri or (str(built["uri"]) if same else ""),
        milvus_collection=settings.milvus_collection
        or (str(built["collection"]) if same else DEFAULT_COLLECTION),
    )


def store_writer(settings: Settings, index_dir: Path, encoder: str) -> StoreWriter:
    """The write side of the store ``settings.store`` names (resolved by :func:`resolve_store`).

    Args:
        settings: The store and its options.
        index_dir: The index folder being built.
        encoder: Name of the encoder whose vectors the store will hold.
    """
    if settings.store == "milvus":
        from .milvus import MilvusStore

        return MilvusStore(settings, index_dir, encoder)
    from .local import LocalStore

    return LocalStore(settings)


def write_generation(
    index_dir: Path,
    *,
    documents: Sequence[StoredDocument],
    chunks: Sequence[Chunk],
    vectors: np.ndarray,
    prepared: PreparedStore,
    manifest: dict[str, Any],
    record: CorpusRecord | None = None,
) -> Manifest:
    """Write a new generation (chunk database with the corpus ``record``, vectors, the store's
    files, the manifest) and publish it; returns its manifest.

    Raises:
        IndexWriteError: It could not be written; the previous generation keeps serving.
    """
    assert len(chunks) == len(vectors), "chunks and vectors disagree"
    files = [
        (CHUNKS_DB, lambda path: write_chunk_db(path, documents, chunks, record)),
        (VECTORS, NumpyStore(vectors).save),
        *prepared.files,
    ]
    fields = {
        **manifest,
        "index_type": prepared.index_type,
        "index_params": prepared.index_params,
        "keyword": prepared.keyword,
        "store": prepared.store,
    }
    with GenerationWriter(index_dir) as writer:
        writer.write(files, fields)
        return writer.commit()
