"""The conversation behind the chat UI: what to search, a short cited answer, passage cards.

``respond`` turns a message and the chat history into a :class:`Reply`: the query actually
searched (follow-ups borrow the previous question through
:func:`assistant.conversation.contextual_query`), the passages found, a few of their sentences
that answer the question best, each citing its passage, and, when nothing is relevant enough,
related topics instead of weak matches.

The ``render_*`` functions turn replies and documents into HTML. Corpus text is untrusted: it is
escaped before anything is rendered (Markdown is rendered with raw HTML disabled, links kept
only for http(s) addresses, images reduced to their alt text), so a document holding
``<script>`` or ``<img onerror=...>`` shows as text and runs nothing.
"""

from __future__ import annotations

import html
import json
import re
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from .config import SearchMode
from .conversation import contextual_query
from .errors import QueryError

if TYPE_CHECKING:
    from markdown_it import MarkdownIt

    from .retrieval import Assistant, Hit
    from .store import StoredDocument

__all__ = [
    "RELEVANCE_FLOORS",
    "AnswerSentence",
    "FeedbackLog",
    "Reply",
    "document_url",
    "escape_markdown",
    "extract_answer",
    "history_questions",
    "hit_dict",
    "message_text",
    "query_terms",
    "relevance_floor",
    "render_answer",
    "render_document",
    "render_passages",
    "respond",
    "unescape_markdown",
]

# Lowest cosine between question and best passage that still counts as an answer, per model.
# Calibrated on benchmarks/questions.jsonl (answerable vs no-answer questions) and checked on
# benchmarks/questions-independent.jsonl; see benchmarks/RESULTS.md ("Knowing when to say no").
RELEVANCE_FLOORS: dict[str, float] = {"all-MiniLM-L6-v2": 0.43}

ANSWER_SENTENCES = 3
PASSAGES_FOR_ANSWER = 3
RELATED_TOPICS = 4

_WORD = re.compile(r"\w+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[`*_A-Z0-9])")
_FENCE = re.compile(r"^(```|~~~)")
_LIST_MARK = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")
_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_EMPHASIS = re.compile(r"(\*\*|__|\*|`)")
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~>])")
_MD_ESCAPED = re.compile(r"\\([\\`*_{}\[\]()#+\-.!|~>])")

# Words that carry no topic: question words, auxiliaries, pronouns, articles, prepositions.
_STOPWORDS = frozenset(
    {
        "a", "about", "above", "after", "again", "all", "also", "am", "an", "and", "any", "are",
        "as", "at", "be", "because", "been", "before", "being", "between", "both", "but", "by",
        "can", "could", "did", "do", "does", "doing", "down", "during", "each", "few", "for",
        "from", "further", "had", "has", "have", "having", "he", "her", "here", "hers", "him",
        "his", "how", "i", "if", "in", "into", "is", "it", "its", "itself", "just", "me",
        "more", "most", "my", "no", "nor", "not", "now", "of", "off", "on", "once", "only",
        "or", "other", "our", "ours", "out", "over", "own", "same", "she", "should", "so",
        "some", "such", "than", "that", "the", "their", "them", "then", "there", "these",
        "they", "this", "those", "through", "to", "too", "under", "until", "up", "very", "was",
        "we", "were", "what", "when", "where", "which", "while", "who", "whom", "why", "will",
        "with", "would", "you", "your", "yours", "use", "using", "used", "way", "ways", "best",
        "good", "need", "want", "get", "make", "thing", "things",
    }
)  # fmt: skip


@cache
def _stemmer() -> Any:
    import Stemmer

    return Stemmer.Stemmer("english")


def _stems(words: Iterable[str]) -> list[str]:
    return list(_stemmer().stemWords([w.lower() for w in words]))


def query_terms(query: str) -> frozenset[str]:
    """Stems of the query's topic words (stop words dropped), used to score and highlight."""
    words = [w for w in _WORD.findall(query.lower()) if w not in _STOPWORDS]
    return frozenset(_stems(words))


# --------------------------------------------------------------------------- chat history


