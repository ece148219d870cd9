"""Reading real folders: Sphinx reStructuredText, generated HTML sites, PDF, Word, notebooks.

Every fixture is a real file: rst and HTML written here, PDFs made by reportlab (and one that
ships with a Debian package), Word files by python-docx, notebooks as nbformat 4 JSON.
"""

from __future__ import annotations

import json
import shutil
import textwrap
import zipfile
import zlib
from pathlib import Path

import pytest

from assistant import Settings, build_index, corpus_changes
from assistant.ingest.documents import Document, SkipFile
from assistant.ingest.files import Skipped, read_file
from assistant.ingest.parsing import parse_files
from assistant.ingest.readers import parse
from assistant.stores import open_index
from assistant.testing import HashEncoder

REAL_PDF = Path("/usr/share/doc/shared-mime-info/shared-mime-info-spec.pdf")


def write(root: Path, source: str, content: str | bytes) -> Path:
    path = root / source
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        path.write_text(textwrap.dedent(content).lstrip("\n"), encoding="utf-8")
    else:
        path.write_bytes(content)
    return path


def load(root: Path, source: str, content: str | bytes | None = None) -> Document:
    if content is not None:
        write(root, source, content)
    return parse(read_file(root, root / source, max_bytes=50_000_000))


def texts(doc: Document) -> list[str]:
    return [block.text for section in doc.sections for block in section.blocks]


def lines_of(doc: Document, needle: str) -> tuple[int, int]:
    block = next(b for s in doc.sections for b in s.blocks if needle in b.text)
    return block.start_line, block.end_line


# --------------------------------------------------------------------------- Sphinx rst

SPHINX = """
    .. _queryset-api:

    ======================
    QuerySet API reference
    ======================

    .. currentmodule:: django.db.models.query

    A :class:`QuerySet` is lazy; see :doc:`the query guide </topics/db/queries>` and
    :meth:`~django.db.models.query.QuerySet.select_related`. Use ``values_list()``.

    .. toctree::
       :maxdepth: 1

       other

    ``in_bulk()``
    -------------

    .. method:: in_bulk(id_list=None, *, field_name='pk')

        Takes a list of field values and returns a dictionary.

        .. versionadded:: 5.0

            The ``field_name`` argument accepts unique fields.

    .. note::

        Unsaved objects are :setting:`ignored <DEBUG>` here.

    .. code-block:: python
        :caption: example.py

        Blog.objects.in_bulk([1, 2])
    """


def test_sphinx_roles_become_their_visible_text(tmp_path: Path) -> None:
    doc = load(tmp_path, "ref/querysets.txt", SPHINX)
    assert doc.format == "rst" and doc.title == "QuerySet API reference"
    intro = texts(doc)[0]
    assert intro == (
        "A `QuerySet` is lazy; see the query guide and\n`select_related`. Use `values_list()`."
    )
    prose = "\n".join(t for t in texts(doc) if not t.startswith("```"))
    for markup in (":class:", ":doc:", ":meth:", "``", "toctree", "currentmodule", ".. "):
        assert markup not in prose


def test_object_directives_keep_their_signature_and_body(tmp_path: Path) -> None:
    doc = load(tmp_path, "ref/querysets.txt", SPHINX)
    section = next(s for s in doc.sections if s.headings[-1] == "in_bulk()")
    assert [b.text for b in section.blocks] == [
        "`in_bulk(id_list=None, *, field_name='pk')`",
        "Takes a list of field values and returns a dictionary.",
        "New in version 5.0: The `field_name` argument accepts unique fields.",
        "Note: Unsaved objects are `ignored` here.",
        "```python\nBlog.objects.in_bulk([1, 2])\n```",
    ]
    assert lines_of(doc, "in_bulk(id_list") == (20, 20)
    assert lines_of(doc, "Takes a list") == (22, 22)
    assert lines_of(doc, "Blog.objects") == (32, 35)


