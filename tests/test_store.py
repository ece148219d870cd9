from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from assistant import (
    Assistant,
    IndexCorruptError,
    IndexMismatchError,
    IndexNotFoundError,
    build_index,
)
from assistant.stores import open_index
from assistant.stores.vectors import (
    HNSW_EF_SEARCH,
    IVF_NPROBE,
    FaissStore,
    NumpyStore,
    exact_search,
    ivf_lists,
    resolve_index_type,
    search_params,
)
from assistant.testing import HashEncoder
from tests.conftest import DATA


def random_unit_vectors(n: int, dim: int, seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def assert_same_neighbours(ref: tuple, got: tuple, atol: float = 1e-5) -> None:
    """Same scores; same ids except where scores tie (any order of equal scores is right)."""
    ref_scores, ref_ids = ref
    got_scores, got_ids = got
    np.testing.assert_allclose(got_scores, ref_scores, atol=atol)
    for rs, ri, gi in zip(ref_scores, ref_ids, got_ids, strict=True):
        boundary = rs[-1]
        assert set(ri[rs > boundary + atol]) <= set(gi)


@pytest.mark.parametrize("n", [5, 17, 1000])
@pytest.mark.parametrize("k", [1, 5, 17])
def test_faiss_flat_matches_brute_force(n: int, k: int) -> None:
    vectors = random_unit_vectors(n, 32, seed=n)
    queries = random_unit_vectors(7, 32, seed=99)
    reference = NumpyStore(vectors).search(queries, k)
    assert reference[1].shape == (7, min(k, n))
    assert_same_neighbours(reference, FaissStore.build(vectors, "Flat").search(queries, k))


def clustered_unit_vectors(n: int, dim: int, seed: int) -> np.ndarray:
    """Vectors around 50 topics: structured like text embeddings, unlike uniform noise."""
    rng = np.random.default_rng(seed)
    topics = random_unit_vectors(50, dim, seed=1000)
    v = topics[rng.integers(0, 50, n)] + 0.35 * rng.standard_normal((n, dim)) / np.sqrt(dim)
    v = v.astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


# Every index type ``auto`` chooses (at sizes scaled down), and HNSW, the documented option.
CHOSEN_TYPES = [resolve_index_type("auto", n, exact_limit=1000) for n in (500, 4000)] + ["HNSW32"]


def test_auto_chooses_exact_then_inverted_file() -> None:
    assert CHOSEN_TYPES[:2] == ["Flat", f"IVF{ivf_lists(4000)},SQ8"]


@pytest.mark.parametrize("index_type", CHOSEN_TYPES)
def test_each_index_type_finds_neighbours_and_survives_a_reload(
    index_type: str, tmp_path: Path
) -> None:
    vectors = clustered_unit_vectors(4000, 64, seed=1)
    queries = clustered_unit_vectors(60, 64, seed=2)
    params = search_params(index_type)
    built = FaissStore.build(vectors, index_type, params)
    _, exact = exact_search(vectors, queries, 10)
    _, approx = built.search(queries, 10)
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact, strict=True)])
    assert recall >= 0.95
    # A stored vector finds itself first, whatever the index.
    _, own = built.search(vectors[:20], 1)
    assert own[:, 0].tolist() == list(range(20))

    built.save(tmp_path / "dense.faiss")
    for mmap in (False, True):
        loaded = FaissStore.load(tmp_path / "dense.faiss", params, mmap=mmap)
        np.testing.assert_array_equal(loaded.search(queries, 10)[1], approx)
        assert loaded.params == params


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("index_type", ["Flat", "HNSW32", "IVF16,SQ8"])
def test_loading_maps_the_file_instead_of_copying_it(index_type: str, tmp_path: Path) -> None:
    path = tmp_path / f"{index_type.replace(',', '-')}.faiss"
    FaissStore.build(random_unit_vectors(2000, 16, seed=5), index_type).save(path)
    loaded = FaissStore.load(path, mmap=True)
    assert str(path) in Path("/proc/self/maps").read_text()
    np.testing.assert_array_equal(
        loaded.search(random_unit_vectors(5, 16, seed=6), 10)[1],
        FaissStore.load(path, mmap=False).search(random_unit_vectors(5, 16, seed=6), 10)[1],
    )


