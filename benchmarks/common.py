"""What the benchmarks share: paths, question lists, output, BEIR study helpers, a served app.

Paths are derived from this file, so a benchmark finds its data wherever the checkout lives.
The BEIR studies re-fuse cached retriever candidates (``cached_candidates``) and score them
with trec_eval, plain and with identical documents collapsed (``ndcg_both``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from assistant import Assistant, Settings
from assistant.evaluation import document_run, score_run
from assistant.ingest.beir import BeirDataset, load_beir, read_beir_documents
from assistant.search.fusion import Candidates, fuse, keyword_peak, score_fusion
from assistant.search.query import clean_query

# --------------------------------------------------------------------------- paths

ROOT = Path(__file__).resolve().parent.parent  # the repository
WORK = ROOT / "benchmarks" / "data"  # downloads, indexes and caches (not in git)
BEIR = ROOT.parent / "shared" / "benchmarks"  # the shared BEIR folders beside the repository
DJANGO_INDEX = WORK / "django-index"  # built by benchmarks.django_docs
DJANGO_DOCS = WORK / "django-docs"
QUESTIONS_FILE = ROOT / "benchmarks" / "questions.jsonl"
INDEPENDENT_QUESTIONS_FILE = ROOT / "benchmarks" / "questions-independent.jsonl"
QUESTION_SETS = (QUESTIONS_FILE, INDEPENDENT_QUESTIONS_FILE)
APP = ROOT / "app.py"

BACKENDS = ("torch", "onnx", "onnx-int8")

# Varied questions about Django's documentation, each asked once by the speed benchmarks.
DJANGO_QUESTIONS = [
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


def django_texts(index_dir: Path, n: int, *, as_built: bool = False) -> list[str]:
    """``n`` chunk texts of the Django docs index, a seeded sample shared by the benchmarks.

    ``as_built``: runs of 32 neighbours in the length order of the whole corpus, as a build
    batches them (it sorts every text to embed by length), so the sample pads as little as a
    full build does; a plain random sample pads far more, since its batches mix lengths.
    """
    from assistant.stores import open_index

    index = open_index(index_dir)
    try:
        rng = np.random.default_rng(0)
        if not as_built:
            ids = sorted(rng.choice(index.manifest.chunks, size=n, replace=False).tolist())
            chunks = index.db.chunks(ids)
            return [chunks[i].embed_text for i in ids]
        chunks = index.db.chunks(list(range(index.manifest.chunks)))
        ordered = sorted((c.embed_text for c in chunks.values()), key=len)
        runs = rng.choice(len(ordered) // 32, size=n // 32, replace=False)
        return [text for r in sorted(runs) for text in ordered[r * 32 : (r + 1) * 32]]
    finally:
        index.close()


# --------------------------------------------------------------------------- measuring


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) by linear interpolation between closest ranks (as
    ``statistics.quantiles(..., method="inclusive")``); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def recall(found: np.ndarray, truth: np.ndarray, k: int) -> float:
    """Mean share of each query's true top ``k`` ids among its first ``k`` found ids."""
    return float(
        np.mean([len(set(f[:k]) & set(t[:k])) / k for f, t in zip(found, truth, strict=True)])
    )


def cpu_flags() -> list[str]:
    """The CPU's vector extensions that move speed figures (AVX2, AVX-512, VNNI), to record
    beside them: the machines this runs on differ from session to session."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        return []
    flags = next(
        (line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")),
        [],
    )
    return sorted(f for f in set(flags) if f in {"avx2", "avx512f", "avx512_vnni", "avx_vnni"})


# --------------------------------------------------------------------------- output


def shown(path: Path) -> str:
    """A path for recorded results: relative to the repository when it lies inside it."""
    resolved = path.resolve()
    return str(resolved.relative_to(ROOT)) if resolved.is_relative_to(ROOT) else str(path)


def command_line(module: str, argv: Sequence[str] | None = None) -> str:
    """How a benchmark was started, as ``python -m <module> <arguments>`` (no machine paths)."""
    return " ".join(["python -m", module, *(sys.argv[1:] if argv is None else argv)])


def report(results: dict[str, Any], path: Path | None) -> None:
    """Print a benchmark's results as JSON, and record them in ``path`` when one is given."""
    output = json.dumps(results, indent=2)
    print(output)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(output + "\n", encoding="utf-8")


def record(rows: list[dict], row: dict, line: str) -> None:
    """Keep a result row and print its line at once, so a long study shows progress."""
    rows.append(row)
    print(line, flush=True)


def save(rows: list[dict], path: Path | None) -> int:
    """Write the rows as JSON when a path was given; the exit status of a study."""
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    return 0


# --------------------------------------------------------------------------- BEIR studies

DEPTH = 1000  # chunks per retriever and query, and documents scored per query
Ranking = list[tuple[int, float]]


def weighted_fusion(c: Candidates, wk: float, method: str = "zscore") -> Ranking:
    """The two lists fused with keyword weight ``wk`` (dense ``1 - wk``), scores normalized
    by ``method`` as the app does."""
    return score_fusion(
        [(c.dense_ids, c.dense_scores), (c.keyword_ids, c.keyword_scores)], [1 - wk, wk], method
    )


