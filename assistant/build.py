"""Build or update an index from a corpus folder: load → chunk → embed → store.

Builds are incremental: a document whose bytes did not change keeps its chunks and vectors,
and a changed document re-embeds only chunks whose text changed. Everything is written as a
new generation and published atomically (see :mod:`assistant.store`).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .chunking import Chunk, chunk_document
from .config import Settings
from .corpus import Document, SkipFile, discover, parse, read_file
from .embedding import (
    SAME_ENCODER_COSINE,
    Encoder,
    load_encoder,
    probe_similarity,
    probe_vector,
)
from .errors import (
    AssistantError,
    EmptyCorpusError,
)
from .store import (
    FaissStore,
    IndexWriter,
    KeywordIndex,
    LoadedIndex,
    StoredDocument,
    open_index,
    resolve_index_type,
    resolve_store,
    search_params,
)

__all__ = ["BuildReport", "CorpusChanges", "build_index", "corpus_changes"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuildReport:
    """What a build did, for people (``nexus build`` prints it) and for benchmarks.

    ``seconds`` holds wall time per stage, which add up to ``total``: ``scan`` (find files),
    ``model`` (load the encoder and embed the probe text), ``read`` (read and hash files),
    ``parse``, ``tokenize`` (count word pieces for chunking), ``chunk`` (the rest of
    chunking), ``reuse`` (fetch unchanged documents' chunks from the previous index),
    ``embed`` (with the ray executor, starting or joining the cluster and its workers
    included), ``dense`` (build the FAISS index, or upsert the new chunks into the Milvus
    collection, which computes their BM25 vectors itself), ``keyword`` (build BM25) and
    ``write`` (store and publish the generation). ``executor`` says where new chunks were
    embedded.
    """

    index_dir: str
    generation: str
    documents: int
    chunks: int
    embedded: int
    reused: int
    skipped: list[tuple[str, str]]
    warnings: list[tuple[str, str]]
    index_type: str
    full: bool
    seconds: dict[str, float] = field(default_factory=dict)
    executor: str = "local"

    def summary(self) -> str:
        mode = "full" if self.full else "incremental"
        return (
            f"{mode} build of {self.documents} documents → {self.chunks} chunks "
            f"({self.embedded} embedded{' on Ray' if self.executor == 'ray' else ''}, "
            f"{self.reused} reused, {len(self.skipped)} files "
            f"skipped) in {self.seconds.get('total', 0.0):.1f}s; index {self.index_type} "
            f"at {self.index_dir}"
        )


def _chunking_params(settings: Settings, encoder: Encoder) -> dict[str, int]:
    return {
        "chunk_tokens": min(settings.chunk_tokens, encoder.max_tokens),
        "chunk_overlap": settings.chunk_overlap,
        "min_chunk_tokens": settings.min_chunk_tokens,
    }


def _previous_index(
    index_dir: Path,
    encoder: Encoder,
    probe: list[float],
    chunking: dict[str, int],
    settings: Settings,
) -> LoadedIndex | None:
    """The index to reuse work from, or None when there is none or it cannot be reused."""
    try:
        previous = open_index(index_dir, settings=settings)
    except AssistantError as exc:
        if index_dir.joinpath("CURRENT").exists():
            log.warning("previous index not reusable (%s); building from scratch", exc)
        return None
    manifest = previous.manifest
    if len(previous.vectors) != manifest.chunks:  # a Milvus replica's copy without vectors
        log.warning("the previous index keeps no vectors; building from scratch")
        previous.close()
        return None
    same_encoder = manifest.encoder_name == encoder.name and manifest.dim == encoder.dim
    similarity = probe_similarity(manifest.encoder.get("probe", []), probe)
    if same_encoder and similarity < SAME_ENCODER_COSINE:
        same_encoder = False
    if not same_encoder:
        log.warning(
            "the index was built with %s; re-embedding everything with %s",
            manifest.encoder_name,
            encoder.name,
        )
        previous.close()
        return None
    if manifest.chunking != chunking:
        log.info("chunking settings changed; unchanged chunk texts still reuse their vectors")
    return previous


@dataclass
class _Collected:
    """Documents and chunks of this build; ``reuse[i]`` is chunk i's vector id in the previous
    index, or None when the chunk must be embedded."""

    documents: list[StoredDocument] = field(default_factory=list)
    chunks: list[Chunk] = field(default_factory=list)
    reuse: list[int | None] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)

    def skip(self, source: str, reason: str) -> None:
        # A file name that is not valid UTF-8 is shown with its odd bytes escaped, so reports
        # and logs can always print it.
        source = source.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        self.skipped.append((source, reason))
        log.warning("skipped %s: %s", source, reason)


@dataclass(frozen=True)
class _Incoming:
    """A document about to be collected: parsed only if it cannot be reused."""

    source: str
    sha256: str
    parse: Callable[[], Document]


def _read_files(
    corpus_dir: Path,
    paths: list[Path],
    max_bytes: int,
    out: _Collected,
    seconds: dict[str, float],
) -> Iterator[_Incoming]:
    seconds.setdefault("read", 0.0)
    for path in paths:
        tick = time.perf_counter()
        try:
            raw = read_file(corpus_dir, path, max_bytes=max_bytes)
        except SkipFile as exc:
            out.skip(path.relative_to(corpus_dir).as_posix(), str(exc))
            continue
        finally:
            seconds["read"] += time.perf_counter() - tick
        yield _Incoming(raw.source, raw.sha256, partial(parse, raw))


def _as_is(doc: Document) -> Document:
    return doc


def _given(documents: Iterable[Document]) -> Iterator[_Incoming]:
    for doc in documents:
        yield _Incoming(doc.source, doc.sha256, partial(_as_is, doc))


def _collect(
    incoming: Iterable[_Incoming],
    out: _Collected,
    *,
    encoder: Encoder,
    chunking: dict[str, int],
    previous: LoadedIndex | None,
    seconds: dict[str, float],
    progress: bool,
    total: int | None,
) -> None:
    """Reuse unchanged documents whole; parse and chunk the others."""
    for stage in ("read", "parse", "tokenize", "chunk", "reuse"):
        seconds.setdefault(stage, 0.0)
    tick = time.perf_counter()
    reusable_docs = {d.source: d for d in previous.documents()} if previous else {}
    reusable_rows = previous.chunk_rows_by_source() if previous else {}
    vector_of_key = previous.ids_by_key() if previous else {}
    same_chunking = previous is not None and previous.manifest.chunking == chunking
    seconds["reuse"] += time.perf_counter() - tick

    def count_tokens(texts: Sequence[str]) -> list[int]:
        tick = time.perf_counter()
        counts = encoder.count_tokens(texts)
        seconds["tokenize"] += time.perf_counter() - tick
        return counts

    for item in tqdm(incoming, desc="Reading", unit="doc", total=total, disable=not progress):
        old = reusable_docs.get(item.source)
        if previous is not None and same_chunking and old is not None and old.sha256 == item.sha256:
            tick = time.perf_counter()
            rows = reusable_rows.get(item.source, [])
            reused = previous.chunks(rows)
            out.documents.append(old)
            out.chunks.extend(reused[r] for r in rows)
            out.reuse.extend(rows)
            seconds["reuse"] += time.perf_counter() - tick
            continue
        tick = time.perf_counter()
        try:
            doc = item.parse()
        except SkipFile as exc:
            out.skip(item.source, str(exc))
            continue
        finally:
            seconds["parse"] += time.perf_counter() - tick
        for message in doc.warnings:
            out.warnings.append((doc.source, message))
            log.warning("%s: %s", doc.source, message)
        out.documents.append(
            StoredDocument(doc.source, doc.title, doc.format, doc.category, doc.sha256, doc.text)
        )
        tick = time.perf_counter()
        tokenizing_before = seconds["tokenize"]
        new_chunks = chunk_document(
            doc,
            count_tokens,
            max_tokens=chunking["chunk_tokens"],
            overlap=chunking["chunk_overlap"],
            min_tokens=chunking["min_chunk_tokens"],
        )
        elapsed = time.perf_counter() - tick
        seconds["chunk"] += elapsed - (seconds["tokenize"] - tokenizing_before)
        out.chunks.extend(new_chunks)
        out.reuse.extend(vector_of_key.get(chunk.key) for chunk in new_chunks)


def _document_embedder(
    settings: Settings, encoder: Encoder, probe: list[float], cache_dir: Path, progress: bool
) -> Callable[[list[str]], np.ndarray]:
    """Where new chunks are embedded: by ``encoder`` here, or on Ray workers with the same
    model (see :mod:`assistant.ray_embedding`)."""
    if settings.executor == "local":
        return partial(encoder.encode, kind="document", progress=progress)
    from .ray_embedding import EncoderRecipe, embed_on_ray

    recipe = EncoderRecipe.for_encoder(encoder, settings, cache_dir)
    return partial(embed_on_ray, recipe=recipe, probe=probe, dim=encoder.dim, progress=progress)


def _vectors(
    collected: _Collected,
    previous: LoadedIndex | None,
    dim: int,
    embed: Callable[[list[str]], np.ndarray],
) -> tuple[np.ndarray, int]:
    """One vector per chunk: copied from the previous index or freshly embedded."""
    vectors = np.empty((len(collected.chunks), dim), dtype=np.float32)
    to_embed = [i for i, ref in enumerate(collected.reuse) if ref is None]
    old = [(i, ref) for i, ref in enumerate(collected.reuse) if ref is not None]
    if old:
        assert previous is not None, "vectors reused without a previous index"
        vectors[[i for i, _ in old]] = previous.vectors[[ref for _, ref in old]]
    if to_embed:
        # Identical passages (boilerplate, copied documents) are embedded once and share it.
        texts = [collected.chunks[i].embed_text for i in to_embed]
        distinct = list(dict.fromkeys(texts))
        row_of = {text: row for row, text in enumerate(distinct)}
        embedded = embed(distinct)
        vectors[to_embed] = embedded[[row_of[text] for text in texts]]
    return vectors, len(to_embed)


def build_index(
    corpus_dir: str | Path,
    index_dir: str | Path,
    *,
    settings: Settings | None = None,
    encoder: Encoder | None = None,
    full: bool = False,
    progress: bool = False,
    documents: Iterable[Document] | None = None,
) -> BuildReport:
    """Index every supported document under ``corpus_dir`` into ``index_dir``.

    Args:
        corpus_dir: Folder of Markdown, reStructuredText, text and HTML files.
        index_dir: Where the index lives; created if needed.
        settings: Chunking, model and index settings; defaults to ``Settings()``.
        encoder: An already loaded encoder (saves reloading the model); defaults to the one
            ``settings.model`` names.
        full: Re-embed everything instead of reusing unchanged chunks.
        progress: Show progress bars on stderr.
        documents: Documents parsed elsewhere (for example a BEIR corpus read by
            :func:`assistant.beir.read_beir_documents`) to index instead of the files of
            ``corpus_dir``, which is then only recorded as where they came from.

    Returns:
        Counts and per-stage timings of the build.

    Raises:
        CorpusNotFoundError: ``corpus_dir`` does not exist.
        EmptyCorpusError: No file in ``corpus_dir`` could be indexed.
        IndexWriteError: The index could not be written; the previous one still serves.
    """
    started = time.perf_counter()
    corpus_dir, index_dir = Path(corpus_dir), Path(index_dir)
    settings = resolve_store(settings or Settings(), index_dir)
    seconds: dict[str, float] = {}

    tick = time.perf_counter()
    unreadable: list[tuple[str, str]] = []
    paths = (
        discover(corpus_dir, exclude=[index_dir], unreadable=unreadable)
        if documents is None
        else []
    )
    seconds["scan"] = time.perf_counter() - tick
    tick = time.perf_counter()
    encoder = encoder or load_encoder(settings, cache_dir=index_dir / "encoders")
    probe = probe_vector(encoder)
    seconds["model"] = time.perf_counter() - tick
    chunking = _chunking_params(settings, encoder)
    tick = time.perf_counter()
    previous = None if full else _previous_index(index_dir, encoder, probe, chunking, settings)
    seconds["reuse"] = time.perf_counter() - tick
    collected = _Collected()
    if documents is None:
        incoming = _read_files(corpus_dir, paths, settings.max_file_bytes, collected, seconds)
    else:
        incoming = _given(documents)
    try:
        _collect(
            incoming,
            collected,
            encoder=encoder,
            chunking=chunking,
            previous=previous,
            seconds=seconds,
            progress=progress,
            total=len(paths) if documents is None else None,
        )
        for folder, reason in unreadable:
            collected.skip(folder + "/", reason)
        if not collected.chunks:
            raise EmptyCorpusError(
                f"no indexable text in {corpus_dir} ({len(paths)} supported files found, "
                f"{len(collected.skipped)} skipped); add .md, .rst, .txt or .html documents"
            )
        tick = time.perf_counter()
        embed = _document_embedder(settings, encoder, probe, index_dir / "encoders", progress)
        vectors, embedded = _vectors(collected, previous, encoder.dim, embed)
        seconds["embed"] = time.perf_counter() - tick
    finally:
        if previous is not None:
            previous.close()

    tick = time.perf_counter()
    chunks, stored = collected.chunks, collected.documents
    shared, dense, keyword, store = None, None, None, {}
    if settings.store == "milvus":
        # The collection holds vectors and keyword index; see milvus_store for the ordering.
        from .milvus_store import prepare_collection

        shared = prepare_collection(
            settings,
            index_dir,
            encoder=encoder.name,
            chunks=chunks,
            vectors=vectors,
            full=previous is None,
            progress=progress,
        )
        index_type, index_params = f"milvus:{shared.spec.index_type}", shared.spec.search
        store = shared.manifest()
    else:
        index_type = resolve_index_type(
            settings.index_type, len(chunks), settings.exact_search_limit
        )
        index_params = search_params(index_type)
        dense = FaissStore.build(vectors, index_type, index_params)
    seconds["dense"] = time.perf_counter() - tick
    tick = time.perf_counter()
    keyword_params = KeywordIndex.params_for(settings)
    if shared is None:
        keyword = KeywordIndex.build([c.embed_text for c in chunks], keyword_params)
    seconds["keyword"] = time.perf_counter() - tick

    tick = time.perf_counter()
    fingerprint = hashlib.sha256(
        "\n".join(f"{d.source}\t{d.sha256}" for d in stored).encode()
    ).hexdigest()
    manifest_fields = {
        "encoder": {
            "name": encoder.name,
            "backend": encoder.backend,
            "dim": encoder.dim,
            "max_tokens": encoder.max_tokens,
            "probe": probe,
        },
        "normalize": True,
        "metric": "inner_product",
        "index_type": index_type,
        "index_params": index_params,
        "index_choice": {
            "requested": settings.index_type,
            "exact_search_limit": settings.exact_search_limit,
        },
        "chunking": chunking,
        "keyword": keyword_params,
        "corpus_root": str(corpus_dir.resolve()),
        "corpus_fingerprint": fingerprint,
        "documents": len(stored),
        "chunks": len(chunks),
        "skipped": len(collected.skipped),
        "store": store,
    }
    with IndexWriter(index_dir) as writer:
        writer.write(stored, chunks, vectors, dense, keyword, manifest_fields)
        manifest = writer.commit()
    if shared is not None:
        shared.finish()
    seconds["write"] = time.perf_counter() - tick
    seconds["total"] = time.perf_counter() - started
    report = BuildReport(
        index_dir=str(index_dir),
        generation=manifest.generation,
        documents=len(stored),
        chunks=len(chunks),
        embedded=embedded,
        reused=len(chunks) - embedded,
        skipped=collected.skipped,
        warnings=collected.warnings,
        index_type=index_type,
        full=previous is None,
        seconds={k: round(v, 3) for k, v in seconds.items()},
        executor=settings.executor,
    )
    log.info(report.summary())
    return report


@dataclass(frozen=True)
class CorpusChanges:
    """How a corpus folder differs from what an index was built from (sources, sorted)."""

    added: list[str]
    modified: list[str]
    removed: list[str]

    @property
    def stale(self) -> bool:
        return bool(self.added or self.modified or self.removed)

    def summary(self) -> str:
        if not self.stale:
            return "up to date"
        parts = [
            f"{len(names)} {label} ({', '.join(names[:3])}{', …' if len(names) > 3 else ''})"
            for label, names in (
                ("added", self.added),
                ("modified", self.modified),
                ("removed", self.removed),
            )
            if names
        ]
        return "changed since the build: " + "; ".join(parts)


def corpus_changes(
    corpus_dir: str | Path,
    index: str | Path | LoadedIndex,
    *,
    settings: Settings | None = None,
) -> CorpusChanges:
    """Compare the corpus folder with the documents an index holds.

    Reads and hashes every file, but parses only new or changed ones (to tell a document from
    a file the build would skip), so it costs far less than a build and loads no model.

    Args:
        corpus_dir: The corpus folder.
        index: An index folder, or an index already open (which is left open).
        settings: For the file size limit; ``Settings()`` when omitted.

    Raises:
        CorpusNotFoundError: ``corpus_dir`` does not exist.
        IndexNotFoundError: Nothing is built at the index folder.
    """
    settings = settings or Settings()
    corpus_dir = Path(corpus_dir)
    if isinstance(index, LoadedIndex):
        indexed = index.document_hashes()
        index_dir = index.path.parent
    else:
        index_dir = Path(index)
        opened = open_index(index_dir)
        try:
            indexed = opened.document_hashes()
        finally:
            opened.close()
    added, modified, seen = [], [], set()
    for path in discover(corpus_dir, exclude=[index_dir]):
        try:
            raw = read_file(corpus_dir, path, max_bytes=settings.max_file_bytes)
            if indexed.get(raw.source) != raw.sha256:
                parse(raw)  # raises SkipFile for files a build would skip too
        except SkipFile:
            continue
        seen.add(raw.source)
        if raw.source not in indexed:
            added.append(raw.source)
        elif indexed[raw.source] != raw.sha256:
            modified.append(raw.source)
    removed = sorted(set(indexed) - seen)
    return CorpusChanges(added=added, modified=modified, removed=removed)
