from __future__ import annotations

import hashlib
from itertools import pairwise
from pathlib import Path

import pytest

from assistant.ingest.chunking import chunk_document
from assistant.ingest.documents import Document, RawFile
from assistant.ingest.readers import parse
from assistant.testing import HashEncoder

COUNT = HashEncoder().count_tokens


def markdown(text: str, source: str = "guides/topic.md") -> Document:
    data = text.encode()
    return parse(RawFile(source, Path(source), data, hashlib.sha256(data).hexdigest()))


def sentences(n: int, topic: str) -> str:
    return " ".join(f"Sentence {i} explains {topic} in plain words." for i in range(n))


def test_short_section_is_one_chunk_with_its_heading_path() -> None:
    doc = markdown("# Caching\n\n## Invalidation\n\nDelete the key after the commit succeeds.\n")
    [chunk] = chunk_document(doc, COUNT, max_tokens=100, min_tokens=0)
    assert chunk.headings == ("Caching", "Invalidation")
    assert chunk.heading_path == "Caching › Invalidation"
    assert chunk.embed_text == "Caching › Invalidation\n\nDelete the key after the commit succeeds."
    assert (chunk.source, chunk.category, chunk.title) == ("guides/topic.md", "guides", "Caching")
    assert (chunk.start_line, chunk.end_line) == (5, 5)


def test_title_is_prefixed_when_the_document_has_no_h1() -> None:
    doc = markdown("---\ntitle: Docker Images\n---\n\n## Layers\n\nLayers are cached.\n")
    [chunk] = chunk_document(doc, COUNT, max_tokens=100, min_tokens=0)
    assert chunk.headings == ("Docker Images", "Layers")


def test_long_section_splits_within_budget_with_overlap_and_loses_nothing() -> None:
    paragraphs = [sentences(6, f"topic{p}") for p in range(8)]
    doc = markdown("# Long\n\n## Part\n\n" + "\n\n".join(paragraphs) + "\n")
    chunks = chunk_document(doc, COUNT, max_tokens=80, overlap=16, min_tokens=0)
    assert len(chunks) > 3
    assert all(n <= 80 for n in COUNT([c.embed_text for c in chunks]))
    joined = " ".join(c.text for c in chunks)
    for p in range(8):
        for i in range(6):
            assert f"Sentence {i} explains topic{p}" in joined
    shared = [set(a.text.split(". ")) & set(b.text.split(". ")) for a, b in pairwise(chunks)]
    assert any(shared), "consecutive pieces of a split section should overlap"


def test_code_blocks_are_never_cut_mid_line() -> None:
    lines = [f"    result_{i} = compute_something(alpha={i}, beta={i * 2})" for i in range(60)]
    code = "```python\ndef run():\n" + "\n".join(lines) + "\n\n    return result_0\n```"
    doc = markdown(f"# Code\n\n## Example\n\n{code}\n")
    chunks = chunk_document(doc, COUNT, max_tokens=90, overlap=16, min_tokens=0)
    assert len(chunks) > 2
    original = set(code.split("\n"))
    for chunk in chunks:
        assert all(line in original for line in chunk.text.split("\n"))
    assert all(n <= 90 for n in COUNT([c.embed_text for c in chunks]))


def test_an_overlong_line_is_split_between_words() -> None:
    doc = markdown("# One\n\n" + "word " * 400 + "\n")
    chunks = chunk_document(doc, COUNT, max_tokens=64, min_tokens=0)
    assert len(chunks) >= 6
    assert all(n <= 64 for n in COUNT([c.embed_text for c in chunks]))
    assert sum(c.text.count("word") for c in chunks) >= 400


def test_tiny_sections_merge_and_keep_their_headings_as_text() -> None:
    doc = markdown(
        "# Guide\n\n## Install\n\nRun make install.\n\n## Run\n\nRun make run.\n\n"
        f"## Details\n\n{sentences(12, 'details')}\n"
    )
    chunks = chunk_document(doc, COUNT, max_tokens=80, min_tokens=30)
    first = chunks[0]
    assert "Run make install." in first.text and "Run make run." in first.text
    assert "Install" in first.text and "Run" in first.text  # headings dropped from the path
    assert first.headings == ("Guide",)
    # Still under the floor, it takes the head of the next section, labelled, to reach it.
    assert (first.start_line, first.end_line) == (5, 13) and "Details" in first.text
    assert all(n >= 30 for n in COUNT([c.text for c in chunks]))


def test_line_ranges_point_at_the_passage(tmp_path: Path) -> None:
    text = "# T\n\n## A\n\nalpha line\n\n## B\n\nbravo one\nbravo two\n"
    doc = markdown(text)
    chunks = chunk_document(doc, COUNT, max_tokens=100, min_tokens=0)
    lines = text.split("\n")
    for chunk in chunks:
        first = chunk.text.split("\n")[0]
        assert lines[chunk.start_line - 1] == first
        assert lines[chunk.end_line - 1] == chunk.text.split("\n")[-1]


def test_chunk_key_changes_with_text_and_headings() -> None:
    a = chunk_document(markdown("# T\n\n## A\n\nsame text\n"), COUNT, max_tokens=50)[0]
    b = chunk_document(markdown("# T\n\n## B\n\nsame text\n"), COUNT, max_tokens=50)[0]
    c = chunk_document(markdown("# T\n\n## A\n\nsame text\n"), COUNT, max_tokens=50)[0]
    assert a.key != b.key and a.key == c.key


@pytest.mark.model
def test_no_chunk_of_the_bundled_corpus_exceeds_the_model_window(real_encoder) -> None:  # type: ignore[no-untyped-def]
    from assistant.ingest.parsing import load_corpus

    corpus = Path(__file__).parent.parent / "corpus"
    docs, _ = load_corpus(corpus)
    chunks = [
        c
        for d in docs[:15]
        for c in chunk_document(d, real_encoder.count_tokens, max_tokens=real_encoder.max_tokens)
    ]
    sizes = real_encoder.count_tokens([c.embed_text for c in chunks])
    assert max(sizes) <= real_encoder.max_tokens
