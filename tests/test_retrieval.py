from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest

from assistant import Assistant, ConfigError, QueryError, Settings, build_index
from assistant.search.fusion import (
    keyword_peak,
    keyword_share,
    reciprocal_rank_fusion,
    score_fusion,
)
from assistant.search.query import clean_query
from assistant.testing import HashEncoder


@pytest.fixture
def nexus(corpus: Path, index_dir: Path, encoder: HashEncoder, settings: Settings) -> Assistant:
    build_index(corpus, index_dir, settings=settings, encoder=encoder)
    return Assistant.load(index_dir, settings=settings, encoder=encoder)


def test_rrf_rewards_agreement_and_is_deterministic() -> None:
    fused = reciprocal_rank_fusion([[1, 2, 3], [3, 1, 4]], k=60)
    assert [item for item, _ in fused] == [1, 3, 2, 4]
    assert fused[0][1] == pytest.approx(1 / 61 + 1 / 62)
    weighted = reciprocal_rank_fusion([[1], [2]], k=0, weights=[1.0, 2.0])
    assert weighted == [(2, 2.0), (1, 1.0)]


def test_score_fusion_adds_standardized_scores_and_keeps_ties() -> None:
    dense = (np.array([1, 2, 3, 4]), np.array([0.9, 0.8, 0.8, 0.1]))
    keyword = (np.array([4, 2, 3]), np.array([12.0, 6.0, 6.0]))
    fused = dict(score_fusion([dense, keyword], [0.5, 0.5], "minmax"))
    # 1 is missing from the keyword list, so it gets that list's floor (0 after min-max).
    assert fused[1] == pytest.approx(0.5 * 1.0 + 0.0)
    assert fused[4] == pytest.approx(0.5 * 0.0 + 0.5 * 1.0)
    assert fused[2] == fused[3]  # equal inputs stay exactly tied
    z = dict(score_fusion([dense, keyword], [1.0, 0.0], "zscore"))
    scores = dense[1]
    assert z[1] == pytest.approx((0.9 - scores.mean()) / scores.std())


@pytest.mark.parametrize("mode", ["hybrid", "semantic", "keyword"])
def test_each_mode_finds_the_page_that_shares_the_words(nexus: Assistant, mode: str) -> None:
    hits = nexus.search("multi-stage Dockerfile builder stage slim runtime image", k=3, mode=mode)
    assert hits[0].source == "reference/docker.md"
    assert hits[0].heading_path == "Docker Images › Multi-stage builds"
    assert [h.rank for h in hits] == list(range(1, len(hits) + 1))
    assert all(a.score >= b.score for a, b in pairwise(hits))


def test_a_hit_explains_its_ranking(nexus: Assistant) -> None:
    hit = nexus.search("Access-Control-Allow-Origin browsers origin", k=1)[0]
    assert hit.source == "reference/cors.html" and hit.category == "reference"
    assert hit.dense_rank is not None and hit.keyword_rank is not None
    assert hit.dense_score is not None and -1.0 <= hit.dense_score <= 1.0
    assert 1 <= hit.start_line <= hit.end_line
    keyword_only = nexus.search("Access-Control-Allow-Origin", k=1, mode="keyword")[0]
    assert keyword_only.dense_score is None and keyword_only.keyword_rank == 1


def test_script_and_nav_text_of_html_pages_is_not_indexed(nexus: Assistant) -> None:
    assert nexus.search("xylophone quartz", k=5, mode="keyword") == []
    assert nexus.search("Home Docs", k=5, mode="keyword") == []


def test_category_and_path_filters(nexus: Assistant) -> None:
    hits = nexus.search("cache", k=10, category="reference")
    assert hits and all(h.category == "reference" for h in hits)
    hits = nexus.search("cache", k=10, path="guides/lock*")
    assert hits and {h.source for h in hits} == {"guides/locking.md"}
    assert nexus.search("cache", category="no-such-folder") == []


def test_top_level_files_have_an_empty_category(nexus: Assistant) -> None:
    hits = nexus.search("structured logging JSON fields", k=1, category="")
    assert hits[0].source == "notes.txt"


def test_near_duplicates_are_collapsed(
    corpus: Path, index_dir: Path, encoder: HashEncoder, settings: Settings
) -> None:
    text = (corpus / "guides" / "locking.md").read_text()
    (corpus / "guides" / "locking-copy.md").write_text(text)
    build_index(corpus, index_dir, settings=settings, encoder=encoder)
    nexus = Assistant.load(index_dir, settings=settings, encoder=encoder)
    query = "version column update succeeds only when version still current"
    deduped = nexus.search(query, k=4)
    assert len({h.text for h in deduped}) == len(deduped)
    raw = nexus.search(query, k=4, dedupe=False)
    assert len({h.text for h in raw}) < len(raw)


@pytest.mark.parametrize("query", ["", "   ", "\x00\x07\n\t", "\u200b"])
def test_empty_queries_are_a_clear_error(nexus: Assistant, query: str) -> None:
    with pytest.raises(QueryError, match="empty"):
        nexus.search(query)


def test_odd_but_valid_queries_are_answered(nexus: Assistant) -> None:
    for query in [
        "'; DROP TABLE chunks; --",
        "<script>alert(1)</script>",
        "кэш 缓存 🚀",
        "x" * 2_000,
    ]:
        assert isinstance(nexus.search(query, k=3), list)


