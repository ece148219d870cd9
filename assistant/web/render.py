"""What the web shows: HTML for answers, passages and documents, their addresses, and the
JSON shapes of hits and replies.

Corpus text is untrusted: it is escaped before anything is rendered (Markdown is rendered with
raw HTML disabled, links kept only for http(s) addresses, images reduced to their alt text),
so a document holding ``<script>`` or ``<img onerror=...>`` shows as text and runs nothing.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from functools import cache
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from ..analysis import WORD, query_terms, stems
from ..ingest.documents import MARKDOWN_TEXT, paged
from ..ingest.pdf import PAGE_BREAK
from ..search.answer import AnswerSentence, Reply
from ..search.assistant import Hit
from ..stores import DocumentSummary, StoredDocument

if TYPE_CHECKING:
    from markdown_it import MarkdownIt

__all__ = [
    "DOCUMENT_COLUMNS",
    "catalog_summary",
    "document_url",
    "escape_markdown",
    "hit_dict",
    "location",
    "render_answer",
    "render_document",
    "render_passages",
    "reply_dict",
    "unescape_markdown",
]

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~>])")
_MD_ESCAPED = re.compile(r"\\([\\`*_{}\[\]()#+\-.!|~>])")


DOCUMENT_COLUMNS = ("Document", "Title", "Format", "Category", "Passages")


def catalog_summary(
    documents: Sequence[DocumentSummary], skipped: Sequence[tuple[str, str]], *, filtered: bool
) -> str:
    """The line above the Documents table: how many documents and passages, and skips."""
    passages = sum(d.passages for d in documents)
    shown = "matching" if filtered else "indexed"
    line = f"**{len(documents):,}** documents {shown} · **{passages:,}** passages"
    if skipped:
        line += f" · {len(skipped):,} files not indexed (see below, with the reason for each)"
    return line


def reply_dict(reply: Reply, collection: str | None = None) -> dict[str, Any]:
    """A reply as JSON-ready data (for APIs and the feedback log); ``collection`` goes into
    its document addresses (see :func:`document_url`)."""
    return {
        "question": reply.question,
        "query": reply.query,
        "folded": reply.folded,
        "answered": reply.answered,
        "weak": reply.weak,
        "answer": [{"text": s.text, "citation": s.citation, "code": s.code} for s in reply.answer],
        "related": [
            {"title": title, "source": source, "url": document_url(source, collection=collection)}
            for title, source in reply.related
        ],
        "seconds": round(reply.seconds, 4),
        "hits": [hit_dict(h, collection) for h in reply.hits],
    }


def hit_dict(hit: Hit, collection: str | None = None) -> dict[str, Any]:
    """One hit as JSON-ready data, with the address of its document view."""
    return {
        "rank": hit.rank,
        "score": hit.score,
        "relevance": hit.dense_score,
        "source": hit.source,
        "title": hit.title,
        "heading_path": hit.heading_path,
        "category": hit.category,
        "start_line": hit.start_line,
        "end_line": hit.end_line,
        "text": hit.text,
        "url": document_url(hit.source, hit.start_line, hit.end_line, collection=collection),
    }


def document_url(
    source: str,
    start: int | None = None,
    end: int | None = None,
    query: str = "",
    *,
    collection: str | None = None,
) -> str:
    """Address of the document view, scrolled to a passage when lines are given.

    ``collection`` names the collection the document is in; None for the server's default
    (whose addresses stay as they were before servers had several).
    """
    params: dict[str, str | int] = {"source": source}
    if start is not None and end is not None:
        params.update(start=start, end=end)
    if query:
        params["q"] = query[:500]
    if collection:
        params["collection"] = collection
    return "/document?" + urlencode(params) + ("#passage" if start is not None else "")


def escape_markdown(text: str) -> str:
    """Text that a Markdown renderer shows literally: HTML escaped, syntax backslashed."""
    return _MD_SPECIAL.sub(r"\\\1", html.escape(text, quote=False))


def unescape_markdown(text: str) -> str:
    """The text :func:`escape_markdown` was given (the chat shows questions escaped)."""
    return html.unescape(_MD_ESCAPED.sub(r"\1", text))


def _highlight(text: str, terms: frozenset[str]) -> str:
    """HTML-escaped text with the words whose stem is a query term wrapped in <mark>."""
    if not terms:
        return html.escape(text)
    out, last = [], 0
    for match in WORD.finditer(text):
        if stems([match.group()])[0] in terms:
            out.append(html.escape(text[last : match.start()]))
            out.append(f"<mark>{html.escape(match.group())}</mark>")
            last = match.end()
    out.append(html.escape(text[last:]))
    return "".join(out)


def render_answer(reply: Reply, collection: str | None = None) -> str:
    """The answer message as Markdown: cited sentences, or the plain 'nothing found' reply.

    Every piece of corpus text is escaped, so the message is safe to render as Markdown.
    """
    searched = escape_markdown(reply.query)
    timing = f"{reply.seconds * 1000:.0f} ms"
    if not reply.answered:
        lines = [
            "I found nothing in the knowledge base that answers this closely enough, so I am "
            "not showing weak matches."
        ]
        if reply.related:
            topics = ", ".join(
                f"[{escape_markdown(title)}]({document_url(source, collection=collection)})"
                for title, source in reply.related
            )
            lines.append(
                f"Related topics it does cover: {topics}. Open one, or ask about it directly."
            )
        lines.append(f"<sub>Searched: “{searched}” · {timing}</sub>")
        return "\n\n".join(lines)
    body = " ".join(f"{_quoted(s)} \\[{s.citation}\\]" for s in reply.answer)
    if reply.weak:
        body = f"*These are the closest passages; they may not answer this exactly.*\n\n{body}"
    sources = "  \n".join(
        f"\\[{h.rank}\\] {escape_markdown(h.title)} — "
        f"{escape_markdown(location(h.source, h.start_line, h.end_line))}"
        for h in reply.hits
    )
    folded = " (with the previous question)" if reply.folded else ""
    meta = f"Searched{folded}: “{searched}” · {len(reply.hits)} passages · {timing}"
    return f"{body}\n\n{sources}\n\n<sub>{meta}</sub>"


def _quoted(sentence: AnswerSentence) -> str:
    """An answer sentence as Markdown: prose escaped, a line of code as a code span."""
    if not sentence.code:
        return escape_markdown(sentence.text)
    fence = "``" if "`" in sentence.text else "`"
    return f"{fence} {sentence.text} {fence}" if fence == "``" else f"`{sentence.text}`"


def _one_line(fragment: str) -> str:
    """HTML on one line, newlines inside <pre> kept as character references.

    Chat messages are Markdown, where a blank line ends an HTML block; a single line keeps the
    whole fragment one HTML block while code keeps its line breaks.
    """
    parts = re.split(r"(<pre[\s>].*?</pre>)", fragment, flags=re.DOTALL)
    return "".join(
        part.replace("\n", "&#10;") if part.startswith("<pre") else part.replace("\n", " ")
        for part in parts
    )


def _passage_card(hit: Hit, query: str, terms: frozenset[str], collection: str | None) -> str:
    where = location(hit.source, hit.start_line, hit.end_line)
    url = document_url(hit.source, hit.start_line, hit.end_line, query, collection=collection)
    url = html.escape(url)
    relevance = (
        f"relevance {hit.dense_score:.2f}"
        if hit.dense_score is not None
        else f"score {hit.score:.2f}"
    )
    path = html.escape(" › ".join(hit.headings[1:])) if len(hit.headings) > 1 else ""
    return (
        f'<div class="nexus-card"><div class="nexus-card-head">'
        f'<span class="nexus-num">[{hit.rank}]</span> <strong>{html.escape(hit.title)}</strong>'
        + (f' <span class="nexus-path">› {path}</span>' if path else "")
        + f'</div><div class="nexus-card-meta"><a class="nexus-source" href="{url}" '
        f'target="_blank" rel="noopener noreferrer">{html.escape(where)}</a> · {relevance}'
        f'</div><div class="nexus-card-body">{_render_markdown(hit.text, terms)}</div></div>'
    )


def render_passages(reply: Reply, collection: str | None = None) -> str:
    """The passages as HTML cards on one line (safe to embed in a Markdown chat message)."""
    terms = query_terms(reply.query)
    cards = "".join(_passage_card(hit, reply.query, terms, collection) for hit in reply.hits)
    return _one_line(f'<div class="nexus-passages">{cards}</div>')


def render_document(
    doc: StoredDocument, start: int | None = None, end: int | None = None, query: str = ""
) -> str:
    """A whole document as an HTML fragment, the passage's lines [start, end] highlighted.

    Markdown is rendered (raw HTML escaped); other formats show their source lines with
    numbers. Either way nothing from the document is interpreted as markup.
    """
    terms = query_terms(query)
    lines = doc.text.split("\n")
    has_passage = start is not None and end is not None and 1 <= start <= end
    start, end = (start, end) if has_passage else (0, -1)
    assert start is not None and end is not None
    if doc.format == "pdf":
        body = _render_pages(doc.text, start, end, terms)
    elif doc.format in MARKDOWN_TEXT:
        parts = [
            ("", "\n".join(lines[: max(start - 1, 0)])),
            ("passage", "\n".join(lines[start - 1 : end])),
            ("", "\n".join(lines[end:])),
        ]
        if not has_passage:
            parts = [("", doc.text)]
        body = "".join(
            f'<section id="passage" class="nexus-passage">{_render_markdown(text, terms)}</section>'
            if kind
            else _render_markdown(text, terms)
            for kind, text in parts
            if text.strip()
        )
    else:
        rows = []
        for number, line in enumerate(lines, start=1):
            marked = start <= number <= end
            anchor = ' id="passage"' if number == start else ""
            css = ' class="nexus-passage"' if marked else ""
            text = _highlight(line, terms) if marked else html.escape(line)
            rows.append(f'<span{anchor}{css}><span class="nexus-ln">{number}</span>{text}</span>')
        body = '<pre class="nexus-source-lines">' + "\n".join(rows) + "</pre>"
    return (
        f'<article class="nexus-document"><header><h1>{html.escape(doc.title)}</h1>'
        f'<p class="nexus-card-meta">{html.escape(doc.source)}'
        + (f" · {_span(doc.source, start, end)} highlighted" if has_passage else "")
        + f"</p></header>{body}</article>"
    )


def _render_pages(text: str, start: int, end: int, terms: frozenset[str]) -> str:
    """A PDF's text page by page; the passage's pages highlighted, the view opening at them."""
    pages = []
    for number, page in enumerate(text.split(PAGE_BREAK), start=1):
        marked = start <= number <= end
        anchor = "passage" if number == start else f"page-{number}"
        css = "nexus-page nexus-passage" if marked else "nexus-page"
        shown = _highlight(page, terms) if marked else html.escape(page)
        pages.append(
            f'<section id="{anchor}" class="{css}"><p class="nexus-card-meta">page {number}</p>'
            f'<pre class="nexus-page-text">{shown}</pre></section>'
        )
    return "".join(pages)


def location(source: str, start: int, end: int) -> str:
    """Where a passage is, as a citation reads: ``guide.md:12-30``, or for a PDF, whose
    locations are pages, ``guide.pdf p. 12`` / ``guide.pdf pp. 12–13``."""
    if paged(source):
        return f"{source} {_span(source, start, end)}"
    return f"{source}:{start}-{end}"


def _span(source: str, start: int, end: int) -> str:
    if paged(source):
        return f"p. {start}" if start == end else f"pp. {start}–{end}"
    return f"lines {start}–{end}"


def _render_markdown(text: str, terms: frozenset[str] = frozenset()) -> str:
    """Markdown to HTML with raw HTML escaped, unsafe links unlinked and query words marked."""
    env: dict[str, Any] = {"terms": terms, "links": []}
    return str(_markdown().render(text, env))


@cache
def _markdown() -> MarkdownIt:
    from markdown_it import MarkdownIt
    from mdit_py_plugins.front_matter import front_matter_plugin

    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.enable("table").use(front_matter_plugin)
    rules = md.add_render_rule

    def text(self: Any, tokens: Any, idx: int, options: Any, env: Any) -> str:
        return _highlight(tokens[idx].content, env.get("terms", frozenset()))

    def link_open(self: Any, tokens: Any, idx: int, options: Any, env: Any) -> str:
        href = str(tokens[idx].attrGet("href") or "")
        safe = re.match(r"https?://", href, flags=re.IGNORECASE) is not None
        env["links"].append(safe)
        if not safe:
            return ""
        return f'<a href="{html.escape(href)}" target="_blank" rel="noopener noreferrer nofollow">'

    def link_close(self: Any, tokens: Any, idx: int, options: Any, env: Any) -> str:
        return "</a>" if env["links"] and env["links"].pop() else ""

    def image(self: Any, tokens: Any, idx: int, options: Any, env: Any) -> str:
        alt = tokens[idx].content or "image"
        return f'<span class="nexus-image">[image: {html.escape(alt)}]</span>'

    def front_matter(self: Any, tokens: Any, idx: int, options: Any, env: Any) -> str:
        return ""

    rules("text", text)
    rules("link_open", link_open)
    rules("link_close", link_close)
    rules("image", image)
    rules("front_matter", front_matter)
    return md
