"""Per-query keyword weight from how steeply BM25 scores fall; dense pseudo-relevance feedback.

Re-fuses the fusion study's cached candidates (``benchmarks/data/fusion/``, 1,000 chunks per
retriever and query) with the app's ``score_fusion``: fixed keyword weights, the keyword weight
scaled by ``assistant.search.fusion.keyword_share`` of the list's peak (1 - tenth best score /
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

    python -m benchmarks.keyword_peak_study --dataset scifact:train:test \\
        --dataset cosqa:dev:test --json benchmarks/results/keyword_peak_study.json
"""

from __future__ import annotations

import math
import sys
from collections import defaultdict
from collections.abc import Callable

import numpy as np

from assistant import Assistant, Settings
from assistant.evaluation import score_run
from assistant.ingest.beir import BeirDataset
from assistant.search.fusion import Candidates, keyword_peak, keyword_share
from benchmarks.common import (
    BEIR,
    DEPTH,
    WORK,
    Ranking,
    app_fusion,
    collapsed_ndcg,
    duplicate_groups,
    ranked_run,
    record_split,
    save,
    study_arguments,
    study_query,
    study_splits,
    weighted_fusion,
)

Variant = Callable[[str, Candidates], Ranking]


def query_vectors(nexus: Assistant, name: str, split: str, queries: dict[str, str]) -> dict:
    """Each query's vector, embedded as the app embeds it, cached."""
    path = WORK / "fusion" / f"{name}-{split}-queries.npz"
    if path.exists():
        with np.load(path) as stored:
            return dict(zip(stored["ids"].tolist(), stored["vectors"], strict=True))
    ids = list(queries)
    vectors = nexus.encoder.encode([study_query(queries[q]) for q in ids], kind="query")
    np.savez(path, ids=np.array(ids), vectors=vectors)
    return dict(zip(ids, vectors, strict=True))


def rocchio(nexus: Assistant, qvec: np.ndarray, c: Candidates, m: int, beta: float) -> Ranking:
    """Search again with the query moved towards its m best distinct passages."""
    vectors = nexus.index.stored_vectors()
    assert vectors is not None, "Rocchio needs the stored vectors (a local index)"
    seen: dict[bytes, np.ndarray] = {}
    for row in c.dense_ids.tolist():  # distinct texts only: copies would count several times
        seen.setdefault(vectors[row].tobytes(), vectors[row])
        if len(seen) == m:
            break
    moved = qvec + beta * np.mean(list(seen.values()), axis=0)
    moved = (moved / np.linalg.norm(moved)).astype(np.float32)
    ids, scores = nexus.index.dense_search(moved, DEPTH)  # exact search, as the app
    return list(zip(ids.tolist(), scores.tolist(), strict=True))


def variants(nexus: Assistant, qvecs: dict, settings: Settings) -> dict[str, Variant]:
    def fixed(wk: float) -> Variant:
        return lambda q, c: weighted_fusion(c, wk)

    def peak(wk: float, low: float, high: float) -> Variant:
        def run(q: str, c: Candidates) -> Ranking:
            w = wk * keyword_share(keyword_peak(c.keyword_scores), low, high)
            return fixed(w)(q, c)

        return run

    table: dict[str, Variant] = {
        "semantic": lambda q, c: c.ranking("semantic"),
        "keyword": lambda q, c: c.ranking("keyword"),
        "app default": lambda q, c: app_fusion(c, settings),
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
    out: list[dict] = []
    for s in study_splits(args.dataset, settings):
        group = duplicate_groups(BEIR / s.name)
        qvecs = query_vectors(s.nexus, s.name, s.split, s.dataset.queries)
        top = ceiling(s.dataset, group)
        ceiling_row = {"variant": "ceiling", "ndcg_at_10": top}
        record_split(out, s, ceiling_row, f"ceiling (judged copies first) nDCG@10 {top:.4f}")
        for label, variant in variants(s.nexus, qvecs, settings).items():
            run = ranked_run(s, variant)
            m = score_run(run, s.dataset.qrels)
            m["ndcg_at_10_collapsed"] = collapsed_ndcg(run, s.dataset, group)
            record_split(
                out,
                s,
                {"variant": label, **m},
                f"{label:26} nDCG@10 {m['ndcg_at_10']:.4f}  "
                f"collapsed {m['ndcg_at_10_collapsed']:.4f}  R@100 {m['recall_at_100']:.4f}",
            )
    return save(out, args.json)


if __name__ == "__main__":
    sys.exit(main())
