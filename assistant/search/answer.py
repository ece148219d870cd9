"""The cited answer: what Nexus says to a chat message, built from the passages it found.

``respond`` turns a message and the chat history into a :class:`Reply`: the query actually
searched (follow-ups borrow the previous question through
:func:`assistant.search.conversation.contextual_query`), the passages found, a few of their
sentences that answer the question best, each citing its passage, and, when nothing is
relevant enough, related topics instead of weak matches.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..analysis import SENTENCE_END, WORD, query_terms, stems
from ..analysis import words as words_of
from ..config import SearchMode
from ..encoders import Encoder
from .assistant import Assistant, Hit
from .conversation import contextual_query, history_questions, message_text
from .query import clean_query

__all__ = [
    "RELEVANCE_FLOORS",
    "SURE_COSINES",
    "AnswerSentence",
    "Reply",
    "extract_answer",
    "is_weak",
    "relevance_floor",
    "respond",
]

# Lowest cosine between question and best passage that still counts as an answer, per model.
# First calibrated on benchmarks/questions.jsonl (0.43); on docs nobody here wrote, answerable
# questions reach down to 0.41 while unanswerable ones score up to 0.73, so no floor
# separates them, and refusing an answerable question costs more than showing weak
# passages: 0.38 refuses at most one answerable question of each external tuning set.
RELEVANCE_FLOORS: dict[str, float] = {"all-MiniLM-L6-v2": 0.38}
# Below this cosine an answer whose best passage only one retriever ranks high (of the top
# five of each list) is flagged as a weak match: on the tuning sets that flags 6 % of
# answerable questions and 41 % of unanswerable ones (benchmarks/studies/ranking.md).
SURE_COSINES: dict[str, float] = {"all-MiniLM-L6-v2": 0.55}
_AGREEING_RANK = 5

ANSWER_SENTENCES = 3
PASSAGES_FOR_ANSWER = 3
RELATED_TOPICS = 4

_FENCE = re.compile(r"^(```|~~~)")
_RULES = set("=-~^*+#`:.'\"")  # characters of rst adornments and Markdown rules
# A name from code: a call, a dotted or snake_case name, an option (--lf), a CONSTANT.
_CODE_NAME = re.compile(r"\w\(|\w\.\w|\w_\w|(?<!\w)--?[a-z]|\b[A-Z]{2,}_[A-Z]")
_MAX_CODE_CHARS = 100
_MAX_EMBEDDED = 24
# Weights of the answer's scores besides meaning; chosen on the tuning question sets
# (benchmarks/studies/ranking.md).
_LEXICAL_WEIGHT = 0.15
_CODE_BONUS = 0.1
# A code line is quoted only when its cosine with the question reaches this: below it, a line
# of code says nothing a reader can tie to the question.
_CODE_FLOOR = 0.3
_LIST_MARK = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")
_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_EMPHASIS = re.compile(r"(\*\*|__|\*|`)")


@dataclass(frozen=True)
class AnswerSentence:
    """A sentence (or a line of code, ``code``) lifted from a passage; ``citation`` is that
    passage's rank (1-based)."""

    text: str
    citation: int
    code: bool = False


@dataclass(frozen=True)
class Reply:
    """What Nexus says to one message.

    ``hits`` are the passages to show; empty when nothing was relevant enough, in which case
    ``related`` holds (title, source) of documents near the question, offered as topics.
    ``query`` is what was actually searched (the message, or the message with the previous
    question folded in), ``seconds`` how long the search took. ``weak`` marks an answer
    whose best passage is a doubtful match (see :func:`is_weak`).
    """

    question: str
    query: str
    folded: bool
    hits: tuple[Hit, ...]
    answer: tuple[AnswerSentence, ...]
    related: tuple[tuple[str, str], ...]
    seconds: float
    weak: bool = False

    @property
    def answered(self) -> bool:
        return bool(self.hits)


def relevance_floor(model: str) -> float | None:
    """The calibrated floor for a model, or None when it was never calibrated (no floor)."""
    return RELEVANCE_FLOORS.get(model)


