"""Build and query benchmark on a corpus nobody here wrote: the docs/ folder of Django 5.2.19.

Measures, in one process and one run: full build time per stage, the floor (plain
``SentenceTransformer.encode`` of the same chunk texts with the same model object), an
incremental rebuild after one file changes, index load time, warm query latency (p50/p95 over
varied questions, each asked once so no cache helps) and peak memory.

Usage::

    .venv/bin/python benchmarks/django_docs.py [--work benchmarks/data] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

DJANGO = "django==5.2.19"

QUESTIONS = [
    "How do I add a custom manager to a model?",
    "what does select_related do",
    "difference between prefetch_related and select_related",
    "How can I run raw SQL queries?",
    "make a field optional in a model form",
    "How do I write a data migration?",
    "squash migrations",
    "reverse a migration",
    "how to serve static files in production",
    "configure the cache backend to use Redis",
    "per-view caching decorator",
    "template fragment caching",
    "How do I write custom middleware?",
    "order of middleware matters?",
    "CSRF token missing in ajax request",
    "protect against clickjacking",
    "How do I send email with Django?",
    "set up logging to a file",
    "custom user model with email as username",
    "how do permissions and groups work",
    "log a user in programmatically",
    "password hashing algorithms supported",
    "class-based views vs function views",
    "paginate a list of objects in a view",
    "return JSON from a view",
    "upload files and store them",
    "Serve media files during development",
    "how to write a custom template tag",
    "autoescaping in templates",
    "translate strings in Python code",
    "time zones and aware datetimes",
    "run tests with a test database",
    "test client post request",
    "LiveServerTestCase selenium",
    "database transactions atomic block",
    "select_for_update row locking",
    "aggregate and annotate querysets",
    "F expressions to avoid race conditions",
    "Q objects for OR queries",
    "full text search with PostgreSQL",
    "connect to multiple databases and route queries",
    "signals post_save receiver",
    "write a custom management command",
    "deploy with gunicorn and WSGI",
    "ASGI deployment with uvicorn",
    "async views and the ORM",
    "settings for security in production checklist",
    "SECRET_KEY rotation",
    "the admin site customize list display",
    "add search to the admin changelist",
    "model inheritance abstract base classes",
    "proxy models",
    "unique constraint across two fields",
    "database indexes on models Meta",
    "generic relations contenttypes",
    "session backends and cookies",
    "message framework flash messages",
    "form validation clean method",
    "formsets for editing several objects",
    "URL namespaces and reverse",
    "path converters in URLconf",
    "sitemaps framework",
    "syndication feeds RSS",
    "geographic queries GeoDjango distance",
    "how to contribute a patch to Django",
]


def fetch_docs(work: Path) -> Path:
    """Django's docs/ folder, downloaded once as the source distribution from PyPI."""
    docs = work / "django-docs"
    if docs.is_dir():
        return docs
    work.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--no-binary",
            ":all:",
            DJANGO,
            "-d",
            str(work),
            "-q",
        ],
        check=True,
    )
    archive = next(work.glob("django-5.2.19.tar.gz"))
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if "/docs/" in m.name]
        tar.extractall(work / "extract", members=members, filter="data")
    next((work / "extract").glob("*/docs")).rename(docs)
    return docs


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def report(results: dict[str, Any], path: Path | None) -> None:
    """Print a benchmark's results as JSON, and record them in ``path`` when one is given."""
    output = json.dumps(results, indent=2)
    print(output)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(output + "\n", encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, default=Path("benchmarks/data"))
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    from assistant import Assistant, Settings, build_index
    from assistant.embedding import SentenceTransformerEncoder
    from assistant.store import open_index

    docs = fetch_docs(args.work)
    index_dir = args.work / "django-index"
    settings = Settings()
    results: dict[str, object] = {"corpus": f"{DJANGO} docs/"}

    tick = time.perf_counter()
    encoder = SentenceTransformerEncoder(settings.model)
    results["model_load_s"] = round(time.perf_counter() - tick, 2)

    report = build_index(docs, index_dir, settings=settings, encoder=encoder, full=True)
    results["documents"] = report.documents
    results["chunks"] = report.chunks
    results["skipped"] = len(report.skipped)
    results["full_build_stages_s"] = report.seconds
    build_s = report.seconds["total"] - report.seconds["model"]

    index = open_index(index_dir)
    ids = list(range(index.manifest.chunks))
    chunks = index.chunks(ids)
    texts = [chunks[i].embed_text for i in ids]
    tokens = sum(encoder.count_tokens(texts))
    tick = time.perf_counter()
    encoder._model.encode(texts, batch_size=settings.batch_size, normalize_embeddings=True)
    floor_s = time.perf_counter() - tick
    results["encode_floor_s"] = round(floor_s, 2)
    results["full_build_s"] = round(build_s, 2)
    results["overhead_vs_floor"] = round(build_s / floor_s - 1, 4)
    # The embed stage repeats the floor's work exactly, so everything else is the true
    # overhead; it is also the figure least disturbed by this machine's timing noise.
    non_embedding = build_s - report.seconds["embed"]
    results["non_embedding_s"] = round(non_embedding, 2)
    results["non_embedding_share_of_floor"] = round(non_embedding / floor_s, 4)
    results["tokens"] = tokens
    results["chunks_per_s"] = round(len(texts) / floor_s, 1)
    results["tokens_per_s"] = round(tokens / floor_s, 0)

    touched = docs / "topics" / "cache.txt"
    original = touched.read_text(encoding="utf-8")
    # One edited paragraph in the body, as a maintainer fixing a sentence would.
    edited = original.replace("That's where caching comes in.", "That is where caching helps.", 1)
    assert edited != original
    touched.write_text(edited, encoding="utf-8")
    try:
        incremental = build_index(docs, index_dir, settings=settings, encoder=encoder)
    finally:
        touched.write_text(original, encoding="utf-8")
    results["incremental"] = {
        "seconds": incremental.seconds["total"],
        "embedded": incremental.embedded,
        "reused": incremental.reused,
        "share_of_full_build": round(incremental.seconds["total"] / build_s, 4),
    }

    tick = time.perf_counter()
    nexus = Assistant.load(index_dir, settings=settings, encoder=encoder)
    results["index_load_s"] = round(time.perf_counter() - tick, 3)

    for warm in ("warm-up question one", "warm-up question two"):
        nexus.search(warm)
    latencies: dict[str, list[float]] = {"hybrid": [], "semantic": [], "keyword": []}
    for mode in latencies:
        for question in QUESTIONS:
            query = f"{question} ({mode})" if mode != "keyword" else question
            tick = time.perf_counter()
            nexus.search(query, k=10, mode=mode)  # type: ignore[arg-type]
            latencies[mode].append((time.perf_counter() - tick) * 1000)
    results["query_ms"] = {
        mode: {
            "questions": len(values),
            "p50": round(statistics.median(values), 2),
            "p95": round(percentile(values, 95), 2),
        }
        for mode, values in latencies.items()
    }
    results["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    report(results, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