def test_includes_inside_the_corpus_are_followed_and_outside_ones_named(tmp_path: Path) -> None:
    root = tmp_path / "docs"
    write(root, "includes/install.rst", "Install it with ``pip install nexus``.\n")
    write(root, "loop.rst", ".. include:: loop.rst\n\nLooping page text.\n")
    write(tmp_path, "CHANGES.rst", "Changes\n=======\n\nSecret outside text.\n")
    page = """
        Getting started
        ===============

        First steps.

        .. include:: ../includes/install.rst

        .. include:: /includes/install.rst

        .. include:: ../../CHANGES.rst
        """
    doc = load(root, "guide/start.rst", page)
    assert texts(doc) == ["First steps.", "Install it with `pip install nexus`."]
    assert lines_of(doc, "pip install") == (6, 6)  # the include directive's own line
    assert doc.includes == ("includes/install.rst",)
    assert any("CHANGES.rst points outside the corpus" in w for w in doc.warnings)
    assert texts(load(root, "loop.rst")) == ["Looping page text."]  # a loop stops at once


def test_a_version_note_explained_on_its_argument_lines_reads_as_prose(tmp_path: Path) -> None:
    # Flask's config page: the explanation continues the directive's arguments, so docutils
    # hands it over raw; Sphinx parses it as inline markup, and so must we.
    page = """
        Config
        ======

        .. versionadded:: 0.4
           ``LOGGER_NAME``

        .. versionchanged:: 1.0
            ``LOGGER_NAME`` was removed. See
            :doc:`/logging` for details.

            Added :data:`ENV`.
        """
    doc = load(tmp_path, "config.rst", page)
    assert texts(doc) == [
        "New in version 0.4: `LOGGER_NAME`",
        "Changed in version 1.0: `LOGGER_NAME` was removed. See logging for details.",
        "Added `ENV`.",
    ]
    assert lines_of(doc, "0.4") == (4, 5)
    assert lines_of(doc, "1.0") == (7, 9)


def test_an_absolute_include_starts_at_the_sphinx_source_folder(tmp_path: Path) -> None:
    # pytest's docs: the corpus is doc/, Sphinx's source folder (with conf.py) is doc/en/,
    # and pages include "/example/..." meaning doc/en/example/...
    root = tmp_path / "doc"
    write(root, "en/conf.py", "project = 'demo'\n")
    write(root, "en/example/order.py", "def test_order():\n    assert 1\n")
    page = "Order\n=====\n\nSee below.\n\n.. literalinclude:: /example/order.py\n"
    doc = load(root, "en/reference/fixtures.rst", page)
    assert texts(doc)[1] == "```python\ndef test_order():\n    assert 1\n```"
    assert doc.includes == ("en/example/order.py",)
    assert not doc.warnings


def test_a_page_that_is_only_an_include_is_read(tmp_path: Path) -> None:
    write(tmp_path, "CHANGES.txt", "Changes\n=======\n\nVersion 2 adds caching.\n")
    doc = load(tmp_path, "changelog.rst", ".. include:: CHANGES.txt\n")
    assert texts(doc) == ["Version 2 adds caching."]


def test_a_change_to_an_included_file_re_reads_its_includer(tmp_path: Path) -> None:
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    write(corpus, "page.rst", "Page\n====\n\nIntro.\n\n.. include:: snippet.inc\n")
    write(corpus, "snippet.inc", "Old snippet text.\n")
    settings = Settings(chunk_tokens=120, chunk_overlap=16, min_chunk_tokens=0)
    build_index(corpus, index, settings=settings, encoder=HashEncoder())
    assert not corpus_changes(corpus, index).stale
    write(corpus, "snippet.inc", "New snippet text.\n")
    assert corpus_changes(corpus, index).modified == ["page.rst"]
    report = build_index(corpus, index, settings=settings, encoder=HashEncoder())
    assert report.embedded >= 1
    chunks = open_index(index).db.chunks(range(report.chunks))
    assert any("New snippet text." in c.text for c in chunks.values())


def test_a_page_docutils_cannot_parse_falls_back_with_one_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import assistant.ingest.rst as rst

    def broken(*args: object) -> None:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(rst, "_doctree", broken)
    doc = load(tmp_path, "a.rst", "Title\n=====\n\nSome :class:`Thing` text.\n")
    assert texts(doc) == ["Some :class:`Thing` text."]
    assert len(doc.warnings) == 1 and "read it line by line" in doc.warnings[0]


# --------------------------------------------------------------------------- MyST Markdown

