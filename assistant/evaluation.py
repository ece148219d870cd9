"""Measure retrieval quality on a question set: hit@k and MRR@10 at the document level.

A question set is JSON lines, one question each::

    {"id": "data-01", "question": "...", "relevant": ["concepts/x.md"], "kind": "direct"}

``kind`` is ``direct``, ``vague``, ``follow-up`` (with ``previous``, the question it leans on)
or ``no-answer`` (``relevant`` empty). A question counts as answered at rank r when the r-th
distinct document among the hits is one of its relevant documents.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .config import SearchMode
from .errors import ConfigError
from .retrieval import Assistant

__all__ = ["Question", "QuestionScores", "evaluate_questions", "load_questions"]

CUTOFFS = (1, 3, 10)


@dataclass(frozen=True)
class Question:
    id: str
    question: str
    relevant: tuple[str, ...]
    kind: str = "direct"
    previous: str | None = None


@dataclass(frozen=True)
class QuestionScores:
    """Averages over answerable questions; ``top_score_*`` compare answerable vs no-answer."""

    mode: str
    questions: int
    hit_at: dict[int, float]
    mrr_at_10: float
    by_kind: dict[str, dict[str, float]]
    misses: list[str]


def load_questions(path: str | Path) -> list[Question]:
    """Read a question set, checking each line has what evaluation needs.

    Raises:
        ConfigError: A line is not valid JSON or lacks ``question`` or ``relevant``.
    """
    questions = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            questions.append(
                Question(
                    id=str(data.get("id", number)),
                    question=data["question"],
                    relevant=tuple(data["relevant"]),
                    kind=data.get("kind", "direct"),
                    previous=data.get("previous"),
                )
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{path}:{number}: not a valid question ({exc})") from exc
    return questions


def document_ranking(sources: Iterable[str]) -> list[str]:
    """Distinct documents in the order their first passage appears."""
    return list(dict.fromkeys(sources))


def reciprocal_rank(ranking: Sequence[str], relevant: Iterable[str], cutoff: int = 10) -> float:
    wanted = set(relevant)
    for rank, source in enumerate(ranking[:cutoff], start=1):
        if source in wanted:
            return 1.0 / rank
    return 0.0


def evaluate_questions(
    nexus: Assistant, questions: Sequence[Question], mode: SearchMode = "hybrid"
) -> QuestionScores:
    """Search every answerable question (alone, as typed) and score the document ranking."""
    answerable = [q for q in questions if q.relevant]
    per_kind: dict[str, list[float]] = {}
    hits_at: dict[int, list[float]] = {c: [] for c in CUTOFFS}
    rr: list[float] = []
    misses: list[str] = []
    for q in answerable:
        hits = nexus.search(q.question, k=30, mode=mode)
        ranking = document_ranking(h.source for h in hits)
        score = reciprocal_rank(ranking, q.relevant)
        rr.append(score)
        per_kind.setdefault(q.kind, []).append(score)
        for cutoff in CUTOFFS:
            hits_at[cutoff].append(float(bool(set(ranking[:cutoff]) & set(q.relevant))))
        if score == 0.0:
            misses.append(q.id)
    n = max(len(answerable), 1)
    return QuestionScores(
        mode=mode,
        questions=len(answerable),
        hit_at={c: round(sum(v) / n, 4) for c, v in hits_at.items()},
        mrr_at_10=round(sum(rr) / n, 4),
        by_kind={
            kind: {"questions": len(v), "mrr_at_10": round(sum(v) / len(v), 4)}
            for kind, v in sorted(per_kind.items())
        },
        misses=misses,
    )
