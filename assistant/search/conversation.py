"""Decide what to search for in a conversation: a follow-up borrows the context it leans on.

"and how do I invalidate it?" means nothing to a retriever on its own. When a message looks like
it continues the previous question (it opens with a connective, points back at something, or
carries almost no subject of its own), the previous question is folded into the query that is
searched. A message that stands on its own is searched as typed, so a change of topic is not
polluted: folding an unrelated question costs far more than a missed fold (see the
``benchmarks/studies/conversation.md``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..analysis import FUNCTION_WORDS, words

__all__ = [
    "RELATED",
    "SearchQuery",
    "contextual_query",
    "history_questions",
    "leans_on_context",
    "message_text",
]

# Acknowledgements a reply often starts with; what follows them decides.
_FILLERS = ("ok", "okay", "alright", "right", "thanks", "thank you", "cool", "great", "got it")

# Openers that continue a thought rather than start one.
_CONNECTIVES = (
    "and",
    "but",
    "also",
    "so",
    "then",
    "or",
    "what about",
    "how about",
    "what if",
    "same for",
    "in that case",
)

# Words that point back at something named earlier.
_ANAPHORS = frozenset(
    {
        "it", "its", "it's", "itself", "this", "that", "these", "those", "they", "them",
        "their", "there", "such", "one", "ones", "former", "latter", "above",
    }
)  # fmt: skip

# Words that only make sense next to an earlier statement ("the same key", "also run").
_BACK_REFERENCES = frozenset({"same", "also", "too", "instead", "either", "else", "then"})

# Below this cosine two questions are on different topics: follow-ups on the bundled question
# sets score 0.03 to 0.44 with the question before, unrelated questions -0.11 to 0.11
# (benchmarks/studies/conversation.md).
RELATED = 0.12
# A message with at most this many subject words rarely names its topic ("timeouts?").
_MAX_SUBJECTLESS_WORDS = 2
# A pronoun points back only in a message that names little else: "does that work with
# gunicorn?" leans on the last turn, "why is it a bad idea for service A to read service B's
# tables?" does not.
_MAX_WORDS_WITH_ANAPHOR = 5


@dataclass(frozen=True)
class SearchQuery:
    """The text to search and whether earlier turns were folded into it."""

    text: str
    folded: bool = False


def _without_fillers(tokens: list[str]) -> list[str]:
    changed = True
    while changed and tokens:
        changed = False
        for filler in _FILLERS:
            size = filler.count(" ") + 1
            if " ".join(tokens[:size]) == filler:
                tokens, changed = tokens[size:], True
    return tokens


def leans_on_context(message: str) -> bool:
    """Whether a message reads like a follow-up that needs the previous question to make sense."""
    return _lean(message) is not None


def _lean(message: str) -> str | None:
    """How a message leans on the one before: ``"plainly"`` (it opens with a connective, or
    has no words of its own), ``"maybe"`` (few subject words, or words that point back), or
    None (it stands on its own)."""
    tokens = words(message)
    if not tokens:
        return None
    tokens = _without_fillers(tokens)
    if not tokens:
        return "plainly"  # "ok, thanks" alone: nothing of its own to search
    opening = " ".join(tokens[:3])
    if any(opening == c or opening.startswith(c + " ") for c in _CONNECTIVES):
        return "plainly"
    subject = [w for w in tokens if w not in FUNCTION_WORDS and not w.isdigit()]
    if not subject:
        return "plainly"
    if len(subject) <= _MAX_SUBJECTLESS_WORDS or any(w in _BACK_REFERENCES for w in tokens):
        return "maybe"
    if len(subject) <= _MAX_WORDS_WITH_ANAPHOR and any(w in _ANAPHORS for w in tokens):
        return "maybe"
    return None


def contextual_query(
    message: str,
    previous: Sequence[str] = (),
    max_chars: int | None = None,
    *,
    similarity: Callable[[str, str], float] | None = None,
) -> SearchQuery:
    """The query to search for ``message`` given the user's earlier questions, oldest first.

    Only the latest earlier question is folded in: it is what a follow-up almost always leans
    on, and older turns drift off topic. A message that only maybe leans on it ("cache
    stampede", "is it safe to ...") is folded only when ``similarity`` (the cosine of the two
    questions' vectors) says they share a topic: a question that starts a new topic is
    searched as asked. With ``max_chars`` the folded query keeps within the query length
    limit by shortening the borrowed question, never the message.
    """
    message = message.strip()
    earlier = [p.strip() for p in previous if p and p.strip()]
    lean = _lean(message)
    if not earlier or lean is None:
        return SearchQuery(message)
    context = earlier[-1]
    if lean == "maybe" and similarity is not None and similarity(message, context) < RELATED:
        return SearchQuery(message)
    if max_chars is not None:
        context = context[: max(max_chars - len(message) - 1, 0)].strip()
        if not context:
            return SearchQuery(message)
    return SearchQuery(f"{context} {message}", folded=True)


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
