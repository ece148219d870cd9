"""Hostile and malformed input: queries, filters and corpus files.

Every case must end in a sensible answer or a clear error from the ``assistant.errors`` family
(``SkipFile`` reasons for corpus files), never in a crash, a hang or a half-built index.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assistant import Assistant, QueryError, Settings, build_index
from assistant.cli import main
from assistant.ingest.documents import SkipFile
from assistant.ingest.files import read_file
from assistant.ingest.readers import parse
from assistant.search.query import MAX_FILTER_CHARS, clean_query
from assistant.testing import HashEncoder

DATA = Path(__file__).parent / "data"

# --------------------------------------------------------------------------- queries

HOSTILE_SNIPPETS = [
    "'; DROP TABLE chunks; --",
    '" OR 1=1 --',
    "<script>alert(document.cookie)</script>",
    "<img src=x onerror=alert(1)>",
    "javascript:alert(1)",
    "../../etc/passwd",
    "%00%2e%2e%2f",
    "${jndi:ldap://x}",
    "{{7*7}}",
    "кэш инвалидация",
    "缓存失效",
    "تخزين مؤقت",
    "\u202eevil\u202c",
    "🚀🔥💾",
    "👩‍👩‍👧‍👦",
    "e\u0301\u0301\u0301",
    "\ud800",
    "\x00\x1b[31m\x7f",
    "cache",
    "optimistic locking",
]

# Any code point, lone surrogates included (JSON can carry them into an API).
any_text = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=300)
hostile_text = st.lists(st.sampled_from(HOSTILE_SNIPPETS) | any_text, max_size=6).map(" ".join)
long_text = st.builds(
    lambda piece, times: piece * times,
    st.sampled_from(HOSTILE_SNIPPETS) | st.text(min_size=1, max_size=8),
    st.integers(min_value=1_000, max_value=40_000),
)
queries = hostile_text | long_text | any_text


@pytest.fixture(scope="module")
def nexus(tmp_path_factory: pytest.TempPathFactory) -> Assistant:
    root = tmp_path_factory.mktemp("hostile")
    shutil.copytree(DATA / "mini_corpus", root / "corpus")
    small = Settings(chunk_tokens=120, chunk_overlap=16, min_chunk_tokens=24)
    build_index(root / "corpus", root / "index", settings=small, encoder=HashEncoder())
    return Assistant.load(root / "index", settings=small, encoder=HashEncoder())


def check_hits(hits: list, k: int) -> None:  # type: ignore[type-arg]
    assert len(hits) <= k
    assert [h.rank for h in hits] == list(range(1, len(hits) + 1))
    assert len({h.chunk_id for h in hits}) == len(hits)
    for hit in hits:
        assert hit.source and hit.text and hit.start_line <= hit.end_line


FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@FUZZ
@given(query=queries, mode=st.sampled_from(["hybrid", "semantic", "keyword"]))
def test_any_query_gets_hits_or_a_clear_error(nexus: Assistant, query: str, mode: str) -> None:
    started = time.perf_counter()
    try:
        hits = nexus.search(query, k=5, mode=mode)  # type: ignore[arg-type]
    except QueryError as exc:
        too_long = len(query.strip()) > 2_000
        assert ("the limit is 2,000" if too_long else "empty") in str(exc)
        assert not clean_query_or_none(query)
    else:
        check_hits(hits, 5)
    assert time.perf_counter() - started < 5, "a single query must stay fast, whatever it holds"


def clean_query_or_none(query: str) -> str | None:
    try:
        return clean_query(query, 2_000)
    except QueryError:
        return None


@settings(max_examples=300, deadline=None)
@given(query=queries, limit=st.integers(min_value=1, max_value=3_000))
def test_cleaned_queries_are_bounded_printable_and_stable(query: str, limit: int) -> None:
    try:
        cleaned = clean_query(query, limit)
    except QueryError:
        return
    assert 0 < len(cleaned) <= limit
    assert cleaned == cleaned.strip() and "  " not in cleaned
    assert not any(ch in cleaned for ch in "\x00\n\t\r\x1b\ud800")
    assert clean_query(cleaned, limit) == cleaned  # cleaning twice changes nothing


@FUZZ
@given(
    category=st.none() | any_text | st.sampled_from(["guides", "../..", "' OR 1=1", "*"]),
    path=st.none() | any_text | st.sampled_from(["guides/*", "[", "**/*", "*" * 400]),
)
def test_any_filter_gets_matching_hits_or_a_clear_error(
    nexus: Assistant, category: str | None, path: str | None
) -> None:
    try:
        hits = nexus.search("cache locking docker", k=5, category=category, path=path)
    except QueryError as exc:
        assert "must be text of at most 512 characters" in str(exc)
        odd = [v for v in (category, path) if v is not None and not is_plain_utf8(v)]
        assert odd or len(path or "") > MAX_FILTER_CHARS
        return
    check_hits(hits, 5)
    for hit in hits:
        assert category is None or hit.category == category


def is_plain_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"k": True}, "k must be a whole number"),
        ({"k": "5"}, "k must be a whole number"),
        ({"k": 2.5}, "k must be a whole number"),
        ({"k": 10**9}, "between 1 and 1000"),
        ({"category": "x" * (MAX_FILTER_CHARS + 1)}, "category must be text of at most"),
        ({"path": "*" * 100_000}, "path must be text of at most"),
        ({"category": ["guides"]}, "category must be text"),
        ({"mode": "<script>"}, "mode must be one of"),
    ],
)
def test_bad_parameters_are_clear_errors(nexus: Assistant, kwargs: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(QueryError, match=message):
        nexus.search("cache", **kwargs)


def test_a_100_kb_query_is_refused_at_once_with_the_limit(nexus: Assistant) -> None:
    query = "optimistic locking version column " * 3_000  # about 100 KB
    started = time.perf_counter()
    with pytest.raises(QueryError, match=r"101,999 characters long; the limit is 2,000"):
        nexus.search(query, k=3)
    assert time.perf_counter() - started < 0.5
    at_the_limit = query[:2_000]
    assert nexus.search(at_the_limit, k=3)[0].source == "guides/locking.md"


@pytest.fixture
def cli_index(nexus: Assistant, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr("assistant.search.assistant.load_encoder", lambda *_, **__: HashEncoder())
    return nexus.index.path.parent


@pytest.mark.parametrize(
    "query", ["x" * 2_000, "<script>alert(1)</script>", "'; DROP TABLE chunks; --", "🚀 кэш"]
)
def test_cli_answers_hostile_queries(
    cli_index: Path, capsys: pytest.CaptureFixture[str], query: str
) -> None:
    assert main(["search", query, "--index", str(cli_index), "-k", "2", "--json"]) == 0
    for line in capsys.readouterr().out.splitlines():
        assert json.loads(line)["rank"] in (1, 2)


def test_cli_reads_a_bounded_prefix_of_endless_stdin(
    cli_index: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    class Endless:
        """Stdin that never ends; reading it all would never return."""

        def read(self, size: int = -1) -> str:
            assert size > 0, "stdin must be read with a bound"
            return ("docker layers " * size)[:size]

    monkeypatch.setattr("sys.stdin", Endless())
    assert main(["search", "-", "--index", str(cli_index), "-k", "1", "--json"]) == 1
    assert "the limit is 2,000" in capsys.readouterr().err


def test_cli_refuses_an_over_long_query_with_the_limit(
    cli_index: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["search", "x" * 100_000, "--index", str(cli_index)]) == 1
    assert "100,000 characters long; the limit is 2,000" in capsys.readouterr().err


@pytest.mark.parametrize("query", ["", "   ", "\x00\x01\x02", "\u200b\u200b"])
def test_cli_empty_query_is_an_error_with_advice(
    cli_index: Path, capsys: pytest.CaptureFixture[str], query: str
) -> None:
    assert main(["search", query, "--index", str(cli_index)]) == 1
    assert "the question is empty; type a few words" in capsys.readouterr().err


# --------------------------------------------------------------------------- corpus files

SUFFIXES = [".md", ".rst", ".txt", ".html"]


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=3_000) | any_text.map(lambda t: t.encode("utf-8", "replace")))
def test_any_bytes_in_any_format_parse_or_skip_with_a_reason(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        parse_or_skip_in_every_format(Path(folder), data)


def parse_or_skip_in_every_format(root: Path, data: bytes) -> None:
    for suffix in SUFFIXES:
        path = root / f"doc{suffix}"
        path.write_bytes(data)
        try:
            doc = parse(read_file(root, path, max_bytes=10_000))
        except SkipFile as exc:
            assert str(exc)
            continue
        assert doc.source == f"doc{suffix}" and doc.sections
        lines = doc.text.count("\n") + 1
        for section in doc.sections:
            for block in section.blocks:
                assert 1 <= block.start_line <= block.end_line <= lines


ODD_NAMES = {
    "new\nline.md": "newline",
    "quote ' \" $HOME `x`.md": "quotes",
    "-rf --dash.md": "dash",
    "日本語 ファイル 🚀.md": "japanese",
    "\u202eevil.md": "bidi",
    "spaces   in  name.txt": "spaces",
}


@pytest.fixture
def hostile_corpus(corpus: Path, tmp_path: Path) -> Iterator[Path]:
    """The mini corpus plus every kind of file a build must survive."""
    (corpus / "blob.md").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + os.urandom(2_000))
    (corpus / "noise.txt").write_bytes(bytes(b for b in os.urandom(20_000) if b))  # no NUL byte
    (corpus / "latin.md").write_bytes("# Café\n\nLe café crème est prêt.\n".encode("latin-1"))
    with (corpus / "huge.md").open("wb") as fh:  # 100 MB of real text, far over the limit
        line = b"A very large generated page about nothing in particular. " * 16 + b"\n"
        for _ in range(100_000_000 // len(line) + 1):
            fh.write(line)
    os.symlink("loop-b.md", corpus / "loop-a.md")
    os.symlink("loop-a.md", corpus / "loop-b.md")
    os.symlink("nowhere.md", corpus / "dangling.md")
    os.symlink(corpus, corpus / "guides" / "back-to-root")  # a folder loop
    os.mkfifo(corpus / "pipe.md")  # reading it would block forever
    for name, word in ODD_NAMES.items():
        (corpus / name).write_text(f"# Odd {word}\n\nThe file name is odd: marker{word}.\n")
    (corpus / os.fsdecode(b"bad-\xff\xfe-name.md")).write_text("# Bad bytes\n\nbadbytesmarker\n")
    deep = corpus.joinpath("deep", *["d"] * 300)
    deep.mkdir(parents=True)
    (deep / "bottom.md").write_text("# Bottom\n\nThe deepest page: bottommarker.\n")
    # Past PATH_MAX (4096): the folder exists but cannot be listed by its path.
    too_long = corpus / "long"
    too_long.mkdir()
    fd = os.open(too_long, os.O_RDONLY)
    for _ in range(20):
        os.mkdir("n" * 250, dir_fd=fd)
        inner = os.open("n" * 250, os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = inner
    os.close(fd)
    yield corpus
    subprocess.run(["rm", "-rf", str(corpus)], check=False)  # shutil.rmtree recurses too deep


def test_hostile_corpus_builds_with_a_reason_for_each_skipped_file(
    hostile_corpus: Path, index_dir: Path
) -> None:
    started = time.perf_counter()
    report = build_index(hostile_corpus, index_dir, encoder=HashEncoder())
    assert time.perf_counter() - started < 30
    reasons = dict(report.skipped)
    assert reasons.pop("blob.md") == "binary file"
    assert reasons.pop("noise.txt").startswith("binary file")
    assert "larger than the 5.0 MB limit (100.0 MB)" in reasons.pop("huge.md")
    assert "Too many levels of symbolic links" in reasons.pop("loop-a.md")
    assert "Too many levels of symbolic links" in reasons.pop("loop-b.md")
    assert reasons.pop("dangling.md") == "broken symbolic link to nowhere.md"
    assert reasons.pop("bad-\\xff\\xfe-name.md").startswith("file name is not valid UTF-8")
    [(folder, why)] = reasons.items()
    assert folder.startswith("long/nnn") and "File name too long" in why
    assert report.warnings == [("latin.md", "not valid UTF-8; decoded as cp1252 (best guess)")]

    nexus = Assistant.load(index_dir, encoder=HashEncoder())
    sources = {d.source for d in nexus.index.db.documents()}
    assert {"guides/locking.md", "latin.md", "new\nline.md", "日本語 ファイル 🚀.md"} <= sources
    assert "deep/" + "d/" * 300 + "bottom.md" in sources
    for name, marker in ODD_NAMES.items():
        assert nexus.search(f"marker{marker}", k=1, mode="keyword")[0].source == name
    assert not any("back-to-root" in s for s in sources), "a folder loop is visited once"


def test_cli_build_prints_every_skipped_file(hostile_corpus: Path, index_dir: Path) -> None:
    from tests.test_build import run_cli_build

    result = run_cli_build(hostile_corpus, index_dir)
    err = result.stderr.decode("utf-8", "replace")
    assert result.returncode == 0, err[-2000:]
    assert "skipped bad-\\xff\\xfe-name.md: file name is not valid UTF-8" in err
    assert "skipped huge.md: larger than" in err
    assert "8 files skipped" in result.stdout.decode()


def test_files_that_vanish_during_a_build_are_skipped_and_the_rest_indexed(
    corpus: Path, index_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import assistant.build

    real_discover = assistant.build.discover

    def discover_then_delete(*args, **kwargs):  # type: ignore[no-untyped-def]
        found = real_discover(*args, **kwargs)
        (corpus / "guides" / "caching.md").unlink()  # gone between listing and reading
        return found

    real_scandir = os.scandir

    def scandir_racing_a_delete(path):  # type: ignore[no-untyped-def]
        if isinstance(path, Path) and path.name == "reference":
            shutil.rmtree(path)  # the folder vanishes as it is about to be listed
        return real_scandir(path)

    monkeypatch.setattr(assistant.build, "discover", discover_then_delete)
    monkeypatch.setattr(os, "scandir", scandir_racing_a_delete)
    report = build_index(corpus, index_dir, encoder=HashEncoder())
    assert dict(report.skipped) == {
        "guides/caching.md": "file vanished before it could be read",
        "reference/": "cannot read folder (No such file or directory)",
    }
    assert report.documents == 2  # guides/locking.md and notes.txt
    hits = Assistant.load(index_dir, encoder=HashEncoder()).search("optimistic locking", k=1)
    assert hits[0].source == "guides/locking.md"
