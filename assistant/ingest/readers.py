"""Which reader parses which file: decode the bytes, then hand them to the format's module.

Each format's parser is imported on first use, so code that only searches an index never
loads bs4, markdown-it or yaml.
"""

from __future__ import annotations

import codecs
import re

import charset_normalizer

from .documents import Document, Format, RawFile, Section, SkipFile

__all__ = ["SUPPORTED_SUFFIXES", "decode", "parse"]

SUPPORTED_SUFFIXES: frozenset[str] = frozenset(
    {".md", ".markdown", ".rst", ".txt", ".html", ".htm"}
)

# Text in these would contain NUL bytes, which `read_file` already rejects as binary.
_WIDE_ENCODINGS = ["utf_16", "utf_16_be", "utf_16_le", "utf_32", "utf_32_be", "utf_32_le"]
_SNIFF_CHARS = 8192
# Real documents hold almost no control characters; binary data without NUL bytes (images,
# archives, compiled files renamed .txt) decodes to text full of them and must not be indexed.
_MAX_UNREADABLE_SHARE = 0.1
_UNREADABLE = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f\ufffd]")


def parse(raw: RawFile) -> Document:
    """Decode a file and split it into sections by its format, chosen from the suffix.

    Raises:
        SkipFile: If the suffix is unsupported or the file has no text content.
    """
    text, warnings = decode(raw.data)
    if _unreadable_share(text) > _MAX_UNREADABLE_SHARE:
        raise SkipFile("binary file (mostly control characters or undecodable bytes)")
    fmt, (title, sections) = _read(raw.path.suffix.lower(), text, raw.path.stem, warnings)
    if not any(section.blocks for section in sections):
        raise SkipFile("no text content")
    category = raw.source.split("/")[0] if "/" in raw.source else ""
    return Document(raw.source, title, fmt, category, text, raw.sha256, sections, tuple(warnings))


def _read(
    suffix: str, text: str, stem: str, warnings: list[str]
) -> tuple[Format, tuple[str, tuple[Section, ...]]]:
    """The format and (title, sections) of a decoded file, by its suffix."""
    if suffix in (".md", ".markdown"):
        from .markdown import parse_markdown

        return "markdown", parse_markdown(text, stem, warnings)
    if suffix in (".rst", ".txt"):
        from .rst import has_rst_title, parse_rst

        if suffix == ".rst" or has_rst_title(text.split("\n")):
            return "rst", parse_rst(text, stem)
        from .text import parse_text

        return "text", parse_text(text, stem)
    if suffix in (".html", ".htm"):
        from .html import parse_html

        return "html", parse_html(text, stem)
    raise SkipFile(f"unsupported file type '{suffix}'")


def decode(data: bytes) -> tuple[str, list[str]]:
    """The text of a file's bytes with ``\\n`` line ends, and a warning when it was not UTF-8."""
    warnings: list[str] = []
    data = data.removeprefix(codecs.BOM_UTF8)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        matches = charset_normalizer.from_bytes(data, cp_exclusion=_WIDE_ENCODINGS)
        best = matches.best()
        if best is not None:
            # A few accented words fit many code pages equally cleanly, and the language guess
            # behind `best` is noise at that size; prefer Windows-1252, the usual legacy
            # encoding of English docs, when it decodes as cleanly as the best.
            clean = [m for m in matches if m.chaos <= best.chaos]
            western = next((m for m in clean if "cp1252" in m.could_be_from_charset), None)
            encoding = "cp1252" if western else best.encoding
            text = str(western or best)
            warnings.append(f"not valid UTF-8; decoded as {encoding} (best guess)")
        else:
            text = data.decode("utf-8", errors="replace")
            warnings.append("not valid UTF-8; undecodable bytes replaced with U+FFFD")
    return text.replace("\r\n", "\n").replace("\r", "\n"), warnings


def _unreadable_share(text: str) -> float:
    sample = text[:_SNIFF_CHARS]
    return len(_UNREADABLE.findall(sample)) / max(1, len(sample))
