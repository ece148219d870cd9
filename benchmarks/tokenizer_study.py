"""Compare BM25 tokenizations (plain words vs code identifiers split) alone and fused.

The dense candidates come from the fusion study's cache (``benchmarks/data/fusion/``), so
nothing is embedded: each variant rebuilds only the keyword index over the stored chunk
texts, searches every query (1,000 chunks, cached too) and re-fuses with the app's
``score_fusion``. Adaptive variants set each query's keyword weight from how much of the
query the best keyword hit matches (IDF mass of the query's terms found in it). Choose on
the tuning split, read the test split only to report.

    python benchmarks/tokenizer_study.py --dataset cosqa:dev:test --dataset scifact:train:test \\
        --json benchmarks/results/tokenizer_study.json
"""

from __future__ import annotations

import math
import pickle
import sys
from collections.abc import Callable

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
from tqdm import tqdm

from assistant import Assistant, Settings
from assistant.beir import load_beir
from assistant.evaluation import score_run
from assistant.retrieval import Candidates, clean_query, score_fusion
from assistant.store import KeywordIndex

TOKENIZERS = {"words": False, "identifiers": True}
Fusion = Callable[[Candidates, float], list[tuple[int, float]]]


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
    """(ids, scores, matched IDF share) per query for one tokenization, cached."""
    path = WORK / "fusion" / f"{name}-{split}-bm25-{tokenizer}.pkl"
    if path.exists():
        return pickle.loads(path.read_bytes())
    params = {**KeywordIndex.params, "split_identifiers": TOKENIZERS[tokenizer]}
    keyword = KeywordIndex.build(nexus.index.embed_texts(), params)
    found = {}
    for qid, text in tqdm(queries.items(), desc=f"{name} {split} {tokenizer}", unit="query"):
        query = clean_query(text, 2000)
        ids, scores = keyword.search(query, DEPTH)
        share = matched_idf_share(keyword, query, int(ids[0]) if len(ids) else None)
        found[qid] = (ids, scores, share)
    path.write_bytes(pickle.dumps(found))
    return found


def variants() -> dict[str, Fusion]:
    def zscore(wk: float) -> Fusion:
        return lambda c, share: score_fusion(
            [(c.dense_ids, c.dense_scores), (c.keyword_ids, c.keyword_scores)], [1 - wk, wk]
        )

    def adaptive(wk: float, floor: float) -> Fusion:
        """Keyword weight wk when the best keyword hit holds the whole query, scaled down
        to ``floor`` × wk as the matched share falls to zero."""

        def run(c: Candidates, share: float) -> list[tuple[int, float]]:
            w = wk * (floor + (1 - floor) * share)
            return score_fusion(
                [(c.dense_ids, c.dense_scores), (c.keyword_ids, c.keyword_scores)], [1 - w, w]
            )

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


def main() -> int:
    args = study_arguments(__doc__)
    out = []
    for spec in args.dataset:
        name, *splits = spec.split(":")
        nexus = Assistant.load(WORK / "beir" / f"{name}-index", settings=Settings())
        source_of = chunk_sources(nexus)
        for split in splits:
            dataset = load_beir(DATA / name, split)
            dense = cached_candidates(nexus, name, split, dataset.queries)
            for tokenizer in TOKENIZERS:
                keyword = keyword_candidates(nexus, name, split, tokenizer, dataset.queries)
                for label, fusion in variants().items():
                    run = {}
                    for q, d in dense.items():
                        ids, scores, share = keyword[q]
                        c = Candidates(None, d.dense_ids, d.dense_scores, ids, scores)
                        run[q] = documents_of(fusion(c, share), source_of)
                    m = score_run(run, dataset.qrels)
                    row = {"dataset": name, "split": split, "tokenizer": tokenizer}
                    record(
                        out,
                        {**row, "variant": label, **m},
                        f"{name:8} {split:5} {tokenizer:11} {label:28} "
                        f"nDCG@10 {m['ndcg_at_10']:.4f}  R@100 {m['recall_at_100']:.4f}",
                    )
    return save(out, args.json)


if __name__ == "__main__":
    sys.exit(main())
