"""What reading a corpus produces: documents made of sections made of line-ranged blocks.

Plain dataclasses with no third-party imports, so every later stage (chunking, the stores,
search) can name these types without loading a single document parser.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = [
    "MARKDOWN_TEXT",
    "Block",
    "Document",
    "Format",
    "RawFile",
    "Section",
    "SkipFile",
    "paged",
    "release_notes",
]

Format = Literal["markdown", "rst", "text", "html", "pdf", "docx", "notebook"]
# Formats whose document text is Markdown (converted from the file where it is not).
MARKDOWN_TEXT: frozenset[str] = frozenset({"markdown", "docx", "notebook"})


def paged(source: str) -> bool:
    """Whether a document's locations are pages rather than lines (a PDF's are): its blocks'
    "lines" are page numbers, citations name pages, and a passage is read within its page."""
    return source.lower().endswith(".pdf")


# Release notes name themselves by a folder or file name (changelog.rst, releases/5.0.txt,
# history/whatsnew-5.1.rst, news.rst, announce/release-9.0.rst) or by their title.
_RELEASE_NAME = re.compile(
    r"(?:change[-_]?log|changes|history|news|release[-_]?notes?|releases|whats[-_]?new|"
    r"announce(?:ments?)?)(?:[-_.]?v?\d[\w.-]*)?"
)
_RELEASE_TITLE = re.compile(r"^(?:change ?log|changes|history|news)\b|release notes|what'?s new")


def release_notes(source: str, title: str = "") -> bool:
    """Whether a document is release notes (a changelog, a "what's new" page): it describes
    what changed, in the words of every topic at once, rarely how to do something."""
    names = [
        part.rsplit(".", 1)[0] if i == 0 else part
        for i, part in enumerate(reversed(source.lower().split("/")))
    ]
    return any(_RELEASE_NAME.fullmatch(name) for name in names) or bool(
        _RELEASE_TITLE.search(title.lower())
    )


@dataclass(frozen=True)
class Block:
    """A paragraph-level unit of a section, with its 1-based inclusive line range in the file."""

    text: str
    start_line: int
    end_line: int
    kind: Literal["text", "code"]


@dataclass(frozen=True)
class Section:
    """The body under one heading; `headings` is the path from the outermost heading inwards."""

    headings: tuple[str, ...]
    start_line: int
    end_line: int
    blocks: tuple[Block, ...]

    @property
    def text(self) -> str:
        """The body text, blocks separated by a blank line."""
        return "\n\n".join(block.text for block in self.blocks)


@dataclass(frozen=True)
class Document:
    """One parsed corpus file; `source` is its forward-slash path relative to the corpus root.

    ``includes`` are the other files (relative to the root) whose text the document took in,
    so a change to one of them re-reads this document too.
    """

    source: str
    title: str
    format: Format
    category: str
    text: str
    sha256: str
    sections: tuple[Section, ...]
    warnings: tuple[str, ...] = ()
    includes: tuple[str, ...] = ()


@dataclass(frozen=True)
class RawFile:
    """The undecoded bytes of a corpus file, read once so hashing and parsing agree."""

    source: str
    path: Path
    data: bytes
    sha256: str


class SkipFile(Exception):
    """A file that cannot be indexed; str(exc) is the human-readable reason."""
