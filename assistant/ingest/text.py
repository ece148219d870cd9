"""Plain text: no headings, so one section of blank-line-separated paragraphs."""

from __future__ import annotations

from .documents import Section
from .sections import SectionBuilder, humanise, source_block

__all__ = ["parse_text"]


def parse_text(text: str, stem: str) -> tuple[str, tuple[Section, ...]]:
    """The title (from the file name) and the single section of a plain-text file."""
    lines = text.split("\n")
    builder, i = SectionBuilder(), 0
    while i < len(lines):
        end = i
        while end < len(lines) and lines[end].strip():
            end += 1
        if block := source_block(lines, i, end, "text"):
            builder.add(block)
        i = end + 1
    title = humanise(stem)
    return title, builder.build(title)
