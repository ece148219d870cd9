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

from ..analysis import SENTENCE_END, WORD, query_terms, stems
from ..config import SearchMode
from .assistant import Assistant, Hit
from .conversation import contextual_query, history_questions, message_text
from .query import clean_query

__all__ = [
    "RELEVANCE_FLOORS",
    "AnswerSentence",
    "Reply",
    "extract_answer",
    "relevance_floor",
    "respond",
]

# Lowest cosine between question and best passage that still counts as an answer, per model.
# Calibrated on benchmarks/questions.jsonl (answerable vs no-answer questions) and checked on
# benchmarks/questions-independent.jsonl; see benchmarks/studies/no-answer.md.
RELEVANCE_FLOORS: dict[str, float] = {"all-MiniLM-L6-v2": 0.43}

ANSWER_SENTENCES = 3
PASSAGES_FOR_ANSWER = 3
RELATED_TOPICS = 4

_FENCE = re.compile(r"^(```|~~~)")
_LIST_MARK = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")
_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_EMPHASIS = re.compile(r"(\*\*|__|\*|`)")


@dataclass(frozen=True)
class AnswerSentence:
    """A sentence lifted from a passage; ``citation`` is that passage's rank (1-based)."""

    text: str
    citation: int


@dataclass(frozen=True)
class Reply:
    """What Nexus says to one message.

    ``hits`` are the passages to show; empty when nothing was relevant enough, in which case
    ``related`` holds (title, source) of documents near the question, offered as topics.
    ``query`` is what was actually searched (the message, or the message with the previous
    question folded in), ``seconds`` how long the search took.
    """

    question: str
    query: str
    folded: bool
    hits: tuple[Hit, ...]
    answer: tuple[AnswerSentence, ...]
    related: tuple[tuple[str, str], ...]
    seconds: float

    @property
    def answered(self) -> bool:
        return bool(self.hits)


def relevance_floor(model: str) -> float | None:
    """The calibrated floor for a model, or None when it was never calibrated (no floor)."""
    return RELEVANCE_FLOORS.get(model)


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


def _prose_sentences(text: str) -> list[str]:
    """Sentences from a passage's prose: code blocks, headings and tables are skipped."""
    sentences: list[str] = []
    paragraph: list[str] = []
    in_code = False
    for line in [*text.split("\n"), ""]:
        stripped = line.strip()
        if _FENCE.match(stripped):
            in_code = not in_code
            continue
        indented_code = line.startswith(("    ", "\t")) and not _LIST_MARK.match(line)
        prose = not in_code and stripped and not indented_code and stripped[0] not in "#|>"
        if prose and not set(stripped) <= set("=-~^*+#`:.'\""):  # not an rst underline
            if _LIST_MARK.match(line) and paragraph:
                sentences.extend(SENTENCE_END.split(" ".join(paragraph)))
                paragraph = []
            paragraph.append(_LIST_MARK.sub("", stripped))
            continue
        if paragraph:
            sentences.extend(SENTENCE_END.split(" ".join(paragraph)))
            paragraph = []
    return [_plain(s) for s in sentences]


def extract_answer(
    query: str, hits: Sequence[Hit], limit: int = ANSWER_SENTENCES
) -> tuple[AnswerSentence, ...]:
    """The sentences of the top passages that share most of the question's topic words.

    A sentence scores the share of the query's stems it contains, plus a small bonus for
    coming from a better-ranked passage and for appearing early in it. Sentences of 4 to 60
    words that do not end mid-thought (in a colon, semicolon or comma) are eligible; one that
    repeats a chosen one is skipped.
    When no sentence shares a word with the question (a purely semantic match), the top
    passage's first sentence stands in, so a found passage always yields an answer.
    """
    terms = query_terms(query)
    scored: list[tuple[float, int, str]] = []
    first: AnswerSentence | None = None
    for hit in hits[:PASSAGES_FOR_ANSWER]:
        for position, sentence in enumerate(_prose_sentences(hit.text)):
            words = WORD.findall(sentence)
            if not 4 <= len(words) <= 60 or sentence.endswith((":", ";", ",")):
                continue  # too short or long to read alone, or a fragment of a longer one
            if first is None:
                first = AnswerSentence(sentence, hit.rank)
            shared = terms & set(stems(words))
            if not shared:
                continue
            score = len(shared) / len(terms) + 0.1 / hit.rank + 0.05 / (1 + position)
            scored.append((score, hit.rank, sentence))
    chosen: list[AnswerSentence] = []
    seen: list[set[str]] = []
    for _, rank, sentence in sorted(scored, key=lambda s: -s[0]):
        vocabulary = {w.lower() for w in WORD.findall(sentence)}
        if any(len(vocabulary & o) / max(len(vocabulary | o), 1) > 0.7 for o in seen):
            continue
        chosen.append(AnswerSentence(sentence, rank))
        seen.append(vocabulary)
        if len(chosen) == limit:
            break
    if not chosen and first is not None:
        chosen.append(first)
    return tuple(chosen)


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
    query = contextual_query(text, history_questions(history), limit)
    started = time.perf_counter()
    hits = nexus.search(query.text, k, mode=mode, category=category or None)
    seconds = time.perf_counter() - started
    if not _is_relevant(hits, min_relevance):
        return Reply(text, query.text, query.folded, (), (), _related_topics(hits), seconds)
    answer = extract_answer(query.text, hits)
    return Reply(text, query.text, query.folded, tuple(hits), answer, (), seconds)