MYST = """
    (callbacks)=

    # Callbacks

    % a comment for the docs' authors

    A callback gets the current {class}`~click.Context` and may raise
    {exc}`click.BadParameter`; see {doc}`the options
    page <options>`.

    ````{note}
    Eager options run first.

    ```python
    ctx.exit()
    ```
    ````

    ```{versionadded} 8.0
    ```

    ```{eval-rst}
    .. click:example::

        @click.command()
        def hello():
            click.echo("Hi")
    ```

    ```{code-block} console
    $ hello --version
    ```

    ```{toctree}
    :maxdepth: 2

    options
    ```
    """


def test_myst_roles_and_directives_read_as_sphinx_shows_them(tmp_path: Path) -> None:
    doc = load(tmp_path, "callbacks.md", MYST)
    assert doc.title == "Callbacks"
    assert texts(doc) == [
        "A callback gets the current `Context` and may raise\n`click.BadParameter`; "
        "see the options\npage.",
        "Note: Eager options run first.",
        "```python\nctx.exit()\n```",
        "New in version 8.0.",
        '```python\n@click.command()\ndef hello():\n    click.echo("Hi")\n```',
        "```console\n$ hello --version\n```",
    ]
    assert lines_of(doc, "A callback") == (7, 9)
    assert lines_of(doc, "Eager options") == (11, 12)
    assert lines_of(doc, "ctx.exit") == (14, 16)
    assert lines_of(doc, "click.echo") == (23, 27)


# --------------------------------------------------------------------------- generated HTML

SPHINX_HTML = """
    <!DOCTYPE html>
    <html><head><title>asyncio — Asynchronous I/O — Python 3.11.2 documentation</title></head>
    <body>
    <div class="related" role="navigation"><a href="genindex.html">index</a></div>
    <div class="document"><div class="body" role="main">
    <section id="asyncio">
    <h1>asyncio — Asynchronous I/O<a class="headerlink" href="#asyncio">¶</a></h1>
    <p>asyncio is a library to write concurrent code.</p>
    <dl class="py function">
    <dt class="sig sig-object py" id="asyncio.timeout_at">
    <span class="sig-prename">asyncio.</span><span class="sig-name">timeout_at</span>(<em>when</em>)
    <a class="headerlink" href="#asyncio.timeout_at">¶</a></dt>
    <dd><p>Like timeout(), but takes an absolute deadline.</p></dd>
    </dl>
    </section>
    </div></div>
    <div class="sphinxsidebar" role="navigation"><h3>Table of Contents</h3><p>Sidebar text</p></div>
    <div class="footer">© Copyright 2001-2023</div>
    </body></html>
    """


def test_a_generated_sphinx_page_reads_like_its_source(tmp_path: Path) -> None:
    doc = load(tmp_path, "library/asyncio.html", SPHINX_HTML)
    assert doc.title == "asyncio — Asynchronous I/O"
    assert [s.headings for s in doc.sections] == [("asyncio — Asynchronous I/O",)]
    assert texts(doc) == [
        "asyncio is a library to write concurrent code.",
        "`asyncio.timeout_at(when)`",
        "Like timeout(), but takes an absolute deadline.",
    ]
    joined = "\n".join(texts(doc))
    assert "¶" not in joined and "Sidebar" not in joined and "Copyright" not in joined


# --------------------------------------------------------------------------- PDF


def make_pdf(path: Path, pages: list[list[str]], outline: list[tuple[int, str, int]] = (), **kw):  # type: ignore[no-untyped-def]
    from reportlab.pdfgen import canvas

    pdf = canvas.Canvas(str(path), **kw)
    for number, lines in enumerate(pages, start=1):
        for level, title, page in outline:
            if page == number:
                key = f"b{number}-{title}"
                pdf.bookmarkPage(key)
                pdf.addOutlineEntry(title, key, level=level)
        y = 720
        for line in lines:
            pdf.drawString(72, y, line)
            y -= 16
        pdf.showPage()
    pdf.save()


def test_pdf_sections_come_from_the_outline_and_pages_are_the_lines(tmp_path: Path) -> None:
    make_pdf(
        tmp_path / "guide.pdf",
        [
            ["Deploying Nexus", "Nexus runs in a container."],
            ["Volumes", "Mount the corpus folder read-only into the container."],
            ["Volumes continue", "The index lives on its own volume."],
            ["Health checks", "Probe /api/health every thirty seconds."],
        ],
        outline=[(0, "Deploying Nexus", 1), (1, "Volumes", 2), (1, "Health checks", 4)],
    )
    doc = load(tmp_path, "guide.pdf")
    assert doc.format == "pdf"
    assert [s.headings for s in doc.sections] == [
        ("Deploying Nexus",),
        ("Deploying Nexus", "Volumes"),
        ("Deploying Nexus", "Health checks"),
    ]
    assert lines_of(doc, "read-only") == (2, 2)
    assert lines_of(doc, "own volume") == (3, 3)
    assert lines_of(doc, "thirty seconds") == (4, 4)
    assert doc.text.count("\f") == 3  # the document view shows it page by page


