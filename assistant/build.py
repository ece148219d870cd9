"""Build or update an index from a corpus folder: read → parse → chunk → embed → store.

Builds are incremental: a document whose bytes did not change keeps its chunks and vectors,
and a changed document re-embeds only chunks whose text changed. Everything is written as a
new generation and published atomically (see :mod:`assistant.stores`).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from .analysis import split_mode
from .config import Settings
from .encoders import Encoder, encoder_mismatch, load_encoder, probe_vector
from .errors import AssistantError, EmptyCorpusError, IndexNotFoundError
from .ingest.chunking import Chunk, chunk_document
from .ingest.documents import Document
from .ingest.files import Skipped, discover, read_files
from .ingest.parsing import parse_files, worker_count
from .ingest.readers import READER_VERSIONS
from .stores import (
    CorpusRecord,
    IndexReader,
    Manifest,
    StoredDocument,
    open_index,
    resolve_store,
    store_writer,
    write_generation,
)

__all__ = [
    "BuildReport",
    "CorpusChanges",
    "build_index",
    "corpus_changes",
    "kept_settings",
    "prepare_index",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CorpusChanges:
    """How a corpus folder differs from what an index was built from (sources, sorted).

    ``modified`` counts a document whose file or any file it includes changed; ``outdated``
    lists unchanged documents that a newer reader of their format would read differently.
    """

    added: list[str]
    modified: list[str]
    removed: list[str]
    outdated: list[str] = field(default_factory=list)

    @property
    def stale(self) -> bool:
        return bool(self.added or self.modified or self.removed or self.outdated)

    def summary(self) -> str:
        if not self.stale:
            return "up to date"
        parts = [
            f"{len(names)} {label} ({', '.join(names[:3])}{', …' if len(names) > 3 else ''})"
            for label, names in (
                ("added", self.added),
                ("modified", self.modified),
                ("removed", self.removed),
                ("to re-read with a newer reader", self.outdated),
            )
            if names
        ]
        return "changed since the build: " + "; ".join(parts)


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
    embedded. ``changes`` names the documents this build took in (``added``, ``modified``:
    read anew) and those it dropped (``removed``), against the index it updated.
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
    changes: CorpusChanges = field(default_factory=lambda: CorpusChanges([], [], []))

    @property
    def taken_in(self) -> int:
        """Documents this build read anew: added or modified."""
        return len(self.changes.added) + len(self.changes.modified)

    def summary(self) -> str:
        mode = "full" if self.full else "incremental"
        took = f"{self.taken_in} read anew, {len(self.changes.removed)} removed"
        return (
            f"{mode} build of {self.documents} documents ({took}) → {self.chunks} chunks "
            f"({self.embedded} embedded{' on Ray' if self.executor == 'ray' else ''}, "
            f"{self.reused} reused, {len(self.skipped)} files "
            f"skipped) in {self.seconds.get('total', 0.0):.1f}s; index {self.index_type} "
            f"at {self.index_dir}"
        )


class _Stopwatch:
    """Wall time per build stage; a stage may be timed in several pieces."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._started = time.perf_counter()

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        tick = time.perf_counter()
        try:
            yield
        finally:
            self.add(stage, time.perf_counter() - tick)

    def add(self, stage: str, seconds: float) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds

    def report(self) -> dict[str, float]:
        """Every stage rounded to milliseconds, with the total since the stopwatch started."""
        total = {"total": time.perf_counter() - self._started}
        return {k: round(v, 3) for k, v in {**self.seconds, **total}.items()}


def _chunking_params(settings: Settings, encoder: Encoder) -> dict[str, int]:
    return {
        "chunk_tokens": min(settings.chunk_tokens, encoder.max_tokens),
        "chunk_overlap": settings.chunk_overlap,
        "min_chunk_tokens": settings.min_chunk_tokens,
    }


@dataclass(frozen=True)
class _Previous:
    """The index a build reuses work from: its chunks and the vector of each."""

    index: IndexReader
    vectors: np.ndarray


