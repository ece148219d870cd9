"""Tests for corpus discovery, reading and parsing."""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from assistant.errors import CorpusNotFoundError
from assistant.ingest.documents import Document, SkipFile
from assistant.ingest.files import discover, read_file
from assistant.ingest.parsing import load_corpus
from assistant.ingest.readers import SUPPORTED_SUFFIXES, parse
from tests.test_build import UNPRIVILEGED


def write(root: Path, source: str, content: str | bytes) -> Path:
    """Write a corpus file, dedenting text so line numbers in the test read naturally."""
    path = root / source
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        path.write_text(textwrap.dedent(content).lstrip("\n"), encoding="utf-8")
    else:
        path.write_bytes(content)
    return path


def load(root: Path, source: str, content: str | bytes) -> Document:
    return parse(read_file(root, write(root, source, content), max_bytes=1_000_000))


def outline(doc: Document) -> list[tuple[tuple[str, ...], list[tuple[int, int, str]]]]:
    """Each section's heading path with its blocks' (start, end, kind)."""
    return [
        (s.headings, [(b.start_line, b.end_line, b.kind) for b in s.blocks]) for s in doc.sections
    ]


def assert_blocks_are_source_lines(doc: Document) -> None:
    """Source-format blocks must be exactly the lines their range names, so citations are exact."""
    lines = doc.text.split("\n")
    for section in doc.sections:
        for block in section.blocks:
            assert block.text == "\n".join(lines[block.start_line - 1 : block.end_line])


def assert_blocks_stand_on_their_lines(doc: Document) -> None:
    """Blocks rewritten from markup (rst) must still stand on the lines their range names: the
    first and last word of each is on those lines, so citations and highlights are right."""
    lines = doc.text.split("\n")
    for section in doc.sections:
        for block in section.blocks:
            words = re.findall(r"[A-Za-z_]\w{3,}", block.text.replace("```", ""))
            source = "\n".join(lines[block.start_line - 1 : block.end_line])
            assert not words or words[-1] in source, (block, source)


# --------------------------------------------------------------------------- markdown

MARKDOWN = """
    Intro before any heading.

    # Caching `Strategies`

    Caching keeps *hot* data close.

    ## Cache [Invalidation](https://example.com)

    ```python
    cache.delete(key)

    cache.set(key, value)
    ```

    ### TTLs

    - short for volatile data

    - long for static data

    ## Eviction

    > LRU is the usual default.
    """


def test_markdown_heading_paths_and_line_ranges(tmp_path: Path) -> None:
    doc = load(tmp_path, "caching.md", MARKDOWN)

    assert doc.format == "markdown"
    assert doc.title == "Caching Strategies"
    assert outline(doc) == [
        (("Caching Strategies",), [(1, 1, "text")]),
        (("Caching Strategies",), [(5, 5, "text")]),
        (("Caching Strategies", "Cache Invalidation"), [(9, 13, "code")]),
        (("Caching Strategies", "Cache Invalidation", "TTLs"), [(17, 19, "text")]),
        (("Caching Strategies", "Eviction"), [(23, 23, "text")]),
    ]
    sections = doc.sections
    assert (sections[1].start_line, sections[1].end_line) == (3, 5)
    assert (sections[3].start_line, sections[3].end_line) == (15, 19)
    assert_blocks_are_source_lines(doc)


def test_markdown_code_fence_with_blank_lines_is_one_code_block(tmp_path: Path) -> None:
    doc = load(tmp_path, "caching.md", MARKDOWN)

    (fence,) = doc.sections[2].blocks
    assert fence.kind == "code"
    assert fence.text.startswith("```python\n") and fence.text.endswith("\n```")
    assert "\n\n" in fence.text
    assert "*hot*" in doc.sections[1].text  # blocks keep their markdown source


