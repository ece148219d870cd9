"""Calibrate the chat's "nothing relevant enough" floor: answerable vs no-answer questions.

For every question the chat's own search runs (hybrid, 5 passages, follow-ups folded with their
previous question) and the best passage cosine is recorded. A floor f refuses a question when
that cosine is below f. There are three kinds of mistake: refusing an answerable question
whose passages did include a relevant document (it loses a good answer), showing passages that
miss for an answerable question, and showing passages for a question the hub cannot answer.
The floor is chosen on the tuning set (benchmarks/questions.jsonl) as the one with the lowest
expected cost, given the share of questions that have no answer (``--no-answer-share``,
default 15 %) and how much worse losing a good answer is than showing weak matches
(``--refusal-cost``, default 2). The chosen floor is then reported unchanged on the held-out
set (benchmarks/questions-independent.jsonl).

    .venv/bin/python -m benchmarks.no_answer --index index \\
        --json benchmarks/results/no_answer.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from assistant import Assistant, Settings
from assistant.evaluation import load_questions
from assistant.search.conversation import contextual_query
from benchmarks.common import INDEPENDENT_QUESTIONS_FILE, QUESTIONS_FILE, shown

Answerable = list[tuple[float, bool]]  # best cosine, whether a relevant document was shown


def best_cosines(nexus: Assistant, path: Path) -> tuple[Answerable, list[float]]:
    """Best passage cosine (and, if answerable, whether it was found) per question."""
    answerable, unanswerable = [], []
    for q in load_questions(path):
        query = contextual_query(q.question, [q.previous] if q.previous else [])
        hits = nexus.search(query.text, 5)
        best = max((h.dense_score or 0.0) for h in hits) if hits else 0.0
        if q.relevant:
            answerable.append((best, any(h.source in q.relevant for h in hits)))
        else:
            unanswerable.append(best)
    return answerable, unanswerable


def rates(
    answerable: Answerable,
    unanswerable: list[float],
    floor: float,
    share: float = 0.15,
    refusal_cost: float = 2.0,
) -> dict[str, float]:
    """What a floor keeps and refuses, and its expected cost per question."""
    kept = float(np.mean([c >= floor for c, _ in answerable]))
    lost = float(np.mean([c < floor and found for c, found in answerable]))
    shown_miss = float(np.mean([c >= floor and not found for c, found in answerable]))
    refused = float(np.mean([c < floor for c in unanswerable]))
    cost = (1 - share) * (refusal_cost * lost + shown_miss) + share * (1 - refused)
    return {
        "floor": round(floor, 3),
        "answerable_kept": round(kept, 3),
        "good_answers_lost": round(lost, 3),
        "no_answer_refused": round(refused, 3),
        "expected_cost": round(cost, 4),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--index", type=Path, default=Path("index"))
    parser.add_argument("--tune", type=Path, default=QUESTIONS_FILE)
    parser.add_argument("--held-out", type=Path, default=INDEPENDENT_QUESTIONS_FILE)
    parser.add_argument("--no-answer-share", type=float, default=0.15)
    parser.add_argument("--refusal-cost", type=float, default=2.0)
    parser.add_argument("--json", type=Path, help="Write the results here as well.")
    args = parser.parse_args(argv)

    nexus = Assistant.load(args.index, settings=Settings())
    tune = best_cosines(nexus, args.tune)
    grid = [round(f, 3) for f in np.arange(0.20, 0.60, 0.01)]
    costs = {"share": args.no_answer_share, "refusal_cost": args.refusal_cost}
    table = [rates(*tune, f, **costs) for f in grid]
    # Lowest cost; ties go to the lower floor, which refuses fewer real questions.
    chosen = min(table, key=lambda r: (r["expected_cost"], r["floor"]))
    held = best_cosines(nexus, args.held_out)
    result = {
        "model": nexus.manifest.encoder_name,
        "index_chunks": nexus.manifest.chunks,
        "tune_set": {
            "file": shown(args.tune),
            "answerable": len(tune[0]),
            "no_answer": len(tune[1]),
        },
        "held_out_set": {
            "file": shown(args.held_out),
            "answerable": len(held[0]),
            "no_answer": len(held[1]),
        },
        "costs": costs,
        "chosen": chosen,
        "held_out_at_chosen": rates(*held, chosen["floor"], **costs),
        "tune_percentiles": {
            "answerable_p5_p50": [
                round(float(np.percentile([c for c, _ in tune[0]], p)), 3) for p in (5, 50)
            ],
            "no_answer_p50_p95": [round(float(np.percentile(tune[1], p)), 3) for p in (50, 95)],
        },
        "grid": table,
        "held_out_grid": [rates(*held, f, **costs) for f in grid],
    }
    text = json.dumps(result, indent=2)
    print(json.dumps({k: v for k, v in result.items() if "grid" not in k}, indent=2))
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
