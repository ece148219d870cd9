"""The ``nexus`` command: build an index, search it, describe it.

Results go to stdout (JSON with ``--json``), progress and errors to stderr; exit code 1 on
error. Every command has a ``main(argv)``-callable entry so tests can run it in-process.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .config import (
    BACKENDS,
    COLLECTIONS_ENV,
    EXECUTORS,
    SEARCH_MODES,
    STORES,
    SearchMode,
    Settings,
)
from .errors import AssistantError
from .logs import LOG_FORMAT_ENV, LOG_FORMATS, TEXT_FORMAT, LogFormat
from .search.query import MAX_K

if TYPE_CHECKING:
    from .build import BuildReport
    from .stores import IndexReader

__all__ = ["cli", "main"]

_INDEX = click.option(
    "--index",
    "index_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Index folder.  [default: index, or $NEXUS_INDEX_DIR]",
)

_BACKEND = click.option(
    "--backend",
    type=click.Choice(BACKENDS),
    default=None,
    help="What computes the vectors (onnx: the model on ONNX Runtime, exported once; torch: "
    "the same vectors on PyTorch).  [default: onnx, or $NEXUS_BACKEND]",
)


_STORE = click.option(
    "--store",
    type=click.Choice(STORES),
    default=None,
    help="Where vectors and the keyword index live: index files (faiss) or a shared Milvus "
    "collection (milvus; needs the scale extra).  [default: the index's own store, faiss for "
    "a new index, or $NEXUS_STORE]",
)

_MILVUS_URI = click.option(
    "--milvus-uri",
    default=None,
    help="Milvus server (http://host:19530) or milvus-lite file (*.db); token from "
    "$NEXUS_MILVUS_TOKEN.  [default: the manifest's, or <index>/milvus.db when building]",
)


_RERANKER = click.option(
    "--reranker",
    default=None,
    help="A sentence-transformers cross-encoder (name or local path) that re-scores the best "
    "passages of each search.  [default: none, or $NEXUS_RERANKER]",
)


def _settings(**overrides: Any) -> Settings:
    try:
        return Settings.from_env(**overrides)
    except AssistantError as exc:
        raise click.ClickException(str(exc)) from exc


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, default=str))


@click.group(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.option("-v", "--verbose", is_flag=True, help="Log progress details to stderr.")
def cli(verbose: bool) -> None:
    """Nexus: semantic search over a folder of documentation.

    \b
    Example:
        nexus build --corpus corpus --index index
        nexus search "how do I avoid race conditions?" -k 3
    """
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format=TEXT_FORMAT,
        stream=sys.stderr,
    )
    # The one-time model export pauses a first build or search for half a minute: say so.
    logging.getLogger("assistant.encoders.onnx").setLevel(logging.INFO)


@cli.command()
@click.option(
    "--corpus",
    "corpus_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder of .md, .rst, .txt and .html documents.  [default: corpus]",
)
@_INDEX
@click.option("--model", default=None, help="sentence-transformers model name or local path.")
@_BACKEND
@_STORE
@_MILVUS_URI
@click.option("--full", is_flag=True, help="Re-embed everything instead of reusing chunks.")
@click.option(
    "--executor",
    type=click.Choice(EXECUTORS),
    default=None,
    help="Where new chunks are embedded: here, or on Ray workers (needs the scale extra).  "
    "[default: local, or $NEXUS_EXECUTOR]",
)
@click.option(
    "--ray-address",
    default=None,
    help="Ray cluster to embed on (auto, HOST:PORT, ray://HOST:10001); without it a local "
    "Ray instance is started.  [$NEXUS_RAY_ADDRESS]",
)
@click.option(
    "--ray-workers",
    type=click.IntRange(min=1),
    default=None,
    help="Embedding workers on Ray, each loading the model once.  [default: one per node]",
)
@click.option(
    "--watch",
    is_flag=True,
    help="After building, keep watching the corpus and update the index whenever files "
    "change (Ctrl-C stops).",
)
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.option("--json", "as_json", is_flag=True, help="Print the build report as JSON.")
def build(
    corpus_dir: Path | None,
    index_dir: Path | None,
    model: str | None,
    backend: str | None,
    store: str | None,
    milvus_uri: str | None,
    full: bool,
    executor: str | None,
    ray_address: str | None,
    ray_workers: int | None,
    watch: bool,
    quiet: bool,
    as_json: bool,
) -> None:
    """Build or update the index of a corpus folder (incremental unless --full).

    \b
    Example:
        nexus build --corpus ~/docs --index ~/docs-index --model all-MiniLM-L6-v2
        nexus build --corpus ~/docs --watch             # and again whenever a file changes
        nexus build --corpus ~/docs --store milvus --milvus-uri http://milvus:19530
        nexus build --executor ray --ray-address auto   # embed on a Ray cluster
    """
    from .build import build_index

    settings = _settings(
        corpus_dir=corpus_dir,
        index_dir=index_dir,
        model=model,
        backend=backend,
        store=store,
        milvus_uri=milvus_uri,
        executor=executor,
        ray_address=ray_address,
        ray_workers=ray_workers,
    )
    if settings.executor != "ray" and (ray_address or ray_workers):
        raise click.ClickException("--ray-address and --ray-workers need --executor ray")

    def show(report: BuildReport) -> None:
        if as_json:
            _echo_json(asdict(report))
            return
        for source, reason in report.skipped:
            click.echo(f"skipped {source}: {reason}", err=True)
        click.echo(report.summary())

    try:
        if full or not watch:
            show(
                build_index(
                    settings.corpus_dir,
                    settings.index_dir,
                    settings=settings,
                    full=full,
                    progress=not quiet,
                )
            )
        if watch:
            _watch_and_build(settings, show, progress=not quiet, first=not full)
    except AssistantError as exc:
        raise click.ClickException(str(exc)) from exc


def _watch_and_build(
    settings: Settings, show: Callable[[BuildReport], None], *, progress: bool, first: bool
) -> None:
    """``nexus build --watch``: update now (unless a full build just ran), then after every
    change under the corpus, until Ctrl-C. A failed update is reported and watching goes on."""
    from .encoders import load_encoder
    from .watch import IndexUpdater

    encoder = load_encoder(settings, earlier_exports=[settings.index_dir / "encoders"])
    updater = IndexUpdater(settings, encoder=encoder, progress=progress)
    if first:
        report = updater.update()  # a failure here (no corpus ...) is the command's error
        if report is not None:
            show(report)
        else:
            click.echo("the index is up to date with the corpus")
    click.echo(f"watching {settings.corpus_dir} for changes (Ctrl-C stops)", err=True)
    try:
        for report in updater.watch():  # a failed update is logged, and watching goes on
            show(report)
    except KeyboardInterrupt:
        click.echo("stopped watching", err=True)


@cli.command()
@click.argument("query", required=False)
@_INDEX
@click.option(
    "-k", "k", type=click.IntRange(1, MAX_K), default=None, help="Number of hits.  [default: 5]"
)
@click.option(
    "--mode",
    type=click.Choice(SEARCH_MODES),
    default=None,
    help="Retrieval mode.  [default: hybrid]",
)
@click.option("--category", default=None, help="Only documents in this top-level folder.")
@click.option("--path", "path_glob", default=None, help="Only documents matching this glob.")
@_BACKEND
@_MILVUS_URI
@_RERANKER
@click.option("--json", "as_json", is_flag=True, help="One JSON object per hit.")
def search(
    query: str | None,
    index_dir: Path | None,
    k: int | None,
    mode: str | None,
    category: str | None,
    path_glob: str | None,
    backend: str | None,
    milvus_uri: str | None,
    reranker: str | None,
    as_json: bool,
) -> None:
    """Search the index; the query comes from the argument, or from stdin when it is "-".

    \b
    Example:
        nexus search "cache invalidation strategies" -k 3 --json
        echo "what is the GIL?" | nexus search -
    """
    from .search.assistant import Assistant

    settings = _settings(
        index_dir=index_dir,
        top_k=k,
        mode=mode,
        backend=backend,
        milvus_uri=milvus_uri,
        reranker=reranker,
    )
    if query is None or query == "-":
        # Longer input is refused anyway; reading no further bounds memory on endless input.
        query = sys.stdin.read(4 * settings.max_query_chars)
    try:
        nexus = Assistant.load(settings.index_dir, settings=settings)
        hits = nexus.search(query, category=category, path=path_glob)
    except AssistantError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        for hit in hits:
            _echo_json({**asdict(hit), "heading_path": hit.heading_path})
        return
    if not hits:
        click.echo("No passage matched.")
    for hit in hits:
        location = f"{hit.source}:{hit.start_line}-{hit.end_line}"
        click.echo(click.style(f"[{hit.rank}] {hit.heading_path}", bold=True))
        click.echo(f"    {location}  score {hit.score:.4f}")
        snippet = " ".join(hit.text.split())
        click.echo(f"    {snippet[:300]}{'…' if len(snippet) > 300 else ''}\n")


@cli.command()
@_INDEX
@click.option(
    "--corpus",
    "corpus_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Corpus to compare with the index.  [default: the folder it was built from]",
)
@click.option(
    "--documents", is_flag=True, help="List every indexed document (format, passages, title)."
)
@click.option("--skipped", is_flag=True, help="List the files the build left out, and why.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON (one object per line).")
def info(
    index_dir: Path | None, corpus_dir: Path | None, documents: bool, skipped: bool, as_json: bool
) -> None:
    """Describe the index (model, counts, build time) and whether the corpus changed since.

    \b
    Example:
        nexus info --documents          # what was indexed
        nexus info --skipped --json     # what was not, with the reason for each
    """
    from .analysis import split_mode
    from .build import corpus_changes
    from .stores import open_index

    settings = _settings(index_dir=index_dir)
    try:
        index = open_index(settings.index_dir)
    except AssistantError as exc:
        raise click.ClickException(str(exc)) from exc
    if documents or skipped:
        _list_contents(index, documents=documents, skipped=skipped, as_json=as_json)
        return
    manifest = index.manifest
    corpus = corpus_dir or Path(manifest.corpus_root)
    try:
        changes = corpus_changes(corpus, index, settings=settings)
        freshness = changes.summary()
        if changes.stale:
            freshness += f"; run `nexus build --corpus {corpus} --index {settings.index_dir}`"
    except AssistantError as exc:
        changes, freshness = None, f"cannot compare ({exc})"
    if as_json:
        _echo_json({**asdict(manifest), "corpus_changes": asdict(changes) if changes else None})
        return
    click.echo(f"index       {settings.index_dir} ({manifest.generation})")
    click.echo(f"built       {manifest.built_at} from {manifest.corpus_root}")
    click.echo(f"documents   {manifest.documents} ({manifest.skipped} files skipped)")
    if manifest.changes:
        took = manifest.changes.get("added", 0) + manifest.changes.get("modified", 0)
        click.echo(
            f"last build  took in {took} documents, removed {manifest.changes.get('removed', 0)}"
        )
    click.echo(f"chunks      {manifest.chunks}")
    click.echo(f"model       {manifest.encoder_name} ({manifest.dim} dimensions)")
    if manifest.encoder.get("export"):
        click.echo(f"export      {manifest.encoder['export']} (in {settings.encoder_cache})")
    click.echo(f"dense index {manifest.index_type}, {manifest.metric}")
    bm25 = manifest.keyword
    click.echo(
        f"keyword     BM25 k1={bm25.get('k1')} b={bm25.get('b')}, "
        f"code names split: {split_mode(bm25)}"
    )
    if manifest.store:
        click.echo(
            f"store       Milvus collection {manifest.store.get('collection')} "
            f"on {manifest.store.get('uri')}"
        )
    categories = ", ".join(f"{c or '(top level)'} {n}" for c, n in index.db.categories())
    click.echo(f"categories  {categories}")
    click.echo(f"corpus      {corpus}: {freshness}")


def _list_contents(index: IndexReader, *, documents: bool, skipped: bool, as_json: bool) -> None:
    if documents:
        for doc in index.db.catalog():
            if as_json:
                _echo_json(asdict(doc))
            else:
                click.echo(f"{doc.source}\t{doc.format}\t{doc.passages}\t{doc.title}")
    if skipped:
        for source, reason in index.db.record().skipped:
            if as_json:
                _echo_json({"source": source, "reason": reason})
            else:
                click.echo(f"{source}\t{reason}")


@cli.command("eval")
@click.option(
    "--questions",
    "question_files",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    multiple=True,
    help="Question set (JSON lines) to score against --index; repeatable.  "
    "[default: benchmarks/questions.jsonl unless --beir is given]",
)
@click.option(
    "--beir",
    "beir_dirs",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    multiple=True,
    help="BEIR dataset folder (corpus.jsonl, queries.jsonl, qrels/); repeatable.",
)
@click.option("--split", "splits", multiple=True, help="qrels split(s) to score.  [default: test]")
@click.option(
    "--work",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("benchmarks/data/beir"),
    help="Where BEIR indexes are built and kept (<work>/<dataset>-index), so reruns reuse them.",
)
@_INDEX
@click.option(
    "--mode",
    "modes",
    type=click.Choice(SEARCH_MODES),
    multiple=True,
    help="Mode(s) to evaluate.  [default: all three]",
)
@_BACKEND
@_STORE
@_MILVUS_URI
@_RERANKER
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write all results as one JSON file.",
)
@click.option(
    "--plot",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write a PNG of BEIR nDCG@10 per mode beside the published figures.",
)
@click.option(
    "--whole-documents",
    is_flag=True,
    help="Also score MTEB's dense protocol on BEIR sets (each document embedded whole, cut "
    "by the model; exact inner product), which checks the model against MTEB's figures.",
)
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per result.")
def evaluate(
    question_files: tuple[Path, ...],
    beir_dirs: tuple[Path, ...],
    splits: tuple[str, ...],
    work: Path,
    index_dir: Path | None,
    modes: tuple[SearchMode, ...],
    backend: str | None,
    store: str | None,
    milvus_uri: str | None,
    reranker: str | None,
    out: Path | None,
    plot: Path | None,
    whole_documents: bool,
    quiet: bool,
    as_json: bool,
) -> None:
    """Score retrieval per mode on question sets (hit@k, MRR@10, follow-ups alone vs folded)
    and on BEIR datasets (nDCG@10, Recall@10, Recall@100, MRR@10, index build time).

    A BEIR corpus is indexed with the same build as any corpus, into --work, and rebuilt
    incrementally on later runs.

    \b
    Example:
        nexus eval --questions benchmarks/questions.jsonl --mode hybrid
        nexus eval --beir ../shared/benchmarks/scifact --split train --split test \\
            --out benchmarks/results/beir.json --plot benchmarks/results/beir.png
    """
    from .evaluation import (
        build_beir_index,
        evaluate_answers,
        evaluate_beir,
        evaluate_conversation,
        evaluate_questions,
        evaluate_whole_documents,
        load_questions,
        plot_beir,
    )
    from .ingest.beir import load_beir
    from .search.answer import relevance_floor
    from .search.assistant import Assistant

    settings = _settings(
        index_dir=index_dir,
        backend=backend,
        store=store,
        milvus_uri=milvus_uri,
        reranker=reranker,
    )
    modes = modes or SEARCH_MODES
    if not question_files and not beir_dirs:
        question_files = (Path("benchmarks/questions.jsonl"),)
    report: dict[str, Any] = {"settings": _search_settings(settings), "questions": [], "beir": []}
    try:
        if question_files:
            nexus = Assistant.load(settings.index_dir, settings=settings)
            for path in question_files:
                qs = load_questions(path)
                for mode in modes:
                    scores = evaluate_questions(nexus, qs, mode)
                    talk = evaluate_conversation(nexus, qs, mode)
                    floor = relevance_floor(nexus.manifest.encoder_name)
                    answers = evaluate_answers(nexus, qs, mode, min_relevance=floor)
                    row = {
                        "file": str(path),
                        **asdict(scores),
                        "conversation": asdict(talk),
                        "answers": asdict(answers),
                    }
                    row["keyword"] = nexus.index.manifest.keyword  # the BM25 it was built with
                    report["questions"].append(row)
                    _show_questions(row, as_json)
        beir_scores = []
        for folder in beir_dirs:
            target = work / f"{folder.name}-index"
            built = build_beir_index(folder, target, settings=settings, progress=not quiet)
            click.echo(built.summary(), err=True)
            nexus = Assistant.load(target, settings=settings)
            for split in splits or ("test",):
                dataset = load_beir(folder, split)
                results = evaluate_beir(nexus, dataset, modes, progress=not quiet)
                if whole_documents:
                    cache = target / "whole-documents.npz"
                    results.append(evaluate_whole_documents(nexus, dataset, cache))
                for result in results:
                    beir_scores.append(result)
                    row = {**asdict(result), "build": asdict(built)}
                    row["keyword"] = nexus.index.manifest.keyword
                    report["beir"].append(row)
                    _show_beir(row, as_json)
        if plot is not None and beir_scores:
            plot_beir(beir_scores, plot)
    except AssistantError as exc:
        raise click.ClickException(str(exc)) from exc
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")


def _search_settings(settings: Settings) -> dict[str, Any]:
    """The settings that decide a ranking, recorded with every result."""
    names = (
        "store",
        "model",
        "chunk_tokens",
        "chunk_overlap",
        "min_chunk_tokens",
        "candidates",
        "fusion",
        "keyword_weight",
        "keyword_peak_low",
        "keyword_peak_high",
        "rrf_k",
        "heading_weight",
        "document_weight",
        "document_passages",
        "context_chunks",
        "reranker",
    )
    return {name: getattr(settings, name) for name in names}


def _show_questions(row: dict[str, Any], as_json: bool) -> None:
    if as_json:
        _echo_json(row)
        return
    hit, passage = row["hit_at"], row["passage_hit_at"]
    follow, change = row["conversation"]["follow_ups"], row["conversation"]["topic_changes"]
    answers = row["answers"]
    click.echo(
        f"{row['file']}  {row['mode']:<8} {row['questions']:>4} questions\n"
        f"  documents  hit@1 {hit[1]:.3f}  hit@3 {hit[3]:.3f}  hit@5 {hit[5]:.3f}  "
        f"hit@10 {hit[10]:.3f}  MRR@10 {row['mrr_at_10']:.3f}\n"
        f"  passages   hit@1 {passage[1]:.3f}  hit@3 {passage[3]:.3f}  hit@5 {passage[5]:.3f}  "
        f"hit@10 {passage[10]:.3f}  MRR@10 {row['passage_mrr_at_10']:.3f}\n"
        f"  follow-ups ({follow['questions']}) MRR@10 alone {follow['alone']['mrr@10']:.3f}, "
        f"in chat {follow['with_context']['mrr@10']:.3f}  |  topic changes ({change['questions']}) "
        f"alone {change['alone']['mrr@10']:.3f}, in chat {change['with_context']['mrr@10']:.3f}\n"
        f"  answers    key term quoted {answers['quoted']:.3f}  refused "
        f"{len(answers['refused_answerable'])} of {answers['questions']} answerable, answered "
        f"{len(answers['answered_no_answer'])} of {answers['no_answer']} without an answer "
        f"(flagged weak: {len(answers['weak_answerable'])} and "
        f"{len(answers['weak_no_answer'])})"
    )


def _show_beir(row: dict[str, Any], as_json: bool) -> None:
    if as_json:
        _echo_json(row)
        return
    click.echo(
        f"{row['dataset']} {row['split']:<5} {row['mode']:<14} {row['queries']:>5} queries  "
        f"nDCG@10 {row['ndcg_at_10']:.4f}  R@10 {row['recall_at_10']:.4f}  "
        f"R@100 {row['recall_at_100']:.4f}  MRR@10 {row['mrr_at_10']:.4f}  "
        f"({row['seconds']:.0f}s)"
    )


@cli.command()
@_INDEX
@click.option(
    "--corpus",
    "corpus_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Corpus the index is built from and kept in step with.  [default: corpus]",
)
@click.option("--host", default="127.0.0.1", help="Interface to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=7860, help="Port to listen on.")
@click.option("--no-build", is_flag=True, help="Serve the index as it is, even if stale.")
@_STORE
@_MILVUS_URI
@_RERANKER
@click.option(
    "--allow-rebuild",
    is_flag=True,
    help="Show a Rebuild index button (needs a login unless serving on localhost).",
)
@click.option(
    "--feedback",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("feedback.jsonl"),
    help="File that thumbs up/down votes are appended to.",
)
@click.option(
    "--watch",
    is_flag=True,
    help="Update the index whenever files under the corpus change, while serving.",
)
@click.option(
    "--collection",
    "collection_specs",
    metavar="NAME=INDEX",
    multiple=True,
    envvar=COLLECTIONS_ENV,
    help="Serve this index as collection NAME; repeatable, the first is the default. Each is "
    "kept in step with the corpus its index was built from.  [$NEXUS_COLLECTIONS: NAME=INDEX "
    "pairs separated by commas]",
)
@click.option(
    "--log-format",
    type=click.Choice(LOG_FORMATS),
    default="text",
    envvar=LOG_FORMAT_ENV,
    help="How log lines look on stderr: text for people, or json (one object a line, one line "
    f"per request with its id) for a log collector.  [${LOG_FORMAT_ENV}]",
)
def serve(
    index_dir: Path | None,
    corpus_dir: Path | None,
    host: str,
    port: int,
    no_build: bool,
    store: str | None,
    milvus_uri: str | None,
    reranker: str | None,
    allow_rebuild: bool,
    feedback: Path,
    watch: bool,
    collection_specs: tuple[str, ...],
    log_format: LogFormat,
) -> None:
    """Serve the chat UI, the MCP tools and the REST API; builds or updates the index first.

    Set NEXUS_AUTH_USER and NEXUS_AUTH_PASSWORD to require a login on every page and API,
    the Prometheus metrics at /metrics included.

    \b
    Example:
        nexus serve --corpus corpus --index index --port 7860 --watch
        nexus serve --collection hub=index --collection django=/srv/django-index
        curl 'http://127.0.0.1:7860/api/search?q=cache+invalidation&k=3'
    """
    import os

    from .config import parse_collections
    from .web.server import auth_from_env
    from .web.server import serve as run_server

    settings = _settings(
        corpus_dir=corpus_dir,
        index_dir=index_dir,
        store=store,
        milvus_uri=milvus_uri,
        reranker=reranker,
    )
    if logging.getLogger().level > logging.INFO:
        logging.getLogger("assistant").setLevel(logging.INFO)
    try:
        collections = parse_collections(collection_specs) or None
        if collections and (corpus_dir or index_dir):
            raise click.ClickException(
                "--corpus and --index name the one index to serve; with --collection, each "
                "index is updated from the corpus it was built from"
            )
        auth = auth_from_env(os.environ)
        run_server(
            settings,
            host=host,
            port=port,
            build=not no_build,
            feedback_log=feedback,
            auth=auth,
            allow_rebuild=allow_rebuild,
            watch=watch,
            collections=collections,
            log_format=log_format,
        )
    except AssistantError as exc:
        raise click.ClickException(str(exc)) from exc


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code instead of exiting."""
    try:
        cli.main(
            args=list(argv) if argv is not None else None, prog_name="nexus", standalone_mode=False
        )
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return 1
    except click.exceptions.Exit as exc:
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
