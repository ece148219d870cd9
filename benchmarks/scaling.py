"""How the dense index scales: build time, memory, latency and recall at 10k, 100k and 1M vectors.

Vectors are synthetic but shaped like the real thing. Each one is a point between a real
all-MiniLM-L6-v2 chunk vector (from the Django docs index) and one of its ten nearest real
neighbours, plus noise drawn from the real vectors' own covariance, then normalized. Uniform
random vectors would be the wrong test: in 384 dimensions all their distances look alike, which
makes approximate search look far worse than on text embeddings, whose variance sits in a few
dozen directions (the top 50 of 384 carry two thirds of it here). Copies of real vectors would
be wrong the other way (exact duplicates are trivially found). The noise scale is set so a
synthetic set of the real set's size has the same nearest-neighbour cosines as the real set;
the script prints both so the match can be checked. Queries are real questions (the project's
question sets and the Django benchmark's), embedded with the same model.

Every index is built with the store's own ``FaissStore.build`` and searched the way the app
searches: one question at a time, for ``Settings().candidates`` (100) neighbours, one thread.
Recall@10 compares the first ten of those with exact search.

Usage (from the repository root)::

    .venv/bin/python -m benchmarks.scaling --size 100000 --json OUT.json
    .venv/bin/python -m benchmarks.scaling load --size 100000 --json OUT.json
    .venv/bin/python -m benchmarks.scaling open --index benchmarks/data/django-index

The first form builds and measures; it also keeps each index file under
``benchmarks/data/scaling/<size>/`` for the second, which times opening them in fresh
processes, read fully into memory versus memory-mapped. The third times ``open_index`` on a
whole index folder in fresh processes.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import (
    DJANGO_INDEX,
    DJANGO_QUESTIONS,
    QUESTION_SETS,
    WORK,
    percentile,
    recall,
    report,
    run_json,
    shown,
)

SOURCE_INDEX = DJANGO_INDEX
SCALING = WORK / "scaling"
DIM = 384
NEIGHBOURS = 10  # a synthetic vector lies between a real one and one of these neighbours
MIX = 0.5  # at most this far along the way to the neighbour
NOISE = 0.4  # relative to a typical centred vector; calibrated against the real set
CANDIDATES = 100  # what retrieval asks the dense index for (Settings().candidates)
EF_SEARCH = (64, 128, 256)
NPROBE = (4, 8, 16, 32, 64)
RAW_BYTES = 4 * DIM


# --------------------------------------------------------------------------- data


def real_vectors(index_dir: Path) -> np.ndarray:
    from assistant.stores import open_index

    index = open_index(index_dir)
    try:
        vectors = index.stored_vectors()
        if vectors is None:
            raise SystemExit(f"{index_dir} keeps no vectors of its own (a Milvus replica)")
        return np.array(vectors, dtype=np.float32)
    finally:
        index.close()


def synthetic(real: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``n`` normalized vectors that look like ``real`` at every scale (see module docstring)."""
    import faiss

    flat = faiss.IndexFlatIP(real.shape[1])
    flat.add(real)
    _, neighbours = flat.search(real, NEIGHBOURS + 1)
    centred = real - real.mean(axis=0)
    eigenvalues, eigenvectors = np.linalg.eigh(np.cov(centred.T))
    shape = (eigenvectors * np.sqrt(np.clip(eigenvalues, 0, None))).T.astype(np.float32)
    scale = math.sqrt(float(eigenvalues.sum()))
    rng = np.random.default_rng(seed)
    out = np.empty((n, real.shape[1]), dtype=np.float32)
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        i = rng.integers(0, len(real), m)
        j = neighbours[i, rng.integers(1, NEIGHBOURS + 1, m)]
        t = rng.uniform(0, MIX, (m, 1)).astype(np.float32)
        noise = rng.standard_normal((m, real.shape[1]), dtype=np.float32) @ shape
        v = (1 - t) * real[i] + t * real[j] + (NOISE / scale) * noise
        out[start : start + m] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out


def neighbour_cosines(vectors: np.ndarray, sample: int = 2000) -> dict[str, list[float]]:
    """Quantiles (10/50/90 %) of each vector's 1st and 10th nearest-neighbour cosine."""
    import faiss

    flat = faiss.IndexFlatIP(vectors.shape[1])
    flat.add(vectors)
    scores, _ = flat.search(vectors[:sample], 11)
    return {
        "nn1": np.quantile(scores[:, 1], [0.1, 0.5, 0.9]).round(3).tolist(),
        "nn10": np.quantile(scores[:, 10], [0.1, 0.5, 0.9]).round(3).tolist(),
    }


def question_vectors() -> np.ndarray:
    """Real questions embedded with the default model; cached, as encoding needs the model."""
    texts = list(DJANGO_QUESTIONS)
    for path in QUESTION_SETS:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                texts.append(json.loads(line)["question"])
    cache = SCALING / f"questions-{len(texts)}.npy"
    if cache.exists():
        return np.load(cache)
    from assistant import Settings
    from assistant.encoders import load_encoder

    vectors = load_encoder(Settings()).encode(texts, kind="query")
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.save(cache, vectors)
    return vectors


