"""HTML pages: headings make sections; navigation, scripts and other chrome are dropped.

html.parser records where tags start, so line ranges of text are best-effort reconstructions.
"""

from __future__ import annotations

from bs4 import BeautifulSoup, Tag
from bs4.element import Comment, Declaration, Doctype, NavigableString, ProcessingInstruction

from .documents import Block, Section
from .sections import SectionBuilder, collapse, humanise

__all__ = ["parse_html"]

_HTML_DROPPED = frozenset(
    {"script", "style", "nav", "header", "footer", "aside", "noscript", "template", "form", "svg"}
    | {"head", "title"}
)
_HTML_INLINE = frozenset(
    {"a", "abbr", "b", "bdi", "bdo", "big", "br", "cite", "code", "data", "del", "dfn", "em"}
    | {"font", "i", "img", "ins", "kbd", "label", "mark", "q", "s", "samp", "small", "span"}
    | {"strong", "sub", "sup", "time", "tt", "u", "var", "wbr"}
)
_HTML_TEXT = frozenset({"p", "blockquote", "dt", "dd", "figcaption", "address", "summary"})
_HTML_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
_HTML_LEAVES = _HTML_TEXT | _HTML_HEADINGS | {"pre", "ul", "ol", "li", "table"}
_NOT_TEXT = (Comment, Declaration, Doctype, ProcessingInstruction)


def parse_html(text: str, stem: str) -> tuple[str, tuple[Section, ...]]:
    """The title (<title>, else the first h1, else the file name) and the sections of a page."""
    soup = BeautifulSoup(text, "html.parser")
    title = collapse(soup.title.get_text()) if soup.title else ""
    if not title and (h1 := soup.find("h1")):
        title = collapse(_strings(h1))
    title = title or humanise(stem)
    builder = SectionBuilder()
    _walk_html(soup.body or soup, builder)
    return title, builder.build(title)


def _walk_html(element: Tag, out: SectionBuilder) -> None:
    run: list[NavigableString | Tag] = []  # consecutive inline content forms one text block
    for child in element.children:
        if isinstance(child, Tag) and child.name not in _HTML_INLINE:
            _flush_run(run, out)
            run = []
            _html_block(child, out)
        elif isinstance(child, Tag) or (
            isinstance(child, NavigableString) and not isinstance(child, _NOT_TEXT)
        ):
            run.append(child)
    _flush_run(run, out)


def _html_block(tag: Tag, out: SectionBuilder) -> None:
    name = tag.name
    if name in _HTML_DROPPED or name in ("hr", "br"):
        return
    if name not in _HTML_LEAVES:
        _walk_html(tag, out)  # a container: div, section, article, main, ...
        return
    start, end = _html_lines(tag)  # only for leaves: str() of a container re-serialises it all
    if name in _HTML_HEADINGS:
        out.heading(int(name[1]), collapse(_strings(tag)), start, end)
    elif name == "pre":
        code = tag.get_text().removeprefix("\n").rstrip()
        if code.strip():
            fence = "````" if "```" in code else "```"  # the fence must outlast any inside
            out.add(Block(f"{fence}{_code_language(tag)}\n{code}\n{fence}", start, end, "code"))
    elif name in ("ul", "ol"):
        _add_text(out, "\n".join(_list_lines(tag, 0)), start, end)
    elif name == "li":  # an item outside any list
        if item := collapse(_strings(tag)):
            _add_text(out, f"- {item}", start, end)
    elif name == "table":
        rows = []
        for row in tag.find_all("tr"):
            cells = [
                collapse(_strings(cell)) for cell in row.find_all(["th", "td"], recursive=False)
            ]
            if any(cells):
                rows.append(" | ".join(cells))
        _add_text(out, "\n".join(rows), start, end)
    else:
        _add_text(out, collapse(_strings(tag)), start, end)


def _flush_run(run: list[NavigableString | Tag], out: SectionBuilder) -> None:
    if not run:
        return
    raw = "".join(str(node) for node in run)
    start = _html_lines(run[0])[0] + raw[: len(raw) - len(raw.lstrip())].count("\n")
    _add_text(
        out,
        collapse("".join(_strings(node) for node in run)),
        start,
        start + raw.strip().count("\n"),
    )


def _add_text(out: SectionBuilder, text: str, start: int, end: int) -> None:
    if text.strip():
        out.add(Block(text, start, max(start, end), "text"))


def _strings(node: NavigableString | Tag, skip: frozenset[str] = _HTML_DROPPED) -> str:
    """Concatenate the visible text below `node`, padding block-level tags with spaces."""
    if isinstance(node, NavigableString):
        return "" if isinstance(node, _NOT_TEXT) else str(node)
    if node.name in skip:
        return ""
    if node.name == "br":
        return " "
    inner = "".join(_strings(child, skip) for child in node.children)  # type: ignore[arg-type]
    return inner if node.name in _HTML_INLINE else f" {inner} "


def _list_lines(tag: Tag, depth: int) -> list[str]:
    lines = []
    for item in tag.find_all("li", recursive=False):
        own = collapse(_strings(item, _HTML_DROPPED | {"ul", "ol"}))
        if own:
            lines.append(f"{'  ' * depth}- {own}")
        for nested in item.find_all(["ul", "ol"]):
            if nested.find_parent("li") is item:
                lines.extend(_list_lines(nested, depth + 1))
    return lines


def _code_language(pre: Tag) -> str:
    """Read the language from `language-X` (highlight.js) or Sphinx's `highlight-X` classes."""
    for tag in (pre, pre.find("code"), pre.parent, pre.parent and pre.parent.parent):
        if isinstance(tag, Tag):
            for cls in tag.get_attribute_list("class"):
                for prefix in ("language-", "highlight-"):
                    if cls and cls.startswith(prefix) and cls != "highlight-default":
                        return str(cls.removeprefix(prefix))
    return ""


def _html_lines(node: NavigableString | Tag) -> tuple[int, int]:
    """Best-effort 1-based line range of a node; html.parser records only where tags start."""
    if isinstance(node, Tag) and node.sourceline is not None:
        return node.sourceline, node.sourceline + str(node).count("\n")
    offset = 0
    sibling = node.previous_sibling
    while sibling is not None:
        if isinstance(sibling, Tag) and sibling.sourceline is not None:
            start = _html_lines(sibling)[1] + offset
            break
        offset += str(sibling).count("\n")
        sibling = sibling.previous_sibling
    else:
        parent = node.parent
        start = (_html_lines(parent)[0] if parent is not None else 1) + offset
    return start, start + str(node).count("\n")
