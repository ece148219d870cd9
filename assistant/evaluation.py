"""Measure retrieval quality on a question set: hit@k and MRR@10 at the document level.

A question set is JSON lines, one question each::

    {"id": "data-01", "question": "...", "relevant": ["concepts/x.md"], "kind": "direct",
     "terms": ["select_for_update"]}

``kind`` is ``direct``, ``vague``, ``follow-up`` (with ``previous``, the question it leans on)
or ``no-answer`` (``relevant`` empty). Two rankings are scored:

- documents: a question counts as answered at rank r when the r-th distinct document among
  the hits is one of its relevant documents;
- passages: the r-th passage answers when it comes from a relevant document and, if the
  question names key ``terms``, its heading path or text holds one of them (ignoring case).

:func:`evaluate_answers` scores the chat's cited answer the same way: whether a quoted
sentence from a relevant document holds a key term, and which questions are refused.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from .build import BuildReport, build_index
from .config import SearchMode, Settings
from .encoders import Encoder
from .errors import ConfigError, MissingDependencyError, QueryError
from .ingest.beir import BeirDataset, read_beir_documents
from .search.assistant import Assistant, Hit
from .search.conversation import contextual_query

__all__ = [
    "PUBLISHED_NDCG10",
    "AnswerScores",
    "BeirScores",
    "ConversationScores",
    "Question",
    "QuestionScores",
    "beir_run",
    "build_beir_index",
    "document_run",
    "evaluate_answers",
    "evaluate_beir",
    "evaluate_conversation",
    "evaluate_questions",
    "evaluate_whole_documents",
    "load_questions",
    "plot_beir",
    "score_run",
    "trec_order",
]

CUTOFFS = (1, 3, 5, 10)


@dataclass(frozen=True)
class Question:
    id: str
    question: str
    relevant: tuple[str, ...]
    kind: str = "direct"
    previous: str | None = None
    terms: tuple[str, ...] = ()

    def answered_by(self, source: str, heading_path: str, text: str) -> bool:
        """Whether a passage answers: from a relevant document, with a key term if any."""
        if source not in self.relevant:
            return False
        where = f"{heading_path}\n{text}".casefold()
        return not self.terms or any(term.casefold() in where for term in self.terms)


@dataclass(frozen=True)
class QuestionScores:
    """Averages over answerable questions: the document ranking (``hit_at``, ``mrr_at_10``)
    and the passage ranking (``passage_hit_at``, ``passage_mrr_at_10``; see the module
    docstring). ``misses`` are the ids whose first answering passage is below rank 10."""

    mode: str
    questions: int
    hit_at: dict[int, float]
    mrr_at_10: float
    by_kind: dict[str, dict[str, float]]
    misses: list[str]
    passage_hit_at: dict[int, float] = field(default_factory=dict)
    passage_mrr_at_10: float = 0.0


def load_questions(path: str | Path) -> list[Question]:
    """Read a question set, checking each line has what evaluation needs.

    Raises:
        ConfigError: A line is not valid JSON or lacks ``question`` or ``relevant``.
    """
    questions = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            questions.append(
                Question(
                    id=str(data.get("id", number)),
                    question=data["question"],
                    relevant=tuple(data["relevant"]),
                    kind=data.get("kind", "direct"),
                    previous=data.get("previous"),
                    terms=tuple(data.get("terms") or ()),
                )
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{path}:{number}: not a valid question ({exc})") from exc
    return questions


def document_ranking(sources: Iterable[str]) -> list[str]:
    """Distinct documents in the order their first passage appears."""
    return list(dict.fromkeys(sources))


def reciprocal_rank(ranking: Sequence[str], relevant: Iterable[str], cutoff: int = 10) -> float:
    wanted = set(relevant)
    for rank, source in enumerate(ranking[:cutoff], start=1):
        if source in wanted:
            return 1.0 / rank
    return 0.0


def first_answering_rank(hits: Sequence[Hit], question: Question, cutoff: int = 10) -> int | None:
    """The rank of the first passage among ``hits[:cutoff]`` that answers ``question``."""
    for hit in hits[:cutoff]:
        if question.answered_by(hit.source, hit.heading_path, hit.text):
            return hit.rank
    return None


def evaluate_questions(
    nexus: Assistant, questions: Sequence[Question], mode: SearchMode = "hybrid"
) -> QuestionScores:
    """Search every answerable question (alone, as typed) and score both rankings."""
    answerable = [q for q in questions if q.relevant]
    per_kind: dict[str, list[float]] = {}
    hits_at: dict[int, list[float]] = {c: [] for c in CUTOFFS}
    passages_at: dict[int, list[float]] = {c: [] for c in CUTOFFS}
    rr: list[float] = []
    passage_rr: list[float] = []
    misses: list[str] = []
    for q in answerable:
        hits = nexus.search(q.question, k=30, mode=mode)
        ranking = document_ranking(h.source for h in hits)
        score = reciprocal_rank(ranking, q.relevant)
        rr.append(score)
        per_kind.setdefault(q.kind, []).append(score)
        first = first_answering_rank(hits, q)
        passage_rr.append(1.0 / first if first else 0.0)
        for cutoff in CUTOFFS:
            hits_at[cutoff].append(float(bool(set(ranking[:cutoff]) & set(q.relevant))))
            passages_at[cutoff].append(float(first is not None and first <= cutoff))
        if first is None:
            misses.append(q.id)
    n = max(len(answerable), 1)
    return QuestionScores(
        mode=mode,
        questions=len(answerable),
        hit_at={c: round(sum(v) / n, 4) for c, v in hits_at.items()},
        mrr_at_10=round(sum(rr) / n, 4),
        by_kind={
            kind: {"questions": len(v), "mrr_at_10": round(sum(v) / len(v), 4)}
            for kind, v in sorted(per_kind.items())
        },
        misses=misses,
        passage_hit_at={c: round(sum(v) / n, 4) for c, v in passages_at.items()},
        passage_mrr_at_10=round(sum(passage_rr) / n, 4),
    )


@dataclass(frozen=True)
class AnswerScores:
    """How the chat's cited answer does on a question set (see :func:`evaluate_answers`).

    ``quoted``: share of answerable questions whose answer quotes, from a passage of a
    relevant document, a sentence holding a key term (or, without terms, any sentence from a
    relevant document). ``refused_answerable`` lists answerable questions answered "nothing
    relevant"; ``answered_no_answer`` lists no-answer questions that got an answer.
    ``weak_answerable`` and ``weak_no_answer`` list the answers flagged as weak matches.
    """

    questions: int
    no_answer: int
    quoted: float
    refused_answerable: list[str]
    answered_no_answer: list[str]
    weak_answerable: list[str] = field(default_factory=list)
    weak_no_answer: list[str] = field(default_factory=list)


def evaluate_answers(
    nexus: Assistant,
    questions: Sequence[Question],
    mode: SearchMode = "hybrid",
    *,
    min_relevance: float | None = None,
) -> AnswerScores:
    """Ask every standalone question as the chat does, with the relevance floor the app
    uses, and score the cited answers."""
    from .search.answer import respond

    standalone = [q for q in questions if not q.previous]
    answerable = [q for q in standalone if q.relevant]
    quoted, refused, wrongly_answered = 0, [], []
    weak: dict[bool, list[str]] = {True: [], False: []}
    for q in standalone:
        reply = respond(nexus, q.question, mode=mode, min_relevance=min_relevance)
        if reply.weak:
            weak[bool(q.relevant)].append(q.id)
        if not q.relevant:
            if reply.answered:
                wrongly_answered.append(q.id)
            continue
        if not reply.answered:
            refused.append(q.id)
            continue
        cited = {hit.rank: hit for hit in reply.hits}
        quoted += any(
            q.answered_by(cited[s.citation].source, "", s.text)
            for s in reply.answer
            if s.citation in cited
        )
    return AnswerScores(
        questions=len(answerable),
        no_answer=len(standalone) - len(answerable),
        quoted=round(quoted / max(len(answerable), 1), 4),
        refused_answerable=refused,
        answered_no_answer=wrongly_answered,
        weak_answerable=weak[True],
        weak_no_answer=weak[False],
    )


@dataclass(frozen=True)
class ConversationScores:
    """How the chat's follow-up handling (:func:`contextual_query`) changes what is found.

    ``follow_ups``: questions that lean on the one before, searched alone (as typed) and as
    the chat searches them. ``topic_changes``: standalone questions asked right after an
    unrelated one (the answerable question half the set away), where folding can only hurt;
    ``alone`` is the question as typed, ``with_context`` what the chat searches. ``folded``
    counts the questions the chat rewrote.
    """

    mode: str
    follow_ups: dict[str, Any]
    topic_changes: dict[str, Any]


def _document_metrics(rankings: Sequence[tuple[list[str], Sequence[str]]]) -> dict[str, float]:
    n = max(len(rankings), 1)
    metrics = {
        f"hit@{c}": sum(bool(set(r[:c]) & set(rel)) for r, rel in rankings) / n for c in CUTOFFS
    }
    metrics["mrr@10"] = sum(reciprocal_rank(r, rel) for r, rel in rankings) / n
    return {name: round(value, 4) for name, value in metrics.items()}


def _alone_and_in_context(
    nexus: Assistant, pairs: Sequence[tuple[Question, str]], mode: SearchMode
) -> dict[str, Any]:
    alone: list[tuple[list[str], Sequence[str]]] = []
    in_context: list[tuple[list[str], Sequence[str]]] = []
    folded = 0
    for q, previous in pairs:
        query = contextual_query(q.question, [previous], similarity=nexus.similarity)
        folded += query.folded
        for text, out in ((q.question, alone), (query.text, in_context)):
            hits = nexus.search(text, k=30, mode=mode)
            out.append((document_ranking(h.source for h in hits), q.relevant))
    return {
        "questions": len(pairs),
        "folded": folded,
        "alone": _document_metrics(alone),
        "with_context": _document_metrics(in_context),
    }


def evaluate_conversation(
    nexus: Assistant, questions: Sequence[Question], mode: SearchMode = "hybrid"
) -> ConversationScores:
    """Score follow-ups alone vs as the chat searches them, and the cost on topic changes."""
    follow_ups = [(q, q.previous) for q in questions if q.previous and q.relevant]
    standalone = [q for q in questions if not q.previous and q.relevant]
    half = len(standalone) // 2
    changes = [
        (q, standalone[(i + half) % len(standalone)].question) for i, q in enumerate(standalone)
    ]
    return ConversationScores(
        mode=mode,
        follow_ups=_alone_and_in_context(nexus, follow_ups, mode),
        topic_changes=_alone_and_in_context(nexus, changes, mode),
    )


# --------------------------------------------------------------------------- BEIR datasets

# Published nDCG@10 on the test split (no reranker), drawn beside our modes in the plot.
PUBLISHED_NDCG10: dict[str, dict[str, float]] = {
    "scifact": {
        "BM25, MTEB bm25s": 0.687,
        "MiniLM dense, MTEB": 0.645,
        "BM25 + MiniLM hybrid, txtai": 0.713,
        "bge-small dense, MTEB": 0.713,
    },
    "cosqa": {
        "BM25, MTEB bm25s": 0.188,
        "MiniLM dense, MTEB": 0.330,
        "bge-small dense, MTEB": 0.321,
    },
}

Run = dict[str, dict[str, float]]


@dataclass(frozen=True)
class BeirScores:
    """Averages over the judged queries of one split for one mode; ``seconds`` is search time."""

    dataset: str
    split: str
    mode: str
    queries: int
    ndcg_at_10: float
    recall_at_10: float
    recall_at_100: float
    mrr_at_10: float
    seconds: float


def document_run(ranked: Iterable[tuple[str, float]]) -> dict[str, float]:
    """Document scores from ranked passages (source, score), best first: each document scores
    as its best passage."""
    scores: dict[str, float] = {}
    for source, score in ranked:
        scores.setdefault(source, score)
    return scores


def trec_order(scores: dict[str, float]) -> list[str]:
    """Documents in trec_eval's order: score descending, ties by document id descending."""
    return [doc for doc, _ in sorted(scores.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)]


