"""Word documents (.docx), read with python-docx and written out as Markdown.

Headings come from the heading styles (``Heading 1`` ... and ``Title``), list styles become
list items and tables Markdown tables; the Markdown reader then makes the sections. The
document text the view shows is that Markdown, so line ranges point into it.
"""

from __future__ import annotations

import io
import re
import zipfile
from typing import Any

from .documents import SkipFile
from .sections import collapse

__all__ = ["MAX_UNPACKED_BYTES", "docx_to_markdown"]

# A Word file is a zip; more than this unpacked is a zip bomb, not a document.
MAX_UNPACKED_BYTES = 200_000_000
_HEADING = re.compile(r"^heading (\d)$")


def docx_to_markdown(data: bytes) -> tuple[str, str | None]:
    """The document as Markdown, and the title its properties declare (if any).

    Raises:
        SkipFile: Not a Word file (an encrypted one is not a zip), or a zip bomb.
    """
    _check_archive(data)
    try:
        import docx
        from docx.table import Table
        from docx.text.paragraph import Paragraph
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        raise SkipFile("reading Word files needs python-docx; pip install python-docx") from exc
    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as exc:  # python-docx raises several kinds for a bad package
        raise SkipFile(f"not a readable Word document ({exc})") from None
    titled = any(_style(p) == "title" for p in document.paragraphs)
    lines: list[str] = []
    for element in document.element.body.iterchildren():
        tag = element.tag.rsplit("}", 1)[-1]
        if tag == "p":
            lines.extend(_paragraph(Paragraph(element, document), below_title=titled))
        elif tag == "tbl":
            lines.extend(_table(Table(element, document)))
    title = collapse(document.core_properties.title or "") or None
    return "\n".join(lines).strip() + "\n", title


def _check_archive(data: bytes) -> None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
    except zipfile.BadZipFile:
        raise SkipFile(
            "not a Word document (.docx files are zip archives; is it encrypted?)"
        ) from None
    if unpacked > MAX_UNPACKED_BYTES:
        raise SkipFile(
            f"unpacks to {unpacked / 1e6:,.0f} MB, more than a document can hold; not read"
        )


def _style(paragraph: Any) -> str:
    return str(paragraph.style.name if paragraph.style is not None else "").lower()


def _paragraph(paragraph: Any, *, below_title: bool) -> list[str]:
    """A paragraph as Markdown lines; under a Title, Heading 1 is the second level."""
    text = collapse(paragraph.text)
    if not text:
        return []
    style = _style(paragraph)
    if style == "title":
        return ["", f"# {text}", ""]
    if heading := _HEADING.match(style):
        level = min(int(heading[1]) + below_title, 6)
        return ["", f"{'#' * level} {text}", ""]
    if style.startswith("list number"):
        return [f"1. {text}"]
    if style.startswith("list"):
        return [f"- {text}"]
    return ["", text, ""]


def _table(table: Any) -> list[str]:
    rows = [[collapse(cell.text).replace("|", "\\|") for cell in row.cells] for row in table.rows]
    rows = [row for row in rows if any(row)]
    if not rows:
        return []
    width = max(len(row) for row in rows)
    rows = [row + [""] * (width - len(row)) for row in rows]
    lines = ["", "| " + " | ".join(rows[0]) + " |", "|" + " --- |" * width]
    lines += ["| " + " | ".join(row) + " |" for row in rows[1:]]
    return [*lines, ""]
