"""reStructuredText read line by line: the fallback for files docutils cannot parse, and the
test that tells a ``.txt`` file with rst titles from plain text.

Titles are recognised by their adornment, ranked by first appearance as docutils does; code
directives and literal blocks are code, other directives and footnotes prose, Sphinx plumbing
(``toctree``, ``index`` ...) dropped. Blocks keep their markup as written.
"""

from __future__ import annotations

import re

from .documents import Section
from .sections import SectionBuilder, humanise, source_block

__all__ = ["has_rst_title", "scan_rst"]

_ADORNMENT = re.compile(r"""^([=\-`:'"~^_*+#<>])\1{2,}[ \t]*$""")
_EXPLICIT = re.compile(r"^\s*\.\.(?:\s|$)")  # comments, targets, directives, footnotes
_CODE_DIRECTIVE = re.compile(r"^\s*\.\.\s+(?:code-block|code|sourcecode)::")
_DIRECTIVE = re.compile(r"^\s*\.\.\s+([\w:.-]+)::")
_FOOTNOTE = re.compile(r"^\s*\.\.\s+\[")  # footnotes and citations are prose
# Sphinx plumbing with no prose worth searching.
_DROPPED_DIRECTIVES = frozenset(
    {"toctree", "index", "highlight", "currentmodule", "contents", "include", "raw", "meta"}
)


def _rst_title(lines: list[str], i: int) -> tuple[str, tuple[str, bool], int] | None:
    """Match a section title at line i; return (title, style, index of its last line)."""
    over = _ADORNMENT.match(lines[i])
    if over:
        if i + 2 >= len(lines):
            return None
        title, under = lines[i + 1].strip(), _ADORNMENT.match(lines[i + 2])
        if (
            title
            and not _ADORNMENT.match(lines[i + 1])
            and under
            and under[1] == over[1]
            and len(lines[i + 2].rstrip()) >= len(title)
        ):
            return title, (over[1], True), i + 2
        return None
    if i + 1 >= len(lines) or not lines[i].strip() or lines[i][0].isspace():
        return None
    under = _ADORNMENT.match(lines[i + 1])
    if under and len(lines[i + 1].rstrip()) >= max(3, len(lines[i].rstrip())):
        return lines[i].strip(), (under[1], False), i + 1
    return None


def has_rst_title(lines: list[str]) -> bool:
    return any(
        _rst_title(lines, i) is not None
        for i in range(len(lines))
        if i == 0 or not lines[i - 1].strip()
    )


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _indented_end(lines: list[str], start: int, indent: int) -> int:
    """Return the end of the body that starts at `start`: lines blank or indented past `indent`."""
    end = start
    while end < len(lines) and (not lines[end].strip() or _indent(lines[end]) > indent):
        end += 1
    return end


def scan_rst(text: str, stem: str) -> tuple[str, tuple[Section, ...]]:
    """The title (the first section title, else the file name) and the sections of a page."""
    lines = text.split("\n")
    builder = SectionBuilder()
    styles: list[tuple[str, bool]] = []  # docutils ranks title styles by first appearance
    title: str | None = None
    i, n = 0, len(lines)
    while i < n:
        line = lines[i]
        if not line.strip():
            i += 1
            continue
        if match := _rst_title(lines, i):
            heading, style, last = match
            if style not in styles:
                styles.append(style)
            title = title or heading
            builder.heading(styles.index(style) + 1, heading, i + 1, last + 1)
            i = last + 1
            continue
        if _EXPLICIT.match(line):
            end = _indented_end(lines, i + 1, _indent(line))
            directive = _DIRECTIVE.match(line)
            if _CODE_DIRECTIVE.match(line):
                block = source_block(lines, i, end, "code")
            elif (directive and directive[1] not in _DROPPED_DIRECTIVES) or _FOOTNOTE.match(line):
                block = source_block(lines, i, end, "text")
            else:  # comments, link targets, substitutions and dropped directives
                block = None
            if block:
                builder.add(block)
            i = end
            continue
        end = i
        while end < n and lines[end].strip():
            end += 1
        para = source_block(lines, i, end, "text")
        if (
            para
            and para.text.strip() != "::"
            and not all(_ADORNMENT.match(part) for part in para.text.split("\n"))
        ):  # a bare `::` introduces the literal block; a lone adornment is a transition
            builder.add(para)
        i = end
        if lines[end - 1].rstrip().endswith("::"):
            body = i
            while body < n and not lines[body].strip():
                body += 1
            if body < n and _indent(lines[body]) > _indent(line):
                i = _indented_end(lines, body, _indent(line))
                if literal := source_block(lines, body, i, "code"):
                    builder.add(literal)
    title = title or humanise(stem)
    return title, builder.build(title)