def score_run(run: Run, qrels: dict[str, dict[str, int]]) -> dict[str, float]:
    """nDCG@10, Recall@10, Recall@100 and MRR@10 with trec_eval's own code (pytrec_eval).

    A judged query missing from ``run`` (nothing retrieved) counts as zero; queries with no
    relevant document are left out, as trec_eval does. MRR@10 is trec_eval's reciprocal rank
    on each query's ten best documents, cut in trec_eval's order.

    Raises:
        MissingDependencyError: pytrec_eval is not installed.
    """
    try:
        import pytrec_eval
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependencyError(
            "BEIR scoring needs pytrec_eval; pip install 'nexus-assistant[eval]'"
        ) from exc
    judged = {q: docs for q, docs in qrels.items() if any(g > 0 for g in docs.values())}
    cut = {q: {d: run[q][d] for d in trec_order(run[q])[:10]} for q in judged if run.get(q)}
    full = {q: run[q] for q in judged if run.get(q)}
    main = pytrec_eval.RelevanceEvaluator(judged, {"ndcg_cut.10", "recall.10,100"}).evaluate(full)
    ranks = pytrec_eval.RelevanceEvaluator(judged, {"recip_rank"}).evaluate(cut)
    n = max(len(judged), 1)
    return {
        "ndcg_at_10": sum(m["ndcg_cut_10"] for m in main.values()) / n,
        "recall_at_10": sum(m["recall_10"] for m in main.values()) / n,
        "recall_at_100": sum(m["recall_100"] for m in main.values()) / n,
        "mrr_at_10": sum(m["recip_rank"] for m in ranks.values()) / n,
    }