def test_ivf_lists_grow_with_the_square_root_and_stay_trainable() -> None:
    assert [ivf_lists(n) for n in (10_000, 100_000, 1_000_000)] == [128, 256, 1024]
    assert ivf_lists(100) == 2  # 39 training points per list at least
    assert ivf_lists(10) == 1


@pytest.mark.parametrize("store", ["faiss", "numpy"])
def test_store_contract_save_load_search(store: str, tmp_path: Path) -> None:
    vectors = random_unit_vectors(50, 16, seed=3)
    built = FaissStore.build(vectors, "Flat") if store == "faiss" else NumpyStore(vectors)
    path = tmp_path / ("dense.faiss" if store == "faiss" else "vectors.npy")
    built.save(path)
    loaded = FaissStore.load(path) if store == "faiss" else NumpyStore(np.load(path))
    assert loaded.size == 50
    scores, ids = loaded.search(vectors[:3], 1)
    assert ids[:, 0].tolist() == [0, 1, 2]
    np.testing.assert_allclose(scores[:, 0], 1.0, atol=1e-5)


def test_auto_index_type_follows_size() -> None:
    assert resolve_index_type("auto", 100, exact_limit=100) == "Flat"
    assert resolve_index_type("auto", 101, exact_limit=100) == "IVF2,SQ8"
    assert resolve_index_type("HNSW32", 10, exact_limit=100) == "HNSW32"
    assert search_params("HNSW32") == {"efSearch": HNSW_EF_SEARCH}
    assert search_params("IVF64,Flat") == {"nprobe": IVF_NPROBE}
    assert search_params("Flat") == {}


def test_missing_index_says_how_to_build(tmp_path: Path) -> None:
    with pytest.raises(IndexNotFoundError, match="nexus build"):
        open_index(tmp_path / "nothing")


@pytest.fixture
def built(corpus: Path, index_dir: Path, encoder: HashEncoder, settings) -> Path:  # type: ignore[no-untyped-def]
    build_index(corpus, index_dir, settings=settings, encoder=encoder)
    return index_dir


def generation(index_dir: Path) -> Path:
    return index_dir / (index_dir / "CURRENT").read_text().strip()


def test_index_folder_describes_itself(built: Path) -> None:
    index = open_index(built)
    m = index.manifest
    assert m.encoder_name == "hash-encoder" and m.dim == 64 and len(m.encoder["probe"]) == 64
    assert m.documents == 6 and m.chunks == len(index.vectors) > 6
    assert m.index_type == "Flat" and m.metric == "inner_product" and m.normalize
    assert {"chunks.sqlite", "vectors.npy", "dense.faiss"} <= set(m.files)
    assert "numpy" in m.versions and m.built_at
    assert dict(index.db.categories()) == {"": 1, "guides": 2, "reference": 3}