def test_markdown_front_matter_title_wins_and_is_not_a_block(tmp_path: Path) -> None:
    doc = load(
        tmp_path,
        "page.md",
        """
        ---
        title: "Front Matter Title"
        tags: [a, b]
        ---
        # Heading Title

        Body.
        """,
    )

    assert doc.title == "Front Matter Title"
    assert outline(doc) == [(("Heading Title",), [(7, 7, "text")])]


@pytest.mark.parametrize(
    ("source", "content", "title"),
    [
        ("guide.md", "Some text.\n\n# First H1\n\n# Second H1\n", "First H1"),
        ("cache-invalidation.md", "## Only an H2\n\nText.\n", "Cache invalidation"),
        ("API_design_notes.md", "Text only.\n", "API design notes"),
        ("readme.markdown", "---\ntitle: [unclosed\n---\n# Real\n\nText.\n", "Real"),
    ],
)
def test_markdown_title_fallbacks(tmp_path: Path, source: str, content: str, title: str) -> None:
    assert load(tmp_path, source, content).title == title


def test_markdown_bad_front_matter_is_a_warning(tmp_path: Path) -> None:
    doc = load(tmp_path, "a.md", "---\ntitle: [unclosed\n---\nText.\n")

    assert any("front matter" in warning for warning in doc.warnings)
    assert outline(doc) == [(("A",), [(4, 4, "text")])]


def test_empty_sections_kept_only_as_parents(tmp_path: Path) -> None:
    doc = load(tmp_path, "a.md", "# Top\n\n## Empty leaf\n\n## Parent\n\n### Child\n\nText.\n")

    assert [s.headings for s in doc.sections] == [
        ("Top",),
        ("Top", "Parent"),
        ("Top", "Parent", "Child"),
    ]
    assert doc.sections[0].blocks == ()


def test_headings_only_is_skipped(tmp_path: Path) -> None:
    with pytest.raises(SkipFile, match="no text content"):
        load(tmp_path, "a.md", "# Title\n\n## Sub\n\n<!-- a comment -->\n\n---\n")


# --------------------------------------------------------------------------- reStructuredText

RST = """
    .. _topics-cache:

    ========================
    Django's cache framework
    ========================

    A fundamental trade-off in dynamic websites is that
    they are dynamic.

    Setting up the cache
    ====================

    It requires a little setup::

        CACHES = {
            "default": {},

            "other": {},
        }

    Memcached
    ---------

    .. code-block:: python
        :caption: settings.py

        def get(key):
            return None

        print(get("k"))

    ...and an ellipsis is still prose.

    .. toctree::
       :maxdepth: 2

       other-page

    Database caching
    ================

    * one
    * two
    """


def test_rst_sections_levels_and_literal_blocks(tmp_path: Path) -> None:
    doc = load(tmp_path, "topics/cache.rst", RST)

    title = "Django's cache framework"
    assert doc.format == "rst"
    assert doc.title == title
    assert outline(doc) == [
        ((title,), [(7, 8, "text")]),
        ((title, "Setting up the cache"), [(13, 13, "text"), (15, 19, "code")]),
        ((title, "Setting up the cache", "Memcached"), [(24, 30, "code"), (32, 32, "text")]),
        ((title, "Database caching"), [(42, 43, "text")]),
    ]
    starts = [(s.start_line, s.end_line) for s in doc.sections]
    assert starts == [(3, 8), (10, 19), (21, 32), (39, 43)]
    literal = doc.sections[1].blocks[1]
    assert literal.text.startswith("```\nCACHES = {") and "\n\n" in literal.text
    directive = doc.sections[2].blocks[0]
    assert directive.text.startswith("```python\ndef get(key):")
    assert directive.text.endswith('print(get("k"))\n```')
    assert [b.text for b in doc.sections[3].blocks] == ["- one\n- two"]  # a list stays whole
    assert "toctree" not in "".join(s.text for s in doc.sections)
    assert_blocks_stand_on_their_lines(doc)


