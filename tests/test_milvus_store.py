"""The Milvus store beyond the shared contract: keys, manifest, failures and what they say."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from assistant import (
    Assistant,
    IndexMismatchError,
    IndexNotFoundError,
    MissingDependencyError,
    Settings,
    StoreError,
    build_index,
)
from assistant.stores.milvus import chunk_keys
from assistant.testing import HashEncoder


def test_chunk_keys_follow_document_and_content_only() -> None:
    pairs = [("a.md", "k1"), ("a.md", "k2"), ("b.md", "k1"), ("a.md", "k1")]
    keys = chunk_keys(pairs)
    assert keys.dtype == np.int64 and (keys >= 0).all()
    assert len(set(keys.tolist())) == 4  # the same text twice in a.md gets two keys
    assert chunk_keys(pairs[:2]).tolist() == keys[:2].tolist()  # stable across builds


def test_without_the_scale_extra_the_error_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from assistant.stores import milvus as milvus_store

    monkeypatch.setitem(sys.modules, "pymilvus", None)
    with pytest.raises(MissingDependencyError, match=r"nexus-assistant\[scale\]"):
        milvus_store._pymilvus()


@pytest.fixture(scope="module")
def lite_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    pytest.importorskip("pymilvus")
    return str(tmp_path_factory.mktemp("milvus") / "milvus.db")


def _milvus(settings: Settings, uri: str, collection: str, **changes: Any) -> Settings:
    return settings.replace(store="milvus", milvus_uri=uri, milvus_collection=collection, **changes)


@pytest.mark.scale
def test_the_manifest_records_the_store_but_never_the_token(
    corpus: Path, index_dir: Path, encoder: HashEncoder, settings: Settings, lite_uri: str
) -> None:
    on_milvus = _milvus(settings, lite_uri, "manifest", milvus_token="root:s3cret-token")
    report = build_index(corpus, index_dir, settings=on_milvus, encoder=encoder)
    assert report.index_type == "milvus:FLAT"
    (generation,) = index_dir.glob("gen-*")
    text = (generation / "manifest.json").read_text()
    store = json.loads(text)["store"]
    assert store["kind"] == "milvus" and store["collection"] == "manifest"
    assert store["uri"] == lite_uri and store["index_type"] == "FLAT"
    assert "s3cret" not in text and "s3cret" not in repr(on_milvus)
    # The served generation holds no FAISS or BM25 files: the collection has them.
    assert not (generation / "dense.faiss").exists() and not (generation / "keyword").exists()


@pytest.mark.scale
def test_a_plain_rebuild_keeps_the_store_address_and_collection(
    corpus: Path, index_dir: Path, encoder: HashEncoder, settings: Settings, lite_uri: str
) -> None:
    build_index(corpus, index_dir, settings=_milvus(settings, lite_uri, "kept"), encoder=encoder)
    (corpus / "notes.txt").unlink()
    report = build_index(corpus, index_dir, settings=settings, encoder=encoder)
    assert report.index_type == "milvus:FLAT" and report.embedded == 0
    nexus = Assistant.load(index_dir, settings=settings, encoder=encoder)
    assert nexus.manifest.store["collection"] == "kept" and nexus.manifest.store["uri"] == lite_uri
    assert len(nexus.index.collection.keys()) == report.chunks  # type: ignore[attr-defined]


@pytest.mark.scale
def test_a_missing_collection_says_how_to_build_it(
    corpus: Path, index_dir: Path, encoder: HashEncoder, settings: Settings, lite_uri: str
) -> None:
    on_milvus = _milvus(settings, lite_uri, "to_drop")
    build_index(corpus, index_dir, settings=on_milvus, encoder=encoder)
    nexus = Assistant.load(index_dir, settings=on_milvus, encoder=encoder)
    nexus.index.collection.drop()  # type: ignore[attr-defined]
    with pytest.raises(IndexNotFoundError, match=r"no collection 'to_drop'.*nexus build --store"):
        Assistant.load(index_dir, settings=on_milvus, encoder=encoder)
    with pytest.raises(IndexNotFoundError):
        nexus.search("docker")


@pytest.mark.scale
def test_a_collection_of_another_dimension_is_refused_with_the_fix(
    corpus: Path, tmp_path: Path, settings: Settings, lite_uri: str
) -> None:
    on_milvus = _milvus(settings, lite_uri, "shared_dims")
    build_index(corpus, tmp_path / "a", settings=on_milvus, encoder=HashEncoder(dim=64))
    # Another index built into the same collection with another model replaces its vectors.
    build_index(corpus, tmp_path / "b", settings=on_milvus, encoder=HashEncoder(dim=32))
    with pytest.raises(IndexMismatchError, match=r"32-dimensional.*64 dimensions.*--full"):
        Assistant.load(tmp_path / "a", settings=on_milvus, encoder=HashEncoder(dim=64))


@pytest.mark.scale
def test_a_collection_is_reanalysed_when_the_keyword_parameters_change(
    corpus: Path, index_dir: Path, encoder: HashEncoder, settings: Settings, lite_uri: str
) -> None:
    snake = "Call transaction.on_commit_hook_runner(send) once the data is saved.\n"
    (corpus / "faq.md").write_text(f"# Saving\n\n{snake}")
    on_milvus = _milvus(settings, lite_uri, "reanalysed")
    build_index(corpus, index_dir, settings=on_milvus, encoder=encoder)
    nexus = Assistant.load(index_dir, settings=on_milvus, encoder=encoder)
    assert "faq.md" not in [h.source for h in nexus.search("hook runner", mode="keyword")]
    split_all = on_milvus.replace(split_identifiers="all", keyword_b=0.75)
    report = build_index(corpus, index_dir, settings=split_all, encoder=encoder)
    assert report.reused == report.chunks  # re-analysed, not re-embedded
    nexus = Assistant.load(index_dir, settings=split_all, encoder=encoder)
    assert nexus.search("hook runner", mode="keyword")[0].source == "faq.md"
    assert nexus.index.manifest.store["bm25"] == {"bm25_k1": 1.2, "bm25_b": 0.75}


@pytest.mark.scale
def test_an_unreachable_server_fails_fast_with_what_to_check(
    corpus: Path, index_dir: Path, encoder: HashEncoder, settings: Settings, lite_uri: str
) -> None:
    on_milvus = _milvus(settings, lite_uri, "reachable")
    build_index(corpus, index_dir, settings=on_milvus, encoder=encoder)
    away = on_milvus.replace(milvus_uri="http://127.0.0.1:9")
    started = time.perf_counter()
    with pytest.raises(
        StoreError, match=r"127\.0\.0\.1:9 did not answer.*after 3 tries.*--milvus-uri"
    ):
        Assistant.load(index_dir, settings=away, encoder=encoder)
    assert time.perf_counter() - started < 10
    with pytest.raises(StoreError, match="did not answer"):
        build_index(corpus, index_dir, settings=away, encoder=encoder)


class _FlakyClient:
    """Stands in for a Milvus client whose server drops the first ``failures`` calls."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    def has_collection(self, name: str) -> bool:
        from pymilvus.exceptions import MilvusUnavailableException

        self.calls += 1
        if self.calls <= self.failures:
            raise MilvusUnavailableException(message="server unavailable")
        return True