def beir_run(
    nexus: Assistant,
    queries: dict[str, str],
    mode: SearchMode,
    *,
    depth: int = 100,
    progress: bool = False,
) -> Run:
    """Search every query and keep at least ``depth`` documents each (best passage per document).

    Passages are searched as the app searches them, without near-duplicate collapsing, since a
    benchmark judges each document id on its own.
    """
    run: Run = {}
    passages = min(1000, 3 * depth)
    for query_id, text in tqdm(queries.items(), desc=mode, unit="query", disable=not progress):
        try:
            hits = nexus.search(text, k=passages, mode=mode, dedupe=False)
        except QueryError:
            hits = []  # an empty query finds nothing; it still counts as a judged query
        run[query_id] = document_run((h.source, h.score) for h in hits)
    return run


def evaluate_beir(
    nexus: Assistant,
    dataset: BeirDataset,
    modes: Sequence[SearchMode],
    *,
    progress: bool = False,
) -> list[BeirScores]:
    """Score each mode on one split of a BEIR dataset."""
    results = []
    for mode in modes:
        started = time.perf_counter()
        run = beir_run(nexus, dataset.queries, mode, progress=progress)
        seconds = time.perf_counter() - started
        metrics = score_run(run, dataset.qrels)
        results.append(
            BeirScores(
                dataset=dataset.name,
                split=dataset.split,
                mode=mode,
                queries=len(dataset.queries),
                seconds=round(seconds, 2),
                **{name: round(value, 4) for name, value in metrics.items()},
            )
        )
    return results


