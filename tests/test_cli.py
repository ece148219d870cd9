from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from assistant import build_index
from assistant.cli import main
from assistant.testing import HashEncoder

REPO = Path(__file__).parent.parent


@pytest.fixture
def built(corpus: Path, index_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An index built with the fake encoder, which the CLI then loads by its name."""
    build_index(corpus, index_dir, encoder=HashEncoder())
    monkeypatch.setattr(
        "assistant.search.assistant.load_encoder", lambda settings, name, **_: HashEncoder()
    )
    return index_dir


def test_info_warns_when_the_corpus_changed(
    built: Path, corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (corpus / "guides" / "locking.md").write_text("# Locking\n\nChanged.\n")
    assert main(["info", "--index", str(built), "--corpus", str(corpus)]) == 0
    out = capsys.readouterr().out
    assert "1 modified (guides/locking.md)" in out and "run `nexus build --corpus" in out


def test_search_prints_json_lines(built: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        ["search", "optimistic locking version column", "--index", str(built), "-k", "2", "--json"]
    )
    lines = capsys.readouterr().out.strip().splitlines()
    assert code == 0 and len(lines) == 2
    first = json.loads(lines[0])
    assert first["source"] == "guides/locking.md" and first["rank"] == 1
    assert first["heading_path"].startswith("Optimistic Locking")


def test_search_plain_output_names_sources(built: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The fake encoder's vectors carry no meaning, so the query names the page's own words.
    query = "multi-stage Dockerfile builder stage slim runtime image"
    assert main(["search", query, "--index", str(built), "--category", "reference"]) == 0
    out = capsys.readouterr().out
    assert "[1] Docker Images" in out and "reference/docker.md:" in out


def test_search_reads_the_query_from_stdin(
    built: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("preflight OPTIONS request\n"))
    assert main(["search", "-", "--index", str(built), "-k", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["source"] == "reference/cors.html"


def test_info_describes_the_index(built: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "--index", str(built)]) == 0
    out = capsys.readouterr().out
    assert "hash-encoder (64 dimensions)" in out and "documents   6" in out
    assert "corpus" in out and "up to date" in out
    assert "keyword     BM25 k1=1.2 b=0.75, code names split: none\n" in out
    assert main(["info", "--index", str(built), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["chunks"] >= 6


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["search", "anything", "--index", "missing"], "no index in missing; build one with"),
        (["info", "--index", "missing"], "no index in missing"),
        (
            ["build", "--corpus", "nowhere", "--index", "x"],
            "Corpus folder 'nowhere' does not exist",
        ),
        (["search", "q", "--mode", "fuzzy"], "Invalid value for '--mode'"),
    ],
)
def test_errors_exit_1_with_a_message_on_stderr(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(argv)
    captured = capsys.readouterr()
    assert code in (1, 2) and message in captured.err and captured.out == ""


def test_empty_query_is_an_error(built: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["search", "   ", "--index", str(built)]) == 1
    assert "the question is empty" in capsys.readouterr().err


def test_build_script_help_runs_as_a_program() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "build_index.py"), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert result.returncode == 0 and "--corpus" in result.stdout and "--full" in result.stdout