def test_invalid_k_and_mode(nexus: Assistant) -> None:
    with pytest.raises(QueryError, match="k must be"):
        nexus.search("cache", k=0)
    with pytest.raises(QueryError, match="mode must be"):
        nexus.search("cache", mode="fuzzy")  # type: ignore[arg-type]


def test_clean_query_strips_control_characters_and_refuses_over_long_queries() -> None:
    assert clean_query("  what\x00is\tthe\n GIL? ", 100) == "what is the GIL?"
    assert clean_query(f"  {'a' * 10}  ", 10) == "a" * 10  # surrounding spaces do not count
    with pytest.raises(QueryError, match="11 characters long; the limit is 10"):
        clean_query("a" * 11, 10)


def test_reload_switches_to_a_newer_build(
    nexus: Assistant, corpus: Path, index_dir: Path, encoder: HashEncoder, settings: Settings
) -> None:
    assert nexus.reload_if_changed() is False
    (corpus / "queues.md").write_text("# Queues\n\nCelery workers consume tasks from Redis.\n")
    build_index(corpus, index_dir, settings=settings, encoder=encoder)
    assert nexus.search("celery workers consume", k=1)[0].source != "queues.md"
    assert nexus.reload_if_changed() is True
    assert nexus.search("celery workers consume", k=1)[0].source == "queues.md"


def test_approximate_indexes_rank_candidates_by_their_exact_cosine(
    corpus: Path, index_dir: Path, encoder: HashEncoder, settings: Settings
) -> None:
    compressed = settings.replace(index_type="IVF1,SQ8")  # 8-bit codes: approximate scores
    build_index(corpus, index_dir, settings=compressed, encoder=encoder)
    nexus = Assistant.load(index_dir, settings=compressed, encoder=encoder)
    query = "invalidate cached pages after a write"
    hits = nexus.search(query, k=8, mode="semantic", dedupe=False)
    qvec = encoder.encode([query], kind="query")[0]
    exact = [float(nexus.index.vectors_of([h.chunk_id])[0] @ qvec) for h in hits]
    # In semantic mode a hit's score is the cosine the dense search ranked it by.
    assert [h.score for h in hits] == pytest.approx(exact, abs=1e-6)
    assert exact == sorted(exact, reverse=True)


def test_keyword_peak_measures_how_steeply_bm25_scores_fall() -> None:
    steep = np.array([10.0, 6.0, 5.0, 4.0, 3.0, 3.0, 2.0, 2.0, 2.0, 1.0, 0.5])
    flat = np.array([10.0, 9.9, 9.8, 9.7, 9.6, 9.5, 9.4, 9.3, 9.2, 9.1])
    assert keyword_peak(steep) == pytest.approx(0.9)
    assert keyword_peak(flat) == pytest.approx(0.09)
    assert keyword_peak(np.array([3.0, 2.0])) == 1.0  # fewer than ten matches: selective words
    assert keyword_peak(np.array([])) == 0.0
    assert keyword_share(0.1, 0.2, 0.35) == 0.0
    assert keyword_share(0.275, 0.2, 0.35) == pytest.approx(0.5)
    assert keyword_share(0.9, 0.2, 0.35) == 1.0
    assert keyword_share(None, 0.2, 0.35) == 1.0  # not measured: the full weight
    with pytest.raises(ConfigError, match="keyword_peak_low"):
        Settings(keyword_peak_low=0.5, keyword_peak_high=0.3)


@pytest.fixture
def common_words_corpus(tmp_path: Path) -> Path:
    """Twelve pages sharing everyday words, and one page with a word no other page has.

    BM25 ranks the pages that say "records" twice a little higher; the dense side prefers those
    that repeat "the" (a stop word BM25 ignores), so the two orders disagree.
    """
    root = tmp_path / "common"
    root.mkdir()
    for i in range(12):
        text = "The service stores records in a table." + " records" * (i % 2) + " the" * (i % 4)
        (root / f"page{i:02}.md").write_text(f"# Page {i}\n\n{text}\n", encoding="utf-8")
    (root / "zebra.md").write_text(
        "# Zebra\n\nThe zebra migration rewrites the schema of the service.\n", encoding="utf-8"
    )
    return root


def test_hybrid_leans_on_bm25_only_when_its_scores_single_out_passages(
    common_words_corpus: Path, index_dir: Path, encoder: HashEncoder, settings: Settings
) -> None:
    build_index(common_words_corpus, index_dir, settings=settings, encoder=encoder)
    adaptive = Assistant.load(index_dir, settings=settings, encoder=encoder)
    fixed = Assistant.load(
        index_dir,
        settings=settings.replace(keyword_peak_low=0.0, keyword_peak_high=0.0),
        encoder=encoder,
    )

    def order(nexus: Assistant, query: str, mode: str) -> list[str]:
        return [h.source for h in nexus.search(query, k=8, mode=mode, dedupe=False)]

    # Every page holds these words, so BM25's list is flat and hybrid follows the dense order;
    # with a fixed keyword weight the same flat list reorders it.
    flat = "the service records table"
    assert order(adaptive, flat, "hybrid") == order(adaptive, flat, "semantic")
    assert order(fixed, flat, "hybrid") != order(fixed, flat, "semantic")
    # A word only one page has gives a steep list: the keyword side keeps its full weight.
    rare = "zebra migration"
    steep = adaptive.search(rare, k=5)
    assert steep[0].source == "zebra.md"
    assert [(h.source, h.score) for h in steep] == [
        (h.source, h.score) for h in fixed.search(rare, k=5)
    ]
