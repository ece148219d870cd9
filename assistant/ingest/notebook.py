"""Jupyter notebooks (.ipynb) written out as Markdown: Markdown cells as they are, code cells
as fenced code in the notebook's language, outputs left out.

The Markdown reader then makes the sections (a notebook's headings live in its Markdown
cells), and the view shows that Markdown.
"""

from __future__ import annotations

import json
from typing import Any

from .documents import SkipFile

__all__ = ["notebook_to_markdown"]


def notebook_to_markdown(text: str) -> str:
    """The notebook as Markdown.

    Raises:
        SkipFile: The file is not a notebook (not JSON, or without a list of cells).
    """
    try:
        notebook = json.loads(text)
        cells = notebook["cells"]
        if not isinstance(cells, list):
            raise TypeError("cells is not a list")
    except (ValueError, KeyError, TypeError) as exc:
        raise SkipFile(f"not a valid notebook ({exc})") from None
    language = _language(notebook)
    parts: list[str] = []
    for cell in cells:
        if not isinstance(cell, dict):
            continue
        source = _source(cell.get("source"))
        if not source.strip():
            continue
        if cell.get("cell_type") == "markdown":
            parts.append(source.strip("\n"))
        elif cell.get("cell_type") == "code":
            fence = "````" if "```" in source else "```"
            parts.append(f"{fence}{language}\n{source.strip(chr(10))}\n{fence}")
    return "\n\n".join(parts) + "\n"


def _source(source: Any) -> str:
    if isinstance(source, list):
        return "".join(str(line) for line in source)
    return source if isinstance(source, str) else ""


def _language(notebook: dict[str, Any]) -> str:
    metadata = notebook.get("metadata")
    if not isinstance(metadata, dict):
        return ""
    for key, field in (("kernelspec", "language"), ("language_info", "name")):
        value = metadata.get(key)
        if isinstance(value, dict) and isinstance(value.get(field), str):
            return str(value[field])
    return ""
