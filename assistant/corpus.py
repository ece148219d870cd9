"""Find documentation files in a corpus folder and parse them into line-ranged sections."""

from __future__ import annotations

import codecs
import hashlib
import logging
import os
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import charset_normalizer
import yaml
from bs4 import BeautifulSoup, Tag
from bs4.element import Comment, Declaration, Doctype, NavigableString, ProcessingInstruction
from markdown_it import MarkdownIt
from markdown_it.token import Token
from mdit_py_plugins.front_matter import front_matter_plugin

from assistant.errors import CorpusNotFoundError

__all__ = [
    "SUPPORTED_SUFFIXES",
    "Block",
    "Document",
    "Format",
    "RawFile",
    "Section",
    "SkipFile",
    "discover",
    "load_corpus",
    "parse",
    "read_file",
]

logger = logging.getLogger(__name__)

Format = Literal["markdown", "rst", "text", "html"]

SUPPORTED_SUFFIXES: frozenset[str] = frozenset(
    {".md", ".markdown", ".rst", ".txt", ".html", ".htm"}
)

# Build output, dependencies and tool caches hold copies or generated text, never source docs.
_SKIPPED_DIRS = frozenset(
    {"_build", "build", "dist", "node_modules", "__pycache__", "venv", "site-packages"}
)
_BINARY_SNIFF_BYTES = 8192
# Text in these would contain NUL bytes, which `read_file` already rejects as binary.
_WIDE_ENCODINGS = ["utf_16", "utf_16_be", "utf_16_le", "utf_32", "utf_32_be", "utf_32_le"]


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
    """One parsed corpus file; `source` is its forward-slash path relative to the corpus root."""

    source: str
    title: str
    format: Format
    category: str
    text: str
    sha256: str
    sections: tuple[Section, ...]
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class RawFile:
    """The undecoded bytes of a corpus file, read once so hashing and parsing agree."""

    source: str
    path: Path
    data: bytes
    sha256: str


class SkipFile(Exception):
    """A file that cannot be indexed; str(exc) is the human-readable reason."""


# --------------------------------------------------------------------------- discovery


def discover(
    root: Path,
    *,
    exclude: Sequence[Path] = (),
    unreadable: list[tuple[str, str]] | None = None,
) -> list[Path]:
    """List the supported documentation files under `root`, sorted by relative path.

    Symlinked folders are followed, but each real folder is visited once, so a link back to a
    parent cannot loop. Hidden entries and build/tooling folders are skipped. Folders are told
    apart by device and inode rather than by resolving paths, which would cost time growing
    with the square of the depth in deeply nested trees.

    Args:
        root: The corpus folder.
        exclude: Paths to leave out with everything below them, e.g. an index folder that lives
            inside the corpus. Defaults to nothing.
        unreadable: If given, each folder that cannot be listed is appended to it as a
            `(relative path, reason)` pair; otherwise it is logged as a warning.

    Returns:
        Paths of the form `root / relative`, in tree order.

    Raises:
        CorpusNotFoundError: If `root` does not exist or is not a folder.
    """
    root = Path(root)
    if not root.is_dir():
        problem = "is not a folder" if root.exists() else "does not exist"
        raise CorpusNotFoundError(
            f"Corpus folder '{root}' {problem}; pass --corpus DIR pointing at your documents"
        )
    excluded = {_identity(Path(p)) for p in exclude} - {None}
    visited: set[tuple[int, int] | None] = set(excluded)
    found: list[Path] = []
    pending = [root]
    while pending:
        folder = pending.pop()
        try:
            identity = _identity(folder, strict=True)
            if identity in visited:
                continue
            visited.add(identity)
            with os.scandir(folder) as entries:
                listing = list(entries)
        except OSError as exc:
            reason = f"cannot read folder ({exc.strerror or exc})"
            if unreadable is None:
                logger.warning("Skipping folder %s: %s", folder, reason)
            else:
                unreadable.append((folder.relative_to(root).as_posix(), reason))
            continue
        for entry in listing:
            name = entry.name
            if name.startswith("."):
                continue
            path = folder / name
            try:
                is_dir, is_file = entry.is_dir(), entry.is_file()
            except OSError:  # a symlink loop cannot be stat'ed
                is_dir = is_file = False
            if is_dir:
                if name not in _SKIPPED_DIRS and not name.endswith(".egg-info"):
                    pending.append(path)
            elif (
                # Broken or looping links are kept so that reading them reports why they fail.
                (is_file or entry.is_symlink())
                and path.suffix.lower() in SUPPORTED_SUFFIXES
                and not (excluded and _identity(path) in excluded)
            ):
                found.append(path)
    return sorted(found, key=lambda p: p.relative_to(root).parts)


