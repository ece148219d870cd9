"""The real model over a small corpus: paraphrased questions find the right document."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant import Assistant, build_index

pytestmark = pytest.mark.model

PARAPHRASES = [
    ("How can I stop two people from overwriting each other's edits?", "guides/locking.md"),
    ("my container image is huge, how do I shrink it", "reference/docker.md"),
    (
        "why won't the browser let my page read a response from another domain",
        "reference/cors.html",
    ),
    ("share setup code between several tests", "reference/testing.rst"),
    ("when should stale entries be removed from memory storage", "guides/caching.md"),
    ("write log events as machine-readable records", "notes.txt"),
]


@pytest.fixture(scope="module")
def nexus(tmp_path_factory: pytest.TempPathFactory, real_encoder, default_build) -> Assistant:  # type: ignore[no-untyped-def]
    import shutil

    root = tmp_path_factory.mktemp("e2e")
    shutil.copytree(Path(__file__).parent / "data" / "mini_corpus", root / "corpus")
    report = build_index(root / "corpus", root / "index", encoder=real_encoder)
    assert report.documents == 6
    return Assistant.load(root / "index", encoder=real_encoder)


@pytest.mark.parametrize(("question", "expected"), PARAPHRASES)
@pytest.mark.parametrize("mode", ["hybrid", "semantic"])
def test_paraphrased_question_finds_the_document(
    nexus: Assistant, question: str, expected: str, mode: str
) -> None:
    hits = nexus.search(question, k=3, mode=mode)
    assert hits[0].source == expected, [h.source for h in hits]


def test_manifest_records_the_real_model(nexus: Assistant) -> None:
    encoder = nexus.manifest.encoder
    assert encoder["name"] == "all-MiniLM-L6-v2" and encoder["dim"] == 384
    assert encoder["max_tokens"] == 254


def test_loading_by_name_uses_the_packaged_weights(nexus: Assistant) -> None:
    reopened = Assistant.load(
        nexus.index.path.parent, model="sentence-transformers/all-MiniLM-L6-v2"
    )
    assert reopened.search("container image size", k=1)[0].source == "reference/docker.md"