def message_text(content: Any) -> str:
    """The text of one chat message's content, whatever shape Gradio delivered it in.

    The web UI sends a list of ``{"type": "text", "text": ...}`` blocks, ``gradio_client``
    sends a plain string, and some components send a single block dict; files and other
    non-text blocks are ignored.
    """
    if isinstance(content, str):
        return content
    if isinstance(content, Mapping):
        text = content.get("text")
        return text if isinstance(text, str) else ""
    if isinstance(content, Sequence):
        return " ".join(part for part in (message_text(c) for c in content) if part)
    return ""


def history_questions(history: Sequence[Any] | None) -> list[str]:
    """The user's earlier messages, oldest first, from a Gradio ``messages`` history."""
    questions = []
    for message in history or ():
        if isinstance(message, Mapping) and message.get("role") == "user":
            text = message_text(message.get("content")).strip()
            if text:
                questions.append(text)
    return questions


# --------------------------------------------------------------------------- the answer


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

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (for APIs and the feedback log)."""
        return {
            "question": self.question,
            "query": self.query,
            "folded": self.folded,
            "answered": self.answered,
            "answer": [{"text": s.text, "citation": s.citation} for s in self.answer],
            "related": [
                {"title": title, "source": source, "url": document_url(source)}
                for title, source in self.related
            ],
            "seconds": round(self.seconds, 4),
            "hits": [hit_dict(h) for h in self.hits],
        }


def hit_dict(hit: Hit) -> dict[str, Any]:
    """One hit as JSON-ready data, with the address of its document view."""
    return {
        "rank": hit.rank,
        "score": hit.score,
        "relevance": hit.dense_score,
        "source": hit.source,
        "title": hit.title,
        "heading_path": hit.heading_path,
        "category": hit.category,
        "start_line": hit.start_line,
        "end_line": hit.end_line,
        "text": hit.text,
        "url": document_url(hit.source, hit.start_line, hit.end_line),
    }


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
                sentences.extend(_SENTENCE_END.split(" ".join(paragraph)))
                paragraph = []
            paragraph.append(_LIST_MARK.sub("", stripped))
            continue
        if paragraph:
            sentences.extend(_SENTENCE_END.split(" ".join(paragraph)))
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
            words = _WORD.findall(sentence)
            if not 4 <= len(words) <= 60 or sentence.endswith((":", ";", ",")):
                continue  # too short or long to read alone, or a fragment of a longer one
            if first is None:
                first = AnswerSentence(sentence, hit.rank)
            shared = terms & set(_stems(words))
            if not shared:
                continue
            score = len(shared) / len(terms) + 0.1 / hit.rank + 0.05 / (1 + position)
            scored.append((score, hit.rank, sentence))
    chosen: list[AnswerSentence] = []
    seen: list[set[str]] = []
    for _, rank, sentence in sorted(scored, key=lambda s: -s[0]):
        vocabulary = {w.lower() for w in _WORD.findall(sentence)}
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
    text = message_text(message).strip()
    limit = nexus.settings.max_query_chars
    if len(text) > limit:
        raise QueryError(
            f"the question is {len(text):,} characters long; the limit is {limit:,}. "
            "Shorten it to the part you want answered."
        )
    if not text:
        raise QueryError("the question is empty; type a few words about what you are looking for")
    query = contextual_query(text, history_questions(history))
    started = time.perf_counter()
    hits = nexus.search(query.text, k, mode=mode, category=category or None)
    seconds = time.perf_counter() - started
    if not _is_relevant(hits, min_relevance):
        return Reply(text, query.text, query.folded, (), (), _related_topics(hits), seconds)
    answer = extract_answer(query.text, hits)
    return Reply(text, query.text, query.folded, tuple(hits), answer, (), seconds)


# --------------------------------------------------------------------------- feedback


class FeedbackLog:
    """Thumbs up/down on answers, appended as JSON lines for the quality work to mine.

    Each line holds the time (UTC), the vote, the question, the query searched and the hits
    shown (source, lines, scores). Appends are serialized so concurrent votes never interleave.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def record(self, reply: Mapping[str, Any], vote: str) -> dict[str, Any]:
        """Append one vote (``up`` or ``down``) on a reply (as from :meth:`Reply.to_dict`)."""
        if vote not in ("up", "down"):
            raise ValueError(f"a vote is 'up' or 'down', got {vote!r}")
        entry = {
            "time": datetime.now(UTC).isoformat(timespec="seconds"),
            "vote": vote,
            "question": reply.get("question"),
            "query": reply.get("query"),
            "answered": reply.get("answered"),
            "hits": [
                {k: h.get(k) for k in ("rank", "source", "start_line", "end_line", "score")}
                for h in reply.get("hits", [])
            ],
        }
        line = json.dumps(entry, ensure_ascii=False) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as out:
                out.write(line)
        return entry


