"""The chat in a real browser (Playwright driving Debian's chromium).

Screenshots go to ``test-artifacts/`` (git-ignored). ``.ci/run`` installs chromium; without
it these tests are skipped with the command that installs it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from assistant.testing import HashEncoder
from assistant.web.server import create_app
from tests.webapp import make_index, serving

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).parent.parent / "test-artifacts"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 60_000

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs chromium: apt-get install -y chromium"),
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("browser")
    settings, nexus = make_index(root, HashEncoder())
    feedback = root / "feedback.jsonl"
    app = create_app(settings, nexus=nexus, feedback_log=feedback, allow_rebuild=True)
    with serving(app) as url:
        yield {"url": url, "feedback": feedback}


@pytest.fixture
def page(browser: Any, site: dict[str, Any]) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.dialogs = dialogs
    page.goto(site["url"], wait_until="domcontentloaded")
    page.wait_for_selector("#nexus-question textarea")
    yield page
    context.close()


def ask(page: Any, question: str, answers_before: int) -> Any:
    """Type a question, send it, and wait for its answer; returns the answer element."""
    page.fill("#nexus-question textarea", question)
    page.click("#nexus-ask")
    answers = page.locator("[data-testid=bot]").filter(has_text="Searched")
    answers.nth(answers_before).wait_for()
    return answers.nth(answers_before)


def screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    return path


def test_ask_follow_up_and_open_a_document(page: Any, site: dict[str, Any]) -> None:
    answer = ask(page, "When are stale cache entries removed?", 0)
    assert "[1]" in answer.inner_text() and " ms" in answer.inner_text()
    cards = page.locator(".nexus-card")
    assert cards.count() == 5
    first_source = page.locator("a.nexus-source").first
    assert first_source.inner_text().startswith("guides/caching.md:")
    assert page.locator(".nexus-card mark").count() > 0

    follow = ask(page, "and how do I invalidate it?", 1)
    assert "with the previous question" in follow.inner_text()
    assert "When are stale cache entries removed? and how do I invalidate it?" in (
        follow.inner_text()
    )
    assert page.locator(".nexus-card").count() == 10
    assert "Cache Invalidation" in page.locator(".nexus-card").nth(5).inner_text() or any(
        "Cache Invalidation" in t for t in page.locator(".nexus-card").all_inner_texts()[5:]
    )
    screenshot(page, "chat.png")

    with page.context.expect_page() as opened:
        page.locator("a.nexus-source").first.click()
    document = opened.value
    document.wait_for_load_state("domcontentloaded")
    assert document.url.split("?")[0].endswith("/document")
    passage = document.locator("#passage")
    assert passage.count() == 1 and passage.locator("mark").count() > 0
    assert "Caching Strategies" in document.locator("h1").first.inner_text()
    screenshot(document, "document.png")


def test_hostile_document_runs_no_script(page: Any, site: dict[str, Any]) -> None:
    ask(page, "cache poisoning notes for readers", 0)
    card = page.locator(".nexus-card").filter(has_text="Hostile page").first
    text = card.inner_text()
    assert "<script>" in text and "onerror" in text  # shown as text...
    assert card.locator("script, img, iframe").count() == 0  # ...never as elements
    assert card.locator("a[href^=javascript]").count() == 0
    assert page.evaluate("window.__pwned") is None

    with page.context.expect_page() as opened:
        card.locator("a.nexus-source").click()
    document = opened.value
    document.wait_for_load_state("domcontentloaded")
    assert "<script>" in document.locator("article").inner_text()
    assert document.locator("article script, article img, article iframe").count() == 0
    assert document.evaluate("window.__pwned") is None

    # A question is echoed back in the chat; markup typed into it stays inert too.
    ask(page, "cache <img src=x onerror=\"window.__pwned='question'\"> <script>x=1</script>", 1)
    assert page.locator("[data-testid=user] img, [data-testid=user] script").count() == 0
    assert page.evaluate("window.__pwned") is None
    assert page.dialogs == []


def test_feedback_controls_and_clear(page: Any, site: dict[str, Any]) -> None:
    ask(page, "How do I shrink a Docker image?", 0)
    page.locator("#nexus-chat button[aria-label=Like]").last.click()
    page.wait_for_function("() => document.body.innerText.includes('feedback was recorded')")
    votes = [json.loads(line) for line in site["feedback"].read_text().splitlines()]
    assert votes[-1]["vote"] == "up"
    assert votes[-1]["question"] == "How do I shrink a Docker image?"
    assert votes[-1]["hits"][0]["source"] == "reference/docker.md"

    # Retry with keyword search: the same question is answered again, in place.
    assert "relevance" in page.locator(".nexus-card-meta").first.inner_text()
    page.get_by_label("keyword").check()
    page.locator("#nexus-chat button[aria-label=Retry]").last.click()
    page.wait_for_function(
        "() => document.querySelector('.nexus-card-meta')?.innerText.includes('score')"
    )
    assert page.locator("[data-testid=user]").count() == 1

    assert "Up to date" in page.locator("#nexus-status").inner_text()
    page.get_by_role("button", name="Rebuild index").click()
    page.wait_for_function("() => document.body.innerText.includes('Already up to date')")

    page.click("#nexus-clear")
    page.wait_for_function("() => document.querySelectorAll('.nexus-card').length === 0")


@pytest.mark.model
def test_real_model_answers_a_paraphrase_in_the_browser(
    browser: Any, real_encoder: Any, tmp_path: Path
) -> None:
    settings, nexus = make_index(tmp_path, real_encoder, hostile=False)
    with serving(create_app(settings, nexus=nexus)) as url:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(url, wait_until="domcontentloaded")
        page.wait_for_selector("#nexus-question textarea")
        ask(page, "How can I stop two people from overwriting each other's edits?", 0)
        assert page.locator("a.nexus-source").first.inner_text().startswith("guides/locking.md")
        assert "all-MiniLM-L6-v2" in page.locator("#nexus-status").inner_text()
        screenshot(page, "chat-real-model.png")

        refusal = ask(page, "How do I implement Raft leader election in Python?", 1)
        assert "found nothing in the knowledge base" in refusal.inner_text()
        assert refusal.locator("a[href^='/document?source=']").count() >= 1
        assert page.locator(".nexus-card").count() == 5  # no cards added for the refusal
        page.close()


def test_pick_a_collection_and_watch_it_update(browser: Any, tmp_path: Path) -> None:
    from tests.test_collections import build_django

    encoder = HashEncoder()
    settings, _ = make_index(tmp_path, encoder, hostile=False)
    django = build_django(tmp_path, encoder)
    collections = {"hub": settings.index_dir, "django": django}
    app = create_app(settings, collections=collections, encoder=encoder, watch=True)
    with serving(app) as url:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(url, wait_until="domcontentloaded")
        page.wait_for_selector("#nexus-question textarea")
        page.wait_for_function(
            "() => document.querySelector('#nexus-status')?.innerText.includes('6 documents')"
        )
        page.locator("#nexus-collection input").click()
        page.get_by_role("option", name="django").click()
        page.wait_for_function(
            "() => document.querySelector('#nexus-status').innerText.includes('2 documents')"
        )
        status = page.locator("#nexus-status").inner_text()
        assert "Live: changes to the corpus are indexed" in status
        ask(page, "select_related foreign keys join", 0)
        source = page.locator("a.nexus-source").first
        assert source.inner_text().startswith("models/querysets.md")
        with page.context.expect_page() as opened:
            source.click()
        document = opened.value
        document.wait_for_load_state("domcontentloaded")
        assert "collection=django" in document.url
        assert "QuerySets" in document.locator("h1").first.inner_text()

        (tmp_path / "django-docs" / "topics" / "signals.md").write_text(
            "# Signals\n\npost_save receivers run after a save.\n"
        )
        page.wait_for_function(  # the panel refreshes itself while the server watches
            "() => document.querySelector('#nexus-status').innerText.includes('3 documents')",
            timeout=TIMEOUT_MS,
        )
        assert "took in 1 file" in page.locator("#nexus-status").inner_text()
        screenshot(page, "collections.png")
        ask(page, "post_save receivers", 1)
        newest = page.locator(".nexus-passages").last.locator("a.nexus-source")
        assert any(text.startswith("topics/signals.md") for text in newest.all_inner_texts())
        page.close()
