"""reStructuredText, Sphinx's dialect included, parsed by docutils into plain passages.

Docutils parses the page; Sphinx's roles and directives, which docutils does not know, are
understood generically instead of failing:

- a role becomes its visible text: ``:class:`QuerySet``` → `QuerySet`, ``:doc:`title <path>```
  → title, ``:meth:`~a.b.c``` → `c`; roles naming code show as code spans, others as words;
- inline literals become code spans, literal and code blocks fenced code;
- an object directive (``method``, ``function``, ``class``, ``setting``, ``django-admin``, ...:
  any directive with arguments) keeps its signature as a line and its body as prose;
- admonitions and ``versionadded`` / ``deprecated`` notes stay prose, labelled;
- ``toctree``, ``index`` and other navigation are dropped;
- ``include`` and ``literalinclude`` are followed when the file lies inside the corpus root
  (each file at most once per page, at most :data:`MAX_INCLUDES`), and their text counts as
  the lines of the directive; one pointing outside is a warning.

Blocks keep the line range of their source in the page. A page docutils cannot parse falls
back to the line scanner of :mod:`.rst_lines`, with a warning.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, ClassVar, cast

from docutils import nodes, utils
from docutils.frontend import get_default_settings
from docutils.parsers.rst import Directive, Parser, directives, roles
from docutils.parsers.rst.languages import en as english
from docutils.statemachine import string2lines

from ..errors import first_line
from .documents import Block, Section
from .encoding import decode
from .rst_lines import scan_rst
from .sections import SectionBuilder, collapse, humanise
from .sphinx import (
    ADMONITIONS,
    CODE_DIRECTIVES,
    DROPPED_DIRECTIVES,
    NO_SIGNATURE,
    SUFFIX_LANGUAGES,
    VERSION_NOTES,
    looks_like_python,
    role_text,
)

__all__ = ["MAX_INCLUDES", "parse_rst"]

MAX_INCLUDES = 20

# Characters Python's splitlines() breaks lines at, besides "\n": docutils would count more
# lines than the page has. They are read as spaces.
_OTHER_LINE_BREAKS = str.maketrans(dict.fromkeys("\v\f\x1c\x1d\x1e\x85\u2028\u2029", " "))
_ROLE = re.compile(r":([A-Za-z][\w.+:-]*):`")
_DIRECTIVE = re.compile(r"^[ \t]*\.\.[ \t]+([\w.+:-]+)::", re.MULTILINE)

# Roles docutils knows but Sphinx redefines (``:pep:`title <8>``` is Sphinx's alone).
_SPHINX_OVERRIDES = frozenset({"pep", "rfc"})
_PAGE = "nexus_page"  # the attribute of a parsed document that holds its _Page
_LOCK = threading.Lock()  # docutils' role and directive registries are process-wide
_ENGLISH: Any = english  # docutils' name lookups take a language module


@dataclass
class _Page:
    """What the directives of one page need to know, and what they report back."""

    source: str  # the page's path, as docutils names it
    root: Path  # the corpus root, the only place includes may come from
    folder: Path  # the page's own folder, which relative includes start from
    warnings: list[str]
    lines: list[str] = field(default_factory=list)  # the page's own text, line by line
    included: dict[str, tuple[int, int]] = field(default_factory=dict)  # file -> lines in page

    @property
    def source_root(self) -> Path:
        """Where an include path starting with "/" starts: Sphinx's source folder (the nearest
        one above the page holding ``conf.py``), else the corpus root."""
        for folder in (self.folder, *self.folder.parents):
            if (folder / "conf.py").is_file():
                return folder
            if folder == self.root or not folder.is_relative_to(self.root):
                break
        return self.root

    @property
    def own(self) -> str:
        """The page's own file, resolved, which it may never include."""
        return str(Path(self.source).resolve())

    def lines_in_page(self, source: str | None, line: int | None, length: int) -> tuple[int, int]:
        """The page lines a node occupies; text from an included file takes its directive's."""
        if source is not None and source != self.source and source in self.included:
            return self.included[source]
        start = line or 1
        return start, start + max(length - 1, 0)


