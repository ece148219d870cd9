"""Split parsed documents into chunks that fit the embedding model's window, headings kept.

Sizes are measured with the encoder's own tokenizer, so no chunk is cut silently by the model.
A section that fits becomes one chunk; a longer one is packed from whole blocks, then lines,
then sentences, with a small overlap between consecutive pieces. Code is never cut mid-line.
Tiny neighbouring sections are merged, because a heading with one line embeds poorly.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

from ..analysis import SENTENCE_END
from .documents import Block, Document

__all__ = ["HEADING_SEPARATOR", "Chunk", "chunk_document", "chunk_documents"]

HEADING_SEPARATOR = " › "
TokenCounter = Callable[[Sequence[str]], list[int]]


@dataclass(frozen=True)
class Chunk:
    """One embedded passage of a document.

    ``headings`` is the full heading path, document title first. ``text`` is the passage as it
    appears in the source (Markdown stays Markdown); what the model embeds is
    :attr:`embed_text`, the heading path followed by the text.
    """

    source: str
    title: str
    category: str
    headings: tuple[str, ...]
    text: str
    start_line: int
    end_line: int

    @property
    def heading_path(self) -> str:
        return HEADING_SEPARATOR.join(self.headings)

    @property
    def embed_text(self) -> str:
        return f"{self.heading_path}\n\n{self.text}" if self.headings else self.text

    @property
    def key(self) -> str:
        """Content hash of what is embedded: equal keys can share one vector."""
        return hashlib.sha256(self.embed_text.encode()).hexdigest()[:32]


@dataclass
class _Unit:
    """A piece of a section that is never split further at this level of packing."""

    text: str
    start_line: int
    end_line: int
    tokens: int
    joiner: str = "\n\n"  # what separates this unit from the one before it
    code: bool = False


@dataclass
class _Draft:
    headings: tuple[str, ...]
    units: list[_Unit] = field(default_factory=list)

    @property
    def tokens(self) -> int:
        return sum(u.tokens for u in self.units)

    @property
    def text(self) -> str:
        parts = [self.units[0].text] if self.units else []
        parts += [u.joiner + u.text for u in self.units[1:]]
        return "".join(parts)


def _heading_path(doc: Document, headings: tuple[str, ...]) -> tuple[str, ...]:
    """The section's headings with the document title in front, once (if it has one)."""
    if not doc.title or (headings and headings[0] == doc.title):
        return headings
    return (doc.title, *headings)


def _line_of(block: Block, offset: int) -> int:
    return block.start_line + block.text.count("\n", 0, offset)


