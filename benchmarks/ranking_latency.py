"""Warm hybrid search latency with the ranking stages on and off, in one process and one run.

The stages after fusion (heading field, document evidence, release-notes step-back,
diversity cap, cards with their neighbours) are switched off by settings; both paths search
the same index with the same loaded encoder, questions interleaved so machine noise falls on
both alike, each question asked once per path (query vectors are not cached across paths:
each path embeds its own copy of the question).

With ``--reranker-shaped``, a third path re-scores the best 20 candidates with a cross-encoder
of ms-marco-MiniLM-L-6-v2's shape (the packaged MiniLM's configuration and tokenizer, random
weights: no reranker weights can be installed here, and the cost of a forward pass does not
depend on the weights' values).

Usage (from the repository root; the Django docs index from ``benchmarks.external_docs``)::

    .venv/bin/python -m benchmarks.ranking_latency --reranker-shaped \
        --json benchmarks/results/ranking-latency.json
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from assistant import Assistant, Settings
from assistant.encoders.models import model_location
from assistant.search.rerank import load_reranker
from benchmarks.common import DJANGO_QUESTIONS, WORK, command_line, cpu_flags, percentile, report

STAGES_OFF = {
    "heading_weight": 0.0,
    "document_weight": 0.0,
    "release_notes_penalty": 0.0,
    "max_per_document": 0,
    "context_chunks": 0,
}


def minilm_shaped_cross_encoder(folder: Path) -> Path:
    """A cross-encoder folder with the packaged MiniLM's shape and tokenizer, random weights."""
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    source = model_location(Settings().model)
    config = BertConfig.from_pretrained(source, num_labels=1)
    BertForSequenceClassification(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(source).save_pretrained(folder)
    return folder


def timed(paths: dict[str, Assistant], rounds: int) -> dict[str, list[float]]:
    """Milliseconds of each search per path, paths interleaved question by question."""
    for nexus in paths.values():
        nexus.search("warm-up question")
    timings: dict[str, list[float]] = {name: [] for name in paths}
    for round_ in range(rounds):
        for question in DJANGO_QUESTIONS:
            for name, nexus in paths.items():
                query = f"{question} ({name}, {round_})"  # a fresh query vector every time
                tick = time.perf_counter()
                nexus.search(query, k=10)
                timings[name].append((time.perf_counter() - tick) * 1000)
    return timings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--index", type=Path, default=WORK / "external" / "django-index")
    parser.add_argument("--rounds", type=int, default=3, help="passes over the questions")
    parser.add_argument("--reranker-shaped", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    base = Assistant.load(args.index, settings=Settings())
    paths = {
        "stages on (default)": base,
        "stages off": Assistant(base.index, base.encoder, Settings().replace(**STAGES_OFF)),
    }
    timings = timed(paths, args.rounds)
    if args.reranker_shaped:
        # Timed apart from the others: PyTorch's threads keep spinning for a while after each
        # forward pass, which would slow whichever search ran next.
        folder = Path(tempfile.mkdtemp()) / "cross-encoder"
        reranker = load_reranker(str(minilm_shaped_cross_encoder(folder)))
        with_reranker = Settings().replace(reranker=str(folder))
        reranked = Assistant(base.index, base.encoder, with_reranker, reranker)
        timings |= timed({"with a MiniLM-L6 cross-encoder": reranked}, 1)
    results: dict[str, Any] = {
        "command": command_line("benchmarks.ranking_latency"),
        "cpu_flags": cpu_flags(),
        "index_chunks": base.manifest.chunks,
        "backend": str(base.manifest.encoder.get("backend")),
        "searches_per_path": {name: len(values) for name, values in timings.items()},
    }
    for name, values in timings.items():
        results[name] = {
            "p50_ms": round(statistics.median(values), 2),
            "p95_ms": round(percentile(values, 95) or 0.0, 2),
        }
    results["p50_ratio"] = round(
        results["stages on (default)"]["p50_ms"] / results["stages off"]["p50_ms"], 3
    )
    report(results, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