def parse_rst(
    text: str, stem: str, warnings: list[str], *, path: Path, root: Path
) -> tuple[str, tuple[Section, ...], tuple[str, ...]]:
    """The title, the sections and the included files (relative to ``root``) of a page.

    Args:
        text: The decoded page.
        stem: Its file name without suffix, the title of last resort.
        warnings: Where problems worth telling the user are appended.
        path: The page's file, which relative includes start from.
        root: The corpus root; includes from outside it are not followed.
    """
    page = _Page(str(path), root.resolve(), path.parent.resolve(), warnings, text.split("\n"))
    walker = _Walker(page)
    try:
        with _LOCK:
            walker.walk(_doctree(text.translate(_OTHER_LINE_BREAKS), page))
    except Exception as exc:  # docutils fails in many ways on odd input; the scanner does not
        warnings.append(
            f"docutils could not parse this page ({first_line(exc)}); read it line by line"
        )
        title, sections = scan_rst(text, stem)
        return title, sections, ()
    title = walker.title or humanise(stem)
    included = tuple(_relative(Path(p), page.root) for p in page.included)
    return title, walker.builder.build(title), included


def _relative(path: Path, root: Path) -> str:
    return path.resolve().relative_to(root).as_posix()


@cache
def _settings() -> Any:
    settings = get_default_settings(Parser)
    settings.report_level = 5  # nothing reported: problems stay in the tree
    settings.halt_level = 5  # never halt
    settings.file_insertion_enabled = False  # includes go through _Include, which checks them
    settings.raw_enabled = False
    settings.warning_stream = False
    settings.syntax_highlight = "none"
    return settings


def _doctree(text: str, page: _Page) -> nodes.document:
    document = utils.new_document(page.source, _settings())
    _learn_markup(text, document)
    setattr(document, _PAGE, page)
    Parser().parse(text, document)
    return document


def _learn_markup(text: str, document: nodes.document) -> None:
    """Register the roles and directives this page uses that docutils does not know."""
    for name in set(_ROLE.findall(text)):
        known, _ = roles.role(name, _ENGLISH, 0, document.reporter)
        if known is None or name in _SPHINX_OVERRIDES:
            roles.register_local_role(name, cast(Any, _role))
    for name in set(_DIRECTIVE.findall(text)):
        if name in ("include", "literalinclude"):
            directives.register_directive(name, _Include)
        elif name in CODE_DIRECTIVES and name != "parsed-literal":
            directives.register_directive(name, _CodeBlock)
        elif name in DROPPED_DIRECTIVES:
            directives.register_directive(name, _Dropped)
        elif directives.directive(name, _ENGLISH, document)[0] is None:
            directives.register_directive(name, _Generic)


def _role(
    name: str,
    rawtext: str,
    text: str,
    lineno: int,
    inliner: Any,
    options: Any = None,
    content: Any = None,
) -> tuple[list[nodes.Node], list[nodes.system_message]]:
    """Any Sphinx role: its visible text, as Sphinx would show it."""
    shown, code = role_text(name, utils.unescape(text))
    return [(nodes.literal if code else nodes.inline)(rawtext, shown)], []


class _AnyOptions(dict[str, Any]):
    """An option spec that accepts every option: Sphinx directives have many, none matter.

    It holds one entry because docutils parses options only when the spec is not empty.
    """

    def __missing__(self, key: str) -> Any:
        return directives.unchanged

    def __contains__(self, key: object) -> bool:
        return True


class _Located(Directive):
    """A directive whose nodes carry the directive's place in the page."""

    has_content = True
    optional_arguments = 100
    final_argument_whitespace = True
    option_spec: ClassVar[dict[str, Any]] = _AnyOptions(name=directives.unchanged)

    def place(self, node: nodes.Element) -> nodes.Element:
        node.source, node.line = self.state_machine.get_source_and_line(self.lineno)
        node.rawsource = self.block_text.rstrip()
        return node


class _Dropped(_Located):
    def run(self) -> list[nodes.Node]:
        return []


class _CodeBlock(_Located):
    def run(self) -> list[nodes.Node]:
        code = "\n".join(self.content)
        block = nodes.literal_block(code, code)
        block["language"] = self.arguments[0] if self.arguments else ""
        return [self.place(block)]


