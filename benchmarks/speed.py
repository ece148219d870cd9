"""Embedding backends and search speed, measured side by side in one process per section.

Sections (``--only`` picks some; each writes its part of the JSON result):

* ``throughput``: encode the same Django chunks with every backend, in interleaved blocks so
  machine noise falls on all of them alike; chunks/s and word pieces/s.
* ``quality``: SciFact nDCG@10 per backend, the MTEB way (title + " " + text, one vector per
  abstract, exact inner-product search), on the train split (where choices are made) and the
  test split (reported); vectors are cached per backend under ``--work``.
* ``stages``: a full build of the Django docs with every stage real except embedding, whose
  vectors come from the copied index, so the non-embedding stages are timed at full size.
* ``query``: warm ``Assistant.search`` latency over 120 questions per backend, questions
  interleaved across backends, plus the query-embedding share.
* ``cold``: process start to first answer, per backend, in fresh processes.
* ``rest``: ``GET /api/search`` round trips to a running server (``--url``), one client on one
  keep-alive connection, the same questions as ``query``.

Usage (from the repository root; timed sections under the shared lock, one at a time)::

    flock /tmp/nexus-timing.lock .venv/bin/python -m benchmarks.speed --only throughput \\
        --json benchmarks/results/speed-throughput.json

The Django index and docs come from ``benchmarks.django_docs`` (``--django-index``,
``--django-docs``); SciFact from the shared BEIR folder beside the repository (``--scifact``,
or ``NEXUS_SCIFACT``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import (
    BACKENDS,
    BEIR,
    DJANGO_DOCS,
    DJANGO_INDEX,
    DJANGO_QUESTIONS,
    WORK,
    command_line,
    django_texts,
    percentile,
    report,
    run_json,
)

SCIFACT = Path(os.environ.get("NEXUS_SCIFACT", BEIR / "scifact"))
# Varied questions beyond common.DJANGO_QUESTIONS: short keywords, long questions, typos.
MORE_QUESTIONS = [
    "how to define a ManyToManyField with a through model",
    "on_delete CASCADE vs PROTECT",
    "what is a QuerySet and when is it evaluated",
    "values_list flat=True",
    "bulk_create many objects at once",
    "get_or_create race condition",
    "exists() versus count()",
    "how do I use the Subquery and OuterRef expressions",
    "window functions Rank over partition",
    "JSONField lookups on PostgreSQL",
    "database functions Lower Coalesce",
    "custom model field to_python from_db_value",
    "model validation full_clean",
    "ModelForm exclude fields",
    "widget attrs css class on a form field",
    "ClearableFileInput multiple files",
    "CSRF exempt for a webhook view",
    "login_required decorator redirect url",
    "LoginView template name",
    "password reset email flow",
    "custom authentication backend",
    "object-level permissions",
    "middleware that times each request",
    "StreamingHttpResponse large CSV",
    "FileResponse to send a file",
    "HttpResponseRedirect vs redirect shortcut",
    "get_object_or_404",
    "render shortcut context",
    "TemplateView extra context",
    "ListView paginate_by",
    "DetailView slug_field",
    "FormView success_url",
    "generic editing views CreateView UpdateView",
    "mixins for class based views",
    "include another URLconf",
    "re_path regular expressions in urls",
    "custom 404 page handler",
    "template inheritance block extends",
    "built-in template filters date format",
    "custom template filter with arguments",
    "jinja2 backend configuration",
    "STATIC_ROOT collectstatic",
    "ManifestStaticFilesStorage cache busting",
    "STORAGES setting for media on S3",
    "DEFAULT_AUTO_FIELD warning",
    "AppConfig ready method",
    "settings ALLOWED_HOSTS error",
    "DEBUG false static files not served",
    "django-admin startproject layout",
    "manage.py shell_plus alternatives shell",
    "dumpdata loaddata fixtures",
    "test fixtures setUpTestData",
    "override_settings in tests",
    "mock time in tests",
    "assertNumQueries",
    "RequestFactory for view tests",
    "caching with memcached settings",
    "low-level cache API get set",
    "cache_page vary on headers",
    "conditional view processing ETag",
    "GZip middleware compression",
    "security middleware HSTS",
    "content security policy",
    "sql injection protection in raw queries",
    "clickjacking X-Frame-Options",
    "translation of templates trans blocktrans",
    "makemessages compilemessages",
    "locale middleware language prefix in URL",
    "timezone.now vs datetime.now",
    "USE_TZ setting",
    "sending mass email",
    "email backend console for development",
    "signals pre_save to set a slug",
    "custom signal definition",
    "async tasks celery alternative in django",
    "sync_to_async database access",
    "channels websockets",  # not in Django's docs: a question with no good answer
    "django rest framework serializers",  # likewise outside the corpus
    "how do i handel file uplods",  # typos
    "migrashun conflicts merge",  # typos
]
ALL_QUESTIONS = DJANGO_QUESTIONS + MORE_QUESTIONS


_TUNING: dict[str, int] = {}  # batch_size and threads from the command line


def _settings(backend: str, index_dir: Path) -> Any:
    from assistant import Settings

    return Settings(backend=backend, index_dir=index_dir, **_TUNING)


def _encoders(backends: Sequence[str], cache: Path) -> dict[str, Any]:
    from assistant.encoders import load_encoder

    return {b: load_encoder(_settings(b, cache), cache_dir=cache / "encoders") for b in backends}


def throughput(args: argparse.Namespace) -> dict[str, Any]:
    """Chunks/s and word pieces/s per backend on the same texts, blocks interleaved."""
    encoders = _encoders(args.backends, args.work)
    texts = django_texts(args.django_index, args.chunks, as_built=args.as_built)
    tokens = sum(encoders[args.backends[0]].count_tokens(texts))
    for encoder in encoders.values():
        encoder.encode(texts[:8], kind="document")  # first-call setup off the clock
    seconds = dict.fromkeys(args.backends, 0.0)
    # CPU seconds of the whole process: with --threads 1 that is the encoder's own work, which
    # other programs on a shared machine slow down far less than the wall clock.
    cpu = dict.fromkeys(args.backends, 0.0)
    block = 64
    for n, start in enumerate(range(0, len(texts), block)):
        part = texts[start : start + block]
        rotation = args.backends[n % len(args.backends) :] + args.backends[: n % len(args.backends)]
        for backend in rotation:
            tick, cpu_tick = time.perf_counter(), time.process_time()
            encoders[backend].encode(part, kind="document")
            seconds[backend] += time.perf_counter() - tick
            cpu[backend] += time.process_time() - cpu_tick
    base, cpu_base = seconds.get("torch"), cpu.get("torch")
    return {
        "chunks": len(texts),
        "sample": "runs of 32 as a build batches them" if args.as_built else "random",
        "batch_size": args.batch_size,
        "threads": args.threads,
        "word_pieces": tokens,
        "backends": {
            b: {
                "seconds": round(s, 2),
                "chunks_per_s": round(len(texts) / s, 2),
                "word_pieces_per_s": round(tokens / s),
                "speedup_vs_torch": round(base / s, 2) if base else None,
                "cpu_seconds_per_chunk": round(cpu[b] / len(texts), 4),
                "cpu_speedup_vs_torch": round(cpu_base / cpu[b], 2) if cpu_base else None,
            }
            for b, s in seconds.items()
        },
    }


def _ndcg_at_10(ranked: Sequence[str], relevant: dict[str, int]) -> float:
    gains = [relevant.get(doc, 0) for doc in ranked[:10]]
    dcg = sum(g / np.log2(i + 2) for i, g in enumerate(gains))
    ideal = sorted(relevant.values(), reverse=True)[:10]
    idcg = sum(g / np.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def _qrels(scifact: Path, split: str) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    lines = (scifact / "qrels" / f"{split}.tsv").read_text(encoding="utf-8").splitlines()[1:]
    for line in lines:
        query, doc, score = line.split("\t")
        if int(score) > 0:
            out.setdefault(query, {})[doc] = int(score)
    return out


def quality(args: argparse.Namespace) -> dict[str, Any]:
    """nDCG@10 on SciFact per backend; document vectors cached per encoder export."""
    from assistant.encoders import onnx as onnx_encoder

    scifact = args.scifact
    docs = [json.loads(line) for line in (scifact / "corpus.jsonl").open(encoding="utf-8")]
    queries = {
        q["_id"]: q["text"]
        for q in map(json.loads, (scifact / "queries.jsonl").open(encoding="utf-8"))
    }
    splits = {split: _qrels(scifact, split) for split in ("train", "test")}
    if args.scifact_docs < len(docs):
        # Every judged abstract plus a seeded sample of the others: the same corpus for every
        # backend, so the nDCG deltas compare like with like (absolute values run higher).
        judged = {doc for qrels in splits.values() for rel in qrels.values() for doc in rel}
        others = [i for i, d in enumerate(docs) if d["_id"] not in judged]
        rng = np.random.default_rng(0)
        extra = rng.choice(others, size=max(args.scifact_docs - len(judged), 0), replace=False)
        keep = {d["_id"] for d in docs} & judged | {docs[i]["_id"] for i in extra}
        docs = [d for d in docs if d["_id"] in keep]
    ids = [d["_id"] for d in docs]
    texts = [f"{d['title']} {d['text']}".strip() for d in docs]
    results: dict[str, Any] = {"documents": len(docs)}
    variants = [(b, ()) for b in args.backends]
    if "onnx-int8" in args.backends and args.ffn_float_variant:
        variants.append(("onnx-int8", (r"layer\.\d+/output/dense",)))
    vectors: dict[str, np.ndarray] = {}
    for backend, float_matmuls in variants:
        onnx_encoder.INT8_FLOAT_MATMULS = float_matmuls
        label = backend + ("+ffn-out-float" if float_matmuls else "")
        encoder = _encoders([backend], args.work)[backend]
        tag = getattr(encoder, "folder", Path("torch")).name
        cache = args.work / "scifact-vectors" / f"{tag}-{len(docs)}.npy"
        if cache.exists():
            vectors[label] = np.load(cache)
        else:
            tick = time.perf_counter()
            vectors[label] = encoder.encode(texts, kind="document", progress=True)
            print(f"{label}: {len(texts)} documents in {time.perf_counter() - tick:.0f}s")
            cache.parent.mkdir(parents=True, exist_ok=True)
            np.save(cache, vectors[label])
        scores = {}
        for split, qrels in splits.items():
            qids = sorted(qrels)
            qvecs = encoder.encode([queries[q] for q in qids], kind="query")
            top = np.argsort(-(qvecs @ vectors[label].T), axis=1)[:, :10]
            per_query = [
                _ndcg_at_10([ids[i] for i in row], qrels[q])
                for q, row in zip(qids, top, strict=True)
            ]
            scores[split] = {"queries": len(qids), "ndcg@10": round(float(np.mean(per_query)), 4)}
        results[label] = scores
    onnx_encoder.INT8_FLOAT_MATMULS = ()
    reference = vectors.get("onnx", vectors.get("torch"))
    if reference is not None:
        for label, v in vectors.items():
            cosines = np.sum(v * reference, axis=1)
            results[label]["cosine_to_fp32"] = {
                "mean": round(float(cosines.mean()), 5),
                "min": round(float(cosines.min()), 5),
            }
    return results


def _copy_index(source: Path, target: Path) -> Path:
    """A writable copy of the served generation (encoder exports are cached beside it)."""
    from assistant.stores import current_generation
    from assistant.stores.generations import CURRENT

    if not (target / CURRENT).exists():
        generation = current_generation(source)
        target.mkdir(parents=True, exist_ok=True)
        shutil.copytree(generation, target / generation.name)
        (target / CURRENT).write_text(generation.name + "\n", encoding="utf-8")
    return target


class _StoredVectors:
    """Encoder stand-in for the ``stages`` section: the real tokenizer and probe vector, and
    document vectors looked up from an index already built with the same model."""

    def __init__(self, encoder: Any, vectors: dict[str, np.ndarray]) -> None:
        self.encoder, self.vectors = encoder, vectors
        self.name, self.backend = encoder.name, encoder.backend
        self.dim, self.max_tokens = encoder.dim, encoder.max_tokens
        self.missing = 0

    def encode(self, texts: Sequence[str], *, kind: Any, progress: bool = False) -> np.ndarray:
        if len(texts) == 1 and texts[0] not in self.vectors:
            return np.asarray(self.encoder.encode(texts, kind=kind))  # the probe text
        missing = [t for t in texts if t not in self.vectors]
        self.missing += len(missing)
        if missing:
            for text, vector in zip(missing, self.encoder.encode(missing, kind=kind), strict=True):
                self.vectors[text] = vector
        return np.stack([self.vectors[t] for t in texts])

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return list(self.encoder.count_tokens(texts))


def stages(args: argparse.Namespace) -> dict[str, Any]:
    """Every build stage but embedding, timed on a full build of the Django docs."""
    from assistant import Settings, build_index
    from assistant.stores import open_index

    index_dir = _copy_index(args.django_index, args.work / "django-index")
    backend = args.backends[-1]
    encoder = _encoders([backend], index_dir)[backend]
    index = open_index(index_dir)
    ids = list(range(index.manifest.chunks))
    chunks = index.db.chunks(ids)
    vectors = index.vectors_of(ids)
    stored = {chunks[i].embed_text: vectors[i] for i in ids}
    index.close()
    stand_in = _StoredVectors(encoder, stored)
    target = args.work / "django-stages-index"
    shutil.rmtree(target, ignore_errors=True)
    report = build_index(
        args.django_docs, target, settings=Settings(backend=backend), encoder=stand_in, full=True
    )
    shutil.rmtree(target, ignore_errors=True)
    seconds = dict(report.seconds)
    other = {k: v for k, v in seconds.items() if k not in ("total", "embed", "model")}
    return {
        "tokenizer_of": backend,
        "documents": report.documents,
        "chunks": report.chunks,
        "chunks_embedded_for_real": stand_in.missing,
        "seconds": seconds,
        "non_embedding_s": round(sum(other.values()), 2),
    }


def query(args: argparse.Namespace) -> dict[str, Any]:
    """Warm end-to-end search latency per backend over the same questions, interleaved."""
    from assistant import Assistant

    index_dir = _copy_index(args.django_index, args.work / "django-index")
    backends = [b for b in args.backends if b != "onnx-int8"]  # int8 cannot serve fp32 vectors
    assistants = {b: Assistant.load(index_dir, settings=_settings(b, index_dir)) for b in backends}
    for nexus in assistants.values():
        for warm in ("warm-up question one", "warm-up question two", "a third warm-up"):
            nexus.search(warm)
    total = {b: [] for b in backends}
    embed = {b: [] for b in backends}
    for n, question in enumerate(ALL_QUESTIONS):
        rotation = backends[n % len(backends) :] + backends[: n % len(backends)]
        for backend in rotation:
            nexus = assistants[backend]
            tick = time.perf_counter()
            nexus.encoder.encode([question + " ?"], kind="query")
            embed[backend].append((time.perf_counter() - tick) * 1000)
            tick = time.perf_counter()
            nexus.search(question, k=10)
            total[backend].append((time.perf_counter() - tick) * 1000)
    return {
        "questions": len(ALL_QUESTIONS),
        "index_chunks": assistants[backends[0]].manifest.chunks,
        "backends": {
            b: {
                "search_ms": {
                    "p50": round(statistics.median(total[b]), 2),
                    "p95": round(percentile(total[b], 95), 2),
                },
                "embed_query_ms": {
                    "p50": round(statistics.median(embed[b]), 2),
                    "p95": round(percentile(embed[b], 95), 2),
                },
            }
            for b in backends
        },
    }


_COLD = """
import time, json, sys
start = time.perf_counter()
from assistant import Assistant, Settings
imported = time.perf_counter()
nexus = Assistant.load(sys.argv[1], settings=Settings(backend=sys.argv[2]))
loaded = time.perf_counter()
nexus.search("How do I write a data migration?")
done = time.perf_counter()
print(json.dumps({"import_s": imported - start, "load_s": loaded - imported,
                  "first_search_s": done - loaded}), flush=True)
