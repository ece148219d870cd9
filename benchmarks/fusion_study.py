"""Compare hybrid fusion variants on BEIR datasets from cached retriever candidates.

Each query is searched once per retriever (the app's own ``Assistant.candidates``, 1,000
chunks each) and cached under ``benchmarks/data/fusion/`` (one ``.npz`` of plain arrays per
split); every variant then re-fuses the cached lists with the app's fusion functions,
collapses passages to documents (best passage per document) and is scored with trec_eval
(pytrec_eval). Choose on the tuning split, read the test split only to report.

    python -m benchmarks.fusion_study --dataset scifact:train:test --dataset cosqa:dev:test \\
        --json benchmarks/results/fusion_study.json
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from assistant import Settings
from assistant.evaluation import score_run
from assistant.search.fusion import Candidates, reciprocal_rank_fusion
from benchmarks.common import (
    app_fusion,
    ranked_run,
    record_split,
    save,
    study_arguments,
    study_splits,
    weighted_fusion,
)

Fusion = Callable[[Candidates], list[tuple[int, float]]]


def variants(settings: Settings) -> dict[str, Fusion]:
    def rrf(k: int, wk: float) -> Fusion:
        return lambda c: reciprocal_rank_fusion(
            [c.dense_ids.tolist(), c.keyword_ids.tolist()], k=k, weights=[1.0, wk]
        )

    def convex(method: str, wk: float) -> Fusion:
        return lambda c: weighted_fusion(c, wk, method)

    table: dict[str, Fusion] = {
        "semantic": lambda c: c.ranking("semantic"),
        "keyword": lambda c: c.ranking("keyword"),
        "app default": lambda c: app_fusion(c, settings),
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
            return weighted_fusion(c, low + (high - low) * shared / top, method)

        return run

    for low, high in ((0.1, 0.5), (0.2, 0.6), (0.2, 0.5), (0.3, 0.6), (0.0, 0.6)):
        table[f"agree zscore {low}-{high}"] = agreement("zscore", low, high)
    return table


def main() -> int:
    args = study_arguments(__doc__)
    settings = Settings()
    out: list[dict] = []
    for s in study_splits(args.dataset, settings):
        for label, fusion in variants(settings).items():
            m = score_run(ranked_run(s, lambda q, c, f=fusion: f(c)), s.dataset.qrels)
            record_split(
                out,
                s,
                {"variant": label, **m},
                f"{label:22} nDCG@10 {m['ndcg_at_10']:.4f}  "
                f"R@100 {m['recall_at_100']:.4f}  MRR@10 {m['mrr_at_10']:.4f}",
            )
    return save(out, args.json)


if __name__ == "__main__":
    sys.exit(main())