class _Generic(_Located):
    """Any other Sphinx directive: its signature (the arguments) as a line, its body as text."""

    def run(self) -> list[nodes.Node]:
        node = self.place(nodes.container(classes=["nexus-directive"]))
        node["directive"] = self.name
        node["arguments"] = " ".join(self.arguments) if self.name not in NO_SIGNATURE else ""
        if self.name in VERSION_NOTES and node["arguments"]:
            # As Sphinx reads it: the version, then an explanation that is inline markup.
            version, _, explanation = node["arguments"].partition(" ")
            node["arguments"] = version
            if explanation.strip():
                parsed, _ = self.state.inline_text(explanation.strip(), self.lineno)
                header = self.block_text.split("\n\n", 1)[0].rstrip()  # the argument lines
                paragraph = nodes.paragraph(header, "", *parsed)
                paragraph.source, paragraph.line = node.source, node.line
                node += paragraph
        code = "\n".join(self.content)
        if looks_like_python(code):  # a project's example directive: a program, not prose
            block = self.place(nodes.literal_block(code, code))
            block["language"] = "python"
            node += block
        else:
            self.state.nested_parse(self.content, self.content_offset, node)
        return [node]


class _Include(_Located):
    """``include`` and ``literalinclude``, followed only inside the corpus root."""

    def run(self) -> list[nodes.Node]:
        page = cast(_Page, getattr(self.state.document, _PAGE))
        target = self.arguments[0].strip() if self.arguments else ""
        if not target or target.startswith("<"):  # docutils' standard definition files
            return []
        base = page.source_root if target.startswith("/") else page.folder
        path = (base / target.lstrip("/")).resolve()
        if not path.is_relative_to(page.root):
            page.warnings.append(f"{self.name} of {target} points outside the corpus; not read")
            return []
        key = str(path)
        if key in page.included or key == page.own or len(page.included) >= MAX_INCLUDES:
            return []  # each file once per page, so no include can loop
        try:
            text, _ = decode(path.read_bytes())
        except OSError as exc:
            page.warnings.append(f"{self.name} of {target} cannot be read ({exc.strerror or exc})")
            return []
        source, line = self.state_machine.get_source_and_line(self.lineno)
        lines = page.lines_in_page(source, line, self.block_text.rstrip().count("\n") + 1)
        page.included[key] = lines
        text = _excerpt(text, self.options)
        if self.name == "literalinclude" or "literal" in self.options or "code" in self.options:
            block = nodes.literal_block(text, text, source=key, line=1)
            block["language"] = (
                self.options.get("language")
                or self.options.get("code")
                or SUFFIX_LANGUAGES.get(path.suffix.lower(), "")
            )
            return [block]
        tab_width = self.state.document.settings.tab_width
        self.state_machine.insert_input(string2lines(text, tab_width, True), key)
        return []


def _excerpt(text: str, options: dict[str, Any]) -> str:
    """The part of an included file its options select (start/end line or marker)."""
    lines = text.splitlines()
    start, end = options.get("start-line"), options.get("end-line")
    if start or end:
        lines = lines[int(start or 0) : int(end) if end else None]
    text = "\n".join(lines)
    if after := options.get("start-after"):
        text = text.split(after, 1)[-1]
    if before := options.get("end-before"):
        text = text.split(before, 1)[0]
    return text


# --------------------------------------------------------------------------- tree to blocks


_SKIPPED = (
    nodes.comment,
    nodes.target,
    nodes.substitution_definition,
    nodes.system_message,
    nodes.raw,
    nodes.pending,
    nodes.transition,
    nodes.Invisible,
)


