"""Build and query benchmark on a corpus nobody here wrote: the docs/ folder of Django 5.2.19.

Measures, in one process and one run: full build time per stage, the floor (plain
``SentenceTransformer.encode`` of the same chunk texts, by a second copy of the same weights
loaded once for it), an incremental rebuild after one file changes, index load time, warm
query latency (p50/p95 over varied questions, each asked once so no cache helps) and peak
memory (which includes that second copy of the model).

Usage (from the repository root)::

    .venv/bin/python -m benchmarks.django_docs [--work benchmarks/data] [--json OUT]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from benchmarks.common import DJANGO_QUESTIONS, WORK, percentile, report

DJANGO = "django==5.2.19"


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, default=WORK)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    from sentence_transformers import SentenceTransformer

    from assistant import Assistant, Settings, build_index
    from assistant.encoders.models import model_location
    from assistant.encoders.torch import SentenceTransformerEncoder
    from assistant.stores import open_index

    docs = fetch_docs(args.work)
    index_dir = args.work / "django-index"
    settings = Settings()
    results: dict[str, object] = {"corpus": f"{DJANGO} docs/"}

    tick = time.perf_counter()
    encoder = SentenceTransformerEncoder(settings.model)
    results["model_load_s"] = round(time.perf_counter() - tick, 2)

    built = build_index(docs, index_dir, settings=settings, encoder=encoder, full=True)
    results["documents"] = built.documents
    results["chunks"] = built.chunks
    results["skipped"] = len(built.skipped)
    results["full_build_stages_s"] = built.seconds
    build_s = built.seconds["total"] - built.seconds["model"]

    index = open_index(index_dir)
    ids = list(range(index.manifest.chunks))
    chunks = index.db.chunks(ids)
    index.close()
    texts = [chunks[i].embed_text for i in ids]
    tokens = sum(encoder.count_tokens(texts))
    # The floor: the same weights loaded as a plain SentenceTransformer (off the clock).
    plain = SentenceTransformer(model_location(settings.model), device="cpu")
    tick = time.perf_counter()
    plain.encode(texts, batch_size=settings.batch_size, normalize_embeddings=True)
    floor_s = time.perf_counter() - tick
    del plain
    results["encode_floor_s"] = round(floor_s, 2)
    results["full_build_s"] = round(build_s, 2)
    results["overhead_vs_floor"] = round(build_s / floor_s - 1, 4)
    # The embed stage repeats the floor's work exactly, so everything else is the true
    # overhead; it is also the figure least disturbed by this machine's timing noise.
    non_embedding = build_s - built.seconds["embed"]
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
        for question in DJANGO_QUESTIONS:
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