# --------------------------------------------------------------------------- rendering


def document_url(
    source: str, start: int | None = None, end: int | None = None, query: str = ""
) -> str:
    """Address of the document view, scrolled to a passage when lines are given."""
    params: dict[str, str | int] = {"source": source}
    if start is not None and end is not None:
        params.update(start=start, end=end)
    if query:
        params["q"] = query[:500]
    return "/document?" + urlencode(params) + ("#passage" if start is not None else "")


def escape_markdown(text: str) -> str:
    """Text that a Markdown renderer shows literally: HTML escaped, syntax backslashed."""
    return _MD_SPECIAL.sub(r"\\\1", html.escape(text, quote=False))


def unescape_markdown(text: str) -> str:
    """The text :func:`escape_markdown` was given (the chat shows questions escaped)."""
    return html.unescape(_MD_ESCAPED.sub(r"\1", text))


def _highlight(text: str, terms: frozenset[str]) -> str:
    """HTML-escaped text with the words whose stem is a query term wrapped in <mark>."""
    if not terms:
        return html.escape(text)
    out, last = [], 0
    for match in _WORD.finditer(text):
        if _stems([match.group()])[0] in terms:
            out.append(html.escape(text[last : match.start()]))
            out.append(f"<mark>{html.escape(match.group())}</mark>")
            last = match.end()
    out.append(html.escape(text[last:]))
    return "".join(out)


def render_answer(reply: Reply) -> str:
    """The answer message as Markdown: cited sentences, or the plain 'nothing found' reply.

    Every piece of corpus text is escaped, so the message is safe to render as Markdown.
    """
    searched = escape_markdown(reply.query)
    timing = f"{reply.seconds * 1000:.0f} ms"
    if not reply.answered:
        lines = [
            "I found nothing in the knowledge base that answers this closely enough, so I am "
            "not showing weak matches."
        ]
        if reply.related:
            topics = ", ".join(
                f"[{escape_markdown(title)}]({document_url(source)})"
                for title, source in reply.related
            )
            lines.append(
                f"Related topics it does cover: {topics}. Open one, or ask about it directly."
            )
        lines.append(f"<sub>Searched: “{searched}” · {timing}</sub>")
        return "\n\n".join(lines)
    body = " ".join(f"{escape_markdown(s.text)} \\[{s.citation}\\]" for s in reply.answer)
    sources = "  \n".join(
        f"\\[{h.rank}\\] {escape_markdown(h.title)} — "
        f"{escape_markdown(f'{h.source}:{h.start_line}-{h.end_line}')}"
        for h in reply.hits
    )
    folded = " (with the previous question)" if reply.folded else ""
    meta = f"Searched{folded}: “{searched}” · {len(reply.hits)} passages · {timing}"
    return f"{body}\n\n{sources}\n\n<sub>{meta}</sub>"


def _one_line(fragment: str) -> str:
    """HTML on one line, newlines inside <pre> kept as character references.

    Chat messages are Markdown, where a blank line ends an HTML block; a single line keeps the
    whole fragment one HTML block while code keeps its line breaks.
    """
    parts = re.split(r"(<pre[\s>].*?</pre>)", fragment, flags=re.DOTALL)
    return "".join(
        part.replace("\n", "&#10;") if part.startswith("<pre") else part.replace("\n", " ")
        for part in parts
    )


def _passage_card(hit: Hit, query: str, terms: frozenset[str]) -> str:
    location = f"{hit.source}:{hit.start_line}-{hit.end_line}"
    url = html.escape(document_url(hit.source, hit.start_line, hit.end_line, query))
    relevance = (
        f"relevance {hit.dense_score:.2f}"
        if hit.dense_score is not None
        else f"score {hit.score:.2f}"
    )
    path = html.escape(" › ".join(hit.headings[1:])) if len(hit.headings) > 1 else ""
    return (
        f'<div class="nexus-card"><div class="nexus-card-head">'
        f'<span class="nexus-num">[{hit.rank}]</span> <strong>{html.escape(hit.title)}</strong>'
        + (f' <span class="nexus-path">› {path}</span>' if path else "")
        + f'</div><div class="nexus-card-meta"><a class="nexus-source" href="{url}" '
        f'target="_blank" rel="noopener noreferrer">{html.escape(location)}</a> · {relevance}'
        f'</div><div class="nexus-card-body">{_render_markdown(hit.text, terms)}</div></div>'
    )


