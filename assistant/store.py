"""The persisted index: chunks, vectors, a dense (FAISS) and a keyword (BM25) index, a manifest.

Layout of an index folder::

    index/
      CURRENT                 name of the generation being served (switched atomically)
      gen-<time>-<id>/        one complete, self-contained build
        manifest.json         what built it: encoder, chunking, counts, versions, file sizes
        chunks.sqlite         documents and chunks with their metadata (the source of truth)
        vectors.npy           float32 embeddings, row i = chunk id i (the vector source of truth)
        dense.faiss           the FAISS index over vectors.npy (derived; rebuilt if damaged)
        keyword/              the bm25s index over chunk texts (derived; rebuilt if damaged)
      .lock                   held while a build writes

A build writes a new generation into a temporary folder, renames it into place and only then
points ``CURRENT`` at it. A build that crashes at any step leaves the served generation alone.

A generation built with ``store="milvus"`` has no ``dense.faiss`` or ``keyword/``: its
manifest names the Milvus collection that holds both (see :mod:`assistant.milvus_store`), and
:func:`open_index` opens it there. Retrieval talks to either through the same methods of
:class:`LoadedIndex` (``dense_search``, ``keyword_search``, ``vectors_of``).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import math
import os
import platform
import re
import secrets
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np

from .chunking import Chunk
from .config import DEFAULT_COLLECTION, SPLIT_MODES, Settings
from .errors import (
    AssistantError,
    IndexCorruptError,
    IndexMismatchError,
    IndexNotFoundError,
    IndexWriteError,
    MissingDependencyError,
    first_line,
)

__all__ = [
    "SCHEMA_VERSION",
    "FaissStore",
    "IndexWriter",
    "KeywordIndex",
    "LoadedIndex",
    "Manifest",
    "NumpyStore",
    "StoredDocument",
    "VectorStore",
    "ivf_lists",
    "keyword_tokens",
    "open_index",
    "resolve_index_type",
    "resolve_store",
    "search_params",
]

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
CURRENT = "CURRENT"
MANIFEST = "manifest.json"
CHUNKS_DB = "chunks.sqlite"
VECTORS = "vectors.npy"
DENSE = "dense.faiss"
KEYWORD = "keyword"
TRAINING_POINTS_PER_LIST = 64
HNSW_EF_SEARCH = 256
IVF_NPROBE = 32
MMAP_MIN_BYTES = 32 * 2**20
MIN_TRAINING_POINTS = 65_536
GENERATIONS_KEPT = 2  # the served one and the one before, for readers still holding it


# --------------------------------------------------------------------------- manifest


@dataclass(frozen=True)
class Manifest:
    """What an index is and how it was built; stored as ``manifest.json``, never pickled."""

    schema_version: int
    generation: str
    built_at: str
    encoder: dict[str, Any]  # name, dim, max_tokens, probe (vector of a fixed text)
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

    @property
    def encoder_name(self) -> str:
        return str(self.encoder["name"])

    @property
    def dim(self) -> int:
        return int(self.encoder["dim"])

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


# --------------------------------------------------------------------------- vector stores


class VectorStore(Protocol):
    """The narrow contract every place vectors can live must meet."""

    kind: str

    @property
    def size(self) -> int: ...

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` by inner product: (scores, ids), each (len(queries), k); ids -1 pad."""
        ...

    def save(self, path: Path) -> None: ...


def resolve_index_type(requested: str, n_vectors: int, exact_limit: int) -> str:
    """The FAISS factory string for ``requested``; ``auto`` follows corpus size.

    Measured in ``benchmarks/scaling.py`` (see RESULTS.md, "Scaling the dense index"): one
    exact pass costs 1.7 ms at 10k vectors, 8.5 ms at 20k and 37 ms at 100k, so exact search
    stops at ``exact_limit``. Above it an inverted file of about sqrt(n) lists of 8-bit codes
    keeps recall@10 at 0.95 or more up to 1M vectors with queries of 0.4-4 ms, builds 6x
    faster than HNSW at 100k (whose recall fell to 0.88 at 300k) and takes a quarter of the
    memory of the raw vectors (which stay in ``vectors.npy`` for cosines and filtered search).
    """
    if requested != "auto":
        return requested
    if n_vectors <= exact_limit:
        return "Flat"
    return f"IVF{ivf_lists(n_vectors)},SQ8"


