from __future__ import annotations

import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path

import pytest

from assistant import (
    Assistant,
    CorpusNotFoundError,
    EmptyCorpusError,
    IndexMismatchError,
    IndexWriteError,
    build_index,
)
from assistant.stores import open_index
from assistant.testing import HashEncoder

REPO = Path(__file__).parent.parent


def test_first_build_embeds_everything_and_reports_counts(
    corpus: Path, index_dir: Path, encoder: HashEncoder, settings
) -> None:  # type: ignore[no-untyped-def]
    report = build_index(corpus, index_dir, settings=settings, encoder=encoder)
    assert report.documents == 6 and report.full
    assert report.embedded == report.chunks > 6 and report.reused == 0
    assert report.skipped == []
    stages = {"scan", "model", "read", "parse", "tokenize", "chunk", "reuse", "embed"}
    stages |= {"dense", "keyword", "write"}
    assert stages | {"total"} == set(report.seconds)
    assert sum(report.seconds[s] for s in stages) <= report.seconds["total"] + 0.01
    assert "6 documents" in report.summary()


def test_unchanged_rebuild_reuses_every_vector(
    corpus: Path, index_dir: Path, encoder: HashEncoder, settings
) -> None:  # type: ignore[no-untyped-def]
    first = build_index(corpus, index_dir, settings=settings, encoder=encoder)
    calls = encoder.texts_encoded
    second = build_index(corpus, index_dir, settings=settings, encoder=encoder)
    assert (second.embedded, second.reused, second.chunks) == (0, first.chunks, first.chunks)
    assert encoder.texts_encoded == calls + 1  # only the probe text
    assert not second.full


def test_each_build_records_the_documents_it_took_in_and_dropped(
    corpus: Path, index_dir: Path, encoder: HashEncoder, settings
) -> None:  # type: ignore[no-untyped-def]
    first = build_index(corpus, index_dir, settings=settings, encoder=encoder)
    assert len(first.changes.added) == first.taken_in == 6 and not first.changes.removed
    (corpus / "guides" / "caching.md").rename(corpus / "guides" / "caches.md")
    page = corpus / "guides" / "locking.md"
    page.write_text(page.read_text() + "\nOne more line about locks.\n")
    report = build_index(corpus, index_dir, settings=settings, encoder=encoder)
    assert report.changes.added == ["guides/caches.md"]
    assert report.changes.modified == ["guides/locking.md"]
    assert report.changes.removed == ["guides/caching.md"]
    assert "2 read anew, 1 removed" in report.summary()
    manifest = open_index(index_dir).manifest
    assert manifest.changes == {"added": 1, "modified": 1, "removed": 1}


def test_editing_one_section_re_embeds_only_that_chunk(
    corpus: Path, index_dir: Path, encoder: HashEncoder, settings
) -> None:  # type: ignore[no-untyped-def]
    first = build_index(corpus, index_dir, settings=settings, encoder=encoder)
    page = corpus / "guides" / "locking.md"
    page.write_text(page.read_text().replace("instead of failing", "instead of erroring out"))
    report = build_index(corpus, index_dir, settings=settings, encoder=encoder)
    assert report.embedded == 1 and report.reused == first.chunks - 1
    hits = Assistant.load(index_dir, encoder=encoder).search("erroring out", k=1)
    assert "instead of erroring out" in hits[0].text


def test_deleted_document_disappears_and_new_one_appears(
    corpus: Path, index_dir: Path, encoder: HashEncoder, settings
) -> None:  # type: ignore[no-untyped-def]
    build_index(corpus, index_dir, settings=settings, encoder=encoder)
    (corpus / "guides" / "caching.md").unlink()
    (corpus / "guides" / "queues.md").write_text("# Queues\n\nCelery workers consume tasks.\n")
    report = build_index(corpus, index_dir, settings=settings, encoder=encoder)
    nexus = Assistant.load(index_dir, encoder=encoder)
    sources = {hit.source for hit in nexus.search("cache aside invalidation redis", k=20)}
    assert "guides/caching.md" not in sources
    assert report.documents == 6
    assert nexus.search("celery workers", k=1)[0].source == "guides/queues.md"


