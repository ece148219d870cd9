"""The conversation behind the chat UI: answers, follow-ups, refusals, rendering, feedback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assistant import Assistant, QueryError, build_index
from assistant.analysis import query_terms
from assistant.search.answer import extract_answer, respond
from assistant.search.conversation import history_questions, message_text
from assistant.stores import StoredDocument
from assistant.testing import HashEncoder
from assistant.web.render import (
    document_url,
    render_answer,
    render_document,
    render_passages,
    reply_dict,
)
from assistant.web.service import FeedbackLog
from tests.webapp import HOSTILE


@pytest.fixture
def nexus(corpus: Path, index_dir: Path, encoder: HashEncoder, settings) -> Assistant:  # type: ignore[no-untyped-def]
    (corpus / "guides" / "hostile.md").write_text(HOSTILE, encoding="utf-8")
    build_index(corpus, index_dir, settings=settings, encoder=encoder)
    return Assistant.load(index_dir, settings=settings, encoder=encoder)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("plain string", "plain string"),
        ([{"type": "text", "text": "from"}, {"type": "text", "text": "blocks"}], "from blocks"),
        ({"type": "text", "text": "one block"}, "one block"),
        ([{"type": "file", "file": {"path": "x.png"}}, {"type": "text", "text": "t"}], "t"),
        (None, ""),
    ],
)
def test_message_text_accepts_every_shape_gradio_sends(content: object, expected: str) -> None:
    assert message_text(content) == expected


def test_history_questions_are_the_user_turns_in_order() -> None:
    history = [
        {"role": "user", "content": [{"type": "text", "text": "What is caching?"}]},
        {"role": "assistant", "content": "Caching keeps results. [1]"},
        {"role": "assistant", "content": "<div>cards</div>"},
        {"role": "user", "content": "and docker?"},
    ]
    assert history_questions(history) == ["What is caching?", "and docker?"]


def test_answer_sentences_come_from_passages_and_cite_them(nexus: Assistant) -> None:
    reply = respond(nexus, "When are stale cache entries removed?", k=3)
    assert reply.answered and reply.answer
    first = reply.answer[0]
    cited = reply.hits[first.citation - 1]
    assert first.text.split()[0] in cited.text
    assert "removed by expiry" in " ".join(s.text for s in reply.answer)
    assert "[1]" in render_answer(reply).replace("\\", "")


def test_answer_skips_code_and_prefers_sentences_sharing_the_question_words(
    nexus: Assistant,
) -> None:
    hits = nexus.search("cache-aside Redis time to live", k=3)
    answer = extract_answer("cache-aside Redis time to live", hits, limit=2)
    assert any("Redis with a time to live" in s.text for s in answer)
    assert not any("def get_product" in s.text for s in answer)


def test_follow_up_searches_with_the_previous_question(nexus: Assistant) -> None:
    history = [
        {"role": "user", "content": [{"type": "text", "text": "How does caching work?"}]},
        {"role": "assistant", "content": "..."},
    ]
    reply = respond(nexus, "and how do I invalidate it?", history)
    assert reply.folded and reply.query.startswith("How does caching work?")
    assert "Searched (with the previous question)" in render_answer(reply)
    standalone = respond(nexus, "How do I shrink a Docker image for production?", history)
    assert not standalone.folded
    assert standalone.query == "How do I shrink a Docker image for production?"


def test_nothing_relevant_enough_says_so_and_suggests_topics(nexus: Assistant) -> None:
    reply = respond(nexus, "How do I tune a Kubernetes pod autoscaler?", min_relevance=0.99)
    assert not reply.answered and reply.hits == () and reply.answer == ()
    assert reply.related  # the nearest documents, offered as topics
    _, source = reply.related[0]
    text = render_answer(reply)
    assert "found nothing in the knowledge base" in text
    assert "Related topics" in text and "passages" not in text
    assert f"]({document_url(source)})" in text
    assert reply_dict(reply)["related"][0]["source"] == source


def test_keyword_mode_has_no_cosine_so_the_floor_does_not_apply(nexus: Assistant) -> None:
    reply = respond(nexus, "cache invalidation", mode="keyword", min_relevance=0.99)
    assert reply.answered


@pytest.mark.parametrize("message", ["", "   ", "x" * 2001])
def test_empty_or_overlong_messages_are_refused_clearly(nexus: Assistant, message: str) -> None:
    with pytest.raises(QueryError, match=r"empty|limit is 2,000"):
        respond(nexus, message)


def test_hostile_passages_render_as_inert_text(nexus: Assistant) -> None:
    reply = respond(nexus, "cache poisoning notes for readers", k=10)
    assert any(h.source == "guides/hostile.md" for h in reply.hits)
    for html in (render_passages(reply), render_answer(reply)):
        lowered = html.lower()
        assert "<script" not in lowered and "<img" not in lowered and "<iframe" not in lowered
        assert '<a href="javascript' not in lowered  # links only as escaped text
    assert "&lt;script&gt;" in render_passages(reply)


def test_passage_cards_show_source_lines_relevance_highlights_and_code(
    nexus: Assistant,
) -> None:
    reply = respond(nexus, "cache-aside pattern with Redis", k=5)
    html = render_passages(reply)
    hit = next(h for h in reply.hits if "def get_product" in h.text)
    assert f"{hit.source}:{hit.start_line}-{hit.end_line}" in html
    assert "/document?source=guides%2Fcaching.md" in html
    assert "relevance 0." in html
    assert "<mark>Redis</mark>" in html
    assert '<pre><code class="language-python">def get_product' in html
    assert "\n" not in html  # one HTML block inside the Markdown chat message
    assert "&#10;" in html  # code keeps its line breaks


def test_query_terms_drop_question_words_and_stem() -> None:
    assert query_terms("How do I invalidate the caches?") == {"invalid", "cach"}


def test_document_view_highlights_the_passage_lines_and_escapes_everything() -> None:
    doc = StoredDocument("guides/hostile.md", "Hostile page", "markdown", "guides", "0", HOSTILE)
    html = render_document(doc, 3, 3, "cache poisoning")
    passage = html.split('<section id="passage" class="nexus-passage">')[1].split("</section>")[0]
    assert "notes" in passage and "An image" not in passage
    assert "<mark>Cache</mark>" in passage
    assert "<script" not in html and "<img" not in html and 'href="javascript' not in html

    text = StoredDocument("notes.txt", "Notes", "text", "", "0", "one\n<b>two</b>\nthree")
    lines = render_document(text, 2, 2)
    assert '<span id="passage" class="nexus-passage"><span class="nexus-ln">2</span>' in lines
    assert "&lt;b&gt;two&lt;/b&gt;" in lines


def test_feedback_is_appended_as_json_lines(tmp_path: Path, nexus: Assistant) -> None:
    log = FeedbackLog(tmp_path / "votes" / "feedback.jsonl")
    reply = respond(nexus, "When are stale cache entries removed?", k=2)
    log.record(reply_dict(reply), "up")
    log.record(reply_dict(reply), "down")
    lines = [json.loads(x) for x in log.path.read_text().splitlines()]
    assert [x["vote"] for x in lines] == ["up", "down"]
    assert lines[0]["question"] == "When are stale cache entries removed?"
    assert lines[0]["query"] == reply.query
    assert lines[0]["hits"][0]["source"] == reply.hits[0].source
    assert lines[0]["time"].endswith("+00:00")
    with pytest.raises(ValueError, match="'up' or 'down'"):
        log.record(reply_dict(reply), "meh")


def test_answer_ignores_indented_code_tables_and_code_lead_ins() -> None:
    from assistant import Hit

    text = (
        "Use fixtures to share setup code between tests.\n\n"
        "To share setup code, write this:\n\n"
        "- setup code to share between modules;\n\n"
        "    def share_setup_code(): return 'setup code to share'\n\n"
        "| share | setup code | between tests |"
    )
    hit = Hit(1, 1.0, "a.rst", "A", ("A",), text, 1, 7, "", 0)
    answer = extract_answer("share setup code", [hit])
    assert [s.text for s in answer] == ["Use fixtures to share setup code between tests."]


@pytest.mark.parametrize(
    "text",
    ["plain question?", "a <b>tag</b> & an &amp; entity", r"back\slash \\ and [link](x) *em*"],
)
def test_escaped_markdown_reads_back_as_typed(text: str) -> None:
    from assistant.web.render import escape_markdown, unescape_markdown

    escaped = escape_markdown(text)
    assert "<" not in escaped
    assert unescape_markdown(escaped) == text