def ivf_lists(n_vectors: int) -> int:
    """Inverted lists for ``n_vectors``: the power of two nearest sqrt(n).

    Lists of about sqrt(n) vectors balance the two costs of a query (comparing with every
    centroid, then scanning the probed lists). Never more lists than 39 training points each.
    """
    lists = 1 << round(math.log2(math.sqrt(max(n_vectors, 1))))
    return max(1, min(lists, n_vectors // 39))


def search_params(index_type: str) -> dict[str, int]:
    """Search-time parameters for a factory string, recorded in the manifest with it.

    ``efSearch`` (HNSW) and ``nprobe`` (IVF) trade latency for recall; these values keep
    recall@10 against exact search at 0.95 or more on the scaling benchmark's data.
    """
    if index_type.startswith("HNSW"):
        return {"efSearch": HNSW_EF_SEARCH}
    if "IVF" in index_type:
        return {"nprobe": IVF_NPROBE}
    return {}


def _faiss() -> Any:
    try:
        import faiss
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependencyError("faiss is not installed; install faiss-cpu") from exc
    return faiss


class FaissStore:
    """FAISS index with inner-product metric (cosine, since vectors are normalized).

    Args:
        index: The FAISS index.
        params: Search-time parameters (``efSearch`` for HNSW, ``nprobe`` for IVF), applied
            to the index; they are not part of the factory string, so the manifest keeps them.
    """

    kind = "faiss"

    def __init__(self, index: Any, params: Mapping[str, int] | None = None) -> None:
        self.index = index
        self.params = dict(params or {})
        space = _faiss().ParameterSpace()
        for name, value in self.params.items():
            space.set_index_parameter(index, name, value)

    @property
    def size(self) -> int:
        return int(self.index.ntotal)

    @classmethod
    def build(
        cls, vectors: np.ndarray, index_type: str, params: Mapping[str, int] | None = None
    ) -> FaissStore:
        faiss = _faiss()
        dim = vectors.shape[1]
        index = faiss.index_factory(dim, index_type, faiss.METRIC_INNER_PRODUCT)
        if not index.is_trained:
            index.train(_training_sample(faiss, index, vectors))
        if len(vectors):
            index.add(np.ascontiguousarray(vectors))
        return cls(index, params)

    @classmethod
    def load(
        cls, path: Path | str, params: Mapping[str, int] | None = None, *, mmap: bool | None = None
    ) -> FaissStore:
        """Open the index at ``path``; large files memory-mapped, so only touched pages load.

        Args:
            path: A file written by :meth:`save`.
            params: Search-time parameters, as recorded in the manifest.
            mmap: Map the file instead of reading it. By default, files of
                ``MMAP_MIN_BYTES`` or more are mapped: reading them whole costs time and
                private memory in proportion to their size, while small ones read in
                milliseconds. A mapped file must never be changed in place (the process would
                die on the next search); generations are never rewritten, and repairs replace
                the file under a new name, so the mapping stays valid.
        """
        faiss, path = _faiss(), Path(path)
        if mmap is None:
            mmap = path.stat().st_size >= MMAP_MIN_BYTES
        flags = _mmap_flags(faiss, path) if mmap else 0
        return cls(faiss.read_index(str(path), flags), params)

    def save(self, path: Path) -> None:
        _faiss().write_index(self.index, str(path))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        k = min(k, self.size)
        if k <= 0:
            empty = np.zeros((len(queries), 0))
            return empty.astype(np.float32), empty.astype(np.int64)
        if len(queries) == 1:
            # One question at a time is how the app searches. Splitting that little work
            # across OpenMP threads costs more than it saves, and the threads fight the
            # encoder's for the cores: measured on 2 cores, hybrid search p50 fell from about
            # 25 ms to 11 ms with one thread. The setting is per calling thread in OpenMP, so
            # builds elsewhere in the process keep every core.
            _faiss().omp_set_num_threads(1)
        scores, ids = self.index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
        return scores, ids


def _training_sample(faiss: Any, index: Any, vectors: np.ndarray) -> np.ndarray:
    """A fixed random sample big enough to train ``index`` well, and no bigger.

    FAISS warns below 39 points per IVF list (and per PQ centroid, 256 of them); past ~64 per
    list the centroids barely move while k-means time keeps growing with the sample (minutes
    at a million vectors on two cores).
    """
    try:
        lists = int(faiss.extract_index_ivf(index).nlist)
    except RuntimeError:  # not an IVF index (a quantizer, say): one sample size fits all
        lists = 1
    limit = max(TRAINING_POINTS_PER_LIST * lists, MIN_TRAINING_POINTS)
    if len(vectors) <= limit:
        return np.ascontiguousarray(vectors)
    rows = np.sort(np.random.default_rng(0).choice(len(vectors), limit, replace=False))
    return np.ascontiguousarray(vectors[rows])


def _mmap_flags(faiss: Any, path: Path) -> int:
    """Read-only memory-mapping flags for the index stored at ``path``.

    Flat, HNSW and scalar-quantized codes map with ``IO_FLAG_MMAP_IFC``; IVF inverted lists
    with ``IO_FLAG_MMAP`` (FAISS refuses the two together).
    """
    with open(path, "rb") as fh:
        # IVF files start with a fourcc naming the IVF variant ("IwFl", "IwSq", "IwPQ" ...).
        ivf = fh.read(2) == b"Iw"
    mmap = faiss.IO_FLAG_MMAP if ivf else faiss.IO_FLAG_MMAP_IFC
    return int(mmap | faiss.IO_FLAG_READ_ONLY)


class NumpyStore:
    """Exact search by brute force: the reference every other store is checked against."""

    kind = "numpy"

    def __init__(self, vectors: np.ndarray) -> None:
        self.vectors = vectors

    @property
    def size(self) -> int:
        return int(self.vectors.shape[0])

    def save(self, path: Path) -> None:
        with open(path, "wb") as fh:  # np.save given a name would append ".npy" to it
            np.save(fh, np.ascontiguousarray(self.vectors, dtype=np.float32))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return exact_search(self.vectors, queries, k)


def exact_search(vectors: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top ``k`` rows of ``vectors`` by inner product with each query, best first."""
    k = min(k, len(vectors))
    scores = queries @ vectors.T
    if k <= 0:
        return scores[:, :0], np.zeros((len(queries), 0), dtype=np.int64)
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    top_scores = np.take_along_axis(scores, top, axis=1)
    order = np.argsort(-top_scores, axis=1, kind="stable")
    return np.take_along_axis(top_scores, order, axis=1), np.take_along_axis(top, order, axis=1)


# --------------------------------------------------------------------------- keyword index


# numpy reads a .npy header with ast.literal_eval, which on CPython 3.11 can fail spuriously
# when two threads run it at once (SystemError "AST constructor recursion depth mismatch",
# cpython gh-106905); a build and a live reload both open vectors.npy.
_NPY_HEADER_LOCK = threading.Lock()

_IDENTIFIER = re.compile(r"\b[A-Za-z0-9_]{2,}\b")
_IDENTIFIER_PART = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
_MARKED_PARTS = re.compile(r"[a-z][A-Z]|[A-Za-z][0-9]|[0-9][A-Za-z]")  # getHTTP, CD4, 2fa


def split_identifiers(text: str, mode: str = "all") -> str:
    """``text`` with the parts of code names added after them.

    Documentation that quotes code names things ``sort_dict_by_value`` or ``getHTTPResponse``,
    which a word tokenizer keeps as one token that the words of a question never match. The
    whole name stays (an exact name still matches best) and its parts follow it:
    ``getHTTPResponse`` becomes ``getHTTPResponse get HTTP Response``. ``mode="mixed"`` splits
    only names whose parts show in capitals or digits and keeps snake_case whole, since its
    parts are everyday words (``on_commit``). Dotted names need nothing: the tokenizer already
    splits at dots.
    """

    def expand(match: re.Match[str]) -> str:
        word = match.group()
        if mode == "mixed" and not _MARKED_PARTS.search(word):
            return word
        parts = _IDENTIFIER_PART.findall(word)
        return word if parts in ([], [word]) else f"{word} {' '.join(parts)}"

    return text if mode == "none" else _IDENTIFIER.sub(expand, text)


def split_mode(params: Mapping[str, Any]) -> str:
    """The split mode keyword parameters ask for: manifests from before the modes recorded
    ``True`` (all) or ``False`` (none), and older ones nothing (none)."""
    value = params.get("split_identifiers", False)
    mode = {True: "all", False: "none"}.get(value, value) if isinstance(value, bool) else value
    if mode not in SPLIT_MODES:
        raise IndexCorruptError(
            f"unknown keyword split mode {value!r} in the manifest; rebuild with `nexus build`"
        )
    return str(mode)


class KeywordIndex:
    """BM25 over chunk texts (bm25s), with English stop words and Snowball stemming; code
    names are indexed by their parts too (``Settings.split_identifiers``).

    ``params`` are recorded in each index's manifest; an index is always searched with the
    parameters it was built with, so indexes built before the option existed keep working.
    """

    params: ClassVar[dict[str, Any]] = {
        "method": "lucene",
        "k1": 1.2,
        "b": 0.75,
        "stemmer": "english",
        "stopwords": "en",
        "split_identifiers": "none",
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

    def __init__(self, retriever: Any, params: dict[str, Any] | None = None) -> None:
        self.retriever = retriever
        self.split_mode = split_mode(self.params if params is None else params)

    @classmethod
    def build(cls, texts: Sequence[str], params: dict[str, Any] | None = None) -> KeywordIndex:
        bm25s = _bm25s()
        p = dict(params) if params is not None else cls.params
        mode = split_mode(p)
        texts = [split_identifiers(t, mode) for t in texts]
        tokens = bm25s.tokenize(
            list(texts), stopwords=p["stopwords"], stemmer=_stemmer(), show_progress=False
        )
        retriever = bm25s.BM25(method=p["method"], k1=p["k1"], b=p["b"])
        retriever.index(tokens, show_progress=False)
        return cls(retriever, p)

    @classmethod
    def load(cls, path: Path, params: dict[str, Any] | None = None) -> KeywordIndex:
        """Open a saved index; ``params`` are those it was built with (from the manifest)."""
        retriever = _bm25s().BM25.load(str(path), mmap=True, show_progress=False, verbosity=0)
        return cls(retriever, params)

    def save(self, path: Path) -> None:
        self.retriever.save(str(path), show_progress=False)

    @property
    def size(self) -> int:
        return int(self.retriever.scores["num_docs"])

    def tokenize(self, query: str) -> list[str]:
        return keyword_tokens([query], {"split_identifiers": self.split_mode})[0]

    def search(
        self, query: str, k: int, mask: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` chunk ids by BM25 score (score > 0 only), best first: (ids, scores)."""
        vocab = self.retriever.vocab_dict
        tokens = [t for t in self.tokenize(query) if t in vocab]
        if not tokens or k <= 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        scores = np.asarray(self.retriever.get_scores(tokens), dtype=np.float32)
        if mask is not None:
            scores = scores * mask
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        top = top[scores[top] > 0]
        return top.astype(np.int64), scores[top]


def keyword_tokens(
    texts: Sequence[str], params: Mapping[str, Any] | None = None
) -> list[list[str]]:
    """Each text as the keyword index sees it: words, without stop words, stemmed, code names
    split as ``params`` (an index's manifest) say. ``None`` means ``KeywordIndex.params``."""
    own = KeywordIndex.params if params is None else params
    p = {**KeywordIndex.params, **own}
    texts = [split_identifiers(t, split_mode(own)) for t in texts]
    tokens = _bm25s().tokenize(
        list(texts),
        stopwords=p["stopwords"],
        stemmer=_stemmer(),
        return_ids=False,
        show_progress=False,
    )
    return [list(t) for t in tokens]


@lru_cache(maxsize=1)
def _stemmer() -> Any:
    import Stemmer

    return Stemmer.Stemmer(KeywordIndex.params["stemmer"])


def _bm25s() -> Any:
    try:
        import bm25s
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependencyError("bm25s is not installed; install bm25s PyStemmer") from exc
    logging.getLogger("bm25s").setLevel(logging.WARNING)  # it sets DEBUG on import
    return bm25s


# --------------------------------------------------------------------------- writing


_SCHEMA = """
CREATE TABLE documents (
    id INTEGER PRIMARY KEY, source TEXT UNIQUE NOT NULL, title TEXT NOT NULL,
    format TEXT NOT NULL, category TEXT NOT NULL, sha256 TEXT NOT NULL, text TEXT NOT NULL
);
CREATE TABLE chunks (
    id INTEGER PRIMARY KEY, source TEXT NOT NULL, title TEXT NOT NULL, category TEXT NOT NULL,
    headings TEXT NOT NULL, text TEXT NOT NULL, start_line INTEGER NOT NULL,
    end_line INTEGER NOT NULL, key TEXT NOT NULL
);
CREATE INDEX chunks_source ON chunks(source);
CREATE INDEX chunks_category ON chunks(category);
"""


@dataclass(frozen=True)
class StoredDocument:
    """A document as kept in the index, for reuse by incremental builds and for display."""

    source: str
    title: str
    format: str
    category: str
    sha256: str
    text: str


class IndexWriter:
    """Writes one new generation of an index folder, atomically.

    Use as a context manager; nothing becomes visible until :meth:`commit` returns::

        with IndexWriter(index_dir) as writer:
            writer.write(documents, chunks, vectors, dense, keyword, manifest_fields)
            writer.commit()

    Raises:
        IndexWriteError: The folder cannot be written (permissions, disk full).
    """

    def __init__(self, index_dir: Path) -> None:
        self.index_dir = Path(index_dir)
        # Names sort by creation time, which pruning relies on; the suffix avoids collisions.
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S-%f")
        self.generation = f"gen-{stamp}-{secrets.token_hex(2)}"
        self._tmp = self.index_dir / f".tmp-{self.generation}"
        self._lock: Any = None
        self._manifest: Manifest | None = None

    def __enter__(self) -> IndexWriter:
        try:
            self.index_dir.mkdir(parents=True, exist_ok=True)
            self._lock = open(self.index_dir / ".lock", "a")
            fcntl.flock(self._lock, fcntl.LOCK_EX)
            _remove_stale_temporaries(self.index_dir)
            self._tmp.mkdir()
        except OSError as exc:
            self._release()
            raise IndexWriteError(f"cannot write the index in {self.index_dir}: {exc}") from exc
        return self

    def __exit__(self, *exc_info: object) -> None:
        shutil.rmtree(self._tmp, ignore_errors=True)
        self._release()

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def write(
        self,
        documents: Sequence[StoredDocument],
        chunks: Sequence[Chunk],
        vectors: np.ndarray,
        dense: VectorStore | None,
        keyword: KeywordIndex | None,
        manifest: dict[str, Any],
    ) -> Manifest:
        """Write every file of the generation into the temporary folder.

        ``dense`` and ``keyword`` are None when a shared store (Milvus) holds them instead.
        """
        assert len(chunks) == len(vectors), "chunks and vectors disagree"
        assert dense is None or dense.size == len(vectors), "vectors and index disagree"
        steps: list[tuple[str, Callable[[], object]]] = [
            (CHUNKS_DB, lambda: self._write_db(documents, chunks)),
            (VECTORS, lambda: NumpyStore(vectors).save(self._tmp / VECTORS)),
        ]
        if dense is not None:
            steps.append((DENSE, lambda: dense.save(self._tmp / DENSE)))
        if keyword is not None:
            steps.append((KEYWORD, lambda: keyword.save(self._tmp / KEYWORD)))
        steps.append((MANIFEST, lambda: self._write_manifest(manifest)))
        for name, step in steps:
            try:
                step()
            except (OSError, sqlite3.Error, RuntimeError) as exc:  # FAISS raises RuntimeError
                raise IndexWriteError(
                    f"writing {name} of the new index failed ({first_line(exc)}); check free "
                    f"space and permissions in {self.index_dir}; the previous index is unchanged"
                ) from exc
        assert self._manifest is not None
        return self._manifest

    def _write_manifest(self, fields: dict[str, Any]) -> None:
        files = {
            p.relative_to(self._tmp).as_posix(): p.stat().st_size
            for p in sorted(self._tmp.rglob("*"))
            if p.is_file()
        }
        manifest = Manifest(
            schema_version=SCHEMA_VERSION,
            generation=self.generation,
            built_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            files=files,
            versions=library_versions(),
            **fields,
        )
        (self._tmp / MANIFEST).write_text(manifest.to_json(), encoding="utf-8")
        self._manifest = manifest

    def _write_db(self, documents: Sequence[StoredDocument], chunks: Sequence[Chunk]) -> None:
        db = sqlite3.connect(self._tmp / CHUNKS_DB)
        try:
            db.executescript(_SCHEMA)
            db.executemany(
                "INSERT INTO documents (source, title, format, category, sha256, text) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [(d.source, d.title, d.format, d.category, d.sha256, d.text) for d in documents],
            )
            db.executemany(
                "INSERT INTO chunks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        i,
                        c.source,
                        c.title,
                        c.category,
                        json.dumps(c.headings),
                        c.text,
                        c.start_line,
                        c.end_line,
                        c.key,
                    )
                    for i, c in enumerate(chunks)
                ],
            )
            db.commit()
        finally:
            db.close()

    def commit(self) -> Manifest:
        """Publish the generation: fsync it, rename it into place, then switch ``CURRENT``."""
        if self._manifest is None:
            raise RuntimeError("commit() called before write()")
        final = self.index_dir / self.generation
        served = _served_generation(self.index_dir)
        try:
            _fsync_tree(self._tmp)
            self._tmp.rename(final)
            pointer = self.index_dir / f".{CURRENT}.{self.generation}"
            pointer.write_text(self.generation + "\n", encoding="utf-8")
            _fsync_file(pointer)
            os.replace(pointer, self.index_dir / CURRENT)
            _fsync_file(self.index_dir)
        except OSError as exc:
            raise IndexWriteError(
                f"publishing the new index failed ({exc}); the previous index is unchanged"
            ) from exc
        _prune_generations(self.index_dir, keep={self.generation, served})
        return self._manifest


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    for path in root.rglob("*"):
        if path.is_file():
            _fsync_file(path)
    _fsync_file(root)


def _remove_stale_temporaries(index_dir: Path) -> None:
    """Leftovers of builds that died; safe to delete while we hold the build lock."""
    for path in index_dir.glob(".tmp-*"):
        shutil.rmtree(path, ignore_errors=True)
    for path in index_dir.glob(f".{CURRENT}.*"):
        path.unlink(missing_ok=True)


def _served_generation(index_dir: Path) -> str | None:
    try:
        return (index_dir / CURRENT).read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def _prune_generations(index_dir: Path, keep: set[str | None]) -> None:
    """Delete generations other than ``keep`` (the new one and the one served before it).

    A generation that a killed build renamed into place but never published is newer than the
    served one, so choosing by name alone would keep it and delete what readers still use.
    """
    for old in index_dir.glob("gen-*"):
        if old.is_dir() and old.name not in keep:
            shutil.rmtree(old, ignore_errors=True)


# --------------------------------------------------------------------------- reading


def current_generation(index_dir: Path) -> Path:
    """The folder of the generation ``CURRENT`` points at.

    Raises:
        IndexNotFoundError: There is no built index in ``index_dir``.
    """
    index_dir = Path(index_dir)
    pointer = index_dir / CURRENT
    try:
        name = pointer.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise IndexNotFoundError(
            f"no index in {index_dir}; build one with `nexus build --corpus DIR --index "
            f"{index_dir}`"
        ) from None
    generation = index_dir / name
    if not name.startswith("gen-") or not generation.is_dir():
        raise IndexCorruptError(
            f"{pointer} names a missing generation {name!r}; rebuild with `nexus build --full`"
        )
    return generation


def read_manifest(generation: Path) -> Manifest:
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


class LoadedIndex:
    """A generation opened for reading. Thread-safe for concurrent searches.

    Vectors are memory-mapped and chunk texts stay in SQLite until a hit needs them, so opening
    costs little more than reading the dense and keyword indexes.
    """

    def __init__(self, generation: Path, manifest: Manifest, *, repair: bool = True) -> None:
        self.path = generation
        self.manifest = manifest
        self._check_files()
        self._db: sqlite3.Connection | None = self._open_db()  # checked now, not at a search
        self._db_lock = threading.Lock()  # one connection, shared by the serving threads
        self.vectors = self._load_or_repair_vectors(repair)
        self.dense = self._load_or_repair(DENSE, self._load_dense, self._rebuild_dense, repair)
        self.keyword = self._load_or_repair(
            KEYWORD,
            lambda p: KeywordIndex.load(p, self.manifest.keyword),
            self._rebuild_keyword,
            repair,
        )
        if self.dense.size != len(self.vectors) or self.keyword.size != len(self.vectors):
            raise IndexCorruptError(
                f"index files in {generation} disagree on the chunk count; "
                "rebuild with `nexus build --full`"
            )

    # Checks and repairs ------------------------------------------------------------------

    def _check_files(self) -> None:
        for name, size in self.manifest.files.items():
            path = self.path / name
            if name.startswith((DENSE, KEYWORD, VECTORS)):
                continue  # checked, and repaired where possible, as each is loaded
            if not path.is_file() or path.stat().st_size != size:
                raise IndexCorruptError(
                    f"{path} is missing or truncated; rebuild with `nexus build --full`"
                )

    def _open_db(self) -> sqlite3.Connection:
        """Open the chunk store and check it holds what the manifest promises."""
        path = self.path / CHUNKS_DB
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
        try:
            counts = db.execute(
                "SELECT (SELECT COUNT(*) FROM documents), (SELECT COUNT(*) FROM chunks)"
            ).fetchone()
        except sqlite3.DatabaseError as exc:
            db.close()
            raise IndexCorruptError(
                f"{path} is damaged ({exc}); rebuild with `nexus build --full`"
            ) from exc
        if tuple(counts) != (self.manifest.documents, self.manifest.chunks):
            db.close()
            raise IndexCorruptError(
                f"{path} holds {counts[0]} documents and {counts[1]} chunks, the manifest says "
                f"{self.manifest.documents} and {self.manifest.chunks}; rebuild with "
                "`nexus build --full`"
            )
        return db

    def _load_or_repair_vectors(self, repair: bool) -> np.ndarray:
        """The vectors file, or its rows recovered from the dense index when it is damaged.

        Flat and HNSW indexes keep an exact copy of every vector, so a lost or truncated
        ``vectors.npy`` can be written again from them without the model.
        """
        path = self.path / VECTORS
        expected = self.manifest.files.get(VECTORS)
        try:
            if expected is not None and path.stat().st_size != expected:
                raise IndexCorruptError(f"{path} is truncated; rebuild with `nexus build --full`")
            return self._load_vectors()
        except (OSError, IndexCorruptError) as exc:
            problem = exc
        if repair:
            with contextlib.suppress(Exception):
                recovered = self._vectors_from_dense()
                log.warning("%s is damaged (%s); recovered it from %s", path, problem, DENSE)
                with contextlib.suppress(OSError):
                    _save_atomically(NumpyStore(recovered), path)
                return recovered
        if isinstance(problem, IndexCorruptError):
            raise problem
        raise IndexCorruptError(
            f"{path} is missing or unreadable ({problem}); rebuild with `nexus build --full`"
        ) from problem

    def _vectors_from_dense(self) -> np.ndarray:
        path = self.path / DENSE
        expected = self.manifest.files.get(DENSE)
        if not _keeps_exact_vectors(self.manifest.index_type):
            raise ValueError(f"{self.manifest.index_type} keeps no exact copy of the vectors")
        if expected is None or path.stat().st_size != expected:
            raise ValueError(f"{path} is damaged too")
        index = FaissStore.load(path).index
        vectors = np.asarray(index.reconstruct_n(0, index.ntotal), dtype=np.float32)
        if vectors.shape != (self.manifest.chunks, self.manifest.dim):
            raise ValueError(f"{path} holds vectors of shape {vectors.shape}")
        return vectors

    def _load_vectors(self) -> np.ndarray:
        try:
            with _NPY_HEADER_LOCK:
                vectors: np.ndarray = np.load(self.path / VECTORS, mmap_mode="r")
        except (OSError, ValueError) as exc:
            raise IndexCorruptError(
                f"{self.path / VECTORS} is unreadable ({exc}); rebuild with `nexus build --full`"
            ) from exc
        if vectors.shape != (self.manifest.chunks, self.manifest.dim):
            raise IndexCorruptError(
                f"{self.path / VECTORS} has shape {vectors.shape}, the manifest says "
                f"({self.manifest.chunks}, {self.manifest.dim}); rebuild with `nexus build --full`"
            )
        return vectors

    def _load_dense(self, path: Path) -> VectorStore:
        expected = self.manifest.files.get(DENSE)
        if expected is not None and path.stat().st_size != expected:
            raise ValueError(f"size {path.stat().st_size} != {expected}")
        return FaissStore.load(path, self.manifest.index_params)

    def _rebuild_dense(self) -> VectorStore:
        m = self.manifest
        return FaissStore.build(np.asarray(self.vectors), m.index_type, m.index_params)

    def _rebuild_keyword(self) -> KeywordIndex:
        return KeywordIndex.build(self.embed_texts(), self.manifest.keyword)

    def _load_or_repair(self, name: str, load: Any, rebuild: Any, repair: bool) -> Any:
        path = self.path / name
        try:
            return load(path)
        except Exception as exc:
            if not repair:
                raise IndexCorruptError(
                    f"{path} is damaged ({exc}); rebuild with `nexus build --full`"
                ) from exc
            log.warning("%s is damaged (%s); rebuilding it from the stored chunks", path, exc)
        rebuilt = rebuild()
        with contextlib.suppress(OSError):
            _save_atomically(rebuilt, path)
        return rebuilt

    # Search: the seam retrieval talks to, whichever store holds the vectors ---------------

    @property
    def store_kind(self) -> str:
        """``faiss`` for an index held in its own files; see also ``milvus_store``."""
        return "faiss"

    def check_store(self) -> None:
        """Raise if the store behind this index cannot serve it (files are checked at open)."""

    def dense_search(
        self, query: np.ndarray, n: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Chunk ids and cosines of the ``n`` chunks nearest ``query``, best first, optionally
        only among the chunk ids ``allowed``."""
        if allowed is None:
            scores, ids = self.dense.search(query[None, :], n)
            keep = ids[0] >= 0
            found = ids[0][keep].astype(np.int64)
            if self.manifest.index_type == "Flat":
                return found, scores[0][keep].astype(np.float32)
            # Approximate indexes score candidates from compressed codes or in graph order; the
            # stored vectors give every candidate its exact cosine for a fraction of a millisecond.
            exact = np.asarray(self.vectors[found]) @ query
            order = np.argsort(-exact, kind="stable")
            return found[order], exact[order].astype(np.float32)
        # A filter can exclude most of the index; exact search over the allowed rows stays
        # correct where an approximate index would return too few matches.
        scores, rows = exact_search(np.asarray(self.vectors[allowed]), query[None, :], n)
        keep = rows[0] >= 0
        return allowed[rows[0][keep]].astype(np.int64), scores[0][keep].astype(np.float32)

    def keyword_search(
        self, text: str, n: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Chunk ids and BM25 scores of the ``n`` best keyword matches (score > 0)."""
        mask = None
        if allowed is not None:
            mask = np.zeros(len(self.vectors), dtype=np.float32)
            mask[allowed] = 1.0
        found: tuple[np.ndarray, np.ndarray] = self.keyword.search(text, n, mask)
        return found

    def vectors_of(self, ids: Sequence[int]) -> np.ndarray:
        """The vectors of chunk ids, in order (for cosines and near-duplicate checks)."""
        return np.asarray(self.vectors[list(ids)])

    # Queries -----------------------------------------------------------------------------

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._db_lock:
            if self._db is None:  # closed, then used again
                self._db = self._open_db()
            return self._db.execute(sql, params).fetchall()

    def chunks(self, ids: Sequence[int]) -> dict[int, Chunk]:
        """Chunks by id, fetched in one query."""
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self._query(
            "SELECT id, source, title, category, headings, text, start_line, end_line "
            f"FROM chunks WHERE id IN ({marks})",
            [int(i) for i in ids],
        )
        return {
            row[0]: Chunk(
                source=row[1],
                title=row[2],
                category=row[3],
                headings=tuple(json.loads(row[4])),
                text=row[5],
                start_line=row[6],
                end_line=row[7],
            )
            for row in rows
        }

    @lru_cache(maxsize=256)  # noqa: B019 - one cache per loaded index is what we want
    def ids_matching(self, category: str | None, path_glob: str | None) -> np.ndarray:
        """Chunk ids in a category and/or whose source matches a glob (``concepts/*``)."""
        clauses, params = [], []
        if category is not None:
            clauses.append("category = ?")
            params.append(category)
        if path_glob is not None:
            clauses.append("source GLOB ?")
            params.append(path_glob)
        where = " AND ".join(clauses) or "1"
        rows = self._query(f"SELECT id FROM chunks WHERE {where} ORDER BY id", params)
        return np.fromiter((r[0] for r in rows), dtype=np.int64)

    def categories(self) -> list[tuple[str, int]]:
        """Each category with its number of documents."""
        return self._query(
            "SELECT category, COUNT(*) FROM documents GROUP BY category ORDER BY category"
        )

    def documents(self) -> list[StoredDocument]:
        rows = self._query(
            "SELECT source, title, format, category, sha256, text FROM documents ORDER BY source"
        )
        return [StoredDocument(*row) for row in rows]

    def document(self, source: str) -> StoredDocument | None:
        rows = self._query(
            "SELECT source, title, format, category, sha256, text FROM documents WHERE source = ?",
            (source,),
        )
        return StoredDocument(*rows[0]) if rows else None

    def document_hashes(self) -> dict[str, str]:
        """Each document's source and content hash, without loading the texts."""
        return dict(self._query("SELECT source, sha256 FROM documents"))

    def embed_texts(self) -> list[str]:
        """Every chunk's text as the retrievers indexed it (headings first), in id order."""
        return [
            _embed_text(json.loads(h), t)
            for h, t in self._query("SELECT headings, text FROM chunks ORDER BY id")
        ]

    def chunk_rows_by_source(self) -> dict[str, list[int]]:
        """Chunk ids of each document, in order; incremental builds reuse them."""
        out: dict[str, list[int]] = {}
        for cid, source in self._query("SELECT id, source FROM chunks ORDER BY id"):
            out.setdefault(source, []).append(cid)
        return out

    def ids_by_key(self) -> dict[str, int]:
        return dict(self._query("SELECT key, id FROM chunks"))

    def close(self) -> None:
        with self._db_lock:
            if self._db is not None:
                self._db.close()
                self._db = None


def _keeps_exact_vectors(index_type: str) -> bool:
    """Whether a FAISS index stores every vector unchanged (compressed codes do not)."""
    return re.fullmatch(r"Flat|HNSW\d+(,Flat)?", index_type) is not None


def _embed_text(headings: Sequence[str], text: str) -> str:
    return Chunk("", "", "", tuple(headings), text, 0, 0).embed_text


def _save_atomically(store: Any, path: Path) -> None:
    tmp = path.with_name(path.name + ".repair")
    store.save(tmp)
    if path.is_dir():
        shutil.rmtree(path)
    os.replace(tmp, path)


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


def open_index(
    index_dir: Path | str, *, repair: bool = True, settings: Settings | None = None
) -> LoadedIndex:
    """Open the generation currently served from ``index_dir``.

    An index whose manifest names a shared store (Milvus) is opened on it, at the manifest's
    URI unless ``settings.milvus_uri`` names another, with ``settings.milvus_token``; nothing
    is asked of the store until a search (or :meth:`LoadedIndex.check_store`).

    Raises:
        IndexNotFoundError: Nothing has been built there.
        IndexMismatchError: The index has an unsupported format version.
        IndexCorruptError: A file is missing or damaged beyond repair.
    """
    generation = current_generation(Path(index_dir))
    manifest = read_manifest(generation)
    if manifest.store.get("kind", "faiss") == "milvus":
        from .milvus_store import MilvusIndex

        return MilvusIndex.open(generation, manifest, settings or Settings())
    return LoadedIndex(generation, manifest, repair=repair)