class _Walker:
    """Turns a doctree into headings and blocks, each with its lines in the page."""

    def __init__(self, page: _Page) -> None:
        self.page = page
        self.builder = SectionBuilder()
        self.title: str | None = None

    def walk(self, node: nodes.Node, depth: int = 0) -> None:
        children = list(node.children)
        for i, child in enumerate(children):
            following = children[i + 1] if i + 1 < len(children) else None
            if not _names_next_section(child, following):
                self.block(child, depth)

    def block(self, node: nodes.Node, depth: int) -> None:
        if isinstance(node, _SKIPPED) or not isinstance(node, nodes.Element):
            return
        if isinstance(node, nodes.section):
            title = next((c for c in node.children if isinstance(c, nodes.title)), None)
            if title is not None:
                text = collapse(title.astext())
                self.title = self.title or text
                self.builder.heading(depth + 1, text, *self.title_lines(title))
            for child in node.children:
                if child is not title:
                    self.block(child, depth + 1)
        elif isinstance(node, nodes.paragraph | nodes.rubric | nodes.title | nodes.caption):
            self.text(node, _inline(node))
        elif isinstance(node, nodes.line_block):
            self.text(node, "\n".join(_inline(line) for line in node.findall(nodes.line)))
        elif isinstance(node, nodes.literal_block | nodes.doctest_block):
            self.code(node)
        elif isinstance(node, nodes.bullet_list | nodes.enumerated_list):
            self.items(node, depth)
        elif isinstance(node, nodes.definition_list):
            for item in node.children:
                term = " ".join(_inline(c) for c in item.children if isinstance(c, nodes.term))
                self.text(item, term)
                for part in item.children:
                    if isinstance(part, nodes.definition):
                        self.walk(part, depth)
        elif isinstance(node, nodes.field_list | nodes.option_list):
            for item in node.children:
                if isinstance(item, nodes.Element):
                    self.labelled(item, depth)
        elif isinstance(node, nodes.table):
            self.table(node)
        elif isinstance(node, nodes.Admonition):
            self.admonition(node, depth)
        elif isinstance(node, nodes.container) and "directive" in node:
            self.directive(node, depth)
        elif isinstance(node, nodes.image):
            if alt := node.get("alt"):
                self.text(node, str(alt))
        else:  # block quotes, topics, figures, footnotes, containers: their content
            self.walk(node, depth)

    def lines(self, node: nodes.Node) -> tuple[int, int]:
        """The page lines of ``node``, from the first line a node in it knows."""
        located = next((n for n in node.findall(include_self=True) if n.line), node)
        raw = getattr(node, "rawsource", "") or ""
        return self.page.lines_in_page(located.source, located.line, raw.count("\n") + 1)

    def title_lines(self, title: nodes.Node) -> tuple[int, int]:
        """A section title's lines, adornments included: docutils places a title on its
        underline, one line below the text, and an overline stands one line above."""
        start, end = self.lines(title)
        if start != end or not title.line or title.source not in (None, self.page.source):
            return start, end
        above = self.page.lines[end - 3] if end >= 3 else ""
        overlined = len(above.strip()) >= 3 and len(set(above.strip())) == 1
        return end - (2 if overlined and not above[0].isalnum() else 1), end

    def text(self, node: nodes.Node, text: str) -> None:
        if text.strip():
            start, end = self.lines(node)
            self.builder.add(Block(text.strip(), start, end, "text"))

    def code(self, node: nodes.Element) -> None:
        code = node.astext().strip("\n")
        if not code.strip():
            return
        fence = "````" if "```" in code else "```"
        start, end = self.lines(node)
        language = str(node.get("language", "")).split()[0] if node.get("language") else ""
        self.builder.add(Block(f"{fence}{language}\n{code}\n{fence}", start, end, "code"))

    def items(self, node: nodes.Element, depth: int) -> None:
        """A list of plain items as one block, so it stays whole where it fits in a passage;
        one holding code or other blocks item by item, each of those blocks its own."""
        simple = (nodes.list_item, nodes.paragraph, nodes.bullet_list, nodes.enumerated_list)
        blocks = node.findall(lambda n: isinstance(n, nodes.Body), include_self=False)
        if all(isinstance(n, simple) for n in blocks):
            text = "\n".join(_list_lines(node, ""))
            if text.strip():
                self.builder.add(Block(text, *self.span(node), "text"))
            return
        start = int(node.get("start", 1))
        for number, item in enumerate(node.children, start=start):
            mark = f"{number}. " if isinstance(node, nodes.enumerated_list) else "- "
            for position, child in enumerate(item.children):
                if position == 0 and isinstance(child, nodes.paragraph):
                    self.text(child, mark + _inline(child))
                else:
                    self.block(child, depth)

    def span(self, node: nodes.Node) -> tuple[int, int]:
        """The page lines from the first to the last line of anything under ``node``."""
        ranges = [
            self.lines(n)
            for n in node.findall(include_self=True)
            if isinstance(n, nodes.Element) and n.line
        ]
        if not ranges:
            return self.lines(node)
        return min(r[0] for r in ranges), max(r[1] for r in ranges)

    def labelled(self, item: nodes.Element, depth: int) -> None:
        """A field or option: its name, then its description, as one block where it fits."""
        parts = [c for c in item.children if isinstance(c, nodes.Element)]
        if not parts:
            return
        if isinstance(parts[0], nodes.option_group):
            name = ", ".join(option.astext() for option in parts[0].children)
        else:
            name = collapse(_inline(parts[0]))
        body = parts[1] if len(parts) > 1 else None
        paragraphs = list(body.children) if body is not None else []
        if paragraphs and isinstance(paragraphs[0], nodes.paragraph):
            self.text(item, f"{name}: {_inline(paragraphs[0])}")
            paragraphs = paragraphs[1:]
        else:
            self.text(item, name)
        for rest in paragraphs:
            self.block(rest, depth)

    def table(self, node: nodes.Element) -> None:
        rows = []
        for row in node.findall(nodes.row):
            cells = [collapse(_cell(entry)) for entry in row.children]
            if any(cells):
                rows.append(" | ".join(cells))
        self.text(node, "\n".join(rows))

    def admonition(self, node: nodes.Element, depth: int) -> None:
        title = next((c for c in node.children if isinstance(c, nodes.title)), None)
        label = collapse(title.astext()) if title is not None else node.tagname.capitalize()
        self.labelled_body(node, depth, label, skip=title)

    def directive(self, node: nodes.Element, depth: int) -> None:
        name, signature = str(node["directive"]), str(node["arguments"]).strip()
        if name in VERSION_NOTES:
            label = f"{VERSION_NOTES[name]} {signature}".strip()
            self.labelled_body(node, depth, label)
            return
        if name in ADMONITIONS:
            self.labelled_body(node, depth, ADMONITIONS[name])
            return
        if signature:
            lines = [_code_span(line) for line in signature.split("\n") if line.strip()]
            start, _ = self.lines(node)
            self.builder.add(Block("\n".join(lines), start, start + len(lines) - 1, "text"))
        self.walk(node, depth)

    def labelled_body(
        self, node: nodes.Element, depth: int, label: str, skip: nodes.Node | None = None
    ) -> None:
        """A note's label in front of its first paragraph (alone, when there is none)."""
        children = [c for c in node.children if c is not skip]
        if children and isinstance(children[0], nodes.paragraph):
            self.text(children[0], f"{label}: {_inline(children[0])}")
            children = children[1:]
        else:
            self.text(node, f"{label}.")
        for child in children:
            self.block(child, depth)