def is_weak(hits: Sequence[Hit], model: str) -> bool:
    """Whether the best passage is a doubtful match: its cosine is below the model's sure
    level and the two retrievers disagree (one of them does not rank it in its top five).
    Hybrid hits only; without both ranks there is nothing to compare."""
    sure = SURE_COSINES.get(model)
    top = hits[0] if hits else None
    if top is None or sure is None or top.dense_score is None or top.dense_score >= sure:
        return False
    ranks = (top.dense_rank, top.keyword_rank)
    return not all(rank is not None and rank <= _AGREEING_RANK for rank in ranks)


def _is_relevant(hits: Sequence[Hit], floor: float | None) -> bool:
    if not hits:
        return False
    scores = [h.dense_score for h in hits if h.dense_score is not None]
    # Keyword mode embeds nothing, so there is no calibrated score to judge by.
    return floor is None or not scores or max(scores) >= floor


def _plain(markdown: str) -> str:
    """Sentence text without Markdown link and emphasis syntax."""
    text = _LINK.sub(lambda m: m.group(1), markdown)
    return " ".join(_EMPHASIS.sub("", text).split())


@dataclass(frozen=True)
class _Candidate:
    """A sentence, or a line of code, that could be quoted in the answer."""

    text: str
    rank: int  # of the passage it comes from
    position: int  # its place in that passage
    code: bool


def _candidates(hits: Sequence[Hit]) -> list[_Candidate]:
    """Quotable units of the top passages: prose sentences of 4 to 60 words that do not end
    mid-thought, and short lines of code (a command, a call, a setting)."""
    found = []
    for hit in hits[:PASSAGES_FOR_ANSWER]:
        for position, (text, code) in enumerate(_units(hit.text)):
            words = WORD.findall(text)
            if code:
                quotable = len(words) >= 1 and len(text) <= _MAX_CODE_CHARS
            else:
                quotable = 4 <= len(words) <= 60 and not text.endswith((":", ";", ","))
            if quotable:
                found.append(_Candidate(text, hit.rank, position, code))
    return found


def _units(text: str) -> list[tuple[str, bool]]:
    """A passage's prose sentences and code lines, in order: (text, is it code)."""
    units: list[tuple[str, bool]] = []
    paragraph: list[str] = []

    def flush() -> None:
        units.extend((_plain(s), False) for s in SENTENCE_END.split(" ".join(paragraph)) if s)
        paragraph.clear()

    in_code = False
    for line in [*text.split("\n"), ""]:
        stripped = line.strip()
        if _FENCE.match(stripped):
            flush()
            in_code = not in_code
            continue
        indented_code = line.startswith(("    ", "\t")) and not _LIST_MARK.match(line)
        if (in_code or indented_code) and stripped:
            flush()
            if not stripped.startswith(("#", "//", ">>> #")) and not set(stripped) <= _RULES:
                units.append((stripped.removeprefix(">>> ").removeprefix("$ "), True))
            continue
        prose = stripped and stripped[0] not in "#|>"
        if prose and not set(stripped) <= _RULES:  # not an rst underline
            if _LIST_MARK.match(line):
                flush()
            paragraph.append(_LIST_MARK.sub("", stripped))
            continue
        flush()
    return units


