from __future__ import annotations

import os
import subprocess
import sys
import textwrap
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
from assistant.store import open_index
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


def test_unwritable_index_folder_is_a_clear_error_and_the_old_index_survives(
    corpus: Path, index_dir: Path, encoder: HashEncoder, settings, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    build_index(corpus, index_dir, settings=settings, encoder=encoder)
    before = open_index(index_dir).manifest.generation

    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("assistant.store.np.save", disk_full)
    (corpus / "new.md").write_text("# New\n\nfresh text\n")
    with pytest.raises(
        IndexWriteError, match=r"No space left on device.*previous index is unchanged"
    ):
        build_index(corpus, index_dir, settings=settings, encoder=encoder)
    assert open_index(index_dir).manifest.generation == before
    assert not list(index_dir.glob(".tmp-*"))


KILL_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    import assistant.store as store
    from assistant import build_index, Settings
    from assistant.testing import HashEncoder
    from assistant.embedding import PROBE_TEXT

    corpus, index, stage = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    settings = Settings(chunk_tokens=120, chunk_overlap=16, min_chunk_tokens=24)

    def die(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)

    targets = {
        "embed": (HashEncoder, "encode"),
        "write": (store.IndexWriter, "_write_db"),
        "publish": (store.os, "replace"),
    }
    owner, name = targets[stage]
    encoder = HashEncoder()
    if stage == "embed":
        original = HashEncoder.encode
        HashEncoder.encode = lambda self, texts, **kw: (
            original(self, texts, **kw) if list(texts) == [PROBE_TEXT] else die()
        )
    else:
        setattr(owner, name, die)
    build_index(corpus, index, settings=settings, encoder=encoder)
    """
)


@pytest.mark.parametrize("stage", ["embed", "write", "publish"])
def test_a_build_killed_midway_leaves_the_old_index_answering(
    corpus: Path, index_dir: Path, encoder: HashEncoder, settings, stage: str
) -> None:  # type: ignore[no-untyped-def]
    build_index(corpus, index_dir, settings=settings, encoder=encoder)
    before = open_index(index_dir).manifest.generation
    (corpus / "guides" / "extra.md").write_text("# Extra\n\nA brand new page about queues.\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-c", KILL_SCRIPT, str(corpus), str(index_dir), stage],
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert result.returncode == -9, result.stderr.decode()[-2000:]
    nexus = Assistant.load(index_dir, encoder=encoder)
    assert nexus.manifest.generation == before
    assert nexus.search("optimistic locking version column", k=1)[0].source == "guides/locking.md"
    report = build_index(corpus, index_dir, settings=settings, encoder=encoder)
    assert report.documents == 7 and not list(index_dir.glob(".tmp-*"))


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
