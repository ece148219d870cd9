"""Decide what to search for in a conversation: a follow-up borrows the context it leans on.

"and how do I invalidate it?" means nothing to a retriever on its own. When a message looks like
it continues the previous question (it opens with a connective, points back with a pronoun, or
is too short to stand alone), the previous question is folded into the query that is searched.
A message that stands on its own is searched as typed, so a change of topic is not polluted.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["SearchQuery", "contextual_query", "leans_on_context"]

_WORD = re.compile(r"[\w'’-]+")

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

# Questions this short rarely carry their topic with them.
_MIN_STANDALONE_WORDS = 4


@dataclass(frozen=True)
class SearchQuery:
    """The text to search and whether earlier turns were folded into it."""

    text: str
    folded: bool = False


def _words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def leans_on_context(message: str) -> bool:
    """Whether a message reads like a follow-up that needs the previous question to make sense."""
    words = _words(message)
    if not words:
        return False
    opening = " ".join(words[:3])
    if any(opening == c or opening.startswith(c + " ") for c in _CONNECTIVES):
        return True
    if len(words) < _MIN_STANDALONE_WORDS:
        return True
    return any(w in _ANAPHORS for w in words)


def contextual_query(message: str, previous: Sequence[str] = ()) -> SearchQuery:
    """The query to search for ``message`` given the user's earlier questions, oldest first.

    Only the latest earlier question is folded in: it is what a follow-up almost always leans
    on, and older turns drift off topic.
    """
    message = message.strip()
    earlier = [p.strip() for p in previous if p and p.strip()]
    if not earlier or not leans_on_context(message):
        return SearchQuery(message)
    return SearchQuery(f"{earlier[-1]} {message}", folded=True)