def app_fusion(c: Candidates, settings: Settings) -> Ranking:
    """The app's hybrid ranking of cached candidates (the keyword peak measured again, since
    the cache keeps only the lists)."""
    return fuse(dataclasses.replace(c, keyword_peak=keyword_peak(c.keyword_scores)), settings)


def study_arguments(
    doc: str, more: Callable[[argparse.ArgumentParser], None] | None = None
) -> argparse.Namespace:
    """The command line every BEIR study shares: datasets as name:tune:report, a JSON path,
    and whatever ``more`` adds."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--dataset", action="append", required=True, help="name:tune:report")
    parser.add_argument("--json", type=Path)
    if more:
        more(parser)
    return parser.parse_args()


def study_query(text: str) -> str:
    """A BEIR query cleaned as the app cleans a question (one longer than the app accepts
    raises ``QueryError``; none in SciFact or CoSQA is)."""
    return clean_query(text, Settings().max_query_chars)


def beir_index(name: str, settings: Settings | None = None) -> Assistant:
    """The index ``nexus eval --beir`` built for a BEIR dataset (``benchmarks/data/beir``)."""
    return Assistant.load(WORK / "beir" / f"{name}-index", settings=settings or Settings())


def documents_of(ranking: Ranking, source_of: np.ndarray) -> dict[str, float]:
    """The first ``DEPTH`` ranked chunks as documents, each scored by its best chunk."""
    return document_run((source_of[i], s) for i, s in ranking[:DEPTH])


def chunk_sources(nexus: Assistant) -> np.ndarray:
    """The document each chunk row belongs to, for scoring documents by their best chunk."""
    source_of = np.empty(nexus.manifest.chunks, dtype=object)
    for source, rows in nexus.index.db.chunk_rows_by_source().items():
        source_of[rows] = source
    return source_of


def save_lists(path: Path, rows: dict[str, dict[str, Any]]) -> None:
    """Per-query arrays as one ``.npz``: ``query_ids``, then each field's arrays concatenated
    with ``<field>_offsets`` (query i's part is ``offsets[i]:offsets[i + 1]``); a field of
    scalars is stored as one array. No pickles: plain arrays that any numpy reads back."""
    ids = list(rows)
    arrays: dict[str, np.ndarray] = {"query_ids": np.array(ids, dtype=str)}
    for field in next(iter(rows.values()), {}):
        parts = [np.asarray(rows[q][field]) for q in ids]
        if all(p.ndim == 0 for p in parts):
            arrays[field] = np.stack(parts)
            continue
        arrays[field] = np.concatenate(parts)
        arrays[f"{field}_offsets"] = np.cumsum([0] + [len(p) for p in parts])
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)


def load_lists(path: Path) -> dict[str, dict[str, Any]]:
    """What :func:`save_lists` wrote: query id -> field -> array (or scalar)."""
    with np.load(path) as stored:
        arrays = {name: stored[name] for name in stored.files}
    ids = arrays.pop("query_ids").tolist()
    fields = [name for name in arrays if not name.endswith("_offsets")]
    rows: dict[str, dict[str, Any]] = {q: {} for q in ids}
    for field in fields:
        offsets = arrays.get(f"{field}_offsets")
        for i, q in enumerate(ids):
            if offsets is None:
                rows[q][field] = arrays[field][i].item()
            else:
                rows[q][field] = arrays[field][offsets[i] : offsets[i + 1]]
    return rows


def cached_candidates(
    nexus: Assistant, name: str, split: str, queries: dict[str, str]
) -> dict[str, Candidates]:
    """Each query's ``Assistant.candidates`` (``DEPTH`` chunks per retriever), searched once
    and cached in ``benchmarks/data/fusion/<name>-<split>.npz``."""
    path = WORK / "fusion" / f"{name}-{split}.npz"
    if not path.exists():
        rows = {}
        for qid, text in tqdm(queries.items(), desc=f"{name} {split}", unit="query"):
            c = nexus.candidates(study_query(text), DEPTH)
            rows[qid] = {
                "dense_ids": c.dense_ids,
                "dense_scores": c.dense_scores,
                "keyword_ids": c.keyword_ids,
                "keyword_scores": c.keyword_scores,
            }
        save_lists(path, rows)
    return {
        qid: Candidates(
            None, r["dense_ids"], r["dense_scores"], r["keyword_ids"], r["keyword_scores"]
        )
        for qid, r in load_lists(path).items()
    }


@dataclass(frozen=True)
class StudySplit:
    """One split of a BEIR dataset with its index and cached candidates."""

    name: str
    split: str
    nexus: Assistant
    dataset: BeirDataset
    found: dict[str, Candidates]
    source_of: np.ndarray


def study_splits(specs: Sequence[str], settings: Settings) -> Iterator[StudySplit]:
    """Every split named by ``name:split:split...`` specs, in order, candidates cached."""
    for spec in specs:
        name, *splits = spec.split(":")
        nexus = beir_index(name, settings)
        source_of = chunk_sources(nexus)
        for split in splits:
            dataset = load_beir(BEIR / name, split)
            found = cached_candidates(nexus, name, split, dataset.queries)
            yield StudySplit(name, split, nexus, dataset, found, source_of)


def record_split(rows: list[dict], s: StudySplit, row: dict, line: str) -> None:
    """:func:`record` for one split: its dataset and split lead both the row and the line."""
    record(rows, {"dataset": s.name, "split": s.split, **row}, f"{s.name:8} {s.split:5} {line}")


def ranked_run(
    s: StudySplit, rank: Callable[[str, Candidates], Ranking]
) -> dict[str, dict[str, float]]:
    """Every query of the split as documents, its cached candidates ranked by ``rank``."""
    return {q: documents_of(rank(q, c), s.source_of) for q, c in s.found.items()}


@lru_cache(maxsize=4)
def duplicate_groups(folder: Path) -> dict[str, str]:
    """Document id -> content hash, so identical documents share a key."""
    return {doc.source: doc.sha256 for doc in read_beir_documents(folder)}


def collapsed(run: dict[str, dict[str, float]], dataset: BeirDataset, group: dict) -> dict:
    """The run with each set of identical documents kept once: copies of a judged document
    take its id, other sets their content hash; a set scores as its best copy."""
    out = {}
    for q, scores in run.items():
        judged = {group[d]: d for d, grade in dataset.qrels.get(q, {}).items() if grade > 0}
        best: dict[str, float] = {}
        for doc, score in sorted(scores.items(), key=lambda kv: -kv[1]):
            best.setdefault(judged.get(group[doc], group[doc]), score)
        out[q] = best
    return out


def collapsed_ndcg(run: dict[str, dict[str, float]], dataset: BeirDataset, group: dict) -> float:
    """trec_eval's nDCG@10 of ``run`` with identical documents collapsed."""
    return float(score_run(collapsed(run, dataset, group), dataset.qrels)["ndcg_at_10"])


def ndcg_both(run: dict[str, dict[str, float]], dataset: BeirDataset, group: dict) -> dict:
    """trec_eval's nDCG@10 of ``run``, plain and with identical documents collapsed."""
    return {
        "ndcg_at_10": score_run(run, dataset.qrels)["ndcg_at_10"],
        "ndcg_at_10_collapsed": collapsed_ndcg(run, dataset, group),
    }


# --------------------------------------------------------------------------- processes


def run_json(command: Sequence[str], *, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``command`` from the repository root and read the JSON on its last output line."""
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def machine() -> dict[str, Any]:
    """The CPU a figure was measured on: model, cores, the vector instructions that change
    embedding speed (``avx2``, ``avx512_vnni``), and the load when asked."""
    flags: set[str] = set()
    model = ""
    with open("/proc/cpuinfo", encoding="utf-8") as info:
        for line in info:
            key, _, value = line.partition(":")
            if key.strip() == "flags" and not flags:
                flags = set(value.split())
            elif key.strip() == "model name" and not model:
                model = value.strip()
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "avx2": "avx2" in flags,
        "avx512_vnni": "avx512_vnni" in flags,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


@contextmanager
def served_index(
    index_dir: Path, *, startup_timeout: float = 180.0, auth: bool = True
) -> Iterator[str]:
    """Serve ``index_dir`` with ``app.py`` in a child process on a free loopback port (as it
    is, without building); yields its URL. ``auth=False`` serves without the login that
    ``NEXUS_AUTH_USER`` / ``NEXUS_AUTH_PASSWORD`` would ask for."""
    with served_app(index_dir, startup_timeout=startup_timeout, auth=auth) as (url, _):
        yield url


@contextmanager
def served_app(
    index_dir: Path,
    *,
    args: Sequence[str] = (),
    startup_timeout: float = 180.0,
    auth: bool = True,
    log: Path | None = None,
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """:func:`served_index` with more ``app.py`` arguments (``--watch``, ``--corpus``), yielding
    the URL and the server process (to read what it costs); ``log`` keeps what the server
    writes to stderr (its log, a line per request among it), which is dropped otherwise."""
    import httpx

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    feedback = Path(tempfile.mkdtemp()) / "feedback.jsonl"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    if not auth:
        env.pop("NEXUS_AUTH_USER", None)
        env.pop("NEXUS_AUTH_PASSWORD", None)
    command = [sys.executable, str(APP), "--index", str(index_dir), "--no-build", *args]
    kept = log.open("ab") if log is not None else None
    try:
        server = subprocess.Popen(
            [*command, "--host", "127.0.0.1", "--port", str(port), "--feedback", str(feedback)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=kept or subprocess.DEVNULL,
        )
    finally:
        if kept is not None:
            kept.close()  # the server writes to its own copy
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"the server exited with code {server.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server did not answer within {startup_timeout:.0f}s")
            try:
                if httpx.get(f"{url}/api/health", timeout=2).status_code in (200, 401):
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        yield url, server
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