# --------------------------------------------------------------------------- measuring


def candidates(n: int) -> list[tuple[str, str, list[dict[str, int]]]]:
    """(label, factory string, search-parameter settings to sweep) for a corpus of ``n``."""
    nlist = 2 ** round(math.log2(math.sqrt(n)))  # lists of about sqrt(n) vectors each
    sweeps = [{"nprobe": p} for p in NPROBE if p < nlist]
    return [
        ("exact", "Flat", [{}]),
        ("hnsw", "HNSW32", [{"efSearch": ef} for ef in EF_SEARCH]),
        ("ivf-flat", f"IVF{nlist},Flat", sweeps),
        ("ivf-sq8", f"IVF{nlist},SQ8", sweeps),
        ("ivf-pq", f"IVF{nlist},PQ48", sweeps),
    ]


def time_queries(store: Any, queries: np.ndarray) -> tuple[list[float], np.ndarray]:
    """Per-query latency (ms) asking for ``CANDIDATES`` neighbours, after one warm-up pass."""
    for q in queries[:20]:
        store.search(q[None, :], CANDIDATES)
    latencies, found = [], []
    for q in queries:
        tick = time.perf_counter()
        _, ids = store.search(q[None, :], CANDIDATES)
        latencies.append((time.perf_counter() - tick) * 1000)
        found.append(ids[0])
    return latencies, np.array(found)