def test_rst_requires_underline_at_least_as_long_as_title(tmp_path: Path) -> None:
    doc = load(tmp_path, "a.rst", "Real title\n==========\n\nA longer line\n---\n\nText.\n")

    assert [s.headings for s in doc.sections] == [("Real title",)]
    assert doc.sections[0].blocks[0].text == "A longer line\n---"


@pytest.mark.parametrize(
    ("content", "fmt", "headings"),
    [
        ("Release notes\n=============\n\nFixed a bug.\n", "rst", [("Release notes",)]),
        ("Release notes\n\nFixed a bug.\n\nAnother fix.\n", "text", [("Release notes",)]),
    ],
)
def test_txt_is_rst_only_with_section_underlines(
    tmp_path: Path, content: str, fmt: str, headings: list[tuple[str, ...]]
) -> None:
    doc = load(tmp_path, "release-notes.txt", content)

    assert doc.format == fmt
    assert doc.title == "Release notes"
    assert [s.headings for s in doc.sections] == headings
    assert_blocks_are_source_lines(doc)


def test_plain_text_paragraph_blocks(tmp_path: Path) -> None:
    doc = load(tmp_path, "notes.txt", "First line\nsecond line\n\n\nSecond paragraph.\n")

    assert outline(doc) == [(("Notes",), [(1, 2, "text"), (5, 5, "text")])]


# --------------------------------------------------------------------------- HTML

HTML = """
    <!DOCTYPE html>
    <html><head><title>Cache Guide</title><style>body { color: red }</style></head>
    <body>
    <nav><a href="/">Home</a> <a href="/docs">Docs</a></nav>
    <div class="content">
      <h1>Caching</h1>
      <p>Caching keeps
         hot data close.</p>
      <script>var tracking = "secret";</script>
      <h2>Policies</h2>
      <ul>
        <li>LRU</li>
        <li>TTL
          <ul><li>short</li></ul>
        </li>
      </ul>
      <pre><code class="language-python">cache.get(key)

    cache.set(key, 1)
    </code></pre>
      <table><tr><th>Name</th><th>Hit rate</th></tr><tr><td>redis</td><td>0.9</td></tr></table>
    </div>
    <footer>Copyright</footer>
    </body></html>
    """


def test_html_drops_chrome_and_keeps_structure(tmp_path: Path) -> None:
    doc = load(tmp_path, "guide.html", HTML)

    assert doc.format == "html"
    assert doc.title == "Cache Guide"
    assert outline(doc) == [
        (("Caching",), [(7, 8, "text")]),
        (("Caching", "Policies"), [(11, 16, "text"), (17, 20, "code"), (21, 21, "text")]),
    ]
    paragraph = doc.sections[0].blocks[0]
    policies = doc.sections[1]
    assert paragraph.text == "Caching keeps hot data close."
    assert policies.blocks[0].text == "- LRU\n- TTL\n  - short"
    assert policies.blocks[1].text == "```python\ncache.get(key)\n\ncache.set(key, 1)\n```"
    assert policies.blocks[2].text == "Name | Hit rate\nredis | 0.9"
    everything = "\n".join(s.text for s in doc.sections)
    for dropped in ("secret", "color", "Home", "Copyright"):
        assert dropped not in everything


@pytest.mark.parametrize(
    ("content", "title"),
    [
        ("<html><body><h1>From <em>H1</em></h1><p>x</p></body></html>", "From H1"),
        ("<p>Bare paragraph</p>", "Plain page"),
    ],
)
def test_html_title_fallbacks(tmp_path: Path, content: str, title: str) -> None:
    assert load(tmp_path, "plain_page.htm", content).title == title


# --------------------------------------------------------------------------- decoding


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"caf\xe9", "café"),
        (b"The caf\xe9 serves coffee and cr\xe8me br\xfbl\xe9e.\n", "crème brûlée"),
        ("Привет, как дела? Кэш работает.\n".encode("cp1251"), "Привет"),
        ("Zażółć gęślą jaźń.\n".encode("cp1250"), "Zażółć gęślą jaźń"),
    ],
)
def test_invalid_utf8_is_repaired_with_a_warning(
    tmp_path: Path, data: bytes, expected: str
) -> None:
    doc = load(tmp_path, "menu.txt", data)

    assert expected in doc.text
    assert len(doc.warnings) == 1
    assert doc.warnings[0].startswith("not valid UTF-8; decoded as")