def test_a_pdf_without_an_outline_has_a_section_per_page(tmp_path: Path) -> None:
    make_pdf(tmp_path / "notes.pdf", [["First page of notes here."], ["Second page of notes."]])
    doc = load(tmp_path, "notes.pdf")
    assert [(s.start_line, s.end_line) for s in doc.sections] == [(1, 1), (2, 2)]
    assert texts(doc) == ["First page of notes here.", "Second page of notes."]


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("encrypted", "encrypted PDF"),
        ("scan", "no text layer"),
        ("truncated", "not a readable PDF"),
    ],
)
def test_unreadable_pdfs_are_skipped_with_a_reason(tmp_path: Path, kind: str, reason: str) -> None:
    path = tmp_path / "bad.pdf"
    if kind == "encrypted":
        make_pdf(path, [["Top secret plans."]], encrypt="s3cret")
    elif kind == "scan":
        from reportlab.pdfgen import canvas

        drawing = canvas.Canvas(str(path))
        drawing.rect(72, 72, 300, 500, fill=1)  # an image of a page, no text
        drawing.showPage()
        drawing.save()
    else:
        make_pdf(path, [["Some text that will be cut."]])
        path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(SkipFile, match=reason):
        load(tmp_path, "bad.pdf")


def test_an_absurd_page_count_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import assistant.ingest.pdf as pdf

    monkeypatch.setattr(pdf, "MAX_PAGES", 2)
    make_pdf(tmp_path / "long.pdf", [["page one"], ["page two"], ["page three"]])
    with pytest.raises(SkipFile, match="3 pages, more than the 2"):
        load(tmp_path, "long.pdf")


def bomb_pdf(path: Path, mib: int) -> None:
    """A 1-page PDF whose content stream unpacks to ``mib`` MiB of spaces."""
    packer = zlib.compressobj(1)
    stream = packer.compress(b"BT /F1 12 Tf 72 720 Td (boom) Tj ET\n")
    block = b" " * 2**20
    stream += b"".join(packer.compress(block) for _ in range(mib)) + packer.flush()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    start = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        start,
    )
    path.write_bytes(out)


def test_a_decompression_bomb_is_skipped_without_exhausting_memory(tmp_path: Path) -> None:
    bomb_pdf(tmp_path / "bomb.pdf", mib=600)
    assert (tmp_path / "bomb.pdf").stat().st_size < 5_000_000
    write(tmp_path, "fine.md", "# Fine\n\nA normal page.\n")
    paths = [tmp_path / "bomb.pdf", tmp_path / "fine.md"]
    bomb, fine = parse_files(
        tmp_path, paths, max_bytes=10_000_000, workers=1, memory_bytes=400 * 2**20
    )
    assert isinstance(bomb, Skipped) and "more than 400 MB of memory" in bomb.reason
    assert isinstance(fine, Document) and fine.title == "Fine"  # a fresh worker read on


def test_a_file_that_takes_too_long_is_skipped_and_the_rest_read(tmp_path: Path) -> None:
    write(
        tmp_path,
        "slow.rst",
        "Slow\n====\n\n" + "- an item with *emphasis*\n\n  - nested\n\n" * 25000,
    )
    write(tmp_path, "quick.md", "# Quick\n\nDone.\n")
    slow, quick = parse_files(
        tmp_path,
        [tmp_path / "slow.rst", tmp_path / "quick.md"],
        max_bytes=10_000_000,
        workers=1,
        seconds=2.0,  # the slow page takes over ten seconds, the quick one far less, busy or not
    )
    assert isinstance(slow, Skipped) and "took longer than" in slow.reason
    assert isinstance(quick, Document)