def _previous_index(
    index_dir: Path, encoder: Encoder, probe: list[float], settings: Settings
) -> _Previous | None:
    """The index to reuse work from, or None when there is none or it cannot be reused."""
    previous: IndexReader | None = None
    try:
        previous = open_index(index_dir, settings=settings)
        vectors = previous.stored_vectors()
    except AssistantError as exc:
        if previous is not None:
            previous.close()
        if index_dir.joinpath("CURRENT").exists():
            log.warning("previous index not reusable (%s); building from scratch", exc)
        return None
    mismatch = encoder_mismatch(previous.manifest.encoder, encoder, probe)
    if vectors is None or mismatch is not None:
        if vectors is None:  # a Milvus replica's copy, without vectors
            log.warning("the previous index keeps no vectors; building from scratch")
        else:
            log.warning("previous index not reusable (%s); re-embedding everything", mismatch)
        previous.close()
        return None
    return _Previous(previous, vectors)


@dataclass
class _Collected:
    """Documents and chunks of this build; ``reuse[i]`` is chunk i's vector id in the previous
    index, or None when the chunk must be embedded. ``includes`` records, per document, the
    files it included and their hashes."""

    documents: list[StoredDocument] = field(default_factory=list)
    chunks: list[Chunk] = field(default_factory=list)
    reuse: list[int | None] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)
    includes: dict[str, dict[str, str]] = field(default_factory=dict)
    reused: set[str] = field(default_factory=set)  # documents kept whole from the previous index

    def skip(self, source: str, reason: str) -> None:
        # A file name that is not valid UTF-8 is shown with its odd bytes escaped, so reports
        # and logs can always print it.
        source = source.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        self.skipped.append((source, reason))
        log.warning("skipped %s: %s", source, reason)

    def record(self) -> CorpusRecord:
        return CorpusRecord(self.includes, tuple(self.skipped))


@dataclass(frozen=True)
class _Incoming:
    """A corpus file read and hashed (``path``), or a document parsed elsewhere (``document``)."""

    source: str
    sha256: str
    path: Path | None = None
    document: Document | None = None


def _read(
    corpus_dir: Path, paths: list[Path], max_bytes: int, out: _Collected, watch: _Stopwatch
) -> Iterator[_Incoming]:
    files = read_files(corpus_dir, paths, max_bytes=max_bytes)
    while True:
        with watch("read"):
            item = next(files, None)
        if item is None:
            return
        if isinstance(item, Skipped):
            out.skip(item.source, item.reason)
        else:
            yield _Incoming(item.source, item.sha256, path=item.path)


def _given(documents: Iterable[Document]) -> Iterator[_Incoming]:
    for doc in documents:
        yield _Incoming(doc.source, doc.sha256, document=doc)