WHOLE_DOCUMENTS = "semantic-whole"  # the mode label of MTEB's dense protocol


def whole_document_vectors(
    nexus: Assistant, folder: str | Path, cache: str | Path
) -> tuple[list[str], np.ndarray]:
    """One vector per BEIR document embedded whole as ``title + " " + text``, as MTEB does.

    The model cuts the input at its window. A document that fits one chunk already has that
    vector in the index (its chunk is the same word pieces), so only longer documents are
    embedded, once: their vectors are cached in ``cache`` (an ``.npz`` keyed by content hash).
    """
    cache = Path(cache)
    cached: dict[str, np.ndarray] = {}
    if cache.is_file():
        with np.load(cache) as stored:
            cached = dict(zip(stored["keys"].tolist(), stored["vectors"], strict=True))
    rows = nexus.index.db.chunk_rows_by_source()
    sources: list[str] = []
    vectors: list[np.ndarray | str] = []  # a vector, or the cache key of one still to embed
    missing: dict[str, str] = {}  # key -> text; identical documents are embedded once
    for doc in read_beir_documents(folder):
        text = doc.text if doc.title in ("", doc.text) else f"{doc.title} {doc.text}"
        own = rows.get(doc.source, [])
        key = hashlib.sha256(f"{nexus.encoder.name}\x00{text}".encode()).hexdigest()
        sources.append(doc.source)
        if len(own) == 1:
            vectors.append(nexus.index.vectors_of(own)[0])
        else:
            vectors.append(key)
            if key not in cached:
                missing[key] = text
    if missing:
        keys = list(missing)
        fresh = nexus.encoder.encode([missing[k] for k in keys], kind="document", progress=True)
        cached.update(zip(keys, fresh, strict=True))
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, keys=np.array(list(cached)), vectors=np.stack(list(cached.values())))
    return sources, np.stack(
        [np.asarray(cached[v] if isinstance(v, str) else v, dtype=np.float32) for v in vectors]
    )