def test_damaged_dense_index_is_rebuilt_from_vectors(built: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    dense = generation(built) / "dense.faiss"
    dense.write_bytes(dense.read_bytes()[:100])
    index = open_index(built)
    assert index.dense.size == len(index.vectors)
    assert "rebuilding it" in caplog.text
    assert open_index(built).dense.size == len(index.vectors)  # repaired on disk too


def test_deleted_keyword_index_is_rebuilt(built: Path) -> None:
    import shutil

    shutil.rmtree(generation(built) / "keyword")
    index = open_index(built)
    ids, _ = index.keyword.search("optimistic locking version", 3)
    assert index.db.chunks(ids.tolist())[int(ids[0])].source == "guides/locking.md"


@pytest.mark.parametrize("damage", ["truncate", "delete", "garble-header"])
def test_damaged_vectors_are_recovered_from_the_dense_index(
    built: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    vectors = generation(built) / "vectors.npy"
    original = np.load(vectors)
    if damage == "truncate":
        vectors.write_bytes(vectors.read_bytes()[:-64])
    elif damage == "delete":
        vectors.unlink()
    else:
        vectors.write_bytes(b"garbage!" + vectors.read_bytes()[8:])
    index = open_index(built)
    np.testing.assert_array_equal(np.asarray(index.vectors), original)
    assert "recovered it from dense.faiss" in caplog.text
    np.testing.assert_array_equal(np.load(vectors), original)  # repaired on disk too
    ids, _ = index.keyword.search("optimistic locking version", 1)
    assert index.db.chunks(ids.tolist())[int(ids[0])].source == "guides/locking.md"


def test_vectors_and_dense_index_both_lost_is_a_clear_error(built: Path) -> None:
    (generation(built) / "vectors.npy").unlink()
    dense = generation(built) / "dense.faiss"
    dense.write_bytes(dense.read_bytes()[:100])
    with pytest.raises(IndexCorruptError, match=r"vectors.npy is missing or unreadable.*--full"):
        open_index(built)


@pytest.mark.parametrize("damage", ["garbage", "truncate", "empty-table"])
def test_damaged_chunk_store_is_a_clear_error_at_load(built: Path, damage: str) -> None:
    import sqlite3

    db = generation(built) / "chunks.sqlite"
    size = db.stat().st_size
    if damage == "garbage":  # same size, so only reading it can tell
        db.write_bytes(np.random.default_rng(0).bytes(size))
        message = "chunks.sqlite is damaged"
    elif damage == "truncate":
        db.write_bytes(db.read_bytes()[: size // 2])
        message = "chunks.sqlite is missing or truncated"
    else:
        with sqlite3.connect(db) as conn:
            conn.execute("DELETE FROM chunks")
        conn.close()
        db.write_bytes(db.read_bytes().ljust(size, b"\0")[:size])
        message = r"holds 6 documents and 0 chunks, the manifest says 6 and \d+"
    with pytest.raises(IndexCorruptError, match=message):
        open_index(built)


@pytest.mark.parametrize(
    ("edit", "error", "message"),
    [
        ({"schema_version": 99}, IndexMismatchError, "format version 99 is not the supported"),
        ({"schema_version": None}, IndexMismatchError, "format version None"),
        ({"encoder": None, "chunks": "many"}, IndexCorruptError, "manifest.json is unreadable"),
        ("not json {", IndexCorruptError, "manifest.json is unreadable"),
        ({"chunks": 3}, IndexCorruptError, "the manifest says 6 and 3"),
    ],
)
def test_a_foreign_or_damaged_manifest_is_refused_at_load(
    built: Path, edit: object, error: type[Exception], message: str
) -> None:
    path = generation(built) / "manifest.json"
    if isinstance(edit, dict):
        path.write_text(json.dumps({**json.loads(path.read_text()), **edit}))
    else:
        path.write_text(str(edit))
    with pytest.raises(error, match=message):
        open_index(built)


@pytest.mark.parametrize(
    ("encoder_fields", "error", "message"),
    [
        ({"name": "all-mpnet-base-v2"}, IndexMismatchError, "built with 'all-mpnet-base-v2'"),
        (
            {"name": "all-mpnet-base-v2", "dim": 768},
            IndexCorruptError,
            "manifest says \\(\\d+, 768",
        ),
    ],
)
def test_manifest_of_another_model_is_refused_and_the_next_build_repairs_it(
    built: Path,
    corpus: Path,
    encoder: HashEncoder,
    encoder_fields: dict,  # type: ignore[type-arg]
    error: type[Exception],
    message: str,
) -> None:
    path = generation(built) / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["encoder"] = {**manifest["encoder"], **encoder_fields}
    path.write_text(json.dumps(manifest))
    with pytest.raises(error, match=message):
        Assistant.load(built, encoder=encoder)
    report = build_index(corpus, built, encoder=encoder)
    assert report.full and report.reused == 0
    assert Assistant.load(built, encoder=encoder).search("optimistic locking", k=1)


@pytest.mark.parametrize("file", ["chunks.sqlite", "manifest.json", "vectors.npy"])
def test_the_next_build_over_a_broken_index_completes(
    built: Path, corpus: Path, encoder: HashEncoder, file: str, caplog: pytest.LogCaptureFixture
) -> None:
    target = generation(built) / file
    target.write_bytes(b"\x00" * 10)
    if file == "vectors.npy":
        (generation(built) / "dense.faiss").unlink()  # nothing left to recover vectors from
    report = build_index(corpus, built, encoder=encoder)
    assert report.full and report.documents == 6
    assert "previous index not reusable" in caplog.text
    hits = Assistant.load(built, encoder=encoder).search("optimistic locking version", k=1)
    assert hits[0].source == "guides/locking.md"


def test_missing_manifest_and_dangling_pointer_are_clear_errors(built: Path) -> None:
    (generation(built) / "manifest.json").unlink()
    with pytest.raises(IndexCorruptError, match=r"manifest.json is missing"):
        open_index(built)
    (built / "CURRENT").write_text("gen-gone\n")
    with pytest.raises(IndexCorruptError, match="missing generation"):
        open_index(built)


def test_only_recent_generations_are_kept(
    corpus: Path, index_dir: Path, encoder: HashEncoder, settings
) -> None:  # type: ignore[no-untyped-def]
    for _ in range(4):
        build_index(corpus, index_dir, settings=settings, encoder=encoder)
    assert len(list(index_dir.glob("gen-*"))) == 2
    assert not list(index_dir.glob(".tmp-*"))


def test_approximate_index_choice_is_recorded_and_survives_repair(
    corpus: Path, index_dir: Path, encoder: HashEncoder, settings
) -> None:  # type: ignore[no-untyped-def]
    build_index(corpus, index_dir, settings=settings.replace(exact_search_limit=5), encoder=encoder)
    index = open_index(index_dir)
    m = index.manifest
    assert m.index_type == f"IVF{ivf_lists(m.chunks)},SQ8"
    assert m.index_params == {"nprobe": IVF_NPROBE} == index.dense.params  # type: ignore[attr-defined]
    assert m.index_choice == {"requested": "auto", "exact_search_limit": 5}
    first = index.vectors[:3]
    assert index.dense.search(first, 1)[1][:, 0].tolist() == [0, 1, 2]

    dense = generation(index_dir) / "dense.faiss"
    dense.write_bytes(dense.read_bytes()[:200])
    repaired = open_index(index_dir)
    assert repaired.dense.params == {"nprobe": IVF_NPROBE}  # type: ignore[attr-defined]
    assert repaired.dense.search(first, 1)[1][:, 0].tolist() == [0, 1, 2]


def test_an_index_built_by_an_earlier_release_loads_answers_and_is_reused(
    tmp_path: Path, corpus: Path, settings
) -> None:  # type: ignore[no-untyped-def]
    """``tests/data/index-v1`` was built before the package took its current layout; its
    format (schema version 1) must keep loading, searching and feeding incremental builds."""
    index = tmp_path / "old-index"
    shutil.copytree(DATA / "index-v1", index)
    expected = json.loads((DATA / "index-v1-expected.json").read_text(encoding="utf-8"))
    # With the ranking stages added since turned off, it answers exactly as it did then.
    then = settings.replace(heading_weight=0, document_weight=0, context_chunks=0)
    nexus = Assistant.load(index, settings=then, encoder=HashEncoder())
    for query, hits in expected.items():
        found = [
            [h.source, h.start_line, h.end_line, round(h.score, 5)]
            for h in nexus.search(query, k=3)
        ]
        assert found == hits, query
    # Its rst and HTML pages were read by older readers: the next build reads them again, and
    # keeps the Markdown and text documents, vectors and all.
    report = build_index(corpus, index, settings=settings, encoder=HashEncoder())
    rows = open_index(index).db.chunk_rows_by_source()
    kept = sum(len(ids) for source, ids in rows.items() if source.endswith((".md", ".txt")))
    assert report.reused >= kept > 0 and report.embedded > 0
    assert build_index(corpus, index, settings=settings, encoder=HashEncoder()).embedded == 0