def _identity(path: Path, *, strict: bool = False) -> tuple[int, int] | None:
    """The (device, inode) pair naming what `path` points at; None if it cannot be stat'ed."""
    try:
        info = path.stat()
    except OSError:
        if strict:
            raise
        return None
    return info.st_dev, info.st_ino


def read_file(root: Path, path: Path, *, max_bytes: int) -> RawFile:
    """Read one file's bytes, refusing files that cannot or should not be indexed.

    Args:
        root: The corpus folder, used to compute the relative `source`.
        path: The file, as returned by `discover`.
        max_bytes: Files larger than this are skipped; the size is checked before reading.

    Raises:
        SkipFile: If the file vanished, is unreadable, too large, empty or binary.
    """
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise SkipFile("not a regular file")
        if info.st_size > max_bytes:
            raise SkipFile(_too_large(info.st_size, max_bytes))
        with path.open("rb") as handle:
            data = handle.read(max_bytes + 1)  # the file may have grown since stat()
    except FileNotFoundError:
        if path.is_symlink():
            raise SkipFile(f"broken symbolic link to {os.readlink(path)}") from None
        raise SkipFile("file vanished before it could be read") from None
    except OSError as exc:
        raise SkipFile(f"cannot read file ({exc.strerror or exc})") from None
    if len(data) > max_bytes:
        raise SkipFile(_too_large(len(data), max_bytes))
    if b"\x00" in data[:_BINARY_SNIFF_BYTES]:
        raise SkipFile("binary file")
    if not data.removeprefix(codecs.BOM_UTF8).strip():
        raise SkipFile("empty file")
    source = path.relative_to(root).as_posix()
    try:
        source.encode("utf-8")
    except UnicodeEncodeError:  # the OS hands undecodable name bytes over as lone surrogates
        raise SkipFile("file name is not valid UTF-8; rename the file to index it") from None
    return RawFile(source, path, data, hashlib.sha256(data).hexdigest())


def _too_large(size: int, limit: int) -> str:
    return (
        f"larger than the {limit / 1e6:.1f} MB limit ({size / 1e6:.1f} MB); "
        "raise max_file_bytes to include it"
    )


def load_corpus(
    root: Path, *, max_bytes: int = 5_000_000, exclude: Sequence[Path] = ()
) -> tuple[list[Document], list[tuple[str, str]]]:
    """Discover, read and parse every document under `root`.

    Args:
        root: The corpus folder.
        max_bytes: Per-file size limit; defaults to 5 MB, far above any hand-written page.
        exclude: Paths to leave out, see `discover`.

    Returns:
        The parsed documents and a `(source, reason)` pair for each skipped file.

    Raises:
        CorpusNotFoundError: If `root` does not exist or is not a folder.
    """
    root = Path(root)
    documents: list[Document] = []
    skipped: list[tuple[str, str]] = []
    for path in discover(root, exclude=exclude):
        source = path.relative_to(root).as_posix()
        try:
            document = parse(read_file(root, path, max_bytes=max_bytes))
        except SkipFile as exc:
            logger.warning("Skipping %s: %s", source, exc)
            skipped.append((source, str(exc)))
            continue
        for warning in document.warnings:
            logger.warning("%s: %s", source, warning)
        documents.append(document)
    return documents, skipped


# --------------------------------------------------------------------------- parsing


