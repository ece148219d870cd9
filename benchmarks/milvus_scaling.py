"""FAISS against Milvus (milvus-lite) at 100k+ vectors: build, latency, recall, memory.

The vectors are the scaling benchmark's synthetic set (``benchmarks.scaling``: points
between real all-MiniLM-L6-v2 chunk vectors, shaped like them), read back from the exact index
that benchmark keeps under ``benchmarks/data/scaling/<size>/exact.faiss`` (or the first
``size`` vectors of a larger set); the queries are its 403 real questions. Each store runs in
a fresh process, so its memory is its own, and is used the way the app uses it:

- FAISS: ``FaissStore.build`` with the automatic choice (``IVF<~sqrt n>,SQ8``, 32 lists
  probed) and ``KeywordIndex.build`` (bm25s) over the same synthetic texts Milvus gets,
  both written to files.
- Milvus: ``MilvusCollection`` creates the collection Nexus builds (vector, BM25 text,
  source), upserts every row in batches of 1,000 with a synthetic 60-word text (words drawn
  from a Zipf-like vocabulary, so the BM25 function has work like real chunks give it), and
  asks for ``milvus_index_spec``'s index (``IVF_SQ8``, the same lists and probes).

Build time runs until the first search can be served. Latency is one question at a time for
100 neighbours (what hybrid search asks of the dense side), after 20 warm-up questions;
recall@10 compares the first ten with exact search; keyword latency is a BM25 search for
three vocabulary words (bm25s for FAISS, the collection's BM25 for Milvus). Memory is the
process's peak and final resident set (``VmHWM``, ``VmRSS``) minus what it held before
building (the vectors themselves, read for both), and the size on disk of what the store
wrote.

Usage (from the repository root)::

    .venv/bin/python -m benchmarks.milvus_scaling --size 100000 --json OUT.json
    .venv/bin/python -m benchmarks.milvus_scaling --size 300000 --queries 100 --json OUT.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import WORK, percentile, recall, report, run_json

SCALING = WORK / "scaling"  # what benchmarks.scaling keeps
CANDIDATES = 100
WORDS_PER_TEXT = 60
VOCABULARY = 20_000


def status() -> dict[str, int]:
    """Resident memory now and at its peak, in MB."""
    lines = Path("/proc/self/status").read_text().splitlines()
    fields = dict(line.split(":", 1) for line in lines)
    return {k: int(fields[k].split()[0]) // 1024 for k in ("VmRSS", "VmHWM")}


def disk_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def load_vectors(size: int) -> np.ndarray:
    """The synthetic set of ``size`` vectors, or the first ``size`` of a larger one."""
    import faiss

    kept = sorted(
        int(p.parent.name) for p in SCALING.glob("*/exact.faiss") if p.parent.name.isdigit()
    )
    fits = [n for n in kept if n >= size]
    if not fits:
        raise SystemExit(f"no synthetic set of {size}+ vectors; run benchmarks.scaling first")
    path = SCALING / str(fits[0]) / "exact.faiss"
    index = faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY)
    return np.asarray(index.reconstruct_n(0, size), dtype=np.float32)


def texts(n: int, seed: int = 0) -> list[str]:
    """``n`` texts of words ``w<rank>`` drawn with probability ~ 1/rank (Zipf's law)."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, VOCABULARY + 1)
    words = rng.choice(VOCABULARY, size=(n, WORDS_PER_TEXT), p=weights / weights.sum())
    return [" ".join(f"w{w}" for w in row) for row in words]


def latencies(search: Any, queries: np.ndarray) -> tuple[list[float], np.ndarray]:
    for q in queries[:20]:
        search(q)
    times, found = [], []
    for q in queries:
        tick = time.perf_counter()
        ids = search(q)
        times.append((time.perf_counter() - tick) * 1000)
        found.append(np.pad(ids, (0, CANDIDATES - len(ids)), constant_values=-1))
    return times, np.array(found)


def summary(times: list[float]) -> dict[str, float]:
    return {"p50_ms": round(statistics.median(times), 2), "p95_ms": round(percentile(times, 95), 2)}


def run_faiss(vectors: np.ndarray, queries: np.ndarray, out: Path) -> dict[str, Any]:
    import faiss

    from assistant.stores.keyword import KeywordIndex
    from assistant.stores.vectors import FaissStore, resolve_index_type, search_params

    index_type = resolve_index_type("auto", len(vectors), 15_000)
    corpus = texts(len(vectors))
    tick = time.perf_counter()
    store = FaissStore.build(vectors, index_type, search_params(index_type))
    dense_s = time.perf_counter() - tick
    keyword = KeywordIndex.build(corpus)
    build_s = time.perf_counter() - tick
    store.save(out / "dense.faiss")
    keyword.save(out / "keyword")
    faiss.omp_set_num_threads(1)
    times, found = latencies(lambda q: store.search(q[None, :], CANDIDATES)[1][0], queries)
    keyword_times = []
    for text in keyword_queries(len(queries)):
        tick = time.perf_counter()
        keyword.search(text, CANDIDATES)
        keyword_times.append((time.perf_counter() - tick) * 1000)
    return {
        "index": index_type,
        "dense_build_s": round(dense_s, 1),
        "build_s": round(build_s, 1),
        "disk_bytes": disk_bytes(out / "dense.faiss") + disk_bytes(out / "keyword"),
        "dense": summary(times),
        "keyword": summary(keyword_times),
        "found": found,
    }


def keyword_queries(n: int) -> list[str]:
    """``n`` queries of three words from the 2,000 most common of the vocabulary."""
    rng = np.random.default_rng(1)
    return [" ".join(f"w{w}" for w in rng.integers(0, 2_000, 3)) for _ in range(n)]


def run_milvus(vectors: np.ndarray, queries: np.ndarray, out: Path) -> dict[str, Any]:
    from assistant.ingest.chunking import Chunk
    from assistant.stores.keyword import KeywordIndex
    from assistant.stores.milvus import MilvusCollection, milvus_index_spec

    uri = out / "milvus.db"
    shutil.rmtree(uri, ignore_errors=True)
    n = len(vectors)
    spec = milvus_index_spec(n, 15_000)
    collection = MilvusCollection(str(uri), "scaling")
    corpus = texts(n)
    tick = time.perf_counter()
    keyword = KeywordIndex.params  # analysed and scored as the app's default keyword index
    collection.create(vectors.shape[1], "synthetic", spec, keyword)
    step = 50_000
    for start in range(0, n, step):
        chunks = [
            Chunk(f"doc{i // 4}", "", "", (), corpus[i], 0, 0)
            for i in range(start, min(start + step, n))
        ]
        keys = np.arange(start, start + len(chunks), dtype=np.int64)
        collection.upsert(keys, vectors[start : start + len(chunks)], chunks, keyword)
        print(
            f"upserted {start + len(chunks)} in {time.perf_counter() - tick:.0f}s",
            file=sys.stderr,
            flush=True,
        )
    upsert_s = time.perf_counter() - tick
    collection.flush()
    collection.load()
    collection.search(queries[0], CANDIDATES, field="vector", params=spec.search)
    build_s = time.perf_counter() - tick

    def dense(q: np.ndarray) -> np.ndarray:
        return collection.search(q, CANDIDATES, field="vector", params=spec.search)[0]

    times, found = latencies(dense, queries)
    keyword_times = []
    for text in keyword_queries(len(queries)):
        tick = time.perf_counter()
        collection.search(text, CANDIDATES, field="sparse")
        keyword_times.append((time.perf_counter() - tick) * 1000)
    return {
        "index": spec.index_type,
        "index_params": spec.params,
        "search_params": spec.search,
        "upsert_s": round(upsert_s, 1),
        "build_s": round(build_s, 1),
        "disk_bytes": disk_bytes(uri),
        "dense": summary(times),
        "keyword": summary(keyword_times),
        "found": found,
    }


def run(store: str, size: int, n_queries: int) -> dict[str, Any]:
    """One store at one size, in this process; prints a JSON line."""
    import faiss

    vectors = load_vectors(size)
    queries = np.load(SCALING / "questions-403.npy")[:n_queries]
    _, truth = faiss.knn(queries, vectors, CANDIDATES, metric=faiss.METRIC_INNER_PRODUCT)
    out = SCALING / str(size) / f"store-{store}"
    out.mkdir(parents=True, exist_ok=True)
    before = status()
    result = (run_faiss if store == "faiss" else run_milvus)(vectors, queries, out)
    after = status()
    found = result.pop("found")
    result.update(
        store=store,
        vectors=size,
        queries=len(queries),
        recall_at_10=round(recall(found, truth, 10), 4),
        memory_mb={
            "vectors_and_libraries": before["VmRSS"],
            "peak_above_that": after["VmHWM"] - before["VmRSS"],
            "resident_above_that": after["VmRSS"] - before["VmRSS"],
        },
    )
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, required=True)
    parser.add_argument("--stores", default="faiss,milvus")
    parser.add_argument(
        "--queries", type=int, default=403, help="questions timed (milvus-lite: ~1 s each at 300k)"
    )
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--one", choices=("faiss", "milvus"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(run(args.one, args.size, args.queries)), flush=True)
        return 0
    rows = []
    for store in args.stores.split(","):
        command = [sys.executable, "-m", "benchmarks.milvus_scaling", "--size", str(args.size)]
        rows.append(run_json([*command, "--queries", str(args.queries), "--one", store]))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    report({"vectors": args.size, "dim": 384, "cores": 2, "results": rows}, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
