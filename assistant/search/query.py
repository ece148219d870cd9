"""What a search may ask: one rule for the query's length and one for the number of hits,
applied the same way by the library, the chat, the CLI, REST and the Gradio API.

An over-long query is refused, not trimmed: a question cut at an arbitrary character would be
answered as if it were whole, and the person asking would never know which part was dropped.
"""

from __future__ import annotations

import re
import unicodedata

from ..errors import QueryError

__all__ = ["MAX_FILTER_CHARS", "MAX_K", "check_filter", "check_k", "clean_query"]

# The most hits one search returns: deep enough for evaluation (a hundred documents take a
# few hundred passages), small enough that no request costs more than a few milliseconds
# beyond the search itself.
MAX_K = 1000
# Filters name folders and short globs; a longer one is a mistake or an attack, not a filter.
MAX_FILTER_CHARS = 512

_WHITESPACE = re.compile(r"\s+")


def clean_query(query: str, max_chars: int) -> str:
    """The query ready to search: control characters removed, whitespace collapsed.

    Args:
        query: The text as typed.
        max_chars: The longest query accepted (``Settings.max_query_chars``), counted on the
            text as typed without surrounding whitespace.

    Raises:
        QueryError: Nothing searchable is left, or the query is longer than ``max_chars``.
    """
    if not isinstance(query, str):
        raise QueryError(f"a query must be text, got {type(query).__name__}")
    typed = query.strip()
    if len(typed) > max_chars:
        raise QueryError(
            f"the question is {len(typed):,} characters long; the limit is {max_chars:,}. "
            "Shorten it to the part you want answered."
        )
    kept = "".join(" " if unicodedata.category(ch)[0] in "CZ" else ch for ch in typed)
    cleaned = _WHITESPACE.sub(" ", kept).strip()
    if not cleaned:
        raise QueryError("the question is empty; type a few words about what you are looking for")
    return cleaned


def check_k(k: object) -> int:
    """``k`` if it is a whole number of hits between 1 and :data:`MAX_K`.

    Raises:
        QueryError: It is not.
    """
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise QueryError(f"k must be a whole number between 1 and {MAX_K}, got {k!r}")
    return k


def check_filter(name: str, value: object) -> None:
    """Refuse a category or path filter that is not short, valid text.

    Raises:
        QueryError: ``value`` is not text of at most :data:`MAX_FILTER_CHARS` characters.
    """
    if value is None:
        return
    if isinstance(value, str) and len(value) <= MAX_FILTER_CHARS:
        try:
            value.encode("utf-8")
            return
        except UnicodeEncodeError:  # lone surrogates, as a JSON body can carry
            pass
    raise QueryError(
        f"{name} must be text of at most {MAX_FILTER_CHARS} characters; "
        "use a folder name or a short glob such as concepts/cach*"
    )
