"""Passage length: build the BEIR sets and our corpus at several chunk sizes, score each.

Each size is a real build (``build_beir_index`` / ``build_index``, the app's chunker and
encoder) into ``benchmarks/data/passages/<name>-<tokens>-<overlap>``; builds are incremental,
so a rerun embeds nothing. SciFact abstracts are longer than 256 word pieces more often than
not, CoSQA functions rarely are, and our corpus has long sections: the three react to the
size differently. Scored on the tuning splits only (nDCG@10, plain and with identical
documents collapsed, see ``benchmarks.common.ndcg_both``) and on our question sets (MRR@10);
the test splits are left alone unless a size is adopted.

    python -m benchmarks.passage_length_study --dataset scifact:train --dataset cosqa:dev \\
        --chunks 256/32 --chunks 192/24 --chunks 128/16 \\
        --json benchmarks/results/passage_length_study.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from assistant import Assistant, Settings
from assistant.build import build_index
from assistant.evaluation import build_beir_index, evaluate_questions, load_questions
from assistant.ingest.beir import load_beir
from assistant.search.fusion import fuse
from benchmarks.common import (
    BEIR,
    DEPTH,
    QUESTION_SETS,
    ROOT,
    WORK,
    chunk_sources,
    documents_of,
    duplicate_groups,
    ndcg_both,
    record,
    save,
    study_query,
)

MODES = ("semantic", "keyword", "hybrid")


def beir_scores(nexus: Assistant, name: str, split: str) -> dict[str, dict[str, float]]:
    """nDCG@10 per mode, plain and collapsed, over the app's own candidates and fusion."""
    dataset = load_beir(BEIR / name, split)
    source_of, group = chunk_sources(nexus), duplicate_groups(BEIR / name)
    runs: dict[str, dict] = {mode: {} for mode in MODES}
    for q in dataset.qrels:
        c = nexus.candidates(study_query(dataset.queries[q]), DEPTH)
        for mode in MODES:
            ranking = fuse(c, nexus.settings) if mode == "hybrid" else c.ranking(mode)
            runs[mode][q] = documents_of(ranking, source_of)
    return {mode: ndcg_both(run, dataset, group) for mode, run in runs.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", action="append", default=[], help="name:tune")
    parser.add_argument("--chunks", action="append", required=True, help="tokens/overlap")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    out = []
    for size in args.chunks:
        tokens, overlap = (int(n) for n in size.split("/"))
        # Exact search at every size, as MTEB's, so only the passages differ.
        settings = Settings(chunk_tokens=tokens, chunk_overlap=overlap, index_type="Flat")
        row = {"chunk_tokens": tokens, "chunk_overlap": overlap}
        for spec in args.dataset:
            name, split = spec.split(":")
            work = WORK / "passages" / f"{name}-{tokens}-{overlap}"
            report = build_beir_index(BEIR / name, work, settings=settings, progress=True)
            nexus = Assistant.load(work, settings=settings)
            for mode, m in beir_scores(nexus, name, split).items():
                record(
                    out,
                    {**row, "dataset": name, "split": split, "mode": mode, **m},
                    f"{size:7} {name:8} {split:5} {mode:8} nDCG@10 {m['ndcg_at_10']:.4f}  "
                    f"collapsed {m['ndcg_at_10_collapsed']:.4f}  ({report.chunks} chunks)",
                )
                out[-1]["chunks"] = report.chunks
        work = WORK / "passages" / f"corpus-{tokens}-{overlap}"
        report = build_index(ROOT / "corpus", work, settings=settings, progress=True)
        nexus = Assistant.load(work, settings=settings)
        for path in QUESTION_SETS:
            scores = evaluate_questions(nexus, load_questions(path), "hybrid")
            record(
                out,
                {**row, "questions": path.name, "mode": "hybrid", "chunks": report.chunks}
                | {"mrr_at_10": scores.mrr_at_10, "hit_at_1": scores.hit_at[1]},
                f"{size:7} {path.name:30} hybrid MRR@10 {scores.mrr_at_10:.3f}  "
                f"hit@1 {scores.hit_at[1]:.3f}  ({report.chunks} chunks)",
            )
    return save(out, args.json)


if __name__ == "__main__":
    sys.exit(main())
