"""Many searchers at once, and builds publishing new generations underneath them."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from assistant import Assistant, Settings, build_index
from assistant.testing import HashEncoder

QUERIES = [
    "cache aside invalidation",
    "optimistic locking version column",
    "preflight OPTIONS request",
    "pytest fixtures",
    "multi-stage docker builds",
    "log aggregation",
]


def rebuild_while_searching(
    nexus: Assistant,
    build: object,
    *,
    builds: int,
    searchers: int,
    budget: float,
) -> tuple[list[Exception], list[set[str]], int]:
    """Run ``builds`` builds while ``searchers`` threads search and reload without pause.

    Each thread stops after the builds finish or after ``budget`` seconds, whichever is first.
    Returns the errors raised, the sources each search returned, and how many searches ran.
    """
    errors: list[Exception] = []
    seen: list[set[str]] = []
    done = threading.Event()
    count = 0
    lock = threading.Lock()

    def search_loop(offset: int) -> None:
        nonlocal count
        deadline = time.monotonic() + budget
        i = offset
        while not done.is_set() and time.monotonic() < deadline:
            try:
                nexus.reload_if_changed()
                hits = nexus.search(QUERIES[i % len(QUERIES)] + " queues celery", k=5)
                with lock:
                    seen.append({h.source for h in hits})
                    count += 1
            except Exception as exc:
                with lock:
                    errors.append(exc)
            i += 1

    threads = [threading.Thread(target=search_loop, args=(n,)) for n in range(searchers)]
    for thread in threads:
        thread.start()
    try:
        for n in range(builds):
            build(n)  # type: ignore[operator]
    finally:
        done.set()
        for thread in threads:
            thread.join(timeout=budget + 10)
    return errors, seen, count


@pytest.mark.parametrize(
    ("builds", "searchers"), [(4, 4), pytest.param(30, 8, marks=pytest.mark.slow)]
)
def test_rebuilding_while_serving_never_fails_a_search_and_switches(
    corpus: Path,
    index_dir: Path,
    encoder: HashEncoder,
    settings: Settings,
    builds: int,
    searchers: int,
) -> None:
    build_index(corpus, index_dir, settings=settings, encoder=encoder)
    nexus = Assistant.load(index_dir, settings=settings, encoder=encoder)
    first = nexus.manifest.generation
    page = corpus / "guides" / "queues.md"

    def build(n: int) -> None:
        # Alternate between adding and removing a page, so each build publishes a change.
        if n % 2 == 0:
            page.write_text(f"# Queues\n\nCelery workers consume queues, version {n}.\n")
        else:
            page.unlink()
        build_index(corpus, index_dir, settings=settings, encoder=encoder)

    errors, seen, count = rebuild_while_searching(
        nexus, build, builds=builds, searchers=searchers, budget=120
    )
    assert errors == [], errors[:3]
    assert count >= searchers and all(seen)
    nexus.reload_if_changed()
    assert nexus.manifest.generation != first
    queues_present = page.exists()
    top = {h.source for h in nexus.search("celery workers consume queues", k=3)}
    assert ("guides/queues.md" in top) == queues_present
    assert len(list(index_dir.glob("gen-*"))) == 2


def test_many_threads_get_the_same_results_as_one(
    corpus: Path, index_dir: Path, encoder: HashEncoder, settings: Settings
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    build_index(corpus, index_dir, settings=settings, encoder=encoder)
    nexus = Assistant.load(index_dir, settings=settings, encoder=encoder)
    calls = [
        (query, mode, category)
        for query in QUERIES
        for mode in ("hybrid", "semantic", "keyword")
        for category in (None, "guides", "reference")
    ] * 4

    def run(call: tuple[str, str, str | None]) -> list[tuple[int, float]]:
        query, mode, category = call
        hits = nexus.search(query, k=5, mode=mode, category=category)  # type: ignore[arg-type]
        return [(h.chunk_id, round(h.score, 6)) for h in hits]

    expected = [run(call) for call in calls]
    with ThreadPoolExecutor(max_workers=16) as pool:
        got = list(pool.map(run, calls))
    assert got == expected


@pytest.mark.model
def test_many_threads_with_the_real_model_get_the_same_results_as_one(
    corpus: Path, index_dir: Path, real_encoder: object
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    build_index(corpus, index_dir, encoder=real_encoder)  # type: ignore[arg-type]
    nexus = Assistant.load(index_dir, encoder=real_encoder)  # type: ignore[arg-type]
    queries = [f"{q} {n}" for q in QUERIES for n in range(2)]  # distinct, so none is cached

    def run(query: str) -> list[int]:
        return [h.chunk_id for h in nexus.search(query, k=5)]

    expected = [run(q) for q in queries]
    nexus._embed_query.cache_clear()  # type: ignore[attr-defined]
    with ThreadPoolExecutor(max_workers=8) as pool:
        got = list(pool.map(run, queries))
    assert got == expected