def test_mostly_utf8_with_a_stray_byte_keeps_utf8(tmp_path: Path) -> None:
    data = "Crème brûlée, déjà vu. ".encode() * 20 + b"stray \xe9 byte\n"

    doc = load(tmp_path, "mixed.txt", data)

    assert doc.text.startswith("Crème brûlée")
    assert "\ufffd" in doc.text or "é byte" in doc.text
    assert len(doc.warnings) == 1


def test_bom_and_crlf_are_normalised(tmp_path: Path) -> None:
    doc = load(tmp_path, "a.md", b"\xef\xbb\xbf# Title\r\n\r\nLine one\rLine two\r\n")

    assert doc.text == "# Title\n\nLine one\nLine two\n"
    assert doc.title == "Title"
    assert outline(doc) == [(("Title",), [(3, 4, "text")])]
    assert doc.warnings == ()


# --------------------------------------------------------------------------- discovery


def test_discover_skips_hidden_tooling_unsupported_and_excluded(tmp_path: Path) -> None:
    for source in [
        "README.md",
        "concepts/caching.md",
        "concepts/deep/queues.RST",
        "resources/links.txt",
        "resources/page.htm",
        ".hidden.md",
        ".git/notes.md",
        "concepts/.drafts/wip.md",
        "node_modules/pkg/readme.md",
        "docs/_build/html/index.html",
        "pkg.egg-info/PKG-INFO.txt",
        "concepts/image.png",
        "concepts/script.py",
        "index/manifest.md",
    ]:
        write(tmp_path, source, "text\n")

    found = discover(tmp_path, exclude=[tmp_path / "index"])

    assert [p.relative_to(tmp_path).as_posix() for p in found] == [
        "README.md",
        "concepts/caching.md",
        "concepts/deep/queues.RST",
        "resources/links.txt",
        "resources/page.htm",
    ]
    assert {
        *(".md", ".markdown", ".rst", ".txt", ".html", ".htm", ".pdf", ".docx", ".ipynb")
    } == SUPPORTED_SUFFIXES


def test_discover_follows_symlinked_dirs_without_looping(tmp_path: Path) -> None:
    write(tmp_path, "a/doc.md", "text\n")
    os.symlink(tmp_path, tmp_path / "a" / "loop")
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    write(outside, "shared.md", "text\n")
    os.symlink(outside, tmp_path / "linked")

    found = discover(tmp_path)

    assert [p.relative_to(tmp_path).as_posix() for p in found] == ["a/doc.md", "linked/shared.md"]


def test_discover_warns_about_unreadable_folders_and_continues(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    write(tmp_path, "ok/doc.md", "text\n")
    write(tmp_path, "locked/doc.md", "text\n")
    real_scandir = os.scandir

    def scandir(path: Path) -> object:
        if Path(path).name == "locked":
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    with caplog.at_level(logging.WARNING, logger="assistant.ingest.files"):
        found = discover(tmp_path)

    assert [p.relative_to(tmp_path).as_posix() for p in found] == ["ok/doc.md"]
    assert "locked" in caplog.text


@pytest.mark.parametrize("make", ["missing", "file"])
def test_missing_root_raises_corpus_not_found(tmp_path: Path, make: str) -> None:
    root = tmp_path / "corpus"
    if make == "file":
        root.write_text("not a folder")

    with pytest.raises(CorpusNotFoundError, match="--corpus"):
        discover(root)
    with pytest.raises(FileNotFoundError):
        load_corpus(root)


# --------------------------------------------------------------------------- reading


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"PNG\x00\x01\x02 header", "binary file"),
        (b"x" * 2000, "larger than the 0.0 MB limit"),
        (b"", "empty file"),
        (b" \n\t\n", "empty file"),
        (b"\xef\xbb\xbf\n", "empty file"),
    ],
)
def test_read_file_skip_reasons(tmp_path: Path, content: bytes, reason: str) -> None:
    path = write(tmp_path, "doc.md", content)

    with pytest.raises(SkipFile, match=reason):
        read_file(tmp_path, path, max_bytes=1000)


