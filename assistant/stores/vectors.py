"""Vectors: the float32 matrix (``vectors.npy``) and the dense indexes that search it.

``vectors.npy`` is the source of truth (row i = chunk id i, memory-mapped); ``dense.faiss`` is
derived from it. :class:`NumpyStore` searches by brute force and is the reference every other
store is checked against; :class:`FaissStore` holds the FAISS index, whose type follows corpus
size (:func:`resolve_index_type`).
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..errors import IndexCorruptError, MissingDependencyError

__all__ = [
    "DENSE",
    "IVF_NPROBE",
    "VECTORS",
    "FaissStore",
    "NumpyStore",
    "VectorStore",
    "exact_search",
    "ivf_lists",
    "keeps_exact_vectors",
    "load_vectors",
    "resolve_index_type",
    "search_params",
]

VECTORS = "vectors.npy"
DENSE = "dense.faiss"
TRAINING_POINTS_PER_LIST = 64
HNSW_EF_SEARCH = 256
IVF_NPROBE = 32
MMAP_MIN_BYTES = 32 * 2**20
MIN_TRAINING_POINTS = 65_536


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

    Measured by ``python -m benchmarks.scaling`` (``benchmarks/studies/scaling.md``): one
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


def keeps_exact_vectors(index_type: str) -> bool:
    """Whether a FAISS index stores every vector unchanged (compressed codes do not)."""
    return re.fullmatch(r"Flat|HNSW\d+(,Flat)?", index_type) is not None


# numpy reads a .npy header with ast.literal_eval, which on CPython 3.11 can fail spuriously
# when two threads run it at once (SystemError "AST constructor recursion depth mismatch",
# cpython gh-106905); a build and a live reload both open vectors.npy.
_NPY_HEADER_LOCK = threading.Lock()


def load_vectors(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """``vectors.npy`` memory-mapped, checked to hold ``shape`` (chunks, dimensions).

    Raises:
        IndexCorruptError: The file is unreadable or of another shape.
    """
    try:
        with _NPY_HEADER_LOCK:
            vectors: np.ndarray = np.load(path, mmap_mode="r")
    except (OSError, ValueError) as exc:
        raise IndexCorruptError(
            f"{path} is unreadable ({exc}); rebuild with `nexus build --full`"
        ) from exc
    if vectors.shape != shape:
        raise IndexCorruptError(
            f"{path} has shape {vectors.shape}, the manifest says {shape}; rebuild with "
            "`nexus build --full`"
        )
    return vectors