"""


def cold(args: argparse.Namespace) -> dict[str, Any]:
    """Process start to first answer: interpreter, imports, model and index load, one search."""
    index_dir = _copy_index(args.django_index, args.work / "django-index")
    backends = [b for b in args.backends if b != "onnx-int8"]
    runs: dict[str, list[dict[str, float]]] = {b: [] for b in backends}
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    for _ in range(args.cold_runs):
        for backend in backends:
            tick = time.perf_counter()
            out = run_json([sys.executable, "-c", _COLD, str(index_dir), backend], env=env)
            runs[backend].append({**out, "process_s": time.perf_counter() - tick})
    return {
        b: {key: round(statistics.median(r[key] for r in rs), 2) for key in rs[0]}
        for b, rs in runs.items()
    }


def rest(args: argparse.Namespace) -> dict[str, Any]:
    """Round trips of ``GET /api/search`` to a running server, one client, one connection."""
    import http.client
    import urllib.parse

    if not args.url:
        raise SystemExit("the rest section needs --url of a running server (python app.py ...)")
    url = urllib.parse.urlsplit(args.url)
    connection = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port or 80)

    def ask(question: str) -> float:
        path = "/api/search?" + urllib.parse.urlencode({"q": question, "k": 5})
        tick = time.perf_counter()
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
        elapsed = (time.perf_counter() - tick) * 1000
        if response.status != 200:
            raise SystemExit(f"{path} answered {response.status}: {body[:200]!r}")
        return elapsed

    for warm in ("warm-up question one", "warm-up question two", "a third warm-up"):
        ask(warm)
    latencies = [ask(question) for question in ALL_QUESTIONS]
    return {
        "url": args.url,
        "questions": len(latencies),
        "p50_ms": round(statistics.median(latencies), 2),
        "p95_ms": round(percentile(latencies, 95), 2),
    }


SECTIONS = {
    "throughput": throughput,
    "quality": quality,
    "stages": stages,
    "query": query,
    "cold": cold,
    "rest": rest,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--only", nargs="+", choices=SECTIONS, default=[s for s in SECTIONS if s != "rest"]
    )
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS))
    parser.add_argument("--work", type=Path, default=WORK / "speed")
    parser.add_argument("--django-index", type=Path, default=DJANGO_INDEX)
    parser.add_argument("--django-docs", type=Path, default=DJANGO_DOCS)
    parser.add_argument("--chunks", type=int, default=512, help="chunks for throughput")
    parser.add_argument("--scifact", type=Path, default=SCIFACT, help="the BEIR SciFact folder")
    parser.add_argument("--scifact-docs", type=int, default=6000, help="corpus subset size")
    parser.add_argument(
        "--ffn-float-variant",
        action="store_true",
        help="quality: also score int8 with the feed-forward output layers left in float",
    )
    parser.add_argument(
        "--as-built",
        action="store_true",
        help="throughput: sample chunks in runs batched as a build batches them",
    )
    parser.add_argument("--batch-size", type=int, default=32, help="texts per forward pass")
    parser.add_argument("--threads", type=int, default=0, help="threads per encoder; 0: all")
    parser.add_argument("--cold-runs", type=int, default=3)
    parser.add_argument("--url", default=None, help="running server for the rest section")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args.work.mkdir(parents=True, exist_ok=True)
    _TUNING.update(batch_size=args.batch_size, threads=args.threads)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    results: dict[str, Any] = {"command": command_line("benchmarks.speed")}
    for name in args.only:
        tick = time.perf_counter()
        results[name] = SECTIONS[name](args)
        print(f"{name} done in {time.perf_counter() - tick:.0f}s", file=sys.stderr)
    report(results, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