def test_read_file_too_large_message_names_the_setting(tmp_path: Path) -> None:
    path = write(tmp_path, "big.md", b"x")
    os.truncate(path, 12_300_000)  # sparse: the size check must happen before any reading

    with pytest.raises(SkipFile) as info:
        read_file(tmp_path, path, max_bytes=5_000_000)

    assert str(info.value) == (
        "larger than the 5.0 MB limit (12.3 MB); raise max_file_bytes to include it"
    )


def test_read_file_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SkipFile, match="vanished"):
        read_file(tmp_path, tmp_path / "gone.md", max_bytes=1000)


def test_read_file_unreadable_via_permission_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Root ignores chmod 000, so simulate the error the OS would raise.
    path = write(tmp_path, "secret.md", "text\n")

    def deny(self: Path, *args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "open", deny)
    with pytest.raises(SkipFile, match="cannot read file"):
        read_file(tmp_path, path, max_bytes=1000)


def test_read_file_unreadable_via_chmod(tmp_path: Path) -> None:
    path = write(tmp_path, "secret.md", "text\n")
    path.chmod(0)
    try:
        if not os.access(path, os.R_OK):
            with pytest.raises(SkipFile, match="cannot read file"):
                read_file(tmp_path, path, max_bytes=1000)
            return
        # Root reads any file: read as root without the capabilities that let it do so.
        if not shutil.which("setpriv"):
            pytest.skip("root obeys file modes only without its capabilities: needs setpriv")
        code = (
            "import sys; from pathlib import Path; from assistant.ingest.files import read_file\n"
            "from assistant.ingest.documents import SkipFile\n"
            "try: read_file(Path(sys.argv[1]), Path(sys.argv[2]), max_bytes=1000)\n"
            "except SkipFile as exc: print(exc)\n"
        )
        done = subprocess.run(
            [*UNPRIVILEGED, sys.executable, "-c", code, str(tmp_path), str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)},
        )
        assert "cannot read file" in done.stdout, done.stderr
    finally:
        path.chmod(0o644)


def test_read_file_directory_with_supported_suffix(tmp_path: Path) -> None:
    (tmp_path / "odd.md").mkdir()

    with pytest.raises(SkipFile, match="not a regular file"):
        read_file(tmp_path, tmp_path / "odd.md", max_bytes=1000)


# --------------------------------------------------------------------------- load_corpus


def test_load_corpus_sources_categories_and_skips(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write(tmp_path, "overview.md", "# Overview\n\nWelcome.\n")
    write(tmp_path, "concepts/caching/ttl.md", "# TTL\n\nExpiry.\n")
    write(tmp_path, "concepts/empty.md", "   \n")
    write(tmp_path, "resources/blob.txt", b"\x00\x01binary")

    with caplog.at_level(logging.WARNING, logger="assistant.ingest.parsing"):
        documents, skipped = load_corpus(tmp_path)

    assert [(d.source, d.category) for d in documents] == [
        ("concepts/caching/ttl.md", "concepts"),
        ("overview.md", ""),
    ]
    assert skipped == [("concepts/empty.md", "empty file"), ("resources/blob.txt", "binary file")]
    assert sum("Skipping" in r.getMessage() for r in caplog.records) == 2
    ttl = documents[0]
    assert len(ttl.sha256) == 64
    assert ttl.sha256 == read_file(tmp_path, tmp_path / ttl.source, max_bytes=100).sha256
