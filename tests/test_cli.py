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


# ``nexus`` in a child process with the fake encoder in place of the model.
CLI_WITH_FAKE_MODEL = (
    "import sys, assistant.encoders as e, assistant.build as b; "
    "from assistant.testing import HashEncoder; "
    "e.load_encoder = b.load_encoder = lambda *a, **kw: HashEncoder(); "
    "from assistant.cli import main; sys.exit(main(sys.argv[1:]))"
)


def test_build_watch_updates_on_every_change_until_ctrl_c(corpus: Path, index_dir: Path) -> None:
    import signal
    import time

    command = [sys.executable, "-c", CLI_WITH_FAKE_MODEL, "build", "--watch", "--quiet"]
    child = subprocess.Popen(
        [*command, "--corpus", str(corpus), "--index", str(index_dir)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # As in a terminal, whether or not these tests run in the background (which ignores
        # Ctrl-C for everything started from there).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        assert child.stderr is not None and child.stdout is not None
        line = child.stderr.readline()
        while "watching" not in line:  # the first build, then the watch begins
            assert line, "the command ended before watching"
            line = child.stderr.readline()
        time.sleep(0.5)
        (corpus / "guides" / "queues.md").write_text("# Queues\n\nCelery workers.\n")
        deadline = time.monotonic() + 60
        while not (index_dir / "CURRENT").exists() or len(list(index_dir.glob("gen-*"))) < 2:
            assert time.monotonic() < deadline, "no second build"
            time.sleep(0.1)
        time.sleep(0.5)
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 0, err
    builds = [line for line in out.splitlines() if "build of" in line]
    assert len(builds) == 2 and "(1 read anew, 0 removed)" in builds[1]
    assert "stopped watching" in err


def test_serve_takes_watch_and_collections_from_flags_and_the_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import assistant.web.server as server

    calls: list[dict[str, object]] = []
    monkeypatch.setattr(server, "serve", lambda settings, **kwargs: calls.append(kwargs))
    monkeypatch.delenv("NEXUS_AUTH_USER", raising=False)
    monkeypatch.delenv("NEXUS_AUTH_PASSWORD", raising=False)
    assert main(["serve", "--watch", "--collection", "hub=index", "--collection", "dj=/d"]) == 0
    assert calls[-1]["watch"] is True
    assert calls[-1]["collections"] == {"hub": Path("index"), "dj": Path("/d")}
    monkeypatch.setenv("NEXUS_COLLECTIONS", "hub=index,dj=/srv/dj")
    assert main(["serve"]) == 0
    assert calls[-1]["watch"] is False
    assert calls[-1]["collections"] == {"hub": Path("index"), "dj": Path("/srv/dj")}
    assert main(["serve", "--index", "other"]) == 1
    assert "with --collection, each index is updated from the corpus" in capsys.readouterr().err
    monkeypatch.setenv("NEXUS_COLLECTIONS", "nameless")
    assert main(["serve"]) == 1
    assert "a collection is NAME=INDEX_DIR" in capsys.readouterr().err
