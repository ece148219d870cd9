"""One contract for every place vectors can live: FAISS files and a Milvus collection.

Each test runs against both stores: build (add), edit and rebuild (upsert), remove and rebuild
(delete), search in every mode, persist and reload, live reload, filters. The Milvus runs use
milvus-lite, the same engine a server runs, in one folder per test module (starting it costs
seconds), with a collection per test.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from assistant import Assistant, Settings, build_index
from assistant.stores import open_index
from assistant.testing import HashEncoder

QUESTIONS = [
    "optimistic locking with a version column",
    "cache invalidation and expiry",
    "docker image layers",
    "cross-origin requests and CORS headers",
    "pytest fixtures",
    "race conditions when two users update a row",
]
_names = itertools.count()


@pytest.fixture(scope="module")
def lite_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("milvus") / "milvus.db")


@pytest.fixture(params=["faiss", pytest.param("milvus", marks=pytest.mark.scale)])
def store_settings(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    """The test settings on one store; each Milvus test gets a collection of its own."""
    if request.param == "faiss":
        return settings.replace(store="faiss")
    pytest.importorskip("pymilvus")
    uri = request.getfixturevalue("lite_uri")
    return settings.replace(
        store="milvus", milvus_uri=uri, milvus_collection=f"contract_{next(_names)}"
    )


def _sources(nexus: Assistant, query: str, mode: str = "hybrid", **filters: str) -> list[str]:
    return [h.source for h in nexus.search(query, k=5, mode=mode, dedupe=False, **filters)]  # type: ignore[arg-type]


def _stored_keys(index_dir: Path, settings: Settings) -> int | None:
    """How many chunks the store holds, for stores that live outside the index folder."""
    index = open_index(index_dir, settings=settings)
    if settings.store != "milvus":
        return None
    return len(index.collection.keys())  # type: ignore[attr-defined]


def test_build_search_persist_and_reload(
    corpus: Path, index_dir: Path, encoder: HashEncoder, store_settings: Settings
) -> None:
    report = build_index(corpus, index_dir, settings=store_settings, encoder=encoder)
    nexus = Assistant.load(index_dir, settings=store_settings, encoder=encoder)
    assert nexus.index.manifest.store_kind == store_settings.store
    for mode in ("semantic", "keyword", "hybrid"):
        assert _sources(nexus, "optimistic locking version column", mode)[0] == "guides/locking.md"
    hits = nexus.search("optimistic locking version column", k=3)
    assert hits[0].dense_score is not None and -1 <= hits[0].dense_score <= 1
    assert "version" in hits[0].text.lower()
    # A second process opening the index from disk sees the same thing.
    again = Assistant.load(index_dir, settings=store_settings, encoder=encoder)
    assert [h.chunk_id for h in again.search("docker image layers")] == [
        h.chunk_id for h in nexus.search("docker image layers")
    ]
    assert _stored_keys(index_dir, store_settings) in (None, report.chunks)


def test_an_edited_document_is_upserted_and_its_old_text_is_gone(
    corpus: Path, index_dir: Path, encoder: HashEncoder, store_settings: Settings
) -> None:
    first = build_index(corpus, index_dir, settings=store_settings, encoder=encoder)
    page = corpus / "guides" / "locking.md"
    page.write_text(page.read_text().replace("instead of failing", "zebracorn quokka wombat"))
    second = build_index(corpus, index_dir, settings=store_settings, encoder=encoder)
    assert second.embedded == 1 and second.chunks == first.chunks
    nexus = Assistant.load(index_dir, settings=store_settings, encoder=encoder)
    assert _sources(nexus, "zebracorn quokka wombat", "keyword")[:1] == ["guides/locking.md"]
    found = nexus.search("instead of failing", k=5, mode="keyword")
    assert all("instead of failing" not in h.text for h in found)
    assert _stored_keys(index_dir, store_settings) in (None, second.chunks)


def test_a_removed_document_disappears_from_every_mode(
    corpus: Path, index_dir: Path, encoder: HashEncoder, store_settings: Settings
) -> None:
    build_index(corpus, index_dir, settings=store_settings, encoder=encoder)
    (corpus / "reference" / "docker.md").unlink()
    report = build_index(corpus, index_dir, settings=store_settings, encoder=encoder)
    assert report.embedded == 0
    nexus = Assistant.load(index_dir, settings=store_settings, encoder=encoder)
    for mode in ("semantic", "keyword", "hybrid"):
        assert "reference/docker.md" not in _sources(nexus, "docker image layers", mode)
    assert _stored_keys(index_dir, store_settings) in (None, report.chunks)


def test_a_serving_assistant_switches_to_the_new_build(
    corpus: Path, index_dir: Path, encoder: HashEncoder, store_settings: Settings
) -> None:
    build_index(corpus, index_dir, settings=store_settings, encoder=encoder)
    nexus = Assistant.load(index_dir, settings=store_settings, encoder=encoder)
    assert "guides/queues.md" not in _sources(nexus, "celery broker retries", "keyword")
    (corpus / "guides" / "queues.md").write_text(
        "# Task queues\n\nCelery workers take tasks from a broker; retries back off "
        "exponentially when a task fails.\n",
        encoding="utf-8",
    )
    build_index(corpus, index_dir, settings=store_settings, encoder=encoder)
    assert nexus.reload_if_changed()
    for mode in ("semantic", "keyword", "hybrid"):
        assert _sources(nexus, "celery broker retries", mode)[0] == "guides/queues.md"


def test_filters_restrict_every_mode(
    corpus: Path, index_dir: Path, encoder: HashEncoder, store_settings: Settings
) -> None:
    build_index(corpus, index_dir, settings=store_settings, encoder=encoder)
    nexus = Assistant.load(index_dir, settings=store_settings, encoder=encoder)
    for mode in ("semantic", "keyword", "hybrid"):
        found = _sources(nexus, "cache invalidation", mode, category="reference")
        assert found and all(s.startswith("reference/") for s in found)
        assert set(_sources(nexus, "locking", mode, path="guides/lock*")) == {"guides/locking.md"}
    assert nexus.search("cache", category="no-such-folder") == []


@pytest.mark.scale
def test_both_stores_answer_the_same_questions_with_the_same_documents(
    corpus: Path, tmp_path: Path, encoder: HashEncoder, settings: Settings, lite_uri: str
) -> None:
    pytest.importorskip("pymilvus")
    on_milvus = settings.replace(store="milvus", milvus_uri=lite_uri, milvus_collection="same")
    build_index(corpus, tmp_path / "faiss", settings=settings, encoder=encoder)
    build_index(corpus, tmp_path / "milvus", settings=on_milvus, encoder=encoder)
    faiss = Assistant.load(tmp_path / "faiss", settings=settings, encoder=encoder)
    milvus = Assistant.load(tmp_path / "milvus", settings=on_milvus, encoder=encoder)
    for question in QUESTIONS:
        # Dense search is exact in both at this size: the same chunks, the same cosines.
        dense = [
            faiss.search(question, k=5, mode="semantic"),
            milvus.search(question, k=5, mode="semantic"),
        ]
        assert [h.chunk_id for h in dense[0]] == [h.chunk_id for h in dense[1]]
        assert [h.score for h in dense[0]] == pytest.approx([h.score for h in dense[1]], abs=1e-5)
        # BM25 differs in detail (tokenizer, stemmer, stop words), so hybrid agrees on the
        # document that answers, not on every score.
        assert _sources(faiss, question)[0] == _sources(milvus, question)[0], question
