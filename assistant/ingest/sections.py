"""What every format reader shares: a builder that turns headings and blocks into sections."""

from __future__ import annotations

import re
from typing import Literal

from .documents import Block, Section

__all__ = ["SectionBuilder", "collapse", "humanise", "source_block"]


class SectionBuilder:
    """Accumulates headings and blocks into Sections, tracking the heading path by level."""

    def __init__(self) -> None:
        self._stack: list[tuple[int, str]] = []
        # The first entry holds text before any heading; its path is the title, known only later.
        self._parts: list[tuple[tuple[str, ...] | None, int, int, list[Block]]] = [(None, 1, 1, [])]

    def heading(self, level: int, text: str, start: int, end: int) -> None:
        while self._stack and self._stack[-1][0] >= level:
            self._stack.pop()
        self._stack.append((level, text))
        self._parts.append((tuple(t for _, t in self._stack), start, end, []))

    def add(self, block: Block) -> None:
        self._parts[-1][3].append(block)

    def build(self, title: str) -> tuple[Section, ...]:
        kept: list[Section] = []
        for headings, start, end, blocks in reversed(self._parts):
            path = headings or (title,)
            # An empty section survives only as the parent of the (kept) section after it.
            child = kept[-1].headings if kept else ()
            if blocks or (len(child) > len(path) and child[: len(path)] == path):
                last = max(end, blocks[-1].end_line) if blocks else end
                kept.append(Section(path, start, last, tuple(blocks)))
        return tuple(reversed(kept))


def source_block(
    lines: list[str], start: int, end: int, kind: Literal["text", "code"]
) -> Block | None:
    """Make a block of the exact source lines [start, end) (0-based), trimming blank edges."""
    while start < end and not lines[start].strip():
        start += 1
    while end > start and not lines[end - 1].strip():
        end -= 1
    if start == end:
        return None
    return Block("\n".join(lines[start:end]), start + 1, end, kind)


def humanise(stem: str) -> str:
    """A title made from a file name: ``getting-started`` becomes ``Getting started``."""
    words = " ".join(re.split(r"[-_\s]+", stem)).strip() or stem
    return words[:1].upper() + words[1:]


def collapse(text: str) -> str:
    """Whitespace runs as single spaces, ends trimmed."""
    return " ".join(text.split())