def _list_lines(node: nodes.Element, indent: str) -> list[str]:
    """``- item`` (``1. item``) lines of a list; an item's further paragraphs, code and nested
    lists follow it, indented as Markdown reads them."""
    lines: list[str] = []
    start = int(node.get("start", 1))
    for number, item in enumerate(node.children, start=start):
        mark = f"{number}. " if isinstance(node, nodes.enumerated_list) else "- "
        inner = indent + " " * len(mark)
        for position, child in enumerate(item.children):
            if isinstance(child, nodes.bullet_list | nodes.enumerated_list):
                lines.extend(_list_lines(child, inner))
                continue
            body = _inline(child).split("\n")
            first = indent + mark if position == 0 else inner
            lines.extend(
                (first if i == 0 else inner) + line if line.strip() else ""
                for i, line in enumerate(body)
            )
    return lines


def _names_next_section(node: nodes.Node, following: nodes.Node | None) -> bool:
    """Whether ``node`` is a bodiless directive naming the section right after it, as Sphinx's
    cross-reference targets do (``.. setting:: X`` above a section titled X): shown, it would
    end the previous section's passage with a name that belongs to the next one."""
    if not (isinstance(node, nodes.container) and "directive" in node) or node.children:
        return False
    if not isinstance(following, nodes.section) or not following.children:
        return False
    title = following.children[0]
    return isinstance(title, nodes.title) and _bare(title.astext()) == _bare(node["arguments"])


def _bare(text: str) -> str:
    return collapse(text).strip("`").casefold()


def _inline(node: nodes.Node) -> str:
    """The text of a paragraph-level node: code as code spans, everything else as words."""
    return "".join(_inline_parts(node))


def _cell(node: nodes.Node) -> str:
    """The text of a table cell: its paragraphs, one after the other."""
    return " ".join(_inline(p) for p in node.findall(nodes.paragraph))


def _inline_parts(node: nodes.Node) -> Iterator[str]:
    for child in node.children:
        if isinstance(child, nodes.Text):
            yield child.astext()
        elif isinstance(child, nodes.literal):
            yield _code_span(child.astext())
        elif isinstance(child, nodes.footnote_reference | nodes.citation_reference):
            continue
        elif isinstance(child, nodes.image):
            yield str(child.get("alt", ""))
        elif isinstance(child, nodes.Element):
            yield from _inline_parts(child)


def _code_span(code: str) -> str:
    """``code`` as a Markdown code span, with a fence longer than any backtick run in it."""
    code = " ".join(code.split())
    if not code:
        return ""
    longest = max((len(run) for run in re.findall(r"`+", code)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if code.startswith("`") or code.endswith("`") else ""
    return f"{fence}{pad}{code}{pad}{fence}"
