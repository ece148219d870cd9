"""Calibrate the chat's "nothing relevant enough" floor: answerable vs no-answer questions.

For every question the chat's own search runs (hybrid, 5 passages, follow-ups folded with their
previous question) and the best passage cosine is recorded. A floor f refuses a question when
that cosine is below f. The floor is chosen on the tuning set (benchmarks/questions.jsonl) as
the one with the lowest expected cost of mistakes, given the share of questions that have no
answer (``--no-answer-share``, default 15 %) and how much worse it is to refuse a question the
hub does answer than to show weak matches for one it does not (``--refusal-cost``, default 2).
The chosen floor is then reported unchanged on the held-out set.

    .venv/bin/python benchmarks/no_answer.py --index index \\
        --json benchmarks/results/no_answer.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from assistant import Assistant, Settings
from assistant.conversation import contextual_query
from assistant.evaluation import load_questions

HERE = Path(__file__).parent


def best_cosines(nexus: Assistant, path: Path) -> tuple[list[float], list[float]]:
    """Best passage cosine per answerable question and per no-answer question."""
    answerable, unanswerable = [], []
    for q in load_questions(path):
        query = contextual_query(q.question, [q.previous] if q.previous else [])
        hits = nexus.search(query.text, 5)
        best = max((h.dense_score or 0.0) for h in hits) if hits else 0.0
        (answerable if q.relevant else unanswerable).append(best)
    return answerable, unanswerable


def rates(
    answerable: list[float],
    unanswerable: list[float],
    floor: float,
    share: float = 0.15,
    refusal_cost: float = 2.0,
) -> dict[str, float]:
    """Shares kept and refused at ``floor``, and the expected cost per question."""
    kept = float(np.mean([c >= floor for c in answerable]))
    refused = float(np.mean([c < floor for c in unanswerable]))
    cost = (1 - share) * (1 - kept) * refusal_cost + share * (1 - refused)
    return {
        "floor": round(floor, 3),
        "answerable_kept": round(kept, 3),
        "no_answer_refused": round(refused, 3),
        "expected_cost": round(cost, 4),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--index", type=Path, default=Path("index"))
    parser.add_argument("--tune", type=Path, default=HERE / "questions.jsonl")
    parser.add_argument("--held-out", type=Path, default=HERE / "questions-independent.jsonl")
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
        "tune_set": {"file": str(args.tune), "answerable": len(tune[0]), "no_answer": len(tune[1])},
        "held_out_set": {
            "file": str(args.held_out),
            "answerable": len(held[0]),
            "no_answer": len(held[1]),
        },
        "costs": costs,
        "chosen": chosen,
        "held_out_at_chosen": rates(*held, chosen["floor"], **costs),
        "tune_percentiles": {
            "answerable_p5_p50": [round(float(np.percentile(tune[0], p)), 3) for p in (5, 50)],
            "no_answer_p50_p95": [round(float(np.percentile(tune[1], p)), 3) for p in (50, 95)],
        },
        "grid": table,
    }
    text = json.dumps(result, indent=2)
    print(json.dumps({k: v for k, v in result.items() if k != "grid"}, indent=2))
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
