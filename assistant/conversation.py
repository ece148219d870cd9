"""Decide what to search for in a conversation: a follow-up borrows the context it leans on.

"and how do I invalidate it?" means nothing to a retriever on its own. When a message looks like
it continues the previous question (it opens with a connective, points back at something, or
carries almost no subject of its own), the previous question is folded into the query that is
searched. A message that stands on its own is searched as typed, so a change of topic is not
polluted: folding an unrelated question costs far more than a missed fold (see the
conversation section of ``benchmarks/RESULTS.md``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["SearchQuery", "contextual_query", "leans_on_context"]

_WORD = re.compile(r"[\w'’-]+")

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

# Function words: what is left after removing them is the message's own subject.
_FUNCTION_WORDS = frozenset(
    """a an the and or but so if then than of to in on at by for with from as about into
    over after before is are was were be been being do does did have has had can could
    should would will may might must i me my we our you your he she his her it its they
    them their this that these those there here what which who whom when where why how
    whether not no just very too also only any some all each both either more most much
    many same other such one ones vs versus via up out again still even really actually
    need want get make use way thing things""".split()  # noqa: SIM905 - a word list reads best as text
)

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


def _words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def _without_fillers(words: list[str]) -> list[str]:
    changed = True
    while changed and words:
        changed = False
        for filler in _FILLERS:
            size = filler.count(" ") + 1
            if " ".join(words[:size]) == filler:
                words, changed = words[size:], True
    return words


def leans_on_context(message: str) -> bool:
    """Whether a message reads like a follow-up that needs the previous question to make sense."""
    words = _words(message)
    if not words:
        return False
    words = _without_fillers(words)
    if not words:
        return True  # "ok, thanks" alone: nothing of its own to search
    opening = " ".join(words[:3])
    if any(opening == c or opening.startswith(c + " ") for c in _CONNECTIVES):
        return True
    subject = [w for w in words if w not in _FUNCTION_WORDS and not w.isdigit()]
    if len(subject) <= _MAX_SUBJECTLESS_WORDS:
        return True
    if any(w in _BACK_REFERENCES for w in words):
        return True
    return len(subject) <= _MAX_WORDS_WITH_ANAPHOR and any(w in _ANAPHORS for w in words)


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