class _FileHashes:
    """Content hashes of corpus files by relative path, read once per build ("" if missing)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._known: dict[str, str] = {}

    def of(self, source: str) -> str:
        if source not in self._known:
            try:
                data = (self.root / source).read_bytes()
                self._known[source] = hashlib.sha256(data).hexdigest()
            except OSError:
                self._known[source] = ""
        return self._known[source]

    def unchanged(self, recorded: dict[str, str]) -> bool:
        return all(self.of(path) == digest for path, digest in recorded.items())


def _current_reader(stored: StoredDocument, readers_then: dict[str, int]) -> bool:
    """Whether the reader that made ``stored`` is the one this version would use."""
    return readers_then.get(stored.format, 1) == READER_VERSIONS.get(stored.format, 1)


def _collect(
    incoming: Iterable[_Incoming],
    out: _Collected,
    *,
    corpus_dir: Path,
    max_bytes: int,
    encoder: Encoder,
    chunking: dict[str, int],
    previous: _Previous | None,
    watch: _Stopwatch,
    progress: bool,
) -> None:
    """Reuse unchanged documents whole; parse and chunk the others.

    First every file is read and hashed, which decides what can be reused; then the rest are
    parsed (in worker processes when there are many, see :mod:`assistant.ingest.parsing`) and
    chunked, in corpus order.
    """
    with watch("reuse"):
        db = previous.index.db if previous else None
        reusable_docs = {d.source: d for d in db.documents()} if db else {}
        reusable_rows = db.chunk_rows_by_source() if db else {}
        vector_of_key = db.ids_by_key() if db else {}
        old_includes = db.record().includes if db else {}
        readers_then = previous.index.manifest.readers if previous else {}
        same_chunking = previous is not None and previous.index.manifest.chunking == chunking
    if previous is not None and not same_chunking:
        log.info("chunking settings changed; unchanged chunk texts still reuse their vectors")
    hashes = _FileHashes(corpus_dir)

    def reusable(item: _Incoming) -> StoredDocument | None:
        old = reusable_docs.get(item.source)
        if old is None or not same_chunking or old.sha256 != item.sha256:
            return None
        if not _current_reader(old, readers_then):
            return None
        return old if hashes.unchanged(old_includes.get(item.source, {})) else None

    plan = [(item, reusable(item)) for item in incoming]
    to_parse = [item.path for item, old in plan if old is None and item.path is not None]
    parsed = parse_files(corpus_dir, to_parse, max_bytes=max_bytes, workers=worker_count(to_parse))

    def count_tokens(texts: Sequence[str]) -> list[int]:
        with watch("tokenize"):
            return encoder.count_tokens(texts)

    for item, old in tqdm(plan, desc="Reading", unit="doc", disable=not progress):
        if db is not None and old is not None:
            with watch("reuse"):
                rows = reusable_rows.get(item.source, [])
                reused = db.chunks(rows)
                out.documents.append(old)
                out.reused.add(old.source)
                out.chunks.extend(reused[r] for r in rows)
                out.reuse.extend(rows)
                if item.source in old_includes:
                    out.includes[item.source] = old_includes[item.source]
            continue
        if item.document is not None:
            doc = item.document
        else:
            with watch("parse"):
                result = next(parsed)
            if isinstance(result, Skipped):
                out.skip(result.source, result.reason)
                continue
            doc = result
        for message in doc.warnings:
            out.warnings.append((doc.source, message))
            log.warning("%s: %s", doc.source, message)
        out.documents.append(
            StoredDocument(doc.source, doc.title, doc.format, doc.category, doc.sha256, doc.text)
        )
        if doc.includes:
            out.includes[doc.source] = {path: hashes.of(path) for path in doc.includes}
        tokenizing_before = watch.seconds.get("tokenize", 0.0)
        tick = time.perf_counter()
        new_chunks = chunk_document(
            doc,
            count_tokens,
            max_tokens=chunking["chunk_tokens"],
            overlap=chunking["chunk_overlap"],
            min_tokens=chunking["min_chunk_tokens"],
        )
        tokenizing = watch.seconds.get("tokenize", 0.0) - tokenizing_before
        watch.add("chunk", time.perf_counter() - tick - tokenizing)
        out.chunks.extend(new_chunks)
        out.reuse.extend(vector_of_key.get(chunk.key) for chunk in new_chunks)


def _document_embedder(
    settings: Settings, encoder: Encoder, probe: list[float], cache_dir: Path, progress: bool
) -> Callable[[list[str]], np.ndarray]:
    """Where new chunks are embedded: by ``encoder`` here, or on Ray workers with the same
    model (see :mod:`assistant.encoders.ray`)."""
    if settings.executor == "local":
        return partial(encoder.encode, kind="document", progress=progress)
    from .encoders.ray import EncoderRecipe, embed_on_ray

    recipe = EncoderRecipe.for_encoder(encoder, settings, cache_dir)
    return partial(embed_on_ray, recipe=recipe, probe=probe, dim=encoder.dim, progress=progress)


def _vectors(
    collected: _Collected,
    previous: _Previous | None,
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
            :func:`assistant.ingest.beir.read_beir_documents`) to index instead of the files of
            ``corpus_dir``, which is then only recorded as where they came from.

    Returns:
        Counts and per-stage timings of the build.

    Raises:
        CorpusNotFoundError: ``corpus_dir`` does not exist.
        EmptyCorpusError: No file in ``corpus_dir`` could be indexed.
        IndexWriteError: The index could not be written; the previous one still serves.
    """
    watch = _Stopwatch()
    corpus_dir, index_dir = Path(corpus_dir), Path(index_dir)
    settings = resolve_store(settings or Settings(), index_dir)
    unreadable: list[tuple[str, str]] = []
    with watch("scan"):
        paths = (
            discover(corpus_dir, exclude=[index_dir], unreadable=unreadable)
            if documents is None
            else []
        )
    with watch("model"):
        # Indexes built before exports were shared keep one in their own encoders/ folder.
        encoder = encoder or load_encoder(settings, earlier_exports=[index_dir / "encoders"])
        probe = probe_vector(encoder)
    chunking = _chunking_params(settings, encoder)
    with watch("reuse"):
        previous = None if full else _previous_index(index_dir, encoder, probe, settings)
        before = {d.source for d in previous.index.db.documents()} if previous else set()
    collected = _Collected()
    if documents is None:
        incoming = _read(corpus_dir, paths, settings.max_file_bytes, collected, watch)
    else:
        incoming = _given(documents)
    try:
        _collect(
            incoming,
            collected,
            corpus_dir=corpus_dir,
            max_bytes=settings.max_file_bytes,
            encoder=encoder,
            chunking=chunking,
            previous=previous,
            watch=watch,
            progress=progress,
        )
        for folder, reason in unreadable:
            collected.skip(folder + "/", reason)
        if not collected.chunks:
            raise EmptyCorpusError(
                f"no indexable text in {corpus_dir} ({len(paths)} supported files found, "
                f"{len(collected.skipped)} skipped); add .md, .rst, .txt or .html documents"
            )
        with watch("embed"):
            embed = _document_embedder(settings, encoder, probe, settings.encoder_cache, progress)
            vectors, embedded = _vectors(collected, previous, encoder.dim, embed)
    finally:
        if previous is not None:
            previous.index.close()

    chunks, stored = collected.chunks, collected.documents
    taken_in = [d.source for d in stored if d.source not in collected.reused]
    changes = CorpusChanges(
        added=sorted(s for s in taken_in if s not in before),
        modified=sorted(s for s in taken_in if s in before),
        removed=sorted(before - {d.source for d in stored}),
    )
    store = store_writer(settings, index_dir, encoder.name)
    prepared = store.prepare(chunks, vectors, full=previous is None, progress=progress)
    for stage, seconds in prepared.seconds.items():
        watch.add(stage, seconds)
    with watch("write"):
        fingerprint = hashlib.sha256(
            "\n".join(f"{d.source}\t{d.sha256}" for d in stored).encode()
        ).hexdigest()
        manifest = write_generation(
            index_dir,
            documents=stored,
            chunks=chunks,
            vectors=vectors,
            prepared=prepared,
            record=collected.record(),
            manifest={
                "encoder": _encoder_record(encoder, probe),
                "normalize": True,
                "metric": "inner_product",
                "index_choice": {
                    "requested": settings.index_type,
                    "exact_search_limit": settings.exact_search_limit,
                },
                "chunking": chunking,
                "corpus_root": str(corpus_dir.resolve()),
                "corpus_fingerprint": fingerprint,
                "documents": len(stored),
                "chunks": len(chunks),
                "skipped": len(collected.skipped),
                "readers": READER_VERSIONS,
                "changes": {
                    "added": len(changes.added),
                    "modified": len(changes.modified),
                    "removed": len(changes.removed),
                },
            },
        )
        store.finish()
    report = BuildReport(
        index_dir=str(index_dir),
        generation=manifest.generation,
        documents=len(stored),
        chunks=len(chunks),
        embedded=embedded,
        reused=len(chunks) - embedded,
        skipped=collected.skipped,
        warnings=collected.warnings,
        index_type=prepared.index_type,
        full=previous is None,
        seconds=watch.report(),
        executor=settings.executor,
        changes=changes,
    )
    log.info(report.summary())
    return report


