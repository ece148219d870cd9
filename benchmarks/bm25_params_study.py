"""BM25's parameters (k1, b) and tokenization, alone and fused with the app's hybrid rule.

The dense candidates come from the fusion study's cache (``benchmarks/data/fusion/``), so
nothing is embedded: each setting rebuilds only the keyword index over the stored chunk texts
and searches every query (1,000 chunks). Tokenizations (``Settings.split_identifiers``):
``words`` (none), ``mixed`` (names with inner capitals or digits split, snake_case whole),
``identifiers`` (all names split on both sides) and ``identifiers-docs`` (all split in the
passages only, so a question that quotes a name matches it whole and not its common parts;
not an app option). Each setting is fused
with a fixed keyword weight of 0.4 and with the app's default rule (the weight scaled by the
list's peak), and scored by trec_eval's nDCG@10, plain and with identical documents collapsed
(see ``benchmarks.common.ndcg_both``).

Every setting is scored on the tuning split; the report split is scored only for the default
setting and the two best on the tuning split, so test figures cannot steer the choice.

    python -m benchmarks.bm25_params_study --dataset scifact:train:test \\
        --dataset cosqa:dev:test --json benchmarks/results/bm25_params_study.json
    python -m benchmarks.bm25_params_study --dataset scifact:train:test --tokenizer mixed \\
        --k1 1.2 --b 0.5 --b 0.75 --json benchmarks/results/bm25_params_study_mixed.json
"""

from __future__ import annotations

import argparse
import itertools
import sys
from typing import Any

from tqdm import tqdm

from assistant import Assistant, Settings
from assistant.analysis import keyword_tokens
from assistant.ingest.beir import BeirDataset, load_beir
from assistant.search.fusion import keyword_peak, keyword_share, score_fusion
from assistant.stores.keyword import KeywordIndex
from benchmarks.common import (
    BEIR,
    DEPTH,
    beir_index,
    cached_candidates,
    chunk_sources,
    documents_of,
    duplicate_groups,
    ndcg_both,
    record,
    save,
    study_arguments,
    study_query,
)

SPLIT_MODE = {"words": "none", "mixed": "mixed", "identifiers": "all", "identifiers-docs": "all"}
K1 = (0.9, 1.2, 1.5)
B = (0.5, 0.75, 0.9)
DEFAULT = ("words", 1.2, 0.75)  # KeywordIndex.params


class DocumentSideSplit(KeywordIndex):
    """Identifiers split in the indexed passages, questions tokenized as plain words."""

    def tokenize(self, query: str) -> list[str]:
        return keyword_tokens([query], {"split_identifiers": "none"})[0]


def keyword_index(texts: list[str], tokenizer: str, k1: float, b: float) -> KeywordIndex:
    params = {**KeywordIndex.params, "k1": k1, "b": b, "split_identifiers": SPLIT_MODE[tokenizer]}
    index = KeywordIndex.build(texts, params)
    return DocumentSideSplit(index.retriever, params) if tokenizer == "identifiers-docs" else index


def score(
    nexus: Assistant, name: str, split: str, keyword: KeywordIndex, source_of: Any, group: dict
) -> dict[str, dict[str, float]]:
    """nDCG@10 (plain, collapsed) of BM25 alone, fixed weight 0.4 and the app's rule."""
    dataset: BeirDataset = load_beir(BEIR / name, split)
    dense = cached_candidates(nexus, name, split, dataset.queries)
    settings = Settings()
    runs: dict[str, dict] = {"keyword": {}, "fixed 0.4": {}, "app rule": {}}
    for q, c in dense.items():
        ids, scores = keyword.search(study_query(dataset.queries[q]), DEPTH)
        lists = [(c.dense_ids, c.dense_scores), (ids, scores)]
        share = keyword_share(
            keyword_peak(scores), settings.keyword_peak_low, settings.keyword_peak_high
        )
        fused = {
            "keyword": list(zip(ids.tolist(), scores.tolist(), strict=True)),
            "fixed 0.4": score_fusion(lists, [0.6, 0.4]),
            "app rule": score_fusion(lists, [1 - 0.4 * share, 0.4 * share]),
        }
        for label, ranking in fused.items():
            runs[label][q] = documents_of(ranking, source_of)
    return {label: ndcg_both(run, dataset, group) for label, run in runs.items()}


def main() -> int:
    def grid(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--tokenizer", action="append", choices=list(SPLIT_MODE))
        parser.add_argument("--k1", action="append", type=float)
        parser.add_argument("--b", action="append", type=float)

    args = study_arguments(__doc__, grid)
    settings = list(
        itertools.product(args.tokenizer or list(SPLIT_MODE), args.k1 or K1, args.b or B)
    )
    out = []

    for spec in args.dataset:
        name, tune, report = spec.split(":")
        nexus = beir_index(name)
        source_of, group = chunk_sources(nexus), duplicate_groups(BEIR / name)
        texts = nexus.index.db.embed_texts()
        tuned = {}
        for setting in tqdm(settings, desc=name):
            keyword = keyword_index(texts, *setting)
            tuned[setting] = (keyword, score(nexus, name, tune, keyword, source_of, group))
        # The tuning criterion: the app rule's nDCG@10, collapsed (tie order cannot move it).
        best = sorted(tuned, key=lambda s: -tuned[s][1]["app rule"]["ndcg_at_10_collapsed"])
        for setting in tuned:
            keyword, scores = tuned[setting]
            splits = {tune: scores}
            if setting == DEFAULT or setting in best[:2]:
                splits[report] = score(nexus, name, report, keyword, source_of, group)
            tokenizer, k1, b = setting
            for split, by_variant in splits.items():
                for variant, m in by_variant.items():
                    row = {"dataset": name, "split": split, "tokenizer": tokenizer, "k1": k1}
                    record(
                        out,
                        {**row, "b": b, "variant": variant, **m},
                        f"{name:8} {split:5} {tokenizer:16} k1={k1} b={b:<4} {variant:9} "
                        f"nDCG@10 {m['ndcg_at_10']:.4f}  "
                        f"collapsed {m['ndcg_at_10_collapsed']:.4f}",
                    )
    return save(out, args.json)


if __name__ == "__main__":
    sys.exit(main())
