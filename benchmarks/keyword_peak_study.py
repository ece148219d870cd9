"""Per-query keyword weight from how steeply BM25 scores fall; dense pseudo-relevance feedback.

Re-fuses the fusion study's cached candidates (``benchmarks/data/fusion/``, 1,000 chunks per
retriever and query) with the app's ``score_fusion``: fixed keyword weights, the keyword weight
scaled by ``assistant.retrieval.keyword_share`` of the list's peak (1 - tenth best score /
best) over a grid of its two thresholds, and the app's default. Dense pseudo-relevance
feedback (Rocchio on embeddings: the query vector plus beta times the mean of the m best
distinct passage vectors, normalized, searched again) needs the query vectors, which are
embedded once and cached beside the candidates.

Every variant is scored twice: trec_eval's nDCG@10 as MTEB computes it, and the same with each
set of identical documents collapsed to one (copies of a judged document take its id), which
no tie order can move. CoSQA stores many functions several times under different ids with one
copy judged; score ties among copies are broken by document id, so the plain figure depends
on tie order as much as on retrieval. ``ceiling`` is the plain nDCG@10 a system would reach
that put the judged document's copies first for every query.

Choose on the tuning split (named first), read the test split only to report.

    python benchmarks/keyword_peak_study.py --dataset scifact:train:test \\
        --dataset cosqa:dev:test --json benchmarks/results/keyword_peak_study.json
"""

from __future__ import annotations

import math
import sys
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np
from fusion_study import (
    DATA,
    DEPTH,
    WORK,
    cached_candidates,
    chunk_sources,
    documents_of,
    record,
    save,
    study_arguments,
)

from assistant import Assistant, Settings
from assistant.beir import BeirDataset, load_beir, read_beir_documents
from assistant.evaluation import score_run
from assistant.retrieval import (
    Candidates,
    clean_query,
    fuse,
    keyword_peak,
    keyword_share,
    score_fusion,
)

Ranking = list[tuple[int, float]]
Variant = Callable[[str, Candidates], Ranking]


def query_vectors(nexus: Assistant, name: str, split: str, queries: dict[str, str]) -> dict:
    """Each query's vector, embedded as the app embeds it, cached."""
    path = WORK / "fusion" / f"{name}-{split}-queries.npz"
    if path.exists():
        with np.load(path) as stored:
            return dict(zip(stored["ids"].tolist(), stored["vectors"], strict=True))
    ids = list(queries)
    vectors = nexus.encoder.encode([clean_query(queries[q], 2000) for q in ids], kind="query")
    np.savez(path, ids=np.array(ids), vectors=vectors)
    return dict(zip(ids, vectors, strict=True))


def rocchio(nexus: Assistant, qvec: np.ndarray, c: Candidates, m: int, beta: float) -> Ranking:
    """Search again with the query moved towards its m best distinct passages."""
    vectors = np.asarray(nexus.index.vectors)
    seen: dict[bytes, np.ndarray] = {}
    for row in c.dense_ids.tolist():  # distinct texts only: copies would count several times
        seen.setdefault(vectors[row].tobytes(), vectors[row])
        if len(seen) == m:
            break
    moved = qvec + beta * np.mean(list(seen.values()), axis=0)
    moved = (moved / np.linalg.norm(moved)).astype(np.float32)
    scores, ids = nexus.index.dense.search(moved[None, :], DEPTH)  # exact search, as the app
    return list(zip(ids[0].tolist(), scores[0].tolist(), strict=True))


def variants(nexus: Assistant, qvecs: dict, settings: Settings) -> dict[str, Variant]:
    def fixed(wk: float) -> Variant:
        return lambda q, c: score_fusion(
            [(c.dense_ids, c.dense_scores), (c.keyword_ids, c.keyword_scores)], [1 - wk, wk]
        )

    def peak(wk: float, low: float, high: float) -> Variant:
        def run(q: str, c: Candidates) -> Ranking:
            w = wk * keyword_share(keyword_peak(c.keyword_scores), low, high)
            return fixed(w)(q, c)

        return run

    table: dict[str, Variant] = {
        "semantic": lambda q, c: c.ranking("semantic"),
        "keyword": lambda q, c: c.ranking("keyword"),
        "app default": lambda q, c: fuse(
            Candidates(
                None,
                c.dense_ids,
                c.dense_scores,
                c.keyword_ids,
                c.keyword_scores,
                keyword_peak(c.keyword_scores),
            ),
            settings,
        ),
    }
    for wk in (0.1, 0.4):
        table[f"zscore wk={wk}"] = fixed(wk)
    for low in (0.1, 0.15, 0.2, 0.25):
        for high in (0.3, 0.35, 0.4, 0.45):
            table[f"peak wk=0.4 {low}-{high}"] = peak(0.4, low, high)
    for m in (1, 3, 10):
        for beta in (0.25, 0.5):
            table[f"rocchio m={m} beta={beta}"] = lambda q, c, m=m, beta=beta: rocchio(
                nexus, qvecs[q], c, m, beta
            )
    return table


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


def ceiling(dataset: BeirDataset, group: dict) -> float:
    """Plain nDCG@10 with every judged document's copies ranked first and left tied (trec_eval
    orders ties by document id, descending); one judged document per query assumed."""
    members = defaultdict(list)
    for doc, key in group.items():
        members[key].append(doc)
    gains = []
    for docs in dataset.qrels.values():
        relevant = [d for d, grade in docs.items() if grade > 0]
        if relevant:
            position = sorted(members[group[relevant[0]]], reverse=True).index(relevant[0]) + 1
            gains.append(1 / math.log2(position + 1) if position <= 10 else 0.0)
    return sum(gains) / max(len(gains), 1)


def main() -> int:
    args = study_arguments(__doc__)
    settings = Settings()
    out = []
    for spec in args.dataset:
        name, *splits = spec.split(":")
        nexus = Assistant.load(WORK / "beir" / f"{name}-index", settings=settings)
        source_of = chunk_sources(nexus)
        group = duplicate_groups(DATA / name)
        for split in splits:
            dataset = load_beir(DATA / name, split)
            found = cached_candidates(nexus, name, split, dataset.queries)
            qvecs = query_vectors(nexus, name, split, dataset.queries)
            top = ceiling(dataset, group)
            print(f"{name:8} {split:5} ceiling (judged copies first) nDCG@10 {top:.4f}")
            out.append({"dataset": name, "split": split, "variant": "ceiling", "ndcg_at_10": top})
            for label, variant in variants(nexus, qvecs, settings).items():
                run = {q: documents_of(variant(q, c), source_of) for q, c in found.items()}
                m = score_run(run, dataset.qrels)
                m["ndcg_at_10_collapsed"] = collapsed_ndcg(run, dataset, group)
                record(
                    out,
                    {"dataset": name, "split": split, "variant": label, **m},
                    f"{name:8} {split:5} {label:26} nDCG@10 {m['ndcg_at_10']:.4f}  "
                    f"collapsed {m['ndcg_at_10_collapsed']:.4f}  R@100 {m['recall_at_100']:.4f}",
                )
    return save(out, args.json)


if __name__ == "__main__":
    sys.exit(main())
