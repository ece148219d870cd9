"""Passage hygiene on the external trees: raw markup left in prose, tiny passages, parse speed.

For every index built by ``benchmarks.external_docs`` (default settings) it counts the
passages whose prose (code blocks and code spans excluded) still carries source markup a
reader should never see: reStructuredText roles (``:class:`x```), directives (``.. note::``),
hyperlink and substitution syntax, rst's double-backtick literals, MyST roles and directive
fences; and the passages under 40 words. Then it times the readers alone: files/s for each
tree (docutils for rst, markdown-it for MyST) and pages/s for a real PDF.

Usage (from the repository root)::

    .venv/bin/python -m benchmarks.passage_hygiene --json benchmarks/results/passage-hygiene.json
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path
from typing import Any

from assistant.ingest.documents import SkipFile
from assistant.ingest.files import discover, read_file
from assistant.ingest.readers import parse
from assistant.stores import open_index
from benchmarks.common import WORK, command_line, cpu_flags, report
from benchmarks.external_docs import TREES

# Source markup, each kind by its own pattern, searched in prose only.
MARKUP = {
    "rst role": re.compile(r":[A-Za-z][\w:.+-]*:`"),
    "rst directive": re.compile(r"^\s*\.\. [\w:.+-]+::", re.MULTILINE),
    "rst link": re.compile(r"`[^`\n]+ <[^>\n]+>`__?|\b\w+`_\b"),
    "rst substitution": re.compile(r"(?<![\w|])\|[A-Za-z][\w -]*\|(?![\w|])"),
    "rst literal": re.compile(r"``[^`\n]+``"),
    "MyST role": re.compile(r"\{[A-Za-z][\w:.+-]*\}`"),
    "MyST directive": re.compile(r"^\s*(```|:::)\{", re.MULTILINE),
}
_FENCED = re.compile(r"^(```|~~~)[^\n]*\n.*?^\1\s*$", re.MULTILINE | re.DOTALL)
_CODE_SPAN = re.compile(r"(?<!`)`[^`\n]+`(?!`)")
_WORD = re.compile(r"\w+")
REAL_PDF = Path("/usr/share/doc/shared-mime-info/shared-mime-info-spec.pdf")


def prose(text: str, markdown: bool) -> str:
    """A passage without its code: fenced blocks always, code spans, and (in Markdown, where
    ``x`` is a code span too) double-backtick spans."""
    text = _FENCED.sub("", text)
    if markdown:
        text = re.sub(r"``[^`\n]+``", "", text)
    return _CODE_SPAN.sub("", text)


def hygiene(index_dir: Path) -> dict[str, Any]:
    """Share of passages with raw markup (by kind) and under 40 words, with an example each."""
    index = open_index(index_dir)
    try:
        chunks = index.db.chunks(range(index.manifest.chunks))
        formats = {d.source: d.format for d in index.db.catalog()}
    finally:
        index.close()
    marked, short, kinds, examples = 0, 0, dict.fromkeys(MARKUP, 0), {}
    for chunk in chunks.values():
        text = prose(chunk.text, formats.get(chunk.source) in ("markdown", "notebook", "docx"))
        found = [name for name, pattern in MARKUP.items() if pattern.search(text)]
        marked += bool(found)
        for name in found:
            kinds[name] += 1
            match = MARKUP[name].search(text)
            assert match is not None
            examples.setdefault(
                name, f"{chunk.source}: {text[max(0, match.start() - 30) : match.end() + 30]!r}"
            )
        short += len(_WORD.findall(chunk.text)) < 40
    n = max(len(chunks), 1)
    return {
        "passages": len(chunks),
        "with_markup": round(marked / n, 4),
        "by_kind": {name: count for name, count in kinds.items() if count},
        "examples": examples,
        "under_40_words": round(short / n, 4),
    }


def parse_speed(docs: Path) -> dict[str, Any]:
    """Files/s of reading and parsing every supported file of a tree (no chunking, no model)."""
    paths = discover(docs)
    tick = time.perf_counter()
    parsed = 0
    for path in paths:
        try:
            parse(read_file(docs, path, max_bytes=50_000_000))
            parsed += 1
        except SkipFile:  # a skipped file is still read, and counted
            pass
    seconds = time.perf_counter() - tick
    return {
        "files": len(paths),
        "parsed": parsed,
        "seconds": round(seconds, 2),
        "files_per_s": round(len(paths) / seconds, 1),
    }


def pdf_speed(pdf: Path, rounds: int = 5) -> dict[str, Any]:
    """Pages/s of reading a real PDF, best of ``rounds``."""
    from assistant.ingest.pdf import parse_pdf

    data = pdf.read_bytes()
    best, pages = float("inf"), 0
    for _ in range(rounds):
        tick = time.perf_counter()
        _, _, sections = parse_pdf(data, pdf.stem)
        best = min(best, time.perf_counter() - tick)
    pages = max(block.end_line for section in sections for block in section.blocks)
    return {
        "file": pdf.name,
        "pages": pages,
        "seconds": round(best, 3),
        "pages_per_s": round(pages / best, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--indexes", type=Path, default=WORK / "external", help="where <tree>-index folders are"
    )
    parser.add_argument("--no-speed", action="store_true", help="markup and lengths only")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results: dict[str, Any] = {
        "command": command_line("benchmarks.passage_hygiene"),
        "cpu_flags": cpu_flags(),
        "trees": {},
    }
    for tree in TREES:
        index_dir = args.indexes / f"{tree.name}-index"
        if not index_dir.exists():
            continue
        row = hygiene(index_dir)
        if not args.no_speed:
            row["parse"] = parse_speed(WORK / "trees" / tree.name)
        results["trees"][tree.name] = row
        print(
            f"{tree.name:7} markup {row['with_markup']:.2%}  <40 words {row['under_40_words']:.2%}",
            flush=True,
        )
    if REAL_PDF.exists() and not args.no_speed:
        results["pdf"] = pdf_speed(REAL_PDF)
    report(results, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