def test_full_rebuild_re_embeds_everything(
    corpus: Path, index_dir: Path, encoder: HashEncoder, settings
) -> None:  # type: ignore[no-untyped-def]
    first = build_index(corpus, index_dir, settings=settings, encoder=encoder)
    again = build_index(corpus, index_dir, settings=settings, encoder=encoder, full=True)
    assert again.embedded == first.chunks and again.full


def test_changing_the_model_re_embeds_and_loading_with_the_old_one_fails(
    corpus: Path, index_dir: Path, settings
) -> None:  # type: ignore[no-untyped-def]
    build_index(corpus, index_dir, settings=settings, encoder=HashEncoder(name="model-a"))
    other = HashEncoder(name="model-b", dim=32)
    report = build_index(corpus, index_dir, settings=settings, encoder=other)
    assert report.reused == 0 and report.full
    with pytest.raises(IndexMismatchError, match=r"'model-b'.*'model-a'"):
        Assistant.load(index_dir, encoder=HashEncoder(name="model-a"))
    with pytest.raises(IndexMismatchError, match="built with 'model-b' but 'model-c'"):
        Assistant.load(index_dir, model="model-c")


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("blob.md", b"\x00\x01\x02binary", "binary"),
        ("empty.md", b"   \n", "empty"),
        ("huge.md", b"# Big\n\n" + b"word " * 3000, "larger than"),
    ],
)
def test_bad_files_are_skipped_with_a_reason_and_the_rest_indexed(
    corpus: Path, index_dir: Path, encoder: HashEncoder, name: str, content: bytes, reason: str
) -> None:
    from assistant import Settings

    (corpus / name).write_bytes(content)
    report = build_index(
        corpus, index_dir, settings=Settings(max_file_bytes=10_000), encoder=encoder
    )
    assert report.documents == 6
    [(source, why)] = report.skipped
    assert source == name and reason in why


def test_invalid_utf8_is_repaired_with_a_warning(
    corpus: Path, index_dir: Path, encoder: HashEncoder, settings
) -> None:  # type: ignore[no-untyped-def]
    (corpus / "latin.md").write_bytes("# Café\n\nLe café est prêt à servir.\n".encode("latin-1"))
    report = build_index(corpus, index_dir, settings=settings, encoder=encoder)
    assert report.documents == 7
    assert [source for source, _ in report.warnings] == ["latin.md"]
    hit = Assistant.load(index_dir, encoder=encoder).search("café prêt", k=1)[0]
    assert hit.source == "latin.md" and "café" in hit.text


def test_missing_or_empty_corpus_is_a_clear_error(tmp_path: Path, encoder: HashEncoder) -> None:
    with pytest.raises(CorpusNotFoundError, match="does not exist"):
        build_index(tmp_path / "nope", tmp_path / "index", encoder=encoder)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "image.png").write_bytes(b"\x89PNG")
    with pytest.raises(EmptyCorpusError, match="no indexable text"):
        build_index(tmp_path / "empty", tmp_path / "index", encoder=encoder)
    assert not (tmp_path / "index" / "CURRENT").exists()


def test_index_inside_the_corpus_is_not_indexed(corpus: Path, encoder: HashEncoder) -> None:
    build_index(corpus, corpus / "index", encoder=encoder)
    report = build_index(corpus, corpus / "index", encoder=encoder)
    assert report.documents == 6


def no_space(*args: object, **kwargs: object) -> None:
    raise OSError(28, "No space left on device")


def faiss_write_failure(*args: object, **kwargs: object) -> None:
    raise RuntimeError(
        "Error in void faiss::FileIOWriter::operator()(...) at FileIO.cpp:90: fwrite failed\n"
        "  (C++ trace)"
    )