def render_passages(reply: Reply) -> str:
    """The passages as HTML cards on one line (safe to embed in a Markdown chat message)."""
    terms = query_terms(reply.query)
    cards = "".join(_passage_card(hit, reply.query, terms) for hit in reply.hits)
    return _one_line(f'<div class="nexus-passages">{cards}</div>')


def render_document(
    doc: StoredDocument, start: int | None = None, end: int | None = None, query: str = ""
) -> str:
    """A whole document as an HTML fragment, the passage's lines [start, end] highlighted.

    Markdown is rendered (raw HTML escaped); other formats show their source lines with
    numbers. Either way nothing from the document is interpreted as markup.
    """
    terms = query_terms(query)
    lines = doc.text.split("\n")
    has_passage = start is not None and end is not None and 1 <= start <= end
    start, end = (start, end) if has_passage else (0, -1)
    assert start is not None and end is not None
    if doc.format == "markdown":
        parts = [
            ("", "\n".join(lines[: max(start - 1, 0)])),
            ("passage", "\n".join(lines[start - 1 : end])),
            ("", "\n".join(lines[end:])),
        ]
        if not has_passage:
            parts = [("", doc.text)]
        body = "".join(
            f'<section id="passage" class="nexus-passage">{_render_markdown(text, terms)}</section>'
            if kind
            else _render_markdown(text, terms)
            for kind, text in parts
            if text.strip()
        )
    else:
        rows = []
        for number, line in enumerate(lines, start=1):
            marked = start <= number <= end
            anchor = ' id="passage"' if number == start else ""
            css = ' class="nexus-passage"' if marked else ""
            text = _highlight(line, terms) if marked else html.escape(line)
            rows.append(f'<span{anchor}{css}><span class="nexus-ln">{number}</span>{text}</span>')
        body = '<pre class="nexus-source-lines">' + "\n".join(rows) + "</pre>"
    return (
        f'<article class="nexus-document"><header><h1>{html.escape(doc.title)}</h1>'
        f'<p class="nexus-card-meta">{html.escape(doc.source)}'
        + (f" · lines {start}–{end} highlighted" if has_passage else "")
        + f"</p></header>{body}</article>"
    )


# --------------------------------------------------------------------------- safe Markdown


def _render_markdown(text: str, terms: frozenset[str] = frozenset()) -> str:
    """Markdown to HTML with raw HTML escaped, unsafe links unlinked and query words marked."""
    env: dict[str, Any] = {"terms": terms, "links": []}
    return str(_markdown().render(text, env))


@cache
def _markdown() -> MarkdownIt:
    from markdown_it import MarkdownIt
    from mdit_py_plugins.front_matter import front_matter_plugin

    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.enable("table").use(front_matter_plugin)
    rules = md.add_render_rule

    def text(self: Any, tokens: Any, idx: int, options: Any, env: Any) -> str:
        return _highlight(tokens[idx].content, env.get("terms", frozenset()))

    def link_open(self: Any, tokens: Any, idx: int, options: Any, env: Any) -> str:
        href = str(tokens[idx].attrGet("href") or "")
        safe = re.match(r"https?://", href, flags=re.IGNORECASE) is not None
        env["links"].append(safe)
        if not safe:
            return ""
        return f'<a href="{html.escape(href)}" target="_blank" rel="noopener noreferrer nofollow">'

    def link_close(self: Any, tokens: Any, idx: int, options: Any, env: Any) -> str:
        return "</a>" if env["links"] and env["links"].pop() else ""

    def image(self: Any, tokens: Any, idx: int, options: Any, env: Any) -> str:
        alt = tokens[idx].content or "image"
        return f'<span class="nexus-image">[image: {html.escape(alt)}]</span>'

    def front_matter(self: Any, tokens: Any, idx: int, options: Any, env: Any) -> str:
        return ""

    rules("text", text)
    rules("link_open", link_open)
    rules("link_close", link_close)
    rules("image", image)
    rules("front_matter", front_matter)
    return md