def parse(raw: RawFile) -> Document:
    """Decode a file and split it into sections by its format, chosen from the suffix.

    Raises:
        SkipFile: If the suffix is unsupported or the file has no text content.
    """
    text, warnings = _decode(raw.data)
    if _unreadable_share(text) > _MAX_UNREADABLE_SHARE:
        raise SkipFile("binary file (mostly control characters or undecodable bytes)")
    lines = text.split("\n")
    suffix, stem = raw.path.suffix.lower(), raw.path.stem
    fmt: Format
    if suffix in (".md", ".markdown"):
        fmt, (title, sections) = "markdown", _parse_markdown(text, stem, warnings)
    elif suffix == ".rst" or (suffix == ".txt" and _has_rst_title(lines)):
        fmt, (title, sections) = "rst", _parse_rst(lines, stem)
    elif suffix == ".txt":
        fmt, (title, sections) = "text", _parse_text(lines, stem)
    elif suffix in (".html", ".htm"):
        fmt, (title, sections) = "html", _parse_html(text, stem)
    else:
        raise SkipFile(f"unsupported file type '{suffix}'")
    if not any(section.blocks for section in sections):
        raise SkipFile("no text content")
    category = raw.source.split("/")[0] if "/" in raw.source else ""
    return Document(raw.source, title, fmt, category, text, raw.sha256, sections, tuple(warnings))


def _decode(data: bytes) -> tuple[str, list[str]]:
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


# Real documents hold almost no control characters; binary data without NUL bytes (images,
# archives, compiled files renamed .txt) decodes to text full of them and must not be indexed.
_MAX_UNREADABLE_SHARE = 0.1
_UNREADABLE = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f\ufffd]")


def _unreadable_share(text: str) -> float:
    sample = text[:_BINARY_SNIFF_BYTES]
    return len(_UNREADABLE.findall(sample)) / max(1, len(sample))


def _humanise(stem: str) -> str:
    words = " ".join(re.split(r"[-_\s]+", stem)).strip() or stem
    return words[:1].upper() + words[1:]


class _Sections:
    """Accumulates headings and blocks into Sections, tracking the heading path by level."""

    def __init__(self) -> None:
        self._stack: list[tuple[int, str]] = []
        # The first entry holds text before any heading; its path is the title, known only later.
        self._parts: list[tuple[tuple[str, ...] | None, int, int, list[Block]]] = [(None, 1, 1, [])]

    def heading(self, level: int, text: str, start: int, end: int) -> None:
        while self._stack and self._stack[-1][0] >= level:
            self._stack.pop()
        self._stack.append((level, text))
        self._parts.append((tuple(t for _, t in self._stack), start, end, []))

    def add(self, block: Block) -> None:
        self._parts[-1][3].append(block)

    def build(self, title: str) -> tuple[Section, ...]:
        kept: list[Section] = []
        for headings, start, end, blocks in reversed(self._parts):
            path = headings or (title,)
            # An empty section survives only as the parent of the (kept) section after it.
            child = kept[-1].headings if kept else ()
            if blocks or (len(child) > len(path) and child[: len(path)] == path):
                last = max(end, blocks[-1].end_line) if blocks else end
                kept.append(Section(path, start, last, tuple(blocks)))
        return tuple(reversed(kept))


def _source_block(
    lines: list[str], start: int, end: int, kind: Literal["text", "code"]
) -> Block | None:
    """Make a block of the exact source lines [start, end) (0-based), trimming blank edges."""
    while start < end and not lines[start].strip():
        start += 1
    while end > start and not lines[end - 1].strip():
        end -= 1
    if start == end:
        return None
    return Block("\n".join(lines[start:end]), start + 1, end, kind)


def _parse_text(lines: list[str], stem: str) -> tuple[str, tuple[Section, ...]]:
    """Plain text has no headings: one section of blank-line-separated paragraphs."""
    builder, i = _Sections(), 0
    while i < len(lines):
        end = i
        while end < len(lines) and lines[end].strip():
            end += 1
        if block := _source_block(lines, i, end, "text"):
            builder.add(block)
        i = end + 1
    title = _humanise(stem)
    return title, builder.build(title)


# --------------------------------------------------------------------------- markdown