@pytest.mark.skipif(not REAL_PDF.exists(), reason="needs Debian's shared-mime-info package")
def test_a_real_world_pdf_reads_with_its_outline(tmp_path: Path) -> None:
    shutil.copy(REAL_PDF, tmp_path / "spec.pdf")
    doc = load(tmp_path, "spec.pdf")
    headings = {s.headings[-1] for s in doc.sections}
    assert {"1. Introduction", "2. Unified system"} <= headings
    assert any("mime" in t.lower() for t in texts(doc))
    assert all(1 <= b.start_line <= 17 for s in doc.sections for b in s.blocks)


# --------------------------------------------------------------------------- Word


def make_docx(path: Path) -> None:
    import docx

    document = docx.Document()
    document.core_properties.title = "Operating Nexus"
    document.add_heading("Operating Nexus", 0)
    document.add_paragraph("A guide for the people who run it.")
    document.add_heading("Backups", 1)
    document.add_paragraph("Copy the index folder while no build runs.")
    document.add_paragraph("stop the watcher", style="List Bullet")
    document.add_paragraph("copy index/", style="List Bullet")
    document.add_heading("Settings", 2)
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text, table.cell(0, 1).text = "setting", "meaning"
    table.cell(1, 0).text, table.cell(1, 1).text = "NEXUS_INDEX_DIR", "where the index lives"
    document.save(str(path))


def test_word_headings_lists_and_tables(tmp_path: Path) -> None:
    make_docx(tmp_path / "ops.docx")
    doc = load(tmp_path, "ops.docx")
    assert doc.format == "docx" and doc.title == "Operating Nexus"
    assert [s.headings for s in doc.sections] == [
        ("Operating Nexus",),
        ("Operating Nexus", "Backups"),
        ("Operating Nexus", "Backups", "Settings"),
    ]
    assert "- stop the watcher\n- copy index/" in texts(doc)
    table = texts(doc)[-1]
    assert "NEXUS_INDEX_DIR | where the index lives" in table
    assert doc.text.startswith("# Operating Nexus")  # the view shows it as Markdown


