"""Follow-up folding: what the chat searches for when a message leans on the previous one."""

import pytest

from assistant.search.conversation import contextual_query, leans_on_context

PREVIOUS = "How should I cache expensive Django views with Redis?"


@pytest.mark.parametrize(
    "message",
    [
        "and how do I invalidate it?",
        "what about per-user pages?",
        "does that work with gunicorn workers?",
        "timeouts?",
    ],
)
def test_follow_ups_carry_the_previous_question(message: str) -> None:
    query = contextual_query(message, [PREVIOUS])
    assert query.folded
    assert query.text.startswith(PREVIOUS)
    assert query.text.endswith(message)


def test_a_new_standalone_question_is_searched_as_typed() -> None:
    message = "How do I write a multi-stage Dockerfile for a Python service?"
    query = contextual_query(message, [PREVIOUS])
    assert not query.folded
    assert query.text == message


def test_only_the_latest_earlier_question_is_folded() -> None:
    query = contextual_query("and for GraphQL?", ["What is JWT?", PREVIOUS])
    assert query.text == f"{PREVIOUS} and for GraphQL?"


def test_without_history_nothing_is_folded() -> None:
    assert contextual_query("and how do I invalidate it?") == contextual_query(
        "and how do I invalidate it?", ["  "]
    )
    assert not contextual_query("and how do I invalidate it?").folded


def test_empty_message_does_not_lean_on_anything() -> None:
    assert not leans_on_context("   ")


@pytest.mark.parametrize(
    "message",
    [
        "ok, and how would I get rid of a field nobody uses anymore?",
        "what happens if two requests carrying the same key show up at the same moment?",
        "can the same job also run on Python 3.12 and 3.13 side by side?",
    ],
)
def test_acknowledgements_and_back_references_still_fold(message: str) -> None:
    assert contextual_query(message, [PREVIOUS]).folded


@pytest.mark.parametrize(
    "message",
    [
        "Why is it a bad idea for the orders service to query the users service's tables?",
        "How can I store DRF list responses in Redis and throw them away on every edit?",
    ],
)
def test_a_pronoun_inside_a_self_contained_question_does_not_fold(message: str) -> None:
    assert not contextual_query(message, [PREVIOUS]).folded