@pytest.mark.parametrize(
    ("target", "failure", "message"),
    [
        ("assistant.stores.vectors.np.save", no_space, "No space left on device"),
        ("assistant.stores.vectors.FaissStore.save", faiss_write_failure, r"fwrite failed\)"),
    ],
)
def test_write_errors_are_clear_and_the_old_index_survives(
    corpus: Path,
    index_dir: Path,
    encoder: HashEncoder,
    settings,
    monkeypatch,
    target,
    failure,
    message,
) -> None:  # type: ignore[no-untyped-def]
    build_index(corpus, index_dir, settings=settings, encoder=encoder)
    before = open_index(index_dir).manifest.generation
    monkeypatch.setattr(target, failure)
    (corpus / "new.md").write_text("# New\n\nfresh text\n")
    with pytest.raises(IndexWriteError, match=message + r".*previous index is unchanged"):
        build_index(corpus, index_dir, settings=settings, encoder=encoder)
    assert open_index(index_dir).manifest.generation == before
    assert not list(index_dir.glob(".tmp-*"))


CLI_BUILD = (
    "import sys, assistant.build as b; from assistant.testing import HashEncoder; "
    "dim = int(sys.argv.pop()); b.load_encoder = lambda *a, **kw: HashEncoder(dim=dim); "
    "from assistant.cli import main; sys.exit(main(sys.argv[1:]))"
)


def run_cli_build(
    corpus: Path, index_dir: Path, *, dim: int = 64, prefix: Sequence[str] = (), preexec=None
) -> subprocess.CompletedProcess:  # type: ignore[no-untyped-def, type-arg]
    """``nexus build`` in a child process, the way a person runs it, with the fake encoder."""
    command = [sys.executable, "-c", CLI_BUILD, "build", "--corpus", str(corpus)]
    return subprocess.run(
        [*prefix, *command, "--index", str(index_dir), "--quiet", str(dim)],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        timeout=120,
        preexec_fn=preexec,
    )


def file_size_limit(limit: int):  # type: ignore[no-untyped-def]
    """A child process whose files cannot grow past ``limit`` bytes, as on a full disk."""

    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail the write instead of the process
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


