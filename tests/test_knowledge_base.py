"""The bundled corpus and its question set: complete, well-formed, every link resolving."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from assistant.evaluation import load_questions

REPO = Path(__file__).parent.parent
CORPUS = REPO / "corpus"
SECTIONS = [
    "concepts",
    "implementations",
    "challenges",
    "best-practices",
    "resources",
    "documentation",
]
DOCUMENTS = sorted(p for p in CORPUS.rglob("*.md") if p.name != "README.md")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def prose(path: Path) -> str:
    """The document without its code blocks, whose comments look like headings."""
    return re.sub(r"^(`{3,}|~{3,}).*?^\1", "", path.read_text(encoding="utf-8"), flags=re.S | re.M)


def relative_links(path: Path) -> list[str]:
    text = prose(path)
    return [t for t in LINK.findall(text) if not re.match(r"[a-z]+:|#", t)]


def test_the_hub_has_its_six_sections_and_enough_documents() -> None:
    assert sorted(p.name for p in CORPUS.iterdir() if p.is_dir()) == sorted(SECTIONS)
    assert len(DOCUMENTS) >= 50
    assert all(any(CORPUS.joinpath(s).glob("*.md")) for s in SECTIONS)


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: p.relative_to(CORPUS).as_posix())
def test_document_shape(path: Path) -> None:
    text = prose(path)
    assert text.startswith("# ") and text.count("\n# ") == 0, "exactly one H1, first line"
    assert "\n## See also\n" in text
    assert 700 <= len(text.split()) <= 2600


@pytest.mark.parametrize("path", [*DOCUMENTS, CORPUS / "README.md"], ids=lambda p: p.name)
def test_every_relative_link_resolves(path: Path) -> None:
    for target in relative_links(path):
        resolved = (path.parent / target.split("#")[0]).resolve()
        assert resolved.is_file(), f"{target} in {path.relative_to(CORPUS)}"
        assert CORPUS.resolve() in resolved.parents


def test_the_table_of_contents_links_every_document() -> None:
    linked = {(CORPUS / t).resolve() for t in relative_links(CORPUS / "README.md")}
    assert {p.resolve() for p in DOCUMENTS} <= linked


@pytest.mark.parametrize(
    ("name", "minimum"), [("questions.jsonl", 120), ("questions-independent.jsonl", 60)]
)
def test_question_sets_are_varied_and_point_at_real_documents(name: str, minimum: int) -> None:
    questions = load_questions(REPO / "benchmarks" / name)
    assert len(questions) >= minimum
    assert len({q.id for q in questions}) == len(questions)
    kinds = {q.kind for q in questions}
    assert kinds == {"direct", "vague", "follow-up", "no-answer"}
    for q in questions:
        assert all((CORPUS / source).is_file() for source in q.relevant), q.id
        assert bool(q.relevant) == (q.kind != "no-answer"), q.id
        assert (q.previous is not None) == (q.kind == "follow-up"), q.id
