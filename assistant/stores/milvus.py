"""Milvus as the store: one collection, shared by every app replica, holds the vectors and the
keyword index of all chunks.

The local index generation keeps what a replica needs to show a result (``manifest.json`` and
``chunks.sqlite``: texts, headings, line ranges, documents, category filters); the collection
keeps what grows with the corpus and must be the same for every replica. Its schema:

====== ==================== ==============================================================
pk     INT64, primary key   derived from the chunk's document and content (:func:`chunk_keys`)
vector FLOAT_VECTOR(dim)    inner product, i.e. cosine on the normalized vectors
text   VARCHAR, analyzed    the chunk's keyword terms: stemmed words without stop words
sparse SPARSE_FLOAT_VECTOR  BM25 of ``text``, computed by Milvus (its full-text search)
source VARCHAR              document path, for people looking at the collection
====== ==================== ==============================================================

Because a chunk's key follows its content, an unchanged chunk keeps its key across builds, and
an incremental build upserts only keys the collection lacks. A build upserts before it
publishes its generation and deletes keys that left the corpus only after, so a replica still
serving the previous generation never meets a key it cannot show: keys it does not know are
skipped, and every key it knows stands for the same text.

``milvus-lite`` runs the same engine in-process on a local ``.db`` folder (tests, one
machine); a ``http://host:19530`` URI reaches a Milvus standalone server or cluster.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from ..analysis import keyword_tokens
from ..config import DEFAULT_COLLECTION, Settings
from ..errors import (
    IndexCorruptError,
    IndexMismatchError,
    IndexNotFoundError,
    MissingDependencyError,
    StoreError,
    first_line,
)
from ..ingest.chunking import Chunk
from .chunkdb import CHUNKS_DB, ChunkDB
from .keyword import KeywordIndex
from .manifest import Manifest
from .seams import PreparedStore
from .vectors import IVF_NPROBE, VECTORS, ivf_lists, load_vectors

__all__ = [
    "ANALYZER",
    "MilvusCollection",
    "MilvusIndex",
    "MilvusStore",
    "chunk_keys",
    "milvus_index_spec",
    "resolve_uri",
]

log = logging.getLogger(__name__)

INSTALL = "pip install 'nexus-assistant[scale]'"
LITE_FILE = "milvus.db"
ATTEMPTS = 3  # tries per call before a transient failure is reported
BACKOFF_SECONDS = 0.25  # doubled after each failed try
TIMEOUT_SECONDS = 10.0
BATCH_ROWS = 1_000  # rows per upsert: ~3 MB of vectors and text, far below gRPC's 64 MB
MAX_VARCHAR = 65_535  # Milvus' longest VARCHAR, in bytes
# Nexus analyses text itself (``analysis.keyword_tokens``: the local BM25 index's words, stop
# words and Snowball stems) and sends Milvus the resulting words, which its standard analyzer
# only has to split. Milvus servers and milvus-lite (which has no stemmer) then index the same
# terms, and the same as the local index does.
ANALYZER: dict[str, Any] = {"tokenizer": "standard", "filter": ["lowercase"]}
_ENCODER_PROPERTY = "nexus.encoder"
_KEYWORD_PROPERTY = "nexus.keyword"  # the keyword parameters its terms were analysed with

T = TypeVar("T")


def _pymilvus() -> Any:
    try:
        import pymilvus
    except ImportError as exc:
        raise MissingDependencyError(
            f"the Milvus store needs pymilvus and milvus-lite; install them with `{INSTALL}`"
        ) from exc
    # pymilvus logs every failed call with a traceback; our errors say what to do instead.
    logging.getLogger("pymilvus").setLevel(logging.CRITICAL)
    return pymilvus


def chunk_keys(chunks: Iterable[tuple[str, str]]) -> np.ndarray:
    """Primary keys of chunks given as (source, content key) pairs, in order.

    A key is 63 bits of the SHA-256 of the document, the chunk's content hash and how many
    equal chunks came before it in that document, so it is the same in every build that has
    the same chunk, and differs between two copies of one passage. The chance of any two keys
    colliding is about one in 200,000 at ten million chunks.
    """
    seen: dict[tuple[str, str], int] = {}
    keys = []
    for source, key in chunks:
        n = seen.get((source, key), 0)
        seen[(source, key)] = n + 1
        digest = hashlib.sha256(f"{source}\x00{key}\x00{n}".encode()).digest()
        keys.append(int.from_bytes(digest[:8], "big") >> 1)
    return np.asarray(keys, dtype=np.int64)


def resolve_uri(settings: Settings, index_dir: Path) -> str:
    """The Milvus URI to build into: the configured one, else a milvus-lite folder beside the
    index generations."""
    if settings.milvus_uri:
        return settings.milvus_uri
    return str((Path(index_dir) / LITE_FILE).resolve())


def _is_local(uri: str) -> bool:
    """Whether ``uri`` names a milvus-lite folder rather than a server."""
    return "://" not in uri


def _redact(uri: str) -> str:
    """The URI without any ``user:password@`` part, fit to be written to a manifest."""
    parts = urlsplit(uri)
    if parts.username is None and parts.password is None:
        return uri
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc))


@dataclass(frozen=True)
class IndexSpec:
    """A Milvus vector index: its type, build parameters and search parameters."""

    index_type: str
    params: dict[str, int]
    search: dict[str, int]


def milvus_index_spec(n_vectors: int, exact_limit: int) -> IndexSpec:
    """The dense index for ``n_vectors``, chosen as for FAISS (``vectors.resolve_index_type``):
    exact search up to ``exact_limit`` chunks, an inverted file of 8-bit codes above."""
    if n_vectors <= exact_limit:
        return IndexSpec("FLAT", {}, {})
    return IndexSpec("IVF_SQ8", {"nlist": ivf_lists(n_vectors)}, {"nprobe": IVF_NPROBE})


_CLIENTS: dict[tuple[str, str], Any] = {}
_CLIENTS_LOCK = threading.Lock()


def _client(uri: str, token: str) -> Any:
    """One client per URI and token in a process: milvus-lite opens its folder once."""
    with _CLIENTS_LOCK:
        client = _CLIENTS.get((uri, token))
        if client is None:
            pymilvus = _pymilvus()
            if _is_local(uri):
                # milvus-lite answers in-process and logs an error for each call it does not
                # implement, though the client falls back by itself (when listing keys).
                logging.getLogger("grpc._server").setLevel(logging.CRITICAL)
            # Failures propagate to MilvusCollection._call, which retries and explains them.
            client = pymilvus.MilvusClient(uri, token=token, timeout=TIMEOUT_SECONDS)
            _CLIENTS[(uri, token)] = client
        return client


def _transient(exc: BaseException) -> bool:
    """Whether a failed call may succeed if tried again (the server is away or overloaded)."""
    exceptions = _pymilvus().exceptions
    if isinstance(
        exc,
        exceptions.MilvusUnavailableException
        | exceptions.ConnectError
        | exceptions.ConnectionNotExistException
        | ConnectionError
        | TimeoutError,
    ):
        return True
    message = str(exc).lower()
    return any(word in message for word in ("unavailable", "connect", "deadline", "timeout"))


def _missing_collection(exc: BaseException) -> bool:
    message = str(exc).lower()
    return "collection" in message and ("does not exist" in message or "not found" in message)


class MilvusCollection:
    """The chunks' collection on one Milvus: create, upsert, delete, search.

    Every call is retried up to ``ATTEMPTS`` times, with growing pauses, when the failure
    looks transient; then it raises :class:`StoreError` saying which server failed.

    Args:
        uri: A Milvus server (``http://host:19530``) or a milvus-lite folder (``x.db``).
        name: The collection's name.
        token: Credentials, when the server needs them; never logged or stored.
    """

    def __init__(self, uri: str, name: str, token: str = "") -> None:
        self.uri = uri
        self.name = name
        self._token = token

    @property
    def client(self) -> Any:
        return _client(self.uri, self._token)

    def __repr__(self) -> str:
        return f"MilvusCollection({_redact(self.uri)!r}, {self.name!r})"

    def _call(self, what: str, action: Callable[[Any], T]) -> T:
        pause = BACKOFF_SECONDS
        for attempt in range(1, ATTEMPTS + 1):
            try:
                return action(self.client)
            except (StoreError, MissingDependencyError):
                raise
            except Exception as exc:
                if _missing_collection(exc):
                    raise self._not_found() from exc
                if "load()" in str(exc) and attempt < ATTEMPTS:
                    # Released (a restarted milvus-lite, say): load into memory, then retry.
                    self.client.load_collection(self.name)
                    continue
                if not _transient(exc):
                    raise StoreError(
                        f"Milvus at {_redact(self.uri)} refused to {what} collection "
                        f"{self.name!r}: {first_line(exc)}"
                    ) from exc
                if attempt == ATTEMPTS:
                    raise StoreError(
                        f"Milvus at {_redact(self.uri)} did not answer ({first_line(exc)}) after "
                        f"{ATTEMPTS} tries to {what} collection {self.name!r}; check that the "
                        "server is running and reachable at that address (--milvus-uri, "
                        "NEXUS_MILVUS_URI) and, if it needs one, that NEXUS_MILVUS_TOKEN is set"
                    ) from exc
                log.warning("Milvus: %s failed (%s); retrying", what, first_line(exc))
                time.sleep(pause)
                pause *= 2
        raise AssertionError("unreachable")  # pragma: no cover

    def _not_found(self) -> IndexNotFoundError:
        return IndexNotFoundError(
            f"Milvus at {_redact(self.uri)} has no collection {self.name!r}; build it with "
            f"`nexus build --store milvus --milvus-uri {_redact(self.uri)}` or point "
            "--milvus-uri / NEXUS_MILVUS_COLLECTION at the one the index was built into"
        )

    # Administration ----------------------------------------------------------------------

    def exists(self) -> bool:
        return self._call("look up", lambda c: bool(c.has_collection(self.name)))

    def describe(self) -> dict[str, Any]:
        """The collection's schema and properties, as Milvus reports them."""
        return self._call("describe", lambda c: dict(c.describe_collection(self.name)))

    def dim(self) -> int:
        for field in self.describe()["fields"]:
            if field["name"] == "vector":
                return int(field["params"]["dim"])
        raise IndexCorruptError(
            f"{self!r} has no vector field; rebuild it with `nexus build --full`"
        )

    def encoder(self) -> str | None:
        """The encoder the collection's vectors came from, as recorded when it was created."""
        value = self.describe().get("properties", {}).get(_ENCODER_PROPERTY)
        return None if value is None else str(value)

    def keyword(self) -> str | None:
        """The keyword parameters its rows were analysed and are scored with (JSON)."""
        value = self.describe().get("properties", {}).get(_KEYWORD_PROPERTY)
        return None if value is None else str(value)

    def create(self, dim: int, encoder: str, spec: IndexSpec, keyword: dict[str, Any]) -> None:
        """Create the collection (see the module docstring for its fields) and load it."""
        pymilvus = _pymilvus()
        DataType = pymilvus.DataType
        schema = pymilvus.MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("pk", DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
        schema.add_field(
            "text",
            DataType.VARCHAR,
            max_length=MAX_VARCHAR,
            enable_analyzer=True,
            analyzer_params=ANALYZER,
        )
        schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
        schema.add_field("source", DataType.VARCHAR, max_length=MAX_VARCHAR)
        schema.add_function(
            pymilvus.Function(
                name="bm25",
                function_type=pymilvus.FunctionType.BM25,
                input_field_names=["text"],
                output_field_names=["sparse"],
            )
        )

        def create(client: Any) -> None:
            index = client.prepare_index_params()
            index.add_index(
                "vector", index_type=spec.index_type, metric_type="IP", params=spec.params
            )
            index.add_index(
                "sparse",
                index_type="SPARSE_INVERTED_INDEX",
                metric_type="BM25",
                params=bm25_params(keyword),
            )
            # Strong consistency: a search right after a build sees every chunk it upserted.
            client.create_collection(
                self.name,
                schema=schema,
                index_params=index,
                consistency_level="Strong",
                properties={_ENCODER_PROPERTY: encoder, _KEYWORD_PROPERTY: _as_key(keyword)},
            )

        self._call("create", create)

    def load(self) -> None:
        """Load the collection into memory for searching (a no-op when it is loaded)."""
        self._call("load", lambda c: c.load_collection(self.name))

    def flush(self) -> None:
        """Seal what was written into indexed segments: searches then use the built indexes
        rather than scanning fresh rows (milvus-lite re-indexes unsealed rows per query)."""
        self._call("flush", lambda c: c.flush(self.name))

    def drop(self) -> None:
        self._call("drop", lambda c: c.drop_collection(self.name))

    def index_type(self) -> str:
        return str(
            self._call("describe", lambda c: c.describe_index(self.name, "vector"))["index_type"]
        )

    def reindex(self, spec: IndexSpec) -> None:
        """Replace the dense index (the corpus crossed the exact-search limit, say)."""

        def reindex(client: Any) -> None:
            client.release_collection(self.name)
            client.drop_index(self.name, "vector")
            index = client.prepare_index_params()
            index.add_index(
                "vector", index_type=spec.index_type, metric_type="IP", params=spec.params
            )
            client.create_index(self.name, index)
            client.load_collection(self.name)

        self._call("re-index", reindex)

    # Data --------------------------------------------------------------------------------

    def keys(self) -> np.ndarray:
        """Every primary key in the collection."""

        def keys(client: Any) -> np.ndarray:
            found: list[int] = []
            iterator = client.query_iterator(
                self.name, batch_size=16_384, filter="", output_fields=["pk"]
            )
            try:
                while batch := iterator.next():
                    found.extend(row["pk"] for row in batch)
            finally:
                iterator.close()
            return np.asarray(found, dtype=np.int64)

        return self._call("list the keys of", keys)

    def upsert(
        self,
        keys: np.ndarray,
        vectors: np.ndarray,
        chunks: Sequence[Chunk],
        keyword: dict[str, Any],
        progress: bool = False,
    ) -> None:
        """Write rows (key, vector, keyword terms, source); Milvus computes each row's BM25
        vector from its terms. ``keyword`` are the keyword index parameters."""
        from tqdm.auto import tqdm

        starts = range(0, len(keys), BATCH_ROWS)
        for start in tqdm(starts, desc="Upserting", unit="batch", disable=not progress):
            batch = range(start, min(start + BATCH_ROWS, len(keys)))
            terms = keyword_tokens([chunks[i].embed_text for i in batch], keyword)
            rows = [
                {
                    "pk": int(keys[i]),
                    "vector": np.asarray(vectors[i], dtype=np.float32),
                    "text": _fit(" ".join(words)),
                    "source": _fit(chunks[i].source),
                }
                for i, words in zip(batch, terms, strict=True)
            ]
            self._send("upsert into", "upsert", rows)

    def delete(self, keys: np.ndarray) -> None:
        for start in range(0, len(keys), BATCH_ROWS):
            batch = [int(k) for k in keys[start : start + BATCH_ROWS]]
            self._send("delete from", "delete", ids=batch)

    def _send(self, what: str, method: str, *args: Any, **kwargs: Any) -> None:
        self._call(what, lambda c: getattr(c, method)(self.name, *args, **kwargs))

    def vectors(self, keys: Sequence[int]) -> dict[int, np.ndarray]:
        """The stored vectors of ``keys`` (those the collection holds)."""
        if not len(keys):
            return {}
        where = f"pk in [{', '.join(str(int(k)) for k in keys)}]"
        rows = self._call(
            "read vectors from",
            lambda c: c.query(self.name, filter=where, output_fields=["pk", "vector"]),
        )
        return {int(r["pk"]): np.asarray(r["vector"], dtype=np.float32) for r in rows}

    def search(
        self,
        query: np.ndarray | str,
        n: int,
        *,
        field: str,
        allowed: np.ndarray | None = None,
        params: dict[str, int] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``n`` keys and scores for a query vector (``field="vector"``) or a query text
        (``field="sparse"``: BM25), best first, optionally only among ``allowed`` keys."""
        where = "" if allowed is None else f"pk in [{', '.join(str(int(k)) for k in allowed)}]"
        data = [query if isinstance(query, str) else np.asarray(query, dtype=np.float32)]
        found = self._call(
            "search",
            lambda c: c.search(
                self.name,
                data=data,
                anns_field=field,
                limit=n,
                filter=where,
                output_fields=["pk"],
                search_params={"params": params or {}},
            ),
        )[0]
        keys = np.fromiter((hit["pk"] for hit in found), dtype=np.int64, count=len(found))
        scores = np.fromiter((hit["distance"] for hit in found), dtype=np.float32, count=len(found))
        # BM25 scores are never negative; milvus-lite reports them negated.
        return keys, np.abs(scores) if field == "sparse" else scores


def bm25_params(keyword: dict[str, Any]) -> dict[str, float]:
    """Milvus' BM25 index parameters for Nexus' keyword parameters."""
    return {"bm25_k1": float(keyword["k1"]), "bm25_b": float(keyword["b"])}


def _as_key(keyword: dict[str, Any]) -> str:
    return json.dumps(keyword, sort_keys=True)


def _fit(text: str) -> str:
    """``text`` cut to Milvus' longest VARCHAR, on a character boundary."""
    data = text.encode("utf-8")
    if len(data) <= MAX_VARCHAR:
        return text
    return data[:MAX_VARCHAR].decode("utf-8", "ignore")


# --------------------------------------------------------------------------- building


class MilvusStore:
    """The write side: bring the collection up to a build's chunks before the generation is
    published (:meth:`prepare`), delete the chunks that left the corpus after (:meth:`finish`).

    The collection is created when missing and recreated when its vectors came from another
    encoder or its text was analysed with other keyword parameters (so one collection never
    mixes two analyses). Only keys it lacks are upserted, or every key when ``full``.

    Args:
        settings: Milvus address, collection, token and the BM25 options.
        index_dir: The index folder; a milvus-lite folder beside the generations by default.
        encoder: Name of the encoder the vectors come from, recorded on the collection.

    Raises:
        StoreError: Milvus cannot be reached or refuses a write.
    """

    def __init__(self, settings: Settings, index_dir: Path, encoder: str) -> None:
        uri = resolve_uri(settings, index_dir)
        if _is_local(uri):
            Path(uri).parent.mkdir(parents=True, exist_ok=True)
        name = settings.milvus_collection or DEFAULT_COLLECTION
        self.collection = MilvusCollection(uri, name, settings.milvus_token)
        self.settings = settings
        self.encoder = encoder
        self._stale = np.zeros(0, dtype=np.int64)

    def prepare(
        self, chunks: Sequence[Chunk], vectors: np.ndarray, *, full: bool, progress: bool
    ) -> PreparedStore:
        tick = time.perf_counter()
        collection = self.collection
        spec = milvus_index_spec(len(chunks), self.settings.exact_search_limit)
        dim, keyword = vectors.shape[1], KeywordIndex.params_for(self.settings)
        if collection.exists() and (
            collection.encoder() != self.encoder or collection.dim() != dim
        ):
            log.warning("%r holds vectors of another model; recreating it", collection)
            collection.drop()
        elif collection.exists() and collection.keyword() != _as_key(keyword):
            log.warning("%r was analysed with other keyword parameters; recreating it", collection)
            collection.drop()
        if not collection.exists():
            collection.create(dim, self.encoder, spec, keyword)
        elif collection.index_type() != spec.index_type:
            log.info("%r: switching the dense index to %s", collection, spec.index_type)
            collection.reindex(spec)
        keys = chunk_keys((c.source, c.key) for c in chunks)
        existing = collection.keys()
        rows = np.arange(len(keys)) if full else np.flatnonzero(~np.isin(keys, existing))
        collection.upsert(
            keys[rows],
            vectors[rows],
            [chunks[i] for i in rows.tolist()],
            keyword,
            progress=progress,
        )
        collection.flush()
        self._stale = np.setdiff1d(existing, keys)
        block = {
            "kind": "milvus",
            "uri": _redact(collection.uri),
            "collection": collection.name,
            "metric": "inner_product",
            "index_type": spec.index_type,
            "index_params": spec.params,
            "search_params": spec.search,
            "analyzer": ANALYZER,
            "bm25": bm25_params(keyword),
        }
        # The collection computes BM25 itself as rows arrive: keyword indexing is in ``dense``.
        return PreparedStore(
            index_type=f"milvus:{spec.index_type}",
            index_params=spec.search,
            store=block,
            keyword=keyword,
            seconds={"dense": time.perf_counter() - tick, "keyword": 0.0},
        )

    def finish(self) -> None:
        """Delete the chunks that left the corpus, once no new reader can ask for them."""
        if len(self._stale):
            self.collection.delete(self._stale)
            self.collection.flush()
            log.info("deleted %d stale chunks from %r", len(self._stale), self.collection)


# --------------------------------------------------------------------------- reading


class MilvusIndex:
    """A generation whose vectors and keyword index live in a Milvus collection.

    Chunk texts, documents and filters come from the generation's chunk database, as for the
    local store; searches go to the collection and their keys are mapped back to this
    generation's chunk ids (keys it does not know, from a newer build, are skipped).
    ``vectors.npy`` is opened only by builds, which reuse it; a server reads vectors from the
    collection.

    Raises:
        IndexCorruptError: The chunk database is missing or damaged.
    """

    def __init__(self, generation: Path, manifest: Manifest, collection: MilvusCollection) -> None:
        self.path = generation
        self.manifest = manifest
        self.collection = collection
        path = generation / CHUNKS_DB
        if not path.is_file() or path.stat().st_size != manifest.files.get(CHUNKS_DB):
            raise IndexCorruptError(f"{path} is missing or truncated; rebuild with `nexus build`")
        self.db = ChunkDB(path, documents=manifest.documents, chunks=manifest.chunks)
        self.keys = chunk_keys(self.db.source_keys())
        # The heading field is small: each replica indexes it for itself, from the chunks.
        self.headings = KeywordIndex.build(self.db.layout().headings, manifest.keyword)
        self._order = np.argsort(self.keys, kind="stable")
        self._sorted = self.keys[self._order]

    @classmethod
    def open(cls, generation: Path, manifest: Manifest, settings: Settings) -> MilvusIndex:
        store = manifest.store
        uri = settings.milvus_uri or str(store["uri"])
        name = settings.milvus_collection or str(store["collection"])
        collection = MilvusCollection(uri, name, settings.milvus_token)
        return cls(generation, manifest, collection)

    def check_store(self) -> None:
        """Raise unless the collection exists, holds vectors of this index's dimension and
        is loaded for searching."""
        if not self.collection.exists():
            raise self.collection._not_found()
        self.collection.load()
        dim = self.collection.dim()
        if dim != self.manifest.dim:
            raise IndexMismatchError(
                f"{self.collection!r} holds {dim}-dimensional vectors but the index was built "
                f"with {self.manifest.encoder_name!r} ({self.manifest.dim} dimensions); rebuild "
                "with `nexus build --full --store milvus` or point --milvus-uri at the right server"
            )

    def _rows(self, keys: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Chunk ids of ``keys`` in this generation; keys it does not hold are dropped."""
        at = np.searchsorted(self._sorted, keys)
        at = np.minimum(at, len(self._sorted) - 1)
        known = self._sorted[at] == keys if len(self._sorted) else np.zeros(len(keys), bool)
        return self._order[at[known]].astype(np.int64), scores[known].astype(np.float32)

    def _allowed_keys(self, allowed: np.ndarray | None) -> np.ndarray | None:
        return None if allowed is None else self.keys[allowed]

    def dense_search(
        self, query: np.ndarray, n: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        keys, scores = self.collection.search(
            query,
            n,
            field="vector",
            allowed=self._allowed_keys(allowed),
            params=dict(self.manifest.store.get("search_params", {})),
        )
        return self._rows(keys, scores)

    def keyword_search(
        self, text: str, n: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        words = keyword_tokens([text], self.manifest.keyword)[0]
        if not words:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        keys, scores = self.collection.search(
            " ".join(words), n, field="sparse", allowed=self._allowed_keys(allowed)
        )
        return self._rows(keys, scores)

    def heading_search(
        self, text: str, n: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        return self.headings.search(text, n, allowed)

    def vectors_of(self, ids: Sequence[int]) -> np.ndarray:
        wanted = [int(self.keys[i]) for i in ids]
        found = self.collection.vectors(wanted)
        missing = [k for k in wanted if k not in found]
        if missing:
            raise IndexCorruptError(
                f"{self.collection!r} lacks {len(missing)} chunks of this index; rebuild with "
                "`nexus build --store milvus`"
            )
        return np.stack([found[k] for k in wanted]) if wanted else np.zeros((0, self.manifest.dim))

    def stored_vectors(self) -> np.ndarray | None:
        """The build's own copy of the vectors, memory-mapped, which incremental builds reuse;
        None on a replica given only the manifest and chunk database."""
        path = self.path / VECTORS
        if not path.is_file():
            return None
        return load_vectors(path, (self.manifest.chunks, self.manifest.dim))

    def close(self) -> None:
        self.db.close()
