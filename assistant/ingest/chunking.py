"""Split parsed documents into chunks that fit the embedding model's window, headings kept.

Sizes are measured with the encoder's own tokenizer, so no chunk is cut silently by the model.
A section that fits becomes one chunk; a longer one is packed from whole blocks, then lines,
then sentences, with a small overlap between consecutive pieces. Code is never cut mid-line.
Tiny neighbouring sections are merged, because a heading with one line embeds poorly.
"""

from __future__ import annotations

import hashlib
import re
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
    fence: str = ""  # a line of a fenced code block cut in pieces: the block's opening fence
    group: int = 0  # which fenced block it belongs to (its first line)
    fence_tokens: int = 0  # what the fence lines cost, once per piece of the block in a draft

    def continues(self, previous: _Unit | None) -> bool:
        """Whether this line of a cut code block goes on the fenced piece ``previous`` ends."""
        return bool(self.fence) and previous is not None and previous.group == self.group


@dataclass
class _Draft:
    headings: tuple[str, ...]
    units: list[_Unit] = field(default_factory=list)

    @property
    def tokens(self) -> int:
        return self.tokens_with(None)

    def tokens_with(self, unit: _Unit | None) -> int:
        """Word pieces of the draft's text, with ``unit`` appended if given: the units, and
        the fence lines of each piece of a cut code block."""
        units = [*self.units, unit] if unit is not None else self.units
        fences = sum(
            u.fence_tokens
            for i, u in enumerate(units)
            if u.fence and not u.continues(units[i - 1] if i else None)
        )
        return sum(u.tokens for u in units) + fences

    @property
    def text(self) -> str:
        """The units joined; lines of a cut code block are fenced again in every piece."""
        parts: list[str] = []
        previous: _Unit | None = None
        for unit in self.units:
            if unit.continues(previous):
                parts.append("\n" + unit.text)
            else:
                if previous is not None and previous.fence:
                    parts.append("\n" + _closing(previous.fence))
                joiner = unit.joiner if parts else ""
                opening = f"{unit.fence}\n" if unit.fence else ""
                parts.append(joiner + opening + unit.text)
            previous = unit
        if previous is not None and previous.fence:
            parts.append("\n" + _closing(previous.fence))
        return "".join(parts)


def _closing(fence: str) -> str:
    """The line that closes a code block opened by ``fence``: its run of backticks or tildes."""
    return fence[: len(fence) - len(fence.lstrip(fence[0]))]


_FENCE = re.compile(r"^(`{3,}|~{3,})")


def _fence_of(block: Block) -> tuple[str, list[str]] | None:
    """The opening fence and inner lines of a fenced code block, or None for other blocks."""
    lines = block.text.split("\n")
    opened = _FENCE.match(lines[0]) if block.kind == "code" else None
    if opened is None or len(lines) < 3 or lines[-1].strip() != opened.group(1):
        return None
    return lines[0], lines[1:-1]


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
        """Units of a block too big for one chunk: lines, and sentences of long text lines.

        A fenced code block is cut into its lines, each remembering the fence, so every piece
        of it shows as code again (see :attr:`_Draft.text`).
        """
        if fenced := _fence_of(block):
            return self.split_fenced(block, *fenced, budget)
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

    def split_fenced(self, block: Block, fence: str, lines: list[str], budget: int) -> list[_Unit]:
        overhead = sum(self.count([fence, _closing(fence)]))
        room = budget - overhead
        units: list[_Unit] = []
        for offset, (line, n) in enumerate(zip(lines, self.count(lines), strict=True), start=1):
            number = block.start_line + offset
            if n <= room:
                unit = _Unit(line, number, number, n, "\n", code=True, fence=fence)
                unit.group, unit.fence_tokens = block.start_line, overhead
                units.append(unit)
            else:  # one code line longer than a chunk: cut between words, shown as prose
                units.extend(self.split_words(line, number, room))
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
        greedy = self._fill(headings, units, budget, budget)
        if len(greedy) < 2:
            return greedy
        # Pieces of one size rather than full ones and a scrap: aim each at the mean.
        target = -(-sum(u.tokens for u in units) // len(greedy))
        even = self._fill(headings, units, budget, target)
        return even if len(even) <= len(greedy) else greedy

    def _fill(
        self, headings: tuple[str, ...], units: list[_Unit], budget: int, target: int
    ) -> list[_Draft]:
        """Drafts filled in order, each closed once it reaches ``target`` or is full."""
        drafts: list[_Draft] = []
        current = _Draft(headings)
        for unit in units:
            full = current.tokens_with(unit) > budget
            if current.units and (full or current.tokens >= target):
                drafts.append(current)
                current = _Draft(headings, self._overlap_from(current, unit, budget))
            current.units.append(replace(unit))
        if current.units:
            drafts.append(current)
        return drafts

    def _overlap_from(self, previous: _Draft, incoming: _Unit, budget: int) -> list[_Unit]:
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
        if not carried or _Draft((), carried).tokens_with(incoming) > budget:
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

    def lend(
        self, left: _Draft, right: _Draft, floor: int, *, from_left: bool
    ) -> tuple[_Draft, _Draft] | None:
        """Move units across the border of two drafts so the small one reaches ``floor``:
        the last units of ``left`` in front of ``right`` (``from_left``), or the first units
        of ``right`` after ``left``. None when no move does it within the budget without
        taking the lender below the floor."""
        giver = left if from_left else right
        for k in range(1, len(giver.units)):
            if from_left:
                kept = _Draft(left.headings, left.units[:-k])
                moved = _Draft(left.headings, [replace(u) for u in left.units[-k:]])
            else:
                kept = _Draft(right.headings, [replace(u) for u in right.units[k:]])
                moved = _Draft(right.headings, [replace(u) for u in right.units[:k]])
            if kept.tokens < floor:
                return None
            moved.units[0].joiner = kept.units[0].joiner = "\n\n"
            both = self.try_merge(moved, right) if from_left else self.try_merge(left, moved)
            if both is None:
                return None
            if both.tokens >= floor:
                return (kept, both) if from_left else (both, kept)
        return None

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
            small_right = draft.tokens < min_tokens
            lent = packer.lend(merged[-1], draft, min_tokens, from_left=small_right)
            if lent is not None:
                merged[-1], draft = lent
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
