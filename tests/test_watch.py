"""Keeping an index in step with its corpus: the real watcher (inotify), one build at a time."""

from __future__ import annotations

import queue
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import assistant.watch as watch_module
from assistant import Assistant, Settings, build_index
from assistant.ingest.files import affects_corpus
from assistant.testing import HashEncoder
from assistant.watch import IndexUpdater, UpdateRunning, corpus_bursts

TIMEOUT = 30.0  # seconds: generous, the machine may be busy


def eventually(check: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("the condition did not come true in time")
        time.sleep(0.05)


@pytest.fixture
def kept(corpus: Path, index_dir: Path) -> Iterator[IndexUpdater]:
    """An index of the mini corpus with an updater watching the corpus in the background."""
    encoder = HashEncoder()
    settings = Settings(
        corpus_dir=corpus, index_dir=index_dir, chunk_tokens=120, min_chunk_tokens=24
    )
    build_index(corpus, index_dir, settings=settings, encoder=encoder)
    updater = IndexUpdater(settings, encoder=encoder)
    updater.start()
    eventually(lambda: updater.state().watching)
    time.sleep(0.3)  # inotify watches are in place once the first wait has begun
    try:
        yield updater
    finally:
        updater.stop()


def sources_for(updater: IndexUpdater, query: str) -> set[str]:
    nexus = Assistant.load(updater.settings.index_dir, encoder=HashEncoder())
    try:
        return {hit.source for hit in nexus.search(query, k=3, mode="keyword")}
    finally:
        nexus.index.close()


@pytest.mark.parametrize(
    ("relative", "deleted", "counts"),
    [
        ("guides/new.md", False, True),
        ("guides/new.rst", False, True),
        ("guides/.new.md.swp", False, False),  # an editor's swap file
        ("guides/new.md~", False, False),  # an editor's backup
        (".git/index", False, False),
        ("node_modules/pkg/readme.md", False, False),
        ("_build/html/index.html", False, False),
        ("guides/picture.png", False, False),
        ("guides/gone", True, True),  # a deleted path may have been a folder of documents
        (".cache/gone", True, False),
    ],
)
def test_only_changes_a_build_would_read_count(
    tmp_path: Path, relative: str, deleted: bool, counts: bool
) -> None:
    assert affects_corpus(tmp_path, tmp_path / relative, deleted=deleted) is counts


def test_a_renamed_folder_counts_and_a_skipped_one_does_not(tmp_path: Path) -> None:
    (tmp_path / "howtos").mkdir()
    (tmp_path / "build").mkdir()
    assert affects_corpus(tmp_path, tmp_path / "howtos")
    assert not affects_corpus(tmp_path, tmp_path / "build")
    assert not affects_corpus(tmp_path, Path("/elsewhere/guide.md"))


def test_the_watcher_ignores_what_no_build_reads_and_reports_what_it_does(
    tmp_path: Path,
) -> None:
    corpus = tmp_path / "corpus"
    (corpus / "index").mkdir(parents=True)
    stop, bursts = threading.Event(), queue.Queue[int]()

    def run() -> None:
        for size in corpus_bursts(corpus, stop, exclude=corpus / "index"):
            bursts.put(size)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        time.sleep(0.5)
        (corpus / ".draft.md.swp").write_text("swap")
        (corpus / "notes.tmp").write_text("scratch")
        (corpus / "index" / "CURRENT").write_text("gen-1")  # an index kept inside the corpus
        with pytest.raises(queue.Empty):
            bursts.get(timeout=1.5)
        (corpus / "guide.md").write_text("# Guide\n\nText.\n")
        assert bursts.get(timeout=TIMEOUT) >= 1
    finally:
        stop.set()
        thread.join(TIMEOUT)
    assert not thread.is_alive()  # stop ends the watch


def test_a_corpus_folder_made_anew_is_watched_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(watch_module, "CHECK_EVERY_MS", 200)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    stop, bursts = threading.Event(), queue.Queue[int]()
    thread = threading.Thread(
        target=lambda: [bursts.put(n) for n in corpus_bursts(corpus, stop)], daemon=True
    )
    thread.start()
    try:
        time.sleep(0.5)
        shutil.rmtree(corpus)
        corpus.mkdir()
        while True:  # the removal and the new folder may come as bursts of their own
            try:
                bursts.get(timeout=2)
            except queue.Empty:
                break
        (corpus / "guide.md").write_text("# Guide\n\nText.\n")
        assert bursts.get(timeout=TIMEOUT) >= 1  # the new folder is watched
    finally:
        stop.set()
        thread.join(TIMEOUT)


def test_a_save_is_indexed_and_unchanged_saves_build_nothing(kept: IndexUpdater) -> None:
    page = kept.corpus_dir / "guides" / "caching.md"
    page.write_text(page.read_text() + "\nZanzibar notes on cache stampedes.\n")
    eventually(lambda: "guides/caching.md" in sources_for(kept, "zanzibar"))
    eventually(lambda: not kept.state().building)  # published, and the update has returned
    state = kept.state()
    assert state.builds == 1 and state.problem is None and state.last_change
    assert state.report is not None and state.report.changes.modified == ["guides/caching.md"]
    page.write_text(page.read_text())  # saved again, same bytes
    time.sleep(watch_module.QUIET_MS / 1000 + 1.0)
    eventually(lambda: not kept.state().building)
    assert kept.state().builds == 1


def test_fifty_saves_in_a_second_make_at_most_two_builds(kept: IndexUpdater) -> None:
    page = kept.corpus_dir / "guides" / "locking.md"
    original = page.read_text()
    for i in range(50):
        page.write_text(f"{original}\nSave number {i} of the burst, word burst{i}.\n")
        time.sleep(0.02)
    eventually(lambda: "guides/locking.md" in sources_for(kept, "burst49"))
    time.sleep(watch_module.QUIET_MS / 1000 + 1.5)  # anything still pending would start now
    eventually(lambda: not kept.state().building)
    assert 1 <= kept.state().builds <= 2


def test_a_failed_build_is_recorded_and_the_old_index_kept(kept: IndexUpdater) -> None:
    for path in kept.corpus_dir.rglob("*"):
        if path.is_file():
            path.unlink()
    eventually(lambda: kept.state().problem is not None)
    state = kept.state()
    assert "no indexable text" in (state.problem or "") and state.failed and state.builds == 0
    assert "guides/caching.md" in sources_for(kept, "cache invalidation")  # still served
    (kept.corpus_dir / "back.md").write_text("# Back\n\nPhoenix pages return.\n")
    eventually(lambda: kept.state().builds == 1)
    assert kept.state().problem is None
    assert sources_for(kept, "phoenix") == {"back.md"}


def test_a_second_build_is_refused_while_one_runs(corpus: Path, index_dir: Path) -> None:
    updater = IndexUpdater(Settings(corpus_dir=corpus, index_dir=index_dir), encoder=HashEncoder())
    with updater._build_lock, pytest.raises(UpdateRunning):  # a build is running
        updater.update(wait=False)
    assert updater.update() is not None  # none running: it builds


def test_an_unexpected_error_in_a_build_is_recorded_and_watching_goes_on(
    kept: IndexUpdater, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = watch_module.prepare_index
    calls: list[int] = []

    def fails_once(*args: object, **kwargs: object) -> object:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("disk gremlins")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(watch_module, "prepare_index", fails_once)
    (kept.corpus_dir / "one.md").write_text("# One\n\nOcelot notes.\n")
    eventually(lambda: kept.state().problem is not None)
    assert "disk gremlins" in (kept.state().problem or "") and kept.state().watching
    (kept.corpus_dir / "two.md").write_text("# Two\n\nMarmot notes.\n")
    eventually(lambda: kept.state().builds == 1)
    assert kept.state().problem is None
    assert sources_for(kept, "ocelot marmot") == {"one.md", "two.md"}