def _encoder_record(encoder: Encoder, probe: list[float]) -> dict[str, Any]:
    """The manifest's ``encoder`` block: what made the vectors, down to the ONNX export."""
    record: dict[str, Any] = {
        "name": encoder.name,
        "backend": encoder.backend,
        "dim": encoder.dim,
        "max_tokens": encoder.max_tokens,
        "probe": probe,
    }
    export = getattr(encoder, "export", None)  # only the ONNX backends run from an export
    if export:
        record["export"] = export
    return record


def corpus_changes(
    corpus_dir: str | Path,
    index: str | Path | IndexReader,
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
    if isinstance(index, str | Path):
        index_dir = Path(index)
        opened = open_index(index_dir)
        try:
            return _changes(corpus_dir, index_dir, opened, settings.max_file_bytes)
        finally:
            opened.close()
    return _changes(corpus_dir, index.path.parent, index, settings.max_file_bytes)


def _changes(
    corpus_dir: Path, index_dir: Path, index: IndexReader, max_bytes: int
) -> CorpusChanges:
    indexed = {d.source: d for d in index.db.documents()}
    includes = index.db.record().includes
    readers_then = index.manifest.readers
    hashes = _FileHashes(corpus_dir)
    found: dict[str, Path] = {}
    changed: list[Path] = []
    for raw in read_files(
        corpus_dir, discover(corpus_dir, exclude=[index_dir]), max_bytes=max_bytes
    ):
        if isinstance(raw, Skipped):
            continue
        found[raw.source] = raw.path
        old = indexed.get(raw.source)
        if (
            old is None
            or old.sha256 != raw.sha256
            or not hashes.unchanged(includes.get(raw.source, {}))
        ):
            changed.append(raw.path)
    # A new or changed file counts only if a build would index it, not skip it.
    results = parse_files(corpus_dir, changed, max_bytes=max_bytes, workers=worker_count(changed))
    readable = {r.source for r in results if not isinstance(r, Skipped)}
    kept = {source for source, path in found.items() if path not in changed or source in readable}
    return CorpusChanges(
        added=sorted(s for s in readable if s not in indexed),
        modified=sorted(s for s in readable if s in indexed),
        removed=sorted(set(indexed) - kept),
        outdated=sorted(
            s
            for s in kept - readable
            if s in indexed and not _current_reader(indexed[s], readers_then)
        ),
    )


def prepare_index(
    settings: Settings, *, encoder: Encoder | None = None, progress: bool = True
) -> BuildReport | None:
    """Build the index if it is missing, or update it if the corpus changed since its build.

    Updates are incremental: unchanged chunks keep their vectors. Returns the build report, or
    None when the index already matched the corpus.
    """
    try:
        changes = corpus_changes(settings.corpus_dir, settings.index_dir, settings=settings)
    except IndexNotFoundError:
        log.info("no index at %s; building it from %s", settings.index_dir, settings.corpus_dir)
    else:
        if not changes.stale:
            return None
        log.info("corpus %s; updating the index", changes.summary())
    return build_index(
        settings.corpus_dir,
        settings.index_dir,
        settings=settings,
        encoder=encoder,
        progress=progress,
    )


def kept_settings(settings: Settings, manifest: Manifest) -> Settings:
    """``settings`` with the chunking and keyword options the index of ``manifest`` was built
    with, so that updating it (a server's watcher, its Rebuild button) takes in what changed
    in the corpus and nothing else: new options are for ``nexus build``."""
    chunking, keyword = manifest.chunking, manifest.keyword
    return settings.replace(
        chunk_tokens=chunking.get("chunk_tokens"),
        chunk_overlap=chunking.get("chunk_overlap"),
        min_chunk_tokens=chunking.get("min_chunk_tokens"),
        keyword_k1=keyword.get("k1"),
        keyword_b=keyword.get("b"),
        split_identifiers=split_mode(keyword),
    )