def test_a_word_file_that_is_not_one_or_a_zip_bomb_is_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import assistant.ingest.docx as word

    write(tmp_path, "fake.docx", b"\xd0\xcf\x11\xe0 an OLE file, as encrypted Word files are")
    with pytest.raises(SkipFile, match="not a Word document"):
        load(tmp_path, "fake.docx")
    monkeypatch.setattr(word, "MAX_UNPACKED_BYTES", 1_000_000)
    with zipfile.ZipFile(tmp_path / "bomb.docx", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("word/document.xml", b" " * 5_000_000)
    with pytest.raises(SkipFile, match="unpacks to 5 MB"):
        load(tmp_path, "bomb.docx")


# --------------------------------------------------------------------------- notebooks


def test_notebook_markdown_and_code_cells_without_outputs(tmp_path: Path) -> None:
    notebook = {
        "nbformat": 4,
        "metadata": {"kernelspec": {"language": "python", "name": "python3"}},
        "cells": [
            {"cell_type": "markdown", "source": ["# Exploring the index\n", "Load it first."]},
            {
                "cell_type": "code",
                "source": "from assistant import Assistant\nnexus = Assistant.load('index')",
                "outputs": [{"output_type": "stream", "text": "SECRET OUTPUT"}],
            },
            {"cell_type": "markdown", "source": "## Searching\n\nAsk a question."},
        ],
    }
    doc = load(tmp_path, "explore.ipynb", json.dumps(notebook))
    assert doc.format == "notebook" and doc.title == "Exploring the index"
    assert [s.headings for s in doc.sections] == [
        ("Exploring the index",),
        ("Exploring the index", "Searching"),
    ]
    assert texts(doc)[1].startswith("```python\nfrom assistant import Assistant")
    assert "SECRET OUTPUT" not in doc.text


def test_a_malformed_notebook_is_skipped_with_a_reason(tmp_path: Path) -> None:
    with pytest.raises(SkipFile, match="not a valid notebook"):
        load(tmp_path, "broken.ipynb", '{"cells": [')


# --------------------------------------------------------------------------- builds


def test_a_mixed_folder_builds_and_records_what_it_skipped(tmp_path: Path) -> None:
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    make_pdf(write(corpus, "guide.pdf", b""), [["Nexus runs in a container."]])
    make_docx(write(corpus, "ops.docx", b""))
    write(corpus, "broken.ipynb", "{not json")
    write(corpus, "api.rst", SPHINX)
    report = build_index(corpus, index, encoder=HashEncoder())
    assert report.documents == 3
    stored = open_index(index)
    assert {d.format for d in stored.db.documents()} == {"pdf", "docx", "rst"}
    assert [s for s, _ in stored.db.record().skipped] == ["broken.ipynb"]
    assert stored.manifest.readers["rst"] >= 2


def test_documents_of_a_changed_reader_are_read_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import assistant.build as build

    corpus, index = tmp_path / "corpus", tmp_path / "index"
    write(corpus, "a.rst", SPHINX)
    write(corpus, "b.md", "# B\n\nPlain Markdown.\n")
    build_index(corpus, index, encoder=HashEncoder())
    upgraded = {**build.READER_VERSIONS, "rst": build.READER_VERSIONS["rst"] + 1}
    monkeypatch.setattr(build, "READER_VERSIONS", upgraded)
    assert corpus_changes(corpus, index).outdated == ["a.rst"]
    encoder = HashEncoder()
    report = build_index(corpus, index, encoder=encoder)
    assert report.embedded == 0 and report.reused == report.chunks  # same text, same vectors
    assert not corpus_changes(corpus, index).stale


# --------------------------------------------------------------------------- what was indexed


@pytest.fixture
def mixed_site(tmp_path: Path):  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    from assistant import Assistant
    from assistant.web.server import create_app

    corpus, index = tmp_path / "corpus", tmp_path / "index"
    filler = [f"Line {i} of the operations guide, about containers and volumes." for i in range(14)]
    make_pdf(
        write(corpus, "ops/guide.pdf", b""),
        [
            ["Containers", "Nexus runs in a podman container.", *filler],
            ["Mount the docs volume.", *filler],
        ],
    )
    write(corpus, "notes.md", "# Notes\n\nA podman tip: use runc here.\n")
    write(corpus, "broken.ipynb", "{not json")
    settings = Settings(corpus_dir=corpus, index_dir=index)
    build_index(corpus, index, settings=settings, encoder=HashEncoder())
    nexus = Assistant.load(index, settings=settings, encoder=HashEncoder())
    return index, TestClient(create_app(settings, nexus=nexus))


def test_the_documents_api_lists_what_was_indexed_and_skipped(mixed_site) -> None:  # type: ignore[no-untyped-def]
    _, client = mixed_site
    listing = client.get("/api/documents").json()
    assert listing["total"] == 2
    assert [(d["source"], d["format"]) for d in listing["documents"]] == [
        ("notes.md", "markdown"),
        ("ops/guide.pdf", "pdf"),
    ]
    assert listing["documents"][1]["passages"] >= 1 and listing["documents"][1]["category"] == "ops"
    assert listing["skipped"][0]["source"] == "broken.ipynb"
    assert "not a valid notebook" in listing["skipped"][0]["reason"]
    assert client.get("/api/documents", params={"q": "GUIDE"}).json()["total"] == 1


def test_a_pdf_passage_cites_its_page_and_the_view_opens_there(mixed_site) -> None:  # type: ignore[no-untyped-def]
    from assistant.web.render import location

    _, client = mixed_site
    hits = client.get("/api/search", params={"q": "docs volume", "mode": "keyword"}).json()
    pdf = next(h for h in hits["hits"] if h["source"] == "ops/guide.pdf")
    assert (pdf["start_line"], pdf["end_line"]) == (2, 2)
    assert location(pdf["source"], 2, 2) == "ops/guide.pdf p. 2"
    assert location(pdf["source"], 2, 3) == "ops/guide.pdf pp. 2–3"
    page = client.get(pdf["url"].split("#")[0]).text
    assert '<section id="passage" class="nexus-page nexus-passage">' in page
    assert "p. 2 highlighted" in page and 'id="page-1"' in page


def test_nexus_info_lists_documents_and_skipped_files(
    mixed_site, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    from assistant.cli import main

    index, _ = mixed_site
    assert main(["info", "--index", str(index), "--documents"]) == 0
    rows = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert [row[:2] for row in rows] == [["notes.md", "markdown"], ["ops/guide.pdf", "pdf"]]
    assert main(["info", "--index", str(index), "--skipped", "--json"]) == 0
    skipped = json.loads(capsys.readouterr().out)
    assert skipped["source"] == "broken.ipynb" and "not a valid notebook" in skipped["reason"]