@pytest.mark.scale
@pytest.mark.parametrize(("failures", "answers"), [(2, True), (5, False)])
def test_transient_failures_are_retried_a_bounded_number_of_times(
    monkeypatch: pytest.MonkeyPatch, failures: int, answers: bool
) -> None:
    pytest.importorskip("pymilvus")
    from assistant.stores import milvus as milvus_store

    flaky = _FlakyClient(failures)
    monkeypatch.setattr(milvus_store, "_client", lambda uri, token: flaky)
    monkeypatch.setattr(milvus_store.time, "sleep", lambda seconds: None)
    collection = milvus_store.MilvusCollection("http://milvus:19530", "chunks")
    if answers:
        assert collection.exists() and flaky.calls == 3
    else:
        with pytest.raises(StoreError, match=r"did not answer.*after 3 tries"):
            collection.exists()
        assert flaky.calls == milvus_store.ATTEMPTS == 3


@pytest.mark.scale
def test_health_reports_a_degraded_store_and_searches_get_503(
    tmp_path: Path, encoder: HashEncoder, lite_uri: str
) -> None:
    from fastapi.testclient import TestClient

    from assistant.stores.milvus import MilvusCollection
    from assistant.web.server import create_app
    from tests.webapp import make_index

    settings, nexus = make_index(tmp_path, encoder, hostile=False)
    on_milvus = _milvus(settings, lite_uri, "served")
    build_index(settings.corpus_dir, settings.index_dir, settings=on_milvus, encoder=encoder)
    nexus = Assistant.load(settings.index_dir, settings=on_milvus, encoder=encoder)
    app = create_app(on_milvus, nexus=nexus)
    with TestClient(app) as client:
        health = client.get("/api/health").json()
        assert health["status"] == "ok" and health["store"] == {"kind": "milvus", "problem": None}
        assert client.get("/api/search", params={"q": "docker layers"}).json()["hits"]
        # The server goes away (the same collection, reached at an address nobody answers).
        nexus.index.collection = MilvusCollection("http://127.0.0.1:9", "served")  # type: ignore[attr-defined]
        health = client.get("/api/health")
        assert health.status_code == 200 and health.json()["status"] == "degraded"
        assert "did not answer" in health.json()["store"]["problem"]
        failed = client.get("/api/search", params={"q": "docker layers"})
        assert failed.status_code == 503 and "127.0.0.1:9" in failed.json()["detail"]


@pytest.mark.scale
def test_the_cli_builds_searches_and_describes_a_milvus_index(
    corpus: Path,
    index_dir: Path,
    lite_uri: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from assistant.cli import main

    monkeypatch.setattr("assistant.build.load_encoder", lambda settings, *a, **kw: HashEncoder())
    monkeypatch.setattr(
        "assistant.search.assistant.load_encoder", lambda settings, *a, **kw: HashEncoder()
    )
    monkeypatch.setenv("NEXUS_MILVUS_COLLECTION", "from_cli")
    args = ["--index", str(index_dir), "--milvus-uri", lite_uri]
    assert main(["build", "--corpus", str(corpus), "--store", "milvus", "--quiet", *args]) == 0
    assert "index milvus:FLAT" in capsys.readouterr().out
    assert main(["search", "docker image layers", "--json", "-k", "1", *args]) == 0
    assert json.loads(capsys.readouterr().out)["source"] == "reference/docker.md"
    assert main(["info", "--index", str(index_dir)]) == 0
    assert "Milvus collection from_cli" in capsys.readouterr().out
