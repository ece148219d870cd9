"""PDF, read with pypdfium2: the text of each page, sections from the outline (bookmarks).

A PDF's locations are pages: every block's "lines" are the page it stands on, so a citation
reads ``guide.pdf p. 12`` and the document view opens at that page. With an outline, each
bookmark starts a section (nested by its level); without one, every page is a section of its
own, so no passage spans two pages. The document text the view shows is the pages' text,
separated by form feeds.

A scan without a text layer, an encrypted or malformed file and an absurd page count are
refused with a reason. Memory is bounded by the worker process that parses binary formats
(see :mod:`.workers`), which is what stops a decompression bomb.
"""

from __future__ import annotations

import re
from typing import Any

from .documents import Block, Section, SkipFile
from .sections import SectionBuilder, collapse, humanise

__all__ = ["MAX_PAGES", "PAGE_BREAK", "parse_pdf"]

MAX_PAGES = 5_000
PAGE_BREAK = "\f"
# Pages with fewer characters than this hold no text layer worth the name (a page number).
_MIN_TEXT_CHARS = 20


def parse_pdf(data: bytes, stem: str) -> tuple[str, str, tuple[Section, ...]]:
    """The title, the document text (pages separated by form feeds) and the sections of a PDF.

    Raises:
        SkipFile: The file is encrypted, malformed, too long or has no text layer.
    """
    try:
        import pypdfium2 as pdfium
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        raise SkipFile("reading PDF needs pypdfium2; pip install pypdfium2") from exc
    try:
        pdf = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        raise SkipFile(_why_unreadable(str(exc))) from None
    try:
        pages = len(pdf)
        if pages > MAX_PAGES:
            raise SkipFile(f"{pages:,} pages, more than the {MAX_PAGES:,} a document may have")
        texts = [_page_text(pdf[i]) for i in range(pages)]
        if sum(len(t.strip()) for t in texts) < _MIN_TEXT_CHARS * max(1, pages // 10):
            raise SkipFile("no text layer (a scanned PDF?); run OCR on it to index it")
        outline = _outline(pdf, pages)
        title = _metadata_title(pdf) or humanise(stem)
    finally:
        pdf.close()
    texts = _without_running_lines(texts)
    marks: dict[int, list[tuple[int, str]]] = {}
    for level, name, page in outline:
        marks.setdefault(page, []).append((level, name))
    builder = SectionBuilder()
    for number, text in enumerate(texts, start=1):
        if not outline:
            builder.heading(1, title, number, number)
        for part, mark in _split_at_headings(text, marks.get(number, [])):
            if mark is not None:
                builder.heading(mark[0], mark[1], number, number)
            for paragraph in _paragraphs(part):
                builder.add(Block(paragraph, number, number, "text"))
    return title, PAGE_BREAK.join(texts), builder.build(title)


def _split_at_headings(
    text: str, headings: list[tuple[int, str]]
) -> list[tuple[str, tuple[int, str] | None]]:
    """The page's text cut where each of its bookmarks' titles stands: (text, heading that
    starts it). A title not found in the text starts at the end of what was found before."""
    parts: list[tuple[str, tuple[int, str] | None]] = []
    heading: tuple[int, str] | None = None
    position = 0
    for mark in headings:
        words = [re.escape(word) for word in mark[1].split()]
        found = re.compile(r"\s+".join(words)).search(text, position) if words else None
        cut = found.start() if found else position
        parts.append((text[position:cut], heading))
        heading, position = mark, cut
    parts.append((text[position:], heading))
    return parts


def _without_running_lines(texts: list[str]) -> list[str]:
    """The pages without their running header and footer: a first or last line that recurs
    on most pages (the document's name, a chapter title) is layout, not content."""
    if len(texts) < 4:
        return texts
    edges: dict[str, int] = {}
    for text in texts:
        lines = [line.strip() for line in text.split("\n") if line.strip()]
        for line in {lines[0], lines[-1]} if lines else set():
            key = re.sub(r"\d+", "#", line)  # page numbers differ from page to page
            edges[key] = edges.get(key, 0) + 1
    running = {key for key, count in edges.items() if count >= len(texts) / 2}
    if not running:
        return texts
    kept = []
    for text in texts:
        lines = text.split("\n")
        while lines and re.sub(r"\d+", "#", lines[0].strip()) in running:
            lines.pop(0)
        while lines and re.sub(r"\d+", "#", lines[-1].strip()) in running:
            lines.pop()
        kept.append("\n".join(lines))
    return kept


def _why_unreadable(message: str) -> str:
    if "password" in message.lower():
        return "encrypted PDF (it needs a password); save an unprotected copy to index it"
    return f"not a readable PDF ({message}); the file may be damaged"


def _page_text(page: Any) -> str:
    try:
        textpage = page.get_textpage()
        try:
            text = str(textpage.get_text_range())
        finally:
            textpage.close()
    finally:
        page.close()
    return text.replace("\r\n", "\n").replace("\r", "\n").replace(PAGE_BREAK, "\n")


def _paragraphs(text: str) -> list[str]:
    """The page's paragraphs, each on one line: blank lines separate them; the line breaks
    of the layout inside one are not the writer's."""
    paragraphs = []
    for chunk in text.split("\n\n"):
        joined = collapse(chunk.replace("-\n", "").replace("\n", " "))
        if joined:
            paragraphs.append(joined)
    return paragraphs


def _outline(pdf: Any, pages: int) -> list[tuple[int, str, int]]:
    """(level, title, 1-based page) of each bookmark that points at a page, in order."""
    entries = []
    try:
        for item in pdf.get_toc(max_depth=8):
            dest = item.get_dest()
            index = dest.get_index() if dest is not None else None
            title = collapse(item.get_title() or "")
            if title and index is not None and 0 <= index < pages:
                entries.append((int(item.level) + 1, title, index + 1))
    except Exception:  # a broken outline is no reason to lose the text
        return []
    return entries


def _metadata_title(pdf: Any) -> str:
    """The title the file declares, unless it is a leftover file name ("Microsoft Word -
    draft.docx")."""
    try:
        title = collapse(str(pdf.get_metadata_dict().get("Title") or ""))
    except Exception:
        return ""
    return "" if re.search(r"\.(docx?|pdf|odt|rtf|tex|txt)\b", title, re.IGNORECASE) else title