def exact_neighbours(vectors: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Ids of the true top ``CANDIDATES`` for every query (batched exact search)."""
    import faiss

    _, ids = faiss.knn(queries, vectors, CANDIDATES, metric=faiss.METRIC_INNER_PRODUCT)
    return ids


def build_hnsw_capped(vectors: np.ndarray, cap_s: float) -> tuple[Any, float, int]:
    """HNSW32 added in slices until done or ``cap_s`` passes: (store, seconds, vectors added)."""
    import faiss

    from assistant.stores.vectors import FaissStore

    index = faiss.index_factory(vectors.shape[1], "HNSW32", faiss.METRIC_INNER_PRODUCT)
    tick = time.perf_counter()
    for start in range(0, len(vectors), 50_000):
        index.add(np.ascontiguousarray(vectors[start : start + 50_000]))
        if time.perf_counter() - tick > cap_s:
            break
    return FaissStore(index), time.perf_counter() - tick, int(index.ntotal)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    import faiss

    from assistant.stores.vectors import FaissStore, search_params

    real = real_vectors(args.source)
    queries = question_vectors()
    vectors = real if args.real else synthetic(real, args.size, seed=args.size)
    n = len(vectors)
    out_dir = SCALING / ("real" if args.real else str(n))
    out_dir.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {
        "vectors": n,
        "dim": DIM,
        "data": "real Django-docs vectors" if args.real else "synthetic, from real vectors",
        "queries": len(queries),
        "candidates": CANDIDATES,
        "threads_build": faiss.omp_get_max_threads(),
        "threads_query": 1,
        "raw_bytes_per_vector": RAW_BYTES,
    }
    if n <= 20_000:
        result["neighbour_cosines"] = {"this_set": neighbour_cosines(vectors)}
        result["neighbour_cosines"]["real_set"] = neighbour_cosines(real)
    truth = exact_neighbours(vectors, queries)

    rows = []
    for label, factory, sweeps in candidates(n):
        if args.only and label not in args.only:
            continue
        faiss.omp_set_num_threads(args.build_threads)
        partial = None
        tick = time.perf_counter()
        if label == "hnsw" and args.hnsw_cap is not None:
            store, build_s, added = build_hnsw_capped(vectors, args.hnsw_cap)
            if added < n:
                partial = added
        else:
            store = FaissStore.build(vectors, factory)
            build_s = time.perf_counter() - tick
        path = out_dir / f"{label}.faiss"
        FaissStore(store.index, search_params(factory)).save(path)  # as the store saves it
        size = path.stat().st_size
        row: dict[str, Any] = {
            "index": label,
            "factory": factory,
            "build_s": round(build_s, 2),
            "file_bytes": size,
            "bytes_per_vector": round(size / store.size, 1),
            "vs_raw": round(size / store.size / RAW_BYTES, 3),
            "searches": [],
        }
        if partial is not None:
            # Stopped at the time cap: extrapolate n·log(n) and say so.
            row["build_s_measured_for"] = partial
            row["build_s_extrapolated"] = round(
                build_s * (n * math.log(n)) / (partial * math.log(partial)), 0
            )
        faiss.omp_set_num_threads(1)
        for params in sweeps:
            searched = FaissStore(store.index, params)
            latencies, found = time_queries(searched, queries)
            if partial is not None:
                part_truth = exact_neighbours(vectors[:partial], queries)
            else:
                part_truth = truth
            row["searches"].append(
                {
                    "params": params,
                    "p50_ms": round(statistics.median(latencies), 3),
                    "p95_ms": round(percentile(latencies, 95), 3),
                    "recall_at_10": round(recall(found, part_truth, 10), 4),
                    "recall_at_100": round(recall(found, part_truth, 100), 4),
                }
            )
        print(json.dumps(row), file=sys.stderr, flush=True)
        rows.append(row)
        del store
    result["indexes"] = rows
    return result


# --------------------------------------------------------------------------- loading

_LOAD_PROBE = """
import json, sys, time
import numpy as np

def mem():
    fields = dict(l.split(":", 1) for l in open("/proc/self/status"))
    return {k: int(fields[k].split()[0]) // 1024 for k in ("VmRSS", "RssAnon", "RssFile")}

import faiss
from assistant.stores.vectors import FaissStore
faiss.omp_set_num_threads(1)
path, mode = sys.argv[1], sys.argv[2]
queries = np.load(sys.argv[3])[: int(sys.argv[4])]
before = mem()
tick = time.perf_counter()
store = FaissStore(faiss.read_index(path)) if mode == "full" else FaissStore.load(path, mmap=True)
load_s = time.perf_counter() - tick
loaded = mem()
tick = time.perf_counter()
store.search(queries[:1], 100)
first_ms = (time.perf_counter() - tick) * 1000
for q in queries:
    store.search(q[None, :], 100)
after = mem()
print(json.dumps({
    "load_ms": round(load_s * 1000, 2),
    "first_query_ms": round(first_ms, 2),
    "rss_mb_after_load": loaded["VmRSS"] - before["VmRSS"],
    "anon_mb_after_load": loaded["RssAnon"] - before["RssAnon"],
    "rss_mb_after_queries": after["VmRSS"] - before["VmRSS"],
    "anon_mb_after_queries": after["RssAnon"] - before["RssAnon"],
}))
"""


_OPEN_PROBE = """
import json, sys, time
import numpy as np

def mem():
    fields = dict(l.split(":", 1) for l in open("/proc/self/status"))
    return {k: int(fields[k].split()[0]) // 1024 for k in ("VmRSS", "RssAnon")}

import bm25s, faiss, sqlite3
from assistant.stores import open_index
query = np.load(sys.argv[2])[0]
before = mem()
tick = time.perf_counter()
index = open_index(sys.argv[1], repair=False)
open_s = time.perf_counter() - tick
opened = mem()
tick = time.perf_counter()
ids, _ = index.dense_search(query, 100)
index.db.chunks([int(i) for i in ids[:5]])
first_s = time.perf_counter() - tick
print(json.dumps({
    "open_ms": round(open_s * 1000, 2),
    "first_search_ms": round(first_s * 1000, 2),
    "rss_mb_after_open": opened["VmRSS"] - before["VmRSS"],
    "anon_mb_after_open": opened["RssAnon"] - before["RssAnon"],
}))
"""


def measure_open(args: argparse.Namespace) -> dict[str, Any]:
    """Open a whole index folder (``open_index``) in fresh processes, libraries pre-imported."""
    queries = next(SCALING.glob("questions-*.npy"))
    runs = []
    for _ in range(args.repeat):
        runs.append(run_json([sys.executable, "-c", _OPEN_PROBE, str(args.index), str(queries)]))
    return {
        "index": shown(args.index),
        "repeat": args.repeat,
        "median": {key: statistics.median(run[key] for run in runs) for key in runs[0]},
    }


def measure_loading(args: argparse.Namespace) -> dict[str, Any]:
    """Open each index kept by a build run in a fresh process: full read versus mmap.

    The files sit in the page cache (this run does not evict them, as that would disturb
    everything else on the machine), so the times are for a warm cache, a process restart.
    """
    folder = SCALING / ("real" if args.real else str(args.size))
    queries = next(SCALING.glob("questions-*.npy"))
    nq = str(args.queries)
    rows = []
    for path in sorted(folder.glob("*.faiss")):
        row: dict[str, Any] = {"index": path.stem, "file_mb": round(path.stat().st_size / 2**20, 1)}
        for mode in ("full", "mmap"):
            runs = []
            for _ in range(args.repeat):
                probe = [sys.executable, "-c", _LOAD_PROBE, str(path), mode, str(queries), nq]
                runs.append(run_json(probe))
            row[mode] = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
        print(json.dumps(row), file=sys.stderr, flush=True)
        rows.append(row)
    return {"vectors": args.size, "repeat": args.repeat, "queries": args.queries, "indexes": rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("command", nargs="?", choices=["build", "load", "open"], default="build")
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--real", action="store_true", help="use the real vectors as they are")
    parser.add_argument("--source", type=Path, default=SOURCE_INDEX, help="index with real vectors")
    parser.add_argument("--only", nargs="*", help="index labels to run (default: all)")
    parser.add_argument("--hnsw-cap", type=float, default=None, help="stop HNSW adds after S s")
    parser.add_argument("--build-threads", type=int, default=2)
    parser.add_argument("--index", type=Path, default=SOURCE_INDEX, help="folder for `open`")
    parser.add_argument("--queries", type=int, default=403, help="questions per `load` probe")
    parser.add_argument("--repeat", type=int, default=3, help="processes per load measurement")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.command == "open":
        result = measure_open(args)
    elif args.command == "load":
        result = measure_loading(args)
    else:
        result = measure(args)
    report(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