class _Packer:
    """Packs the blocks of one document into drafts that fit a token budget."""

    def __init__(self, count: TokenCounter, max_tokens: int, overlap: int) -> None:
        self.count = count
        self.max_tokens = max_tokens
        self.overlap = overlap

    def budget(self, headings: tuple[str, ...]) -> int:
        prefix = self.count([HEADING_SEPARATOR.join(headings)])[0] if headings else 0
        # Keep room for real text even under an absurdly long heading path.
        return max(self.max_tokens - prefix - 1, self.max_tokens // 4)

    def split_words(self, text: str, first_line: int, budget: int) -> list[_Unit]:
        """Last resort for a single line longer than the budget: cut between words."""
        words = text.split(" ")
        sizes = self.count(words)
        units: list[_Unit] = []
        current: list[str] = []
        size = 0
        for word, n in zip(words, sizes, strict=True):
            if current and size + n > budget:
                units.append(_Unit(" ".join(current), first_line, first_line, size, " "))
                current, size = [], 0
            current.append(word)
            size += n
        if current:
            units.append(_Unit(" ".join(current), first_line, first_line, size, " "))
        return units

    def split_block(self, block: Block, budget: int) -> list[_Unit]:
        """Units of a block too big for one chunk: lines, and sentences of long text lines."""
        units: list[_Unit] = []
        offset = 0
        for line in block.text.split("\n"):
            line_no = _line_of(block, offset)
            offset += len(line) + 1
            pieces = [line] if block.kind == "code" else SENTENCE_END.split(line)
            sizes = self.count(pieces)
            for i, (piece, n) in enumerate(zip(pieces, sizes, strict=True)):
                joiner = "\n" if i == 0 else " "
                if n <= budget:
                    units.append(_Unit(piece, line_no, line_no, n, joiner, block.kind == "code"))
                    continue
                words = self.split_words(piece, line_no, budget)
                words[0].joiner = joiner
                units.extend(words)
        if units:
            units[0].joiner = "\n\n"
        return units

    def pack(self, headings: tuple[str, ...], blocks: Sequence[Block]) -> list[_Draft]:
        budget = self.budget(headings)
        sizes = self.count([b.text for b in blocks])
        units: list[_Unit] = []
        for block, n in zip(blocks, sizes, strict=True):
            if n <= budget:
                units.append(
                    _Unit(
                        block.text, block.start_line, block.end_line, n, code=block.kind == "code"
                    )
                )
            else:
                units.extend(self.split_block(block, budget))
        drafts: list[_Draft] = []
        current = _Draft(headings)
        for unit in units:
            if current.units and current.tokens + unit.tokens > budget:
                drafts.append(current)
                current = _Draft(headings, self._overlap_from(current, unit.tokens, budget))
            current.units.append(unit)
        if current.units:
            drafts.append(current)
        return drafts

    def _overlap_from(self, previous: _Draft, incoming: int, budget: int) -> list[_Unit]:
        """Trailing prose of ``previous`` worth repeating at the start of the next draft.

        Whole units are carried when they fit in ``overlap``; otherwise the last sentences of
        the last unit, so a long paragraph still shares its ending with the next piece.
        """
        carried: list[_Unit] = []
        size = 0
        for unit in reversed(previous.units):
            if unit.code or size + unit.tokens > self.overlap:
                break
            carried.insert(0, replace(unit))
            size += unit.tokens
        last = previous.units[-1]
        if not carried and not last.code:
            tail = self._tail_sentences(last)
            if tail is not None:
                carried, size = [tail], tail.tokens
        if not carried or size + incoming > budget:
            return []
        carried[0].joiner = "\n\n"
        return carried

    def _tail_sentences(self, unit: _Unit) -> _Unit | None:
        """The longest run of final sentences of ``unit`` that fits in ``overlap``."""
        pieces = SENTENCE_END.split(unit.text)
        if len(pieces) < 2:
            return None
        sizes = self.count(pieces)
        taken, size = 0, 0
        for n in reversed(sizes[1:]):  # never the whole unit: that was too big already
            if size + n > self.overlap:
                break
            taken, size = taken + 1, size + n
        if not taken:
            return None
        text = " ".join(pieces[-taken:])
        start = unit.end_line - text.count("\n")
        return _Unit(text, start, unit.end_line, size)

    def try_merge(self, left: _Draft, right: _Draft) -> _Draft | None:
        """One draft holding both, under their common heading path, if it fits the budget."""
        common: list[str] = []
        for a, b in zip(left.headings, right.headings, strict=False):
            if a != b:
                break
            common.append(a)
        headings = tuple(common) or left.headings[:1]
        # Headings that the shorter path drops become lines of the text, so nothing is lost.
        extra = [h for h in (left.headings[len(headings) :], right.headings[len(headings) :]) if h]
        labels = [HEADING_SEPARATOR.join(h) for h in extra]
        label_sizes = self.count(labels) if labels else []
        if left.tokens + right.tokens + sum(label_sizes) > self.budget(headings):
            return None
        merged = _Draft(headings)
        for draft, own in ((left, left.headings), (right, right.headings)):
            dropped = own[len(headings) :]
            if dropped:
                label = HEADING_SEPARATOR.join(dropped)
                first = draft.units[0]
                n = self.count([label])[0]
                merged.units.append(_Unit(label, first.start_line, first.start_line, n))
            merged.units.extend(replace(u) for u in draft.units)
            merged.units[-len(draft.units)].joiner = "\n\n"
        return merged


def chunk_document(
    doc: Document,
    count: TokenCounter,
    *,
    max_tokens: int,
    overlap: int = 32,
    min_tokens: int = 48,
) -> list[Chunk]:
    """Chunks of one document.

    Args:
        doc: A parsed document.
        count: Token counter of the embedding model (``Encoder.count_tokens``).
        max_tokens: Word pieces allowed per chunk, heading path included.
        overlap: Word pieces of prose repeated between consecutive pieces of one section.
        min_tokens: Chunks smaller than this merge with a neighbour when the pair fits.

    Returns:
        Chunks in document order; empty when the document has no text.
    """
    packer = _Packer(count, max_tokens, overlap)
    drafts: list[_Draft] = []
    for section in doc.sections:
        if section.blocks:
            drafts.extend(packer.pack(_heading_path(doc, section.headings), section.blocks))
    merged: list[_Draft] = []
    for draft in drafts:
        if merged and min(merged[-1].tokens, draft.tokens) < min_tokens:
            both = packer.try_merge(merged[-1], draft)
            if both is not None:
                merged[-1] = both
                continue
        merged.append(draft)
    return [
        Chunk(
            source=doc.source,
            title=doc.title,
            category=doc.category,
            headings=d.headings,
            text=d.text,
            start_line=min(u.start_line for u in d.units),
            end_line=max(u.end_line for u in d.units),
        )
        for d in merged
    ]


def chunk_documents(
    docs: Iterable[Document],
    count: TokenCounter,
    *,
    max_tokens: int,
    overlap: int = 32,
    min_tokens: int = 48,
) -> list[Chunk]:
    """Chunks of many documents, in order; see :func:`chunk_document`."""
    return [
        chunk
        for doc in docs
        for chunk in chunk_document(
            doc, count, max_tokens=max_tokens, overlap=overlap, min_tokens=min_tokens
        )
    ]