def evaluate_whole_documents(
    nexus: Assistant, dataset: BeirDataset, cache: str | Path, *, depth: int = 100
) -> BeirScores:
    """Dense retrieval by MTEB's protocol: whole documents (cut by the model), exact inner
    product. It checks the packaged weights and pooling against MTEB's published figure,
    independently of the app's chunking."""
    sources, matrix = whole_document_vectors(nexus, dataset.folder, cache)
    started = time.perf_counter()
    queries = list(dataset.queries)
    q = nexus.encoder.encode([dataset.queries[i] for i in queries], kind="query")
    scores = q @ matrix.T
    run: Run = {}
    for qid, row in zip(queries, scores, strict=True):
        top = np.argsort(-row, kind="stable")[:depth]
        run[qid] = {sources[i]: float(row[i]) for i in top}
    seconds = time.perf_counter() - started
    metrics = score_run(run, dataset.qrels)
    return BeirScores(
        dataset=dataset.name,
        split=dataset.split,
        mode=WHOLE_DOCUMENTS,
        queries=len(queries),
        seconds=round(seconds, 2),
        **{name: round(value, 4) for name, value in metrics.items()},
    )


def build_beir_index(
    folder: str | Path,
    index_dir: str | Path,
    *,
    settings: Settings,
    encoder: Encoder | None = None,
    progress: bool = False,
) -> BuildReport:
    """Index a BEIR corpus with the app's build (incremental: unchanged documents are reused)."""
    return build_index(
        folder,
        index_dir,
        settings=settings,
        encoder=encoder,
        progress=progress,
        documents=read_beir_documents(folder),
    )


def plot_beir(results: Sequence[BeirScores], path: str | Path) -> None:
    """A bar chart of nDCG@10 per dataset: our modes in colour, published systems in grey.

    Raises:
        MissingDependencyError: matplotlib is not installed.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependencyError(
            "the plot needs matplotlib; pip install 'nexus-assistant[eval]'"
        ) from exc
    groups: dict[str, list[BeirScores]] = {}
    for r in results:
        groups.setdefault(f"{r.dataset} ({r.split})", []).append(r)
    fig, axes = plt.subplots(1, len(groups), figsize=(5.5 * len(groups), 4.2), squeeze=False)
    for ax, (label, rows) in zip(axes[0], groups.items(), strict=True):
        anchors = (
            PUBLISHED_NDCG10.get(rows[0].dataset.lower(), {}) if rows[0].split == "test" else {}
        )
        names = [f"Nexus {r.mode}" for r in rows] + list(anchors)
        values = [r.ndcg_at_10 for r in rows] + list(anchors.values())
        colours = ["tab:blue"] * len(rows) + ["0.7"] * len(anchors)
        bars = ax.barh(names[::-1], values[::-1], color=colours[::-1])
        ax.bar_label(bars, fmt="%.3f", padding=2, fontsize=8)
        ax.set_xlim(0, min(1.0, max(values) * 1.2))
        ax.set_title(label)
        ax.set_xlabel("nDCG@10")
        ax.tick_params(axis="y", labelsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
