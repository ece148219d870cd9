"""Compare BM25 tokenizations (plain words vs code identifiers split) alone and fused.

The dense candidates come from the fusion study's cache (``benchmarks/data/fusion/``), so
nothing is embedded: each variant rebuilds only the keyword index over the stored chunk
texts, searches every query (1,000 chunks, cached too) and re-fuses with the app's
``score_fusion``. Adaptive variants set each query's keyword weight from how much of the
query the best keyword hit matches (IDF mass of the query's terms found in it). Choose on
the tuning split, read the test split only to report.

    python -m benchmarks.tokenizer_study --dataset cosqa:dev:test --dataset scifact:train:test \\
        --json benchmarks/results/tokenizer_study.json
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable

import numpy as np
from tqdm import tqdm

from assistant import Assistant, Settings
from assistant.evaluation import score_run
from assistant.search.fusion import Candidates
from assistant.stores.keyword import KeywordIndex
from benchmarks.common import (
    DEPTH,
    WORK,
    Ranking,
    load_lists,
    ranked_run,
    record_split,
    save,
    save_lists,
    study_arguments,
    study_query,
    study_splits,
    weighted_fusion,
)

TOKENIZERS = {"words": "none", "identifiers": "all"}  # Settings.split_identifiers
Fusion = Callable[[Candidates, float], Ranking]


def matched_idf_share(keyword: KeywordIndex, query: str, top: int | None) -> float:
    """Share of the query's IDF mass (terms unknown to the index count at the highest IDF)
    that occurs in chunk ``top``; 0 when BM25 found nothing."""
    if top is None:
        return 0.0
    vocab = keyword.retriever.vocab_dict
    n = keyword.size
    total = matched = 0.0
    for term in set(keyword.tokenize(query)):
        if term not in vocab:
            total += math.log(1 + (n + 0.5) / 0.5)
            continue
        scores = np.asarray(keyword.retriever.get_scores([term]))
        df = int((scores > 0).sum())
        idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
        total += idf
        matched += idf if scores[top] > 0 else 0.0
    return matched / total if total else 0.0


def keyword_candidates(
    nexus: Assistant, name: str, split: str, tokenizer: str, queries: dict[str, str]
) -> dict[str, tuple[np.ndarray, np.ndarray, float]]:
    """(ids, scores, matched IDF share) per query for one tokenization, cached as ``.npz``."""
    path = WORK / "fusion" / f"{name}-{split}-bm25-{tokenizer}.npz"
    if not path.exists():
        params = {**KeywordIndex.params, "split_identifiers": TOKENIZERS[tokenizer]}
        keyword = KeywordIndex.build(nexus.index.db.embed_texts(), params)
        rows = {}
        for qid, text in tqdm(queries.items(), desc=f"{name} {split} {tokenizer}", unit="query"):
            query = study_query(text)
            ids, scores = keyword.search(query, DEPTH)
            share = matched_idf_share(keyword, query, int(ids[0]) if len(ids) else None)
            rows[qid] = {"ids": ids, "scores": scores, "share": share}
        save_lists(path, rows)
    return {q: (r["ids"], r["scores"], r["share"]) for q, r in load_lists(path).items()}


def variants() -> dict[str, Fusion]:
    def zscore(wk: float) -> Fusion:
        return lambda c, share: weighted_fusion(c, wk)

    def adaptive(wk: float, floor: float) -> Fusion:
        """Keyword weight wk when the best keyword hit holds the whole query, scaled down
        to ``floor`` × wk as the matched share falls to zero."""

        def run(c: Candidates, share: float) -> Ranking:
            return weighted_fusion(c, wk * (floor + (1 - floor) * share))

        return run

    table: dict[str, Fusion] = {
        "semantic": lambda c, share: c.ranking("semantic"),
        "keyword": lambda c, share: c.ranking("keyword"),
    }
    for wk in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6):
        table[f"zscore wk={wk}"] = zscore(wk)
    for wk in (0.4, 0.5, 0.6):
        for floor in (0.0, 0.5):
            table[f"adaptive wk={wk} floor={floor}"] = adaptive(wk, floor)
    return table


def with_keyword(
    fusion: Fusion, keyword: dict[str, tuple[np.ndarray, np.ndarray, float]]
) -> Callable[[str, Candidates], Ranking]:
    """``fusion`` of a query's cached dense list with its list from this tokenization."""

    def rank(q: str, d: Candidates) -> Ranking:
        ids, scores, share = keyword[q]
        return fusion(Candidates(None, d.dense_ids, d.dense_scores, ids, scores), share)

    return rank


def main() -> int:
    args = study_arguments(__doc__)
    out: list[dict] = []
    for s in study_splits(args.dataset, Settings()):
        for tokenizer in TOKENIZERS:
            keyword = keyword_candidates(s.nexus, s.name, s.split, tokenizer, s.dataset.queries)
            for label, fusion in variants().items():
                m = score_run(ranked_run(s, with_keyword(fusion, keyword)), s.dataset.qrels)
                record_split(
                    out,
                    s,
                    {"tokenizer": tokenizer, "variant": label, **m},
                    f"{tokenizer:11} {label:28} "
                    f"nDCG@10 {m['ndcg_at_10']:.4f}  R@100 {m['recall_at_100']:.4f}",
                )
    return save(out, args.json)


if __name__ == "__main__":
    sys.exit(main())