_MARKDOWN = MarkdownIt("commonmark").enable("table").use(front_matter_plugin)
_MD_SKIPPED = frozenset({"front_matter", "hr"})


def _parse_markdown(text: str, stem: str, warnings: list[str]) -> tuple[str, tuple[Section, ...]]:
    lines = text.split("\n")
    tokens = _MARKDOWN.parse(text)
    builder = _Sections()
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
            if block := _source_block(lines, start, end, kind):
                builder.add(block)
    title = title or _humanise(stem)
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
    return _collapse(str(title)) or None


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


# --------------------------------------------------------------------------- reStructuredText

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


def _has_rst_title(lines: list[str]) -> bool:
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


def _parse_rst(lines: list[str], stem: str) -> tuple[str, tuple[Section, ...]]:
    builder = _Sections()
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
                block = _source_block(lines, i, end, "code")
            elif (directive and directive[1] not in _DROPPED_DIRECTIVES) or _FOOTNOTE.match(line):
                block = _source_block(lines, i, end, "text")
            else:  # comments, link targets, substitutions and dropped directives
                block = None
            if block:
                builder.add(block)
            i = end
            continue
        end = i
        while end < n and lines[end].strip():
            end += 1
        para = _source_block(lines, i, end, "text")
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
                if literal := _source_block(lines, body, i, "code"):
                    builder.add(literal)
    title = title or _humanise(stem)
    return title, builder.build(title)


# --------------------------------------------------------------------------- HTML

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


def _parse_html(text: str, stem: str) -> tuple[str, tuple[Section, ...]]:
    soup = BeautifulSoup(text, "html.parser")
    title = _collapse(soup.title.get_text()) if soup.title else ""
    if not title and (h1 := soup.find("h1")):
        title = _collapse(_strings(h1))
    title = title or _humanise(stem)
    builder = _Sections()
    _walk_html(soup.body or soup, builder)
    return title, builder.build(title)


def _walk_html(element: Tag, out: _Sections) -> None:
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


def _html_block(tag: Tag, out: _Sections) -> None:
    name = tag.name
    if name in _HTML_DROPPED or name in ("hr", "br"):
        return
    if name not in _HTML_LEAVES:
        _walk_html(tag, out)  # a container: div, section, article, main, ...
        return
    start, end = _html_lines(tag)  # only for leaves: str() of a container re-serialises it all
    if name in _HTML_HEADINGS:
        out.heading(int(name[1]), _collapse(_strings(tag)), start, end)
    elif name == "pre":
        code = tag.get_text().removeprefix("\n").rstrip()
        if code.strip():
            fence = "````" if "```" in code else "```"  # the fence must outlast any inside
            out.add(Block(f"{fence}{_code_language(tag)}\n{code}\n{fence}", start, end, "code"))
    elif name in ("ul", "ol"):
        _add_text(out, "\n".join(_list_lines(tag, 0)), start, end)
    elif name == "li":  # an item outside any list
        if item := _collapse(_strings(tag)):
            _add_text(out, f"- {item}", start, end)
    elif name == "table":
        rows = []
        for row in tag.find_all("tr"):
            cells = [
                _collapse(_strings(cell)) for cell in row.find_all(["th", "td"], recursive=False)
            ]
            if any(cells):
                rows.append(" | ".join(cells))
        _add_text(out, "\n".join(rows), start, end)
    else:
        _add_text(out, _collapse(_strings(tag)), start, end)


def _flush_run(run: list[NavigableString | Tag], out: _Sections) -> None:
    if not run:
        return
    raw = "".join(str(node) for node in run)
    start = _html_lines(run[0])[0] + raw[: len(raw) - len(raw.lstrip())].count("\n")
    _add_text(
        out,
        _collapse("".join(_strings(node) for node in run)),
        start,
        start + raw.strip().count("\n"),
    )


def _add_text(out: _Sections, text: str, start: int, end: int) -> None:
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
        own = _collapse(_strings(item, _HTML_DROPPED | {"ul", "ol"}))
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


def _collapse(text: str) -> str:
    return " ".join(text.split())
