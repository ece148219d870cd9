"""What reading a corpus produces: documents made of sections made of line-ranged blocks.

Plain dataclasses with no third-party imports, so every later stage (chunking, the stores,
search) can name these types without loading a single document parser.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = ["MARKDOWN_TEXT", "Block", "Document", "Format", "RawFile", "Section", "SkipFile"]

Format = Literal["markdown", "rst", "text", "html", "pdf", "docx", "notebook"]
# Formats whose document text is Markdown (converted from the file where it is not).
MARKDOWN_TEXT: frozenset[str] = frozenset({"markdown", "docx", "notebook"})


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
