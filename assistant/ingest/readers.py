"""Which reader parses which file: decode the bytes, then hand them to the format's module.

Each format's parser is imported on first use, so code that only searches an index never
loads docutils, bs4, markdown-it or yaml. PDF and Word files are read from their bytes; the
others are decoded to text first. Notebooks and Word files are written out as Markdown and
read by the Markdown reader.
"""

from __future__ import annotations

from pathlib import Path

from .documents import Document, Format, RawFile, Section, SkipFile
from .encoding import decode_text

__all__ = [
    "BINARY_SUFFIXES",
    "READER_VERSIONS",
    "SUPPORTED_SUFFIXES",
    "parse",
]

SUPPORTED_SUFFIXES: frozenset[str] = frozenset(
    {".md", ".markdown", ".rst", ".txt", ".html", ".htm", ".pdf", ".docx", ".ipynb"}
)
# Read from their bytes, never decoded as text (and parsed where memory is capped).
BINARY_SUFFIXES: frozenset[str] = frozenset({".pdf", ".docx"})

# The version of each format's reader. Bump one when what it makes of a file changes: the next
# build re-reads the documents of that format (and re-embeds only passages whose text changed).
READER_VERSIONS: dict[str, int] = {
    "markdown": 2,  # 2: MyST roles and directives read as Sphinx shows them
    "rst": 2,  # 2: docutils, Sphinx roles and directives as text, includes followed
    "text": 1,
    "html": 2,  # 2: site chrome, permalinks and title suffixes of generated sites dropped
    "pdf": 1,
    "docx": 1,
    "notebook": 1,
}


def parse(raw: RawFile) -> Document:
    """Read a file's sections by its format, chosen from the suffix.

    Raises:
        SkipFile: If the suffix is unsupported, the file cannot be read as its format or it
            has no text content.
    """
    warnings: list[str] = []
    fmt, title, text, sections, includes = _read(raw, warnings)
    if not any(section.blocks for section in sections):
        raise SkipFile("no text content")
    category = raw.source.split("/")[0] if "/" in raw.source else ""
    return Document(
        raw.source,
        title,
        fmt,
        category,
        text,
        raw.sha256,
        sections,
        tuple(warnings),
        includes,
    )


def _read(
    raw: RawFile, warnings: list[str]
) -> tuple[Format, str, str, tuple[Section, ...], tuple[str, ...]]:
    """Format, title, document text, sections and included files of one file."""
    suffix, stem = raw.path.suffix.lower(), raw.path.stem
    if suffix == ".pdf":
        from .pdf import parse_pdf

        title, text, sections = parse_pdf(raw.data, stem)
        return "pdf", title, text, sections, ()
    if suffix == ".docx":
        from .docx import docx_to_markdown

        text, declared = docx_to_markdown(raw.data)
        title, sections = _markdown(text, stem, warnings)
        return "docx", declared or title, text, sections, ()
    text = decode_text(raw.data, warnings)
    if suffix == ".ipynb":
        from .notebook import notebook_to_markdown

        text = notebook_to_markdown(text)
        title, sections = _markdown(text, stem, warnings)
        return "notebook", title, text, sections, ()
    if suffix in (".md", ".markdown"):
        root = raw.path.parents[raw.source.count("/")]
        title, sections = _markdown(text, stem, warnings, path=raw.path, root=root)
        return "markdown", title, text, sections, ()
    if suffix in (".rst", ".txt"):
        from .rst_lines import has_rst_title

        if suffix == ".rst" or has_rst_title(text.split("\n")):
            from .rst import parse_rst

            root = raw.path.parents[raw.source.count("/")]
            title, sections, includes = parse_rst(text, stem, warnings, path=raw.path, root=root)
            return "rst", title, text, sections, includes
        from .text import parse_text

        title, sections = parse_text(text, stem)
        return "text", title, text, sections, ()
    if suffix in (".html", ".htm"):
        from .html import parse_html

        title, sections = parse_html(text, stem)
        return "html", title, text, sections, ()
    raise SkipFile(f"unsupported file type '{suffix}'")


def _markdown(
    text: str, stem: str, warnings: list[str], *, path: Path | None = None, root: Path | None = None
) -> tuple[str, tuple[Section, ...]]:
    from .markdown import parse_markdown

    return parse_markdown(text, stem, warnings, path=path, root=root)
