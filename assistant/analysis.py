"""Text analysis, in one place: words, sentences, stop words and stems.

Keyword search (BM25, locally or in Milvus), the cited answer, highlighting and the test of
whether a chat message is a follow-up all read text through these definitions, so a word means
the same thing to each of them. PyStemmer and bm25s load on first use.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from typing import Any

from .config import SPLIT_MODES
from .errors import IndexCorruptError, MissingDependencyError

__all__ = [
    "FUNCTION_WORDS",
    "KEYWORD_ANALYSIS",
    "KEYWORD_STOP_WORDS",
    "SENTENCE_END",
    "WORD",
    "asks_about_changes",
    "keyword_token_ids",
    "keyword_tokens",
    "load_bm25s",
    "query_terms",
    "split_identifiers",
    "split_mode",
    "stems",
    "words",
]

# A word of prose: letters and digits, with inner apostrophes kept ("it's", "Django's").
WORD = re.compile(r"\w+(?:['’]\w+)*")
# A sentence ends at . ! or ? followed by space and something that can start a sentence.
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[`*_A-Z0-9])")

# Lucene's English stop words: what bm25s removes under the name "en", which keyword indexes
# record in their manifest.
KEYWORD_STOP_WORDS = frozenset(
    """a an and are as at be but by for if in into is it no not of on or such that the their
    then there these they this to was will with""".split()  # noqa: SIM905 - a word list reads best as text
)

# Words that carry no topic of their own: the stop words above plus question words,
# auxiliaries, pronouns, prepositions and filler. What is left of a question is its subject:
# the words an answer sentence should share, that highlighting marks, and whose absence makes a
# chat message a follow-up.
FUNCTION_WORDS = KEYWORD_STOP_WORDS | frozenset(
    """about above actually after again all also am any because been before being best between
    both can could did do does doing down during each either even few from further get good had
    has have having he her here hers him his how i its itself just make many may me might more
    most much must my need nor now off once one ones only other our ours out over own really
    same she should so some still than them thing things those through too under until up use
    used using versus very via vs want way ways we were what when where whether which while who
    whom why would you your yours""".split()  # noqa: SIM905 - a word list reads best as text
)

# A question about what changed between releases: it is release notes' own subject.
_ABOUT_CHANGES = re.compile(
    r"\b(?:release[sd]?|changelog|change ?log|changes|changed|what'?s new|new in|upgrad\w*|"
    r"deprecat\w*|removed|versions?|\d+\.\d+)\b",
    re.IGNORECASE,
)


def asks_about_changes(question: str) -> bool:
    """Whether a question asks what changed (in a release, since a version)."""
    return _ABOUT_CHANGES.search(question) is not None


# How keyword indexes analyse text unless their manifest says otherwise.
KEYWORD_ANALYSIS: dict[str, Any] = {
    "stemmer": "english",
    "stopwords": "en",
    "split_identifiers": "none",
}

_IDENTIFIER = re.compile(r"\b[A-Za-z0-9_]{2,}\b")
_IDENTIFIER_PART = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
_MARKED_PARTS = re.compile(r"[a-z][A-Z]|[A-Za-z][0-9]|[0-9][A-Za-z]")  # getHTTP, CD4, 2fa


def words(text: str) -> list[str]:
    """The words of ``text``, lowercased."""
    return [w.lower() for w in WORD.findall(text)]


@cache
def _stemmer() -> Any:
    import Stemmer

    return Stemmer.Stemmer(KEYWORD_ANALYSIS["stemmer"])


def stems(items: Iterable[str]) -> list[str]:
    """The Snowball English stem of each word, lowercased first."""
    return list(_stemmer().stemWords([w.lower() for w in items]))


def query_terms(query: str) -> frozenset[str]:
    """Stems of the query's topic words (function words dropped): what answers and
    highlighting look for in a passage."""
    return frozenset(stems(w for w in words(query) if w not in FUNCTION_WORDS))


def split_identifiers(text: str, mode: str = "all") -> str:
    """``text`` with the parts of code names added after them.

    Documentation that quotes code names things ``sort_dict_by_value`` or ``getHTTPResponse``,
    which a word tokenizer keeps as one token that the words of a question never match. The
    whole name stays (an exact name still matches best) and its parts follow it:
    ``getHTTPResponse`` becomes ``getHTTPResponse get HTTP Response``. ``mode="mixed"`` splits
    only names whose parts show in capitals or digits and keeps snake_case whole, since its
    parts are everyday words (``on_commit``). Dotted names need nothing: the tokenizer already
    splits at dots.
    """

    def expand(match: re.Match[str]) -> str:
        word = match.group()
        if mode == "mixed" and not _MARKED_PARTS.search(word):
            return word
        parts = _IDENTIFIER_PART.findall(word)
        return word if parts in ([], [word]) else f"{word} {' '.join(parts)}"

    return text if mode == "none" else _IDENTIFIER.sub(expand, text)


def split_mode(params: Mapping[str, Any]) -> str:
    """The split mode keyword parameters ask for: manifests from before the modes recorded
    ``True`` (all) or ``False`` (none), and older ones nothing (none)."""
    value = params.get("split_identifiers", False)
    mode = {True: "all", False: "none"}.get(value, value) if isinstance(value, bool) else value
    if mode not in SPLIT_MODES:
        raise IndexCorruptError(
            f"unknown keyword split mode {value!r} in the manifest; rebuild with `nexus build`"
        )
    return str(mode)


def keyword_tokens(
    texts: Sequence[str], params: Mapping[str, Any] | None = None
) -> list[list[str]]:
    """Each text as keyword search sees it: words of two or more characters (bm25s's pattern),
    stop words removed, stemmed, code names split as ``params`` (an index's manifest) say.
    ``None`` means :data:`KEYWORD_ANALYSIS`."""
    return [list(t) for t in _tokenize(texts, params, ids=False)]


def keyword_token_ids(texts: Sequence[str], params: Mapping[str, Any] | None = None) -> Any:
    """``texts`` analysed as :func:`keyword_tokens` does, as the vocabulary and id lists that
    a bm25s index is built from."""
    return _tokenize(texts, params, ids=True)


def _tokenize(texts: Sequence[str], params: Mapping[str, Any] | None, *, ids: bool) -> Any:
    own = KEYWORD_ANALYSIS if params is None else params
    stop = {**KEYWORD_ANALYSIS, **own}["stopwords"]
    mode = split_mode(own)
    return load_bm25s().tokenize(
        [split_identifiers(t, mode) for t in texts],
        # Ours for "en" (the same list bm25s has under that name), any other as bm25s knows it.
        stopwords=sorted(KEYWORD_STOP_WORDS) if stop == "en" else stop,
        stemmer=_stemmer(),
        return_ids=ids,
        show_progress=False,
    )


def load_bm25s() -> Any:
    """The bm25s module, quiet (it sets its own logger to DEBUG on import)."""
    try:
        import bm25s
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependencyError("bm25s is not installed; install bm25s PyStemmer") from exc
    logging.getLogger("bm25s").setLevel(logging.WARNING)
    return bm25s
