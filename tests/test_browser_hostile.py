"""Markup hidden in the names and titles of a corpus stays text in every view of a real browser.

The hostile body text is covered by ``tests/test_browser.py``; here the markup sits where
escaping is easiest to forget: a folder name (the category filter), a file name (the source
link), a front-matter title, a heading (the heading path) and, when nothing is relevant
enough, the related-topics list.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from assistant import Settings, build_index
from assistant.search.assistant import Assistant
from assistant.testing import HashEncoder
from assistant.web.server import create_app
from tests.test_browser import CHROMIUM, TIMEOUT_MS, ask, browser, screenshot
from tests.webapp import DATA, serving

__all__ = ["browser"]  # the fixture, shared with the other browser tests

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs chromium: apt-get install -y chromium"),
]

CATEGORY = "<svg onload=window.__pwned='category'>"
FILE = "<img src=x onerror=window.__pwned='file'>.md"
PAGE = """---
title: "<script>window.__pwned='title'</script> Poison <b>title</b>"
---

Quokka zebrafish marmalade introduction.

## <img src=x onerror="window.__pwned='heading'"> Poisoned heading

Quokka zebrafish marmalade is the only text that matches this page.
"""
INJECTED = "script:not([src]):not([type]), img[onerror], svg[onload], iframe, b"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("hostile-names")
    corpus = root / "corpus"
    shutil.copytree(DATA / "mini_corpus", corpus)
    (corpus / CATEGORY).mkdir()
    (corpus / CATEGORY / FILE).write_text(PAGE, encoding="utf-8")
    settings = Settings(corpus_dir=corpus, index_dir=root / "index")
    encoder = HashEncoder()
    build_index(corpus, settings.index_dir, settings=settings, encoder=encoder)
    nexus = Assistant.load(settings.index_dir, settings=settings, encoder=encoder)
    app = create_app(settings, nexus=nexus)
    with serving(app) as url:
        yield {"url": url, "service": app.state.service}


@pytest.fixture
def page(browser: Any, site: dict[str, Any]) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(site["url"], wait_until="domcontentloaded")
    page.wait_for_selector("#nexus-question textarea")
    yield page
    context.close()


def assert_inert(page: Any) -> None:
    assert page.evaluate("window.__pwned") is None
    body = page.locator("main, article, .gradio-container").first
    assert body.locator(INJECTED).count() == 0


def test_markup_in_names_and_titles_is_shown_as_text(page: Any, site: dict[str, Any]) -> None:
    assert_inert(page)  # the category filter lists the folder's name
    ask(page, "quokka zebrafish marmalade", 0)
    card = page.locator(".nexus-card").filter(has_text="Poisoned heading").first
    text = card.inner_text()
    assert "<script>" in text or "<b>title</b>" in text  # the title, as text
    assert "onerror" in text  # the heading or the file name, as text
    assert_inert(page)
    screenshot(page, "hostile-names-chat.png")

    with page.context.expect_page() as opened:
        card.locator("a.nexus-source").click()
    document = opened.value
    document.wait_for_load_state("domcontentloaded")
    assert "Poison" in document.locator("h1").first.inner_text()
    assert_inert(document)

    # Nothing relevant enough: the reply offers related topics, titles included.
    site["service"]._min_relevance = 1.01
    try:
        ask(page, "quokka zebrafish marmalade poison", 1)
    finally:
        site["service"]._min_relevance = None
    assert "Poison" in page.locator("[data-testid=bot]").last.inner_text()
    assert_inert(page)
