from __future__ import annotations

from pathlib import Path

import pytest

from assistant import Assistant, IndexCorruptError, Settings, build_index
from assistant.analysis import split_identifiers
from assistant.stores import open_index
from assistant.stores.keyword import KeywordIndex
from assistant.testing import HashEncoder

SPLIT = {**KeywordIndex.params, "split_identifiers": True}
LEGACY = {k: v for k, v in KeywordIndex.params.items() if k != "split_identifiers"}

CODE = [
    "def sort_dict_by_value(d):\n    return sorted(d.items(), key=lambda kv: kv[1])",
    "class Client:\n    def getHTTPResponse(self, url): ...",
    "Retries use exponential backoff with jitter between attempts.",
    "A sorted list by value is easy to build from a list of pairs.",
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sort_dict_by_value(d)", "sort_dict_by_value sort dict by value(d)"),
        ("getHTTPResponse", "getHTTPResponse get HTTP Response"),
        ("parseJSON get_value2", "parseJSON parse JSON get_value2 get value 2"),
        ("__init__", "__init__ init"),
        (
            "plain words, Title and 2024 stay as they are",
            "plain words, Title and 2024 stay as they are",
        ),
        ("café_crème", "café_crème"),  # not an ASCII identifier: left alone
    ],
)
def test_identifiers_gain_their_parts_and_keep_the_whole(text: str, expected: str) -> None:
    assert split_identifiers(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("getHTTPResponse", "getHTTPResponse get HTTP Response"),
        ("CD4 cells", "CD4 CD 4 cells"),
        ("on_commit(send)", "on_commit(send)"),  # snake_case parts are everyday words
        ("parseJSON", "parseJSON parse JSON"),
    ],
)
def test_the_default_splits_only_names_marked_by_capitals_or_digits(
    text: str, expected: str
) -> None:
    assert split_identifiers(text, "mixed") == expected
    assert split_identifiers(text, "none") == text


def test_words_of_a_question_find_a_snake_case_or_camel_case_name() -> None:
    index = KeywordIndex.build(CODE, SPLIT)
    ids, _ = index.search("sort dict by value", 4)
    assert ids[0] == 0
    ids, _ = index.search("get http response", 4)
    assert ids[0] == 1


def test_the_exact_identifier_ranks_its_definition_first() -> None:
    ids, _ = KeywordIndex.build(CODE, SPLIT).search("sort_dict_by_value", 4)
    assert ids.tolist()[0] == 0


def test_an_index_built_without_splitting_is_searched_as_it_was_built(tmp_path: Path) -> None:
    old = KeywordIndex.build(CODE, LEGACY)
    assert old.search("get http response", 4)[0].tolist() == []
    old.save(tmp_path / "keyword")
    reopened = KeywordIndex.load(tmp_path / "keyword", LEGACY)
    assert reopened.tokenize("sort_dict_by_value") == ["sort_dict_by_valu"]
    assert reopened.search("getHTTPResponse", 4)[0].tolist() == [1]


def test_a_splitting_index_reopens_with_its_own_parameters(tmp_path: Path) -> None:
    KeywordIndex.build(CODE, SPLIT).save(tmp_path / "keyword")
    reopened = KeywordIndex.load(tmp_path / "keyword", SPLIT)
    assert reopened.search("get http response", 4)[0].tolist()[0] == 1


def _code_corpus(folder: Path) -> Path:
    folder.mkdir()
    (folder / "client.md").write_text(
        "# Fetching\n\n```python\ndef getHTTPResponse(url):\n    return fetch(url)\n```\n"
    )
    (folder / "titles.md").write_text("# Headings\n\n```python\nfetch_page_title(url)\n```\n")
    (folder / "retries.md").write_text("# Retries\n\nUse exponential backoff with jitter.\n")
    return folder


@pytest.mark.parametrize(
    ("mode", "found"),
    [
        ("none", [[], []]),  # the default
        ("mixed", [["client.md"], []]),
        ("all", [["client.md"], ["titles.md"]]),
    ],
)
def test_split_identifiers_is_a_build_setting_recorded_in_the_manifest(
    tmp_path: Path, mode: str, found: list[list[str]]
) -> None:
    corpus, encoder, index = _code_corpus(tmp_path / "docs"), HashEncoder(), tmp_path / "index"
    env = {"NEXUS_SPLIT_IDENTIFIERS": mode, "NEXUS_KEYWORD_B": "0.5"}
    build_index(corpus, index, settings=Settings.from_env(env), encoder=encoder)
    nexus = Assistant.load(index, encoder=encoder)
    for question, sources in zip(("http response", "page title"), found, strict=True):
        assert [h.source for h in nexus.search(question, mode="keyword")] == sources
    recorded = open_index(index).manifest.keyword
    assert (recorded["split_identifiers"], recorded["k1"], recorded["b"]) == (mode, 1.2, 0.5)


def test_indexes_from_before_the_split_modes_keep_their_tokenization() -> None:
    assert (
        KeywordIndex.build(CODE, {**KeywordIndex.params, "split_identifiers": True}).split_mode
        == "all"
    )
    assert KeywordIndex.build(CODE, LEGACY).split_mode == "none"
    with pytest.raises(IndexCorruptError, match="unknown keyword split mode"):
        KeywordIndex.build(CODE, {**KeywordIndex.params, "split_identifiers": "some"})
