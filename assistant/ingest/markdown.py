"""Markdown (CommonMark with tables and YAML front matter), parsed by markdown-it."""

from __future__ import annotations

from typing import Literal

import yaml
from markdown_it import MarkdownIt
from markdown_it.token import Token
from mdit_py_plugins.front_matter import front_matter_plugin

from .documents import Section
from .sections import SectionBuilder, collapse, humanise, source_block

__all__ = ["parse_markdown"]

_MARKDOWN = MarkdownIt("commonmark").enable("table").use(front_matter_plugin)
_MD_SKIPPED = frozenset({"front_matter", "hr"})


def parse_markdown(text: str, stem: str, warnings: list[str]) -> tuple[str, tuple[Section, ...]]:
    """The title (front matter, first h1, else the file name) and the sections of a page.

    Blocks keep their exact source lines, so a passage reads as the Markdown it came from.
    """
    lines = text.split("\n")
    tokens = _MARKDOWN.parse(text)
    builder = SectionBuilder()
    title: str | None = None
    for index, token in enumerate(tokens):
        if token.level != 0 or token.nesting == -1 or token.map is None:
            continue
        start, end = token.map
        if token.type == "front_matter":
            title = _front_matter_title(token.content, warnings)
        elif token.type == "heading_open":
            heading = _inline_text(tokens[index + 1])
            if title is None and token.tag == "h1":
                title = heading
            builder.heading(int(token.tag[1:]), heading, start + 1, end)
        elif token.type not in _MD_SKIPPED and not _is_html_comment(token):
            kind: Literal["text", "code"] = (
                "code" if token.type in ("fence", "code_block") else "text"
            )
            if block := source_block(lines, start, end, kind):
                builder.add(block)
    title = title or humanise(stem)
    return title, builder.build(title)


def _front_matter_title(content: str, warnings: list[str]) -> str | None:
    try:
        meta = yaml.safe_load(content)
    except yaml.YAMLError:
        warnings.append("front matter is not valid YAML; ignored it")
        return None
    title = meta.get("title") if isinstance(meta, dict) else None
    if title is None:
        return None
    return collapse(str(title)) or None


def _inline_text(token: Token) -> str:
    """Render a heading's inline token as plain text: no backticks, emphasis or link targets."""
    parts = []
    for child in token.children or ():
        if child.type in ("text", "text_special", "code_inline", "image"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append(" ")
    return " ".join("".join(parts).split())


def _is_html_comment(token: Token) -> bool:
    content = token.content.strip()
    return token.type == "html_block" and content.startswith("<!--") and content.endswith("-->")
