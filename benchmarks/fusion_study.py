"""Compare hybrid fusion variants on BEIR datasets from cached retriever candidates.

Each query is searched once per retriever (the app's own ``Assistant.candidates``, 1,000
chunks each) and cached under ``benchmarks/data/fusion/``; every variant then re-fuses the
cached lists with the app's fusion functions, collapses passages to documents (best passage
per document) and is scored with trec_eval (pytrec_eval). Choose on the tuning split, read
the test split only to report.

    python benchmarks/fusion_study.py --dataset scifact:train:test --dataset cosqa:dev:test \\
        --json benchmarks/results/fusion_study.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pickle
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
from tqdm import tqdm

from assistant import Assistant, Settings
from assistant.beir import load_beir
from assistant.evaluation import document_run, score_run
from assistant.retrieval import (
    Candidates,
    clean_query,
    fuse,
    keyword_peak,
    reciprocal_rank_fusion,
    score_fusion,
)

DATA = Path("../shared/benchmarks")  # the shared BEIR folders beside the repository
WORK = Path("benchmarks/data")
DEPTH = 1000

Fusion = Callable[[Candidates], list[tuple[int, float]]]


def cached_candidates(nexus: Assistant, name: str, split: str, queries: dict[str, str]) -> dict:
    path = WORK / "fusion" / f"{name}-{split}.pkl"
    if path.exists():
        return pickle.loads(path.read_bytes())
    found = {}
    for qid, text in tqdm(queries.items(), desc=f"{name} {split}", unit="query"):
        c = nexus.candidates(clean_query(text, 2000), DEPTH)
        found[qid] = Candidates(None, c.dense_ids, c.dense_scores, c.keyword_ids, c.keyword_scores)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(found))
    return found


def variants(settings: Settings) -> dict[str, Fusion]:
    def rrf(k: int, wk: float) -> Fusion:
        return lambda c: reciprocal_rank_fusion(
            [c.dense_ids.tolist(), c.keyword_ids.tolist()], k=k, weights=[1.0, wk]
        )

    def convex(method: str, wk: float) -> Fusion:
        return lambda c: score_fusion(
            [(c.dense_ids, c.dense_scores), (c.keyword_ids, c.keyword_scores)],
            [1.0 - wk, wk],
            method,
        )

    table: dict[str, Fusion] = {
        "semantic": lambda c: c.ranking("semantic"),
        "keyword": lambda c: c.ranking("keyword"),
        "app default": lambda c: fuse(
            dataclasses.replace(c, keyword_peak=keyword_peak(c.keyword_scores)), settings
        ),
    }
    for k in (10, 60):
        for wk in (0.5, 1.0):
            table[f"rrf k={k} wk={wk}"] = rrf(k, wk)
    for method in ("minmax", "zscore"):
        for wk in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6):
            table[f"{method} wk={wk}"] = convex(method, wk)

    def agreement(method: str, low: float, high: float, top: int = 10) -> Fusion:
        """Keyword weight grows with how many of the top chunks both retrievers share."""

        def run(c: Candidates) -> list[tuple[int, float]]:
            shared = len(set(c.dense_ids[:top].tolist()) & set(c.keyword_ids[:top].tolist()))
            wk = low + (high - low) * shared / top
            return score_fusion(
                [(c.dense_ids, c.dense_scores), (c.keyword_ids, c.keyword_scores)],
                [1.0 - wk, wk],
                method,
            )

        return run

    for low, high in ((0.1, 0.5), (0.2, 0.6), (0.2, 0.5), (0.3, 0.6), (0.0, 0.6)):
        table[f"agree zscore {low}-{high}"] = agreement("zscore", low, high)
    return table


def documents_of(ranking: list[tuple[int, float]], source_of: np.ndarray) -> dict[str, float]:
    """The first ``DEPTH`` ranked chunks as documents, each scored by its best chunk."""
    return document_run((source_of[i], s) for i, s in ranking[:DEPTH])


def chunk_sources(nexus: Assistant) -> np.ndarray:
    """The document each chunk row belongs to, for scoring documents by their best chunk."""
    source_of = np.empty(len(nexus.index.vectors), dtype=object)
    for source, rows in nexus.index.chunk_rows_by_source().items():
        source_of[rows] = source
    return source_of


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


def record(rows: list[dict], row: dict, line: str) -> None:
    """Keep a result row and print its line at once, so a long study shows progress."""
    rows.append(row)
    print(line, flush=True)


def save(rows: list[dict], path: Path | None) -> int:
    """Write the rows as JSON when a path was given; the exit status of a study."""
    if path:
        path.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


def main() -> int:
    args = study_arguments(__doc__)
    settings = Settings()
    out = []
    for spec in args.dataset:
        name, *splits = spec.split(":")
        nexus = Assistant.load(WORK / "beir" / f"{name}-index", settings=settings)
        source_of = chunk_sources(nexus)
        for split in splits:
            dataset = load_beir(DATA / name, split)
            found = cached_candidates(nexus, name, split, dataset.queries)
            for label, fusion in variants(settings).items():
                run = {q: documents_of(fusion(c), source_of) for q, c in found.items()}
                m = score_run(run, dataset.qrels)
                record(
                    out,
                    {"dataset": name, "split": split, "variant": label, **m},
                    f"{name:8} {split:5} {label:22} nDCG@10 {m['ndcg_at_10']:.4f}  "
                    f"R@100 {m['recall_at_100']:.4f}  MRR@10 {m['mrr_at_10']:.4f}",
                )
    return save(out, args.json)


if __name__ == "__main__":
    sys.exit(main())