@pytest.mark.parametrize(
    ("page_bytes", "dim", "limit", "failure"),
    [
        (120_000, 64, 60_000, "chunks.sqlite of the new index failed (disk I/O error"),
        (100, 4096, 80_000, "vectors.npy of the new index failed ("),  # 4096 floats per chunk
    ],
)
def test_a_full_disk_while_writing_is_a_clear_error_and_the_old_index_survives(
    corpus: Path,
    index_dir: Path,
    encoder: HashEncoder,
    page_bytes: int,
    dim: int,
    limit: int,
    failure: str,
) -> None:
    assert run_cli_build(corpus, index_dir).returncode == 0
    before = open_index(index_dir).manifest.generation
    page = "A long page about disk quotas. "
    (corpus / "big.md").write_text("# Big\n\n" + page * (page_bytes // len(page)))
    result = run_cli_build(corpus, index_dir, dim=dim, preexec=file_size_limit(limit))
    err = result.stderr.decode()
    assert result.returncode == 1, err[-2000:]
    assert f"Error: writing {failure}" in err
    assert "the previous index is unchanged" in err and "Traceback" not in err
    nexus = Assistant.load(index_dir, encoder=encoder)
    assert nexus.manifest.generation == before
    assert nexus.search("optimistic locking version column", k=1)[0].source == "guides/locking.md"
    assert not list(index_dir.glob(".tmp-*"))
    assert run_cli_build(corpus, index_dir, dim=dim).returncode == 0  # once there is room


# Root ignores file modes; dropping the capabilities that let it do so makes them count.
UNPRIVILEGED = ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner"]


@pytest.mark.skipif(
    os.geteuid() == 0 and not shutil.which("setpriv"), reason="root needs setpriv to obey modes"
)
def test_a_read_only_index_folder_is_a_clear_error_and_the_old_index_survives(
    corpus: Path, index_dir: Path, encoder: HashEncoder
) -> None:
    assert run_cli_build(corpus, index_dir).returncode == 0
    before = open_index(index_dir).manifest.generation
    (corpus / "new.md").write_text("# New\n\nfresh text\n")
    index_dir.chmod(0o555)
    try:
        result = run_cli_build(corpus, index_dir, prefix=UNPRIVILEGED if os.geteuid() == 0 else ())
    finally:
        index_dir.chmod(0o755)
    err = result.stderr.decode()
    assert result.returncode == 1, err[-2000:]
    assert f"Error: cannot write the index in {index_dir}" in err and "Permission denied" in err
    nexus = Assistant.load(index_dir, encoder=encoder)
    assert nexus.manifest.generation == before and nexus.search("locking", k=1)


KILL_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    import numpy as np
    import assistant.build as build
    import assistant.ingest.parsing as parsing
    import assistant.stores as stores
    import assistant.stores.generations as generations
    from assistant.stores.keyword import KeywordIndex
    from assistant.stores.vectors import FaissStore
    from assistant import build_index, Settings
    from assistant.testing import HashEncoder
    from assistant.encoders import PROBE_TEXT

    corpus, index, target = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    settings = Settings(chunk_tokens=120, chunk_overlap=16, min_chunk_tokens=24)
    # Each build stage, as the function that starts it, and which calls of it count.
    stages = {
        "parse": (parsing, "parse", None),
        "chunk": (build, "chunk_document", None),
        "embed": (HashEncoder, "encode", lambda self, texts, **kw: list(texts) != [PROBE_TEXT]),
        "dense": (FaissStore, "build", None),
        "keyword": (KeywordIndex, "build", None),
        "write": (stores, "write_chunk_db", None),
        "vectors": (np, "save", None),
        "fsync": (generations, "_fsync_tree", None),
        "publish": (generations.os, "replace", lambda src, dst: Path(dst).name == "CURRENT"),
        "prune": (generations, "_prune_generations", None),
    }
    calls = 0
    # "stage:NAME" dies when that stage starts; "nth:N" dies at the Nth call of any stage.
    kind, _, value = target.partition(":")

    def instrument(name, owner, attr, counts):
        original = getattr(owner, attr)

        def wrapper(*args, **kwargs):
            global calls
            if counts is None or counts(*args, **kwargs):
                calls += 1
                if (kind == "stage" and value == name) or (kind == "nth" and calls == int(value)):
                    os.kill(os.getpid(), signal.SIGKILL)
            return original(*args, **kwargs)

        setattr(owner, attr, wrapper)

    for name, (owner, attr, counts) in stages.items():
        instrument(name, owner, attr, counts)
    build_index(corpus, index, settings=settings, encoder=HashEncoder())
    print(calls)
    """
)
STAGES = ["parse", "chunk", "embed", "dense", "keyword", "write", "vectors", "fsync", "publish"]


def run_build_killed_at(corpus: Path, index_dir: Path, target: str) -> subprocess.CompletedProcess:  # type: ignore[type-arg]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-c", KILL_SCRIPT, str(corpus), str(index_dir), target],
        env=env,
        capture_output=True,
        timeout=120,
    )


def assert_old_index_serves_and_next_build_completes(
    corpus: Path, index_dir: Path, encoder: HashEncoder, settings: object, before: str
) -> None:
    nexus = Assistant.load(index_dir, encoder=encoder)
    assert nexus.manifest.generation == before
    assert nexus.search("optimistic locking version column", k=1)[0].source == "guides/locking.md"
    assert nexus.search("brand new page about queues", k=1)[0].source != "guides/extra.md"
    report = build_index(corpus, index_dir, settings=settings, encoder=encoder)  # type: ignore[arg-type]
    assert report.documents == 7 and not list(index_dir.glob(".tmp-*"))
    assert sorted(p.name for p in index_dir.glob("gen-*")) == [before, report.generation]
    assert nexus.reload_if_changed()
    assert nexus.search("brand new page about queues", k=1)[0].source == "guides/extra.md"


@pytest.fixture
def served(corpus: Path, index_dir: Path, encoder: HashEncoder, settings) -> str:  # type: ignore[no-untyped-def]
    """An index is built and served; then the corpus gains a page the next build will add."""
    build_index(corpus, index_dir, settings=settings, encoder=encoder)
    (corpus / "guides" / "extra.md").write_text("# Extra\n\nA brand new page about queues.\n")
    return open_index(index_dir).manifest.generation


@pytest.mark.parametrize("stage", STAGES)
def test_a_build_killed_at_any_stage_leaves_the_old_index_answering(
    corpus: Path, index_dir: Path, encoder: HashEncoder, settings, served: str, stage: str
) -> None:  # type: ignore[no-untyped-def]
    result = run_build_killed_at(corpus, index_dir, f"stage:{stage}")
    assert result.returncode == -9, result.stderr.decode()[-2000:]
    assert_old_index_serves_and_next_build_completes(corpus, index_dir, encoder, settings, served)


def test_a_build_killed_after_publishing_serves_the_new_index(
    corpus: Path, index_dir: Path, encoder: HashEncoder, served: str
) -> None:
    result = run_build_killed_at(corpus, index_dir, "stage:prune")
    assert result.returncode == -9, result.stderr.decode()[-2000:]
    nexus = Assistant.load(index_dir, encoder=encoder)
    assert nexus.manifest.generation != served and nexus.manifest.documents == 7
    assert nexus.search("brand new page about queues", k=1)[0].source == "guides/extra.md"


def build_calls(corpus: Path, index_dir: Path) -> int:
    """How many stage starts the next build counts, from a run on a copy that is not killed."""
    scratch = index_dir.parent / "count-index"
    shutil.copytree(index_dir, scratch)
    result = run_build_killed_at(corpus, scratch, "nth:0")
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    shutil.rmtree(scratch)
    return int(result.stdout.split()[-1])


@pytest.mark.parametrize(
    "seed", [0, 1, 2, *(pytest.param(s, marks=pytest.mark.slow) for s in range(3, 40))]
)
def test_a_build_killed_at_a_random_point_never_breaks_the_index(
    corpus: Path, index_dir: Path, encoder: HashEncoder, settings, served: str, seed: int
) -> None:  # type: ignore[no-untyped-def]
    total = build_calls(corpus, index_dir)
    point = random.Random(seed).randint(1, total - 1)  # the last call, pruning, is after publishing
    result = run_build_killed_at(corpus, index_dir, f"nth:{point}")
    assert result.returncode == -9, f"point {point} of {total}: {result.stderr.decode()[-2000:]}"
    assert_old_index_serves_and_next_build_completes(corpus, index_dir, encoder, settings, served)


def test_corpus_changes_since_the_build(
    corpus: Path, index_dir: Path, encoder: HashEncoder, settings
) -> None:  # type: ignore[no-untyped-def]
    from assistant import corpus_changes

    build_index(corpus, index_dir, settings=settings, encoder=encoder)
    assert not corpus_changes(corpus, index_dir).stale
    (corpus / "notes.txt").write_text("Rewritten notes about log aggregation.\n")
    (corpus / "guides" / "new.md").write_text("# New\n\nA new page.\n")
    (corpus / "guides" / "caching.md").unlink()
    (corpus / "blob.md").write_bytes(b"\x00binary")  # skipped by builds, so not "added"
    changes = corpus_changes(corpus, index_dir)
    assert (changes.added, changes.modified, changes.removed) == (
        ["guides/new.md"],
        ["notes.txt"],
        ["guides/caching.md"],
    )
    assert changes.summary().startswith("changed since the build: 1 added (guides/new.md)")
    build_index(corpus, index_dir, settings=settings, encoder=encoder)
    assert corpus_changes(corpus, index_dir).summary() == "up to date"


class DriftedEncoder(HashEncoder):
    """Same name and size as HashEncoder, different vectors: an upgraded model package."""

    def _word_vector(self, word: str):  # type: ignore[no-untyped-def]
        return super()._word_vector(word + "~")


def test_same_model_name_with_different_weights_is_caught(
    corpus: Path, index_dir: Path, encoder: HashEncoder, settings
) -> None:  # type: ignore[no-untyped-def]
    first = build_index(corpus, index_dir, settings=settings, encoder=encoder)
    with pytest.raises(IndexMismatchError, match="now embeds text differently"):
        Assistant.load(index_dir, encoder=DriftedEncoder())
    report = build_index(corpus, index_dir, settings=settings, encoder=DriftedEncoder())
    assert report.embedded == first.chunks and report.reused == 0
    assert Assistant.load(index_dir, encoder=DriftedEncoder()).search("locking", k=1)