def extract_answer(
    query: str,
    hits: Sequence[Hit],
    limit: int = ANSWER_SENTENCES,
    *,
    encoder: Encoder | None = None,
    query_vector: np.ndarray | None = None,
) -> tuple[AnswerSentence, ...]:
    """The sentences (or code lines) of the top passages that answer the question best.

    Each candidate scores its cosine with the question (when an ``encoder`` and the
    question's ``query_vector`` are given: the meaning, not just shared words), plus the share
    of the question's topic words it holds, a bonus for naming code (the API, setting or
    command a question is usually after) and small ones for a better-ranked passage and an
    early place in it. One that repeats a chosen one is skipped. Without an encoder only prose
    sharing the question's words is quoted; when nothing scores, the top passage's first
    sentence stands in, so a found passage always yields an answer.
    """
    candidates = _candidates(hits)
    if not candidates:
        return ()
    terms = query_terms(query)
    scored = []
    for candidate in candidates:
        shared = len(terms & set(stems(WORD.findall(candidate.text)))) / len(terms) if terms else 0
        if encoder is None and (candidate.code or not shared):
            continue  # without meaning to judge by, only prose sharing the question's words
        names = _CODE_NAME.search(candidate.text) is not None or candidate.code
        score = (
            _LEXICAL_WEIGHT * shared
            + _CODE_BONUS * names
            + 0.1 / candidate.rank
            + 0.05 / (1 + candidate.position)
        )
        scored.append((score, candidate))
    if encoder is not None and query_vector is not None and scored:
        # Meaning decides among the likeliest few: embedding every sentence costs too much.
        scored = sorted(scored, key=lambda pair: -pair[0])[:_MAX_EMBEDDED]
        vectors = encoder.encode([c.text for _, c in scored], kind="document")
        cosines = (vectors @ query_vector).tolist()
        scored = [
            (score + cos, c)
            for (score, c), cos in zip(scored, cosines, strict=True)
            if not c.code or cos >= _CODE_FLOOR
        ]
    ranked = [c for _, c in sorted(scored, key=lambda pair: -pair[0])]
    # Prose explains and a line of code shows how: one slot is kept for the best code line.
    code = _distinct([c for c in ranked if c.code], 1, [])
    chosen = _distinct([c for c in ranked if not c.code], limit - len(code), code) + code
    if not chosen:
        first = next((c for c in candidates if not c.code), candidates[0])
        chosen.append(first)
    return tuple(AnswerSentence(c.text, c.rank, c.code) for c in chosen)


def _distinct(ranked: list[_Candidate], limit: int, taken: list[_Candidate]) -> list[_Candidate]:
    """The first ``limit`` of ``ranked`` that do not repeat one another or ``taken`` (more than
    70 % of their words in common)."""
    seen = [set(words_of(c.text)) for c in taken]
    chosen: list[_Candidate] = []
    for candidate in ranked:
        if len(chosen) == limit:
            break
        vocabulary = set(words_of(candidate.text))
        if any(len(vocabulary & o) / max(len(vocabulary | o), 1) > 0.7 for o in seen):
            continue
        chosen.append(candidate)
        seen.append(vocabulary)
    return chosen


def _related_topics(
    hits: Sequence[Hit], limit: int = RELATED_TOPICS
) -> tuple[tuple[str, str], ...]:
    """(title, source) of the distinct documents among the nearest (weak) passages."""
    documents = dict.fromkeys((h.title or h.source, h.source) for h in hits)
    return tuple(documents)[:limit]


def respond(
    nexus: Assistant,
    message: str,
    history: Sequence[Any] | None = None,
    *,
    k: int | None = None,
    mode: SearchMode | None = None,
    category: str | None = None,
    min_relevance: float | None = None,
) -> Reply:
    """Answer one chat message from the passages of the index.

    Args:
        nexus: The loaded assistant.
        message: What the person typed.
        history: Earlier messages (Gradio ``messages`` format, content as a string or a list
            of text blocks); the latest user question is folded into follow-ups.
        k: Passages to show; ``nexus.settings.top_k`` by default.
        mode: ``hybrid``, ``semantic`` or ``keyword``.
        category: Only passages from this top-level folder of the corpus.
        min_relevance: Lowest best-passage cosine that counts as an answer; below it the reply
            names related topics instead. ``None`` accepts any match.

    Raises:
        QueryError: The message is empty or longer than ``settings.max_query_chars``, or ``k``
            or ``mode`` is invalid.
    """
    limit = nexus.settings.max_query_chars
    text = message_text(message).strip()
    clean_query(text, limit)  # the same rule as every search: refused, never trimmed
    query = contextual_query(text, history_questions(history), limit, similarity=nexus.similarity)
    started = time.perf_counter()
    hits = nexus.search(query.text, k, mode=mode, category=category or None)
    seconds = time.perf_counter() - started
    if not _is_relevant(hits, min_relevance):
        return Reply(text, query.text, query.folded, (), (), _related_topics(hits), seconds)
    answer = extract_answer(
        query.text, hits, encoder=nexus.encoder, query_vector=nexus.query_vector(query.text)
    )
    hybrid = (mode or nexus.settings.mode) == "hybrid"
    weak = hybrid and is_weak(hits, nexus.manifest.encoder_name)
    return Reply(text, query.text, query.folded, tuple(hits), answer, (), seconds, weak)
