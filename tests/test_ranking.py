"""The first passage is the right one: the heading field, document evidence, small to big,
answers chosen by meaning, and follow-ups that know when the topic changed."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest

from assistant import Assistant, Hit, Settings, build_index
from assistant.search.answer import extract_answer
from assistant.search.conversation import contextual_query
from assistant.search.fusion import add_document_evidence, demote, diversify
from assistant.testing import HashEncoder


def write(root: Path, source: str, text: str) -> None:
    path = root / source
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")


def sentences(n: int, word: str) -> str:
    return " ".join(f"Sentence {i} talks about {word} and other things." for i in range(n))


@pytest.fixture
def nexus(tmp_path: Path) -> Assistant:
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    write(
        corpus,
        "guide/retries.md",
        f"""
        # Retries

        ## Backoff

        {sentences(30, "waiting")} The exact setting is retry_backoff_max in seconds.

        ## Idempotency

        {sentences(4, "repeating")}
        """,
    )
    write(
        corpus,
        "notes/misc.md",
        f"""
        # Miscellany

        A note that says backoff once, in passing. {sentences(3, "nothing")}
        """,
    )
    settings = Settings(chunk_tokens=64, chunk_overlap=8, min_chunk_tokens=0)
    build_index(corpus, index, settings=settings, encoder=HashEncoder())
    return Assistant.load(index, settings=settings, encoder=HashEncoder())


def test_the_heading_field_lifts_the_section_a_question_names() -> None:
    from assistant.search.fusion import Candidates, fuse

    found = Candidates(
        None,
        dense_ids=np.array([1, 2, 3]),
        dense_scores=np.array([0.80, 0.78, 0.40], dtype=np.float32),
        keyword_ids=np.array([1, 2, 3]),
        keyword_scores=np.array([5.0, 4.9, 1.0], dtype=np.float32),
        heading_ids=np.array([2, 3]),
        heading_scores=np.array([3.0, 0.5], dtype=np.float32),
    )
    assert fuse(found, Settings(heading_weight=0))[0][0] == 1
    assert fuse(found, Settings(heading_weight=0.2))[0][0] == 2


def test_a_hit_shows_its_section_around_it_once(nexus: Assistant) -> None:
    hits = nexus.search("retry_backoff_max setting", k=5)
    backoff = [h for h in hits if h.headings[-1:] == ("Backoff",)]
    assert len(backoff) == 1  # the section's passages collapse into one hit
    hit = backoff[0]
    assert "retry_backoff_max" in hit.text and "Sentence 24 " in hit.text  # one passage before
    assert "Sentence 18 " not in hit.text  # and no more
    assert hit.text.count("Sentence 29 ") == 1  # the chunker's overlap is not shown twice
    narrow = Assistant(nexus.index, nexus.encoder, nexus.settings.replace(context_chunks=0))
    alone = [h for h in narrow.search("retry_backoff_max", k=5) if h.headings[-1:] == ("Backoff",)]
    assert alone[0].text == "The exact setting is retry_backoff_max in seconds."


def test_document_evidence_lifts_a_passage_whose_document_agrees() -> None:
    document_of = np.array([0, 0, 0, 1, 1, 1])
    # Document 1 has the single best passage, among weak ones; document 0 agrees throughout.
    ranked = [(3, 1.0), (0, 0.9), (1, 0.85), (2, 0.85), (4, 0.1), (5, 0.1)]
    raised = add_document_evidence(ranked, document_of, weight=0.5, passages=3)
    assert [cid for cid, _ in raised[:4]] == [0, 1, 2, 3]
    assert add_document_evidence(ranked, document_of, weight=0, passages=3) == ranked


def test_the_answer_quotes_the_code_line_that_answers() -> None:
    text = (
        "The cache keeps state between test runs.\n\n"
        "To run only the tests that failed last time:\n\n"
        "```bash\npytest --lf\n```\n\n"
        "Plugins can also read the cache."
    )
    hit = Hit(1, 1.0, "cache.rst", "Cache", ("Cache",), text, 1, 9, "", 0)
    encoder = HashEncoder()
    question = "rerun only the tests that failed with pytest --lf"
    vector = encoder.encode([question], kind="query")[0]
    answer = extract_answer(question, [hit], encoder=encoder, query_vector=vector)
    assert any(s.code and s.text == "pytest --lf" for s in answer)
    assert not any(s.code for s in extract_answer(question, [hit]))  # no meaning, no code


def test_a_new_topic_is_not_folded_into_the_last_question() -> None:
    unrelated = contextual_query(
        "cache stampede", ["How do I deploy with gunicorn?"], similarity=lambda a, b: 0.02
    )
    assert not unrelated.folded
    related = contextual_query(
        "cache stampede", ["How do I expire cache keys?"], similarity=lambda a, b: 0.4
    )
    assert related.folded
    plain = contextual_query(
        "and with Celery?", ["How do I avoid races?"], similarity=lambda a, b: 0.0
    )
    assert plain.folded  # an opening connective leans on the last question whatever it was


@pytest.mark.parametrize(
    ("source", "title", "expected"),
    [
        ("changelog.rst", "Changelog", True),
        ("releases/5.0.txt", "Django 5.0 release notes", True),
        ("history/whatsnew-5.1.rst", "What's new in Celery 5.1", True),
        ("en/announce/release-9.0.0.rst", "pytest-9.0.0", True),
        ("news.rst", "Release notes", True),
        ("guide/notes.md", "Release notes", True),  # the title says so
        ("concepts/news-feed.md", "Building a news feed", False),
        ("en/historical-notes.rst", "Historical notes", False),
        ("topics/cache.txt", "Django's cache framework", False),
    ],
)
def test_release_notes_are_known_by_name_or_title(source: str, title: str, expected: bool) -> None:
    from assistant.ingest.documents import release_notes

    assert release_notes(source, title) is expected


def test_release_notes_step_back_unless_the_question_asks_what_changed(tmp_path: Path) -> None:
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    note = "The cache timeout setting sets how long cached values live, in seconds."
    write(corpus, "guide/cache.md", f"# Caching\n\n{note}\n")
    write(
        corpus,
        "releases/5.0.md",
        "# Release 5.0\n\nThe cache timeout setting changed: cached values live 300 seconds "
        "by default now, and the cache timeout setting accepts None.\n",
    )
    settings = Settings(chunk_tokens=64, chunk_overlap=8, min_chunk_tokens=0)
    build_index(corpus, index, settings=settings, encoder=HashEncoder())

    def first(question: str, penalty: float) -> str:
        nexus = Assistant.load(
            index, settings=settings.replace(release_notes_penalty=penalty), encoder=HashEncoder()
        )
        return nexus.search(question, k=2)[0].source

    assert first("cache timeout setting seconds", 0) == "releases/5.0.md"
    assert first("cache timeout setting seconds", 2) == "guide/cache.md"
    assert first("cache timeout setting seconds changed in 5.0", 2) == "releases/5.0.md"


def test_demote_lowers_only_the_flagged_passages() -> None:
    ranked = [(0, 3.0), (1, 2.5), (2, 1.0)]
    assert demote(ranked, np.array([True, False, False]), 1.0) == [(1, 2.5), (0, 2.0), (2, 1.0)]
    assert demote(ranked, np.array([True, False, False]), 0) == ranked


def test_no_document_takes_more_than_its_share_of_the_cards_unless_alone() -> None:
    document_of = np.array([0, 0, 0, 0, 0, 1])
    ranked = [(0, 9.0), (1, 8.0), (2, 7.0), (3, 6.0), (4, 5.0), (5, 1.0)]
    assert [cid for cid, _ in diversify(ranked, document_of, 3)] == [0, 1, 2, 5, 3, 4]
    assert diversify(ranked, document_of, 0) == ranked
    alone = np.zeros(6, dtype=int)
    assert diversify(ranked, alone, 3) == ranked  # the only source still fills the list


def test_a_card_carries_on_into_the_sub_sections_after_it(tmp_path: Path) -> None:
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    write(
        corpus,
        "faq.md",
        """
        # FAQ

        ## Unicode errors on Windows

        Printing some characters fails with a charmap codec error in the console.

        ### Answer

        Set PYTHONUTF8=1 before running the program.

        ## Another question

        Something else entirely about colours.
        """,
    )
    settings = Settings(chunk_tokens=64, chunk_overlap=8, min_chunk_tokens=0)
    build_index(corpus, index, settings=settings, encoder=HashEncoder())
    nexus = Assistant.load(index, settings=settings, encoder=HashEncoder())
    hits = nexus.search("charmap codec error printing characters", k=5)
    top = hits[0]
    assert top.headings[-1] == "Unicode errors on Windows"
    assert "#### Answer" in top.text and "PYTHONUTF8=1" in top.text  # the nested answer
    assert "colours" not in top.text  # a sibling section is not
    assert top.end_line > top.start_line
    assert all(h.headings[-1] != "Answer" for h in hits[1:])  # shown once, on the first card


def test_an_answer_the_retrievers_disagree_on_is_flagged_weak() -> None:
    from assistant.search.answer import Reply, is_weak
    from assistant.web.render import render_answer, reply_dict

    def top(cosine: float, dense: int | None, keyword: int | None) -> list[Hit]:
        return [Hit(1, 1.0, "a.md", "A", ("A",), "Text.", 1, 1, "", 0, cosine, dense, keyword)]

    model = "all-MiniLM-L6-v2"
    assert is_weak(top(0.45, 1, None), model)  # only the dense list found it, and weakly
    assert is_weak(top(0.45, 1, 12), model)
    assert not is_weak(top(0.45, 2, 3), model)  # both retrievers rank it high
    assert not is_weak(top(0.70, 1, None), model)  # close enough by meaning alone
    assert not is_weak(top(0.45, 1, None), "some-uncalibrated-model")
    hits = top(0.45, 1, None)
    reply = Reply("q", "q", False, tuple(hits), (), (), 0.01, weak=True)
    assert "may not answer this exactly" in render_answer(reply)
    assert reply_dict(reply)["weak"] is True


def test_a_corpus_without_any_heading_builds_loads_and_searches(tmp_path: Path) -> None:
    # A BEIR corpus of untitled snippets (CoSQA's code): the heading field has no word at all.
    from assistant.ingest.beir import read_beir_documents

    folder = tmp_path / "untitled"
    folder.mkdir()
    rows = [
        {"_id": f"d{i}", "title": "", "text": f"def sort_{i}(items): return sorted(items)"}
        for i in range(5)
    ]
    (folder / "corpus.jsonl").write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    index = tmp_path / "index"
    documents = read_beir_documents(folder)
    build_index(folder, index, encoder=HashEncoder(), documents=documents)
    nexus = Assistant.load(index, encoder=HashEncoder())
    hits = nexus.search("sort items", k=3)
    assert hits and hits[0].source.startswith("d")
    assert not any(name.startswith("headings") for name in nexus.manifest.files)


@pytest.fixture(scope="module")
def tiny_cross_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real sentence-transformers CrossEncoder folder: a one-layer BERT with random weights
    and a small word-piece vocabulary, built here (no reranker weights can be installed)."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    folder = tmp_path_factory.mktemp("cross-encoder")
    words = ["backoff", "retry", "setting", "seconds", "sentence", "talks", "about", "waiting"]
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *[chr(c) for c in range(97, 123)]]
    (folder / "vocab.txt").write_text("\n".join([*vocab, *words]), encoding="utf-8")
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(vocab) + len(words),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=512,
        num_labels=1,
    )
    BertForSequenceClassification(config).save_pretrained(folder)
    BertTokenizerFast(str(folder / "vocab.txt")).save_pretrained(folder)
    return folder


def test_a_reranker_orders_the_best_candidates_by_its_own_scores(
    nexus: Assistant, tiny_cross_encoder: Path
) -> None:
    from assistant.search.rerank import load_reranker

    reranker = load_reranker(str(tiny_cross_encoder))
    settings = nexus.settings.replace(
        reranker=str(tiny_cross_encoder), rerank_candidates=100, context_chunks=0
    )
    reranked = Assistant(nexus.index, nexus.encoder, settings, reranker)
    hits = reranked.search("retry backoff setting", k=5, dedupe=False)
    chunks = nexus.index.db.chunks([h.chunk_id for h in hits])
    scores = reranker.scores("retry backoff setting", [chunks[h.chunk_id].embed_text for h in hits])
    assert [h.score for h in hits] == pytest.approx(scores)
    assert scores == sorted(scores, reverse=True)


def test_a_reranker_that_cannot_load_is_a_clear_error(tmp_path: Path) -> None:
    from assistant import ConfigError
    from assistant.search.rerank import load_reranker

    with pytest.raises(ConfigError, match="cannot load the reranker"):
        load_reranker(str(tmp_path / "missing"))
