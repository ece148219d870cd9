"""Markdown (CommonMark with tables and YAML front matter), parsed by markdown-it.

MyST, the Markdown dialect of Sphinx, is read too: a role (``{class}`Context```) shows its
visible text, a fenced directive (```` ```{note} ````) is code, a labelled note, navigation to
drop, reStructuredText to parse (``{eval-rst}``) or an object with its signature, as in
:mod:`.rst`; ``(label)=`` targets and ``%`` comments are dropped.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import yaml
from markdown_it import MarkdownIt
from markdown_it.token import Token
from mdit_py_plugins.front_matter import front_matter_plugin

from .documents import Block, Section
from .sections import SectionBuilder, collapse, humanise, source_block
from .sphinx import (
    ADMONITIONS,
    CODE_DIRECTIVES,
    DROPPED_DIRECTIVES,
    NO_SIGNATURE,
    VERSION_NOTES,
    looks_like_python,
    role_text,
)

__all__ = ["parse_markdown"]

_MARKDOWN = MarkdownIt("commonmark").enable("table").use(front_matter_plugin)
_MD_SKIPPED = frozenset({"front_matter", "hr"})
_MYST_ROLE = re.compile(r"\{([A-Za-z][\w:.+-]*)\}(`+)(.+?)\2", re.DOTALL)
_MYST_NOISE = re.compile(r"^(?:\s*\([^()\s]+\)=\s*|\s*%.*)$")  # a (target)= or a % comment
_MYST_OPTION = re.compile(r"^:[\w-]+:")
_MYST_UNREAD = frozenset({"image", "figure", "include", "literalinclude"})


def parse_markdown(
    text: str,
    stem: str,
    warnings: list[str],
    *,
    path: Path | None = None,
    root: Path | None = None,
) -> tuple[str, tuple[Section, ...]]:
    """The title (front matter, first h1, else the file name) and the sections of a page.

    Blocks keep their source lines, so a passage reads as the Markdown it came from, with
    MyST's roles and directives read as Sphinx shows them. ``path`` and ``root`` (the page and
    the corpus root) let ``{eval-rst}`` blocks follow includes as rst pages do.
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
            heading = _MYST_ROLE_NAME.sub("", _inline_text(tokens[index + 1]))
            if title is None and token.tag == "h1":
                title = heading
            builder.heading(int(token.tag[1:]), heading, start + 1, end)
        elif token.type not in _MD_SKIPPED:
            for block in _blocks(token, lines, warnings, path, root):
                builder.add(block)
    title = title or humanise(stem)
    return title, builder.build(title)


_MYST_ROLE_NAME = re.compile(r"\{[A-Za-z][\w:.+-]*\}(?=\S)")  # what a role leaves in a heading


def _roles_as_text(text: str) -> str:
    """MyST roles as the text Sphinx shows: code names as code spans, the rest as words."""

    def shown(match: re.Match[str]) -> str:
        text, code = role_text(match.group(1), match.group(3))
        return f"`{text}`" if code else text

    return _MYST_ROLE.sub(shown, text)


def _without_myst_markup(block: Block) -> Block | None:
    """A text block with MyST roles shown as text and targets and comments dropped."""
    lines = block.text.split("\n")
    if all(_MYST_NOISE.match(line) for line in lines):
        return None
    return Block(_roles_as_text(block.text), block.start_line, block.end_line, block.kind)


def _directive(
    token: Token, lines: list[str], warnings: list[str], path: Path | None, root: Path | None
) -> list[Block]:
    """The blocks of a MyST directive fence, read as the rst reader reads the directive."""
    assert token.map is not None
    start, end = token.map[0] + 1, token.map[1]  # 1-based lines of the whole fence
    name, _, argument = token.info[1:].partition("}")
    name, argument = name.strip(), argument.strip()
    body = token.content.split("\n")
    while body and _MYST_OPTION.match(body[0]):
        body.pop(0)
    content = "\n".join(body).strip("\n")
    if name in DROPPED_DIRECTIVES or name in _MYST_UNREAD:
        return []
    if name in CODE_DIRECTIVES:
        return [Block(f"```{argument}\n{content}\n```", start, end, "code")] if content else []
    if name == "eval-rst":
        from .rst import parse_rst

        _, sections, _ = parse_rst(
            content, "", warnings, path=path or Path("page.md"), root=root or Path(".")
        )
        offset = start  # the rst's line 1 is the fence's second line
        return [
            Block(b.text, b.start_line + offset, b.end_line + offset, b.kind)
            for section in sections
            for b in section.blocks
        ]
    first = start + 1 + (len(token.content.split("\n")) - len(body))  # content's first line
    if name in VERSION_NOTES or name in ADMONITIONS:
        version = f"{VERSION_NOTES[name]} {argument}" if name in VERSION_NOTES else ""
        label = version or ADMONITIONS[name] or _roles_as_text(argument)
        blocks = _body(content, first, warnings, path, root)
        if blocks and blocks[0].kind == "text":
            lead = blocks[0]
            return [Block(f"{label}: {lead.text}", start, lead.end_line, "text"), *blocks[1:]]
        return [Block(f"{label}.", start, start, "text"), *blocks]
    blocks = []
    if argument and name not in NO_SIGNATURE:
        blocks.append(Block(f"`{argument}`", start, start, "text"))
    if content and looks_like_python(content):
        blocks.append(Block(f"```python\n{content}\n```", first, end, "code"))
    else:
        blocks.extend(_body(content, first, warnings, path, root))
    return blocks


def _blocks(
    token: Token, lines: list[str], warnings: list[str], path: Path | None, root: Path | None
) -> list[Block]:
    """The blocks of one top-level token other than a heading: its exact source lines (MyST
    markup shown as text), or what a directive fence holds; none for an HTML comment."""
    assert token.map is not None
    if token.type == "fence" and token.info.startswith("{"):
        return _directive(token, lines, warnings, path, root)
    if _is_html_comment(token):
        return []
    kind: Literal["text", "code"] = "code" if token.type in ("fence", "code_block") else "text"
    block = source_block(lines, token.map[0], token.map[1], kind)
    if block is not None and kind == "text":
        block = _without_myst_markup(block)
    return [block] if block is not None else []


def _body(
    content: str, first: int, warnings: list[str], path: Path | None, root: Path | None
) -> list[Block]:
    """The blocks of a directive's Markdown body whose first line is page line ``first``."""
    lines, shift = content.split("\n"), first - 1
    return [
        Block(b.text, b.start_line + shift, b.end_line + shift, b.kind)
        for token in _MARKDOWN.parse(content)
        if token.level == 0 and token.nesting != -1 and token.map is not None
        if token.type not in _MD_SKIPPED and token.type != "heading_open"
        for b in _blocks(token, lines, warnings, path, root)
    ]


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
