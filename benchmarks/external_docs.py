"""Quality on documentation nobody here wrote: six Sphinx / MyST trees from PyPI sdists.

Each tree's docs folder is downloaded once as its source distribution, indexed with the
default settings (incrementally on later runs) and searched with the question sets in
``benchmarks/questions-external/``, written by reading the docs before any search was run.
Trees are split in two: settings are chosen on the ``tune`` trees and reported on the
``report`` trees, which are not looked at while choosing.

For each tree and variant of the search settings it reports the passage ranking (a passage
answers when it comes from a relevant file and holds a key term in its heading or text:
hit@1, hit@5, MRR@10), how often the chat's cited answer quotes a key term from a relevant
file, and which answerable questions the chat refuses.

Usage (from the repository root)::

    .venv/bin/python -m benchmarks.external_docs --split tune \\
        --variant base: --variant nodoc:document_weight=0 --json OUT
"""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assistant import Assistant, Settings, build_index
from assistant.evaluation import evaluate_answers, evaluate_questions, load_questions
from assistant.search.answer import relevance_floor
from benchmarks.common import ROOT, WORK, command_line, cpu_flags, report


@dataclass(frozen=True)
class Tree:
    """A documentation tree: the sdist that carries it and its folder inside the archive."""

    name: str
    requirement: str
    folder: str
    split: str  # "tune" or "report"


TREES = (
    Tree("pytest", "pytest==9.2.0", "doc", "tune"),
    Tree("flask", "flask==3.1.3", "docs", "tune"),
    Tree("click", "click==8.5.1", "docs", "tune"),
    Tree("django", "django==5.2.19", "docs", "report"),
    Tree("celery", "celery==5.7.0", "docs", "report"),
    Tree("scrapy", "scrapy==2.19.0", "docs", "report"),
)
QUESTIONS = ROOT / "benchmarks" / "questions-external"


def fetch_tree(tree: Tree, work: Path = WORK) -> Path:
    """The tree's docs folder, extracted once from its source distribution on PyPI."""
    docs = work / "trees" / tree.name
    if docs.is_dir():
        return docs
    downloads = work / "sdists"
    downloads.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:"]
    subprocess.run([*pip, tree.requirement, "-d", str(downloads), "-q"], check=True)
    stem = tree.requirement.replace("==", "-")
    archive = next(downloads.glob(f"{stem}.tar.gz"))
    extract = work / "extract"
    with tarfile.open(archive) as tar:
        prefix = f"{tar.getnames()[0].split('/')[0]}/{tree.folder}/"
        members = [m for m in tar.getmembers() if m.name.startswith(prefix)]
        tar.extractall(extract, members=members, filter="data")
    docs.parent.mkdir(parents=True, exist_ok=True)
    (extract / prefix).rename(docs)
    return docs


def parse_variant(spec: str) -> tuple[str, dict[str, Any]]:
    """``name:key=value,key=value`` as a name and typed ``Settings`` overrides."""
    name, _, assignments = spec.partition(":")
    fields = {f.name: f for f in dataclasses.fields(Settings)}
    overrides: dict[str, Any] = {}
    for assignment in filter(None, assignments.split(",")):
        key, _, value = assignment.partition("=")
        kind = type(getattr(Settings(), key)) if key in fields else str
        overrides[key] = kind(value) if kind is not bool else value.lower() in ("1", "true")
    return name or "default", overrides


def evaluate_tree(nexus: Assistant, tree: Tree, *, answers: bool = True) -> dict[str, Any]:
    """Passage ranking and (unless ``answers`` is False) cited-answer scores of one tree's
    question set."""
    questions = load_questions(QUESTIONS / f"{tree.name}.jsonl")
    started = time.perf_counter()
    ranking = evaluate_questions(nexus, questions)
    scores = {
        "questions": ranking.questions,
        "hit@1": ranking.passage_hit_at[1],
        "hit@5": ranking.passage_hit_at[5],
        "mrr@10": ranking.passage_mrr_at_10,
        "document_hit@1": ranking.hit_at[1],
        "misses": ranking.misses,
    }
    if not answers:
        return scores | {"seconds": round(time.perf_counter() - started, 1)}
    floor = relevance_floor(nexus.manifest.encoder_name)  # the chat's own floor
    cited = evaluate_answers(nexus, questions, min_relevance=floor)
    return scores | {
        "answer_quotes_term": cited.quoted,
        "refused_answerable": cited.refused_answerable,
        "answered_no_answer": len(cited.answered_no_answer),
        "no_answer": cited.no_answer,
        "weak_answerable": len(cited.weak_answerable),
        "weak_no_answer": len(cited.weak_no_answer),
        "seconds": round(time.perf_counter() - started, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--split", choices=("tune", "report", "all"), default="tune")
    parser.add_argument("--tree", action="append", help="only these trees (by name)")
    parser.add_argument(
        "--variant", action="append", help="name:key=value,... (Settings overrides)"
    )
    parser.add_argument("--index-suffix", default="", help="e.g. -floor64 for another build")
    parser.add_argument(
        "--build-set", default="", help="key=value,... build settings for the indexes"
    )
    parser.add_argument("--no-answers", action="store_true", help="score the ranking only")
    parser.add_argument("--build-only", action="store_true", help="index the trees, no scores")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    trees = [t for t in TREES if args.split in ("all", t.split)]
    if args.tree:
        trees = [t for t in trees if t.name in args.tree]
    _, build_overrides = parse_variant(f"build:{args.build_set}")
    build_settings = Settings().replace(**build_overrides)
    variants = [parse_variant(v) for v in args.variant or ["default:"]]
    results: dict[str, Any] = {
        "command": command_line("benchmarks.external_docs"),
        "cpu_flags": cpu_flags(),
        "build_settings": build_overrides,
        "trees": {},
    }
    encoder = None
    for tree in trees:
        docs = fetch_tree(tree)
        index_dir = WORK / "external" / f"{tree.name}-index{args.index_suffix}"
        built = build_index(docs, index_dir, settings=build_settings, encoder=encoder)
        print(f"{tree.name}: {built.summary()}", file=sys.stderr, flush=True)
        if args.build_only:
            continue
        base = Assistant.load(index_dir, settings=build_settings, encoder=encoder)
        encoder = base.encoder
        rows: dict[str, Any] = {"documents": built.documents, "chunks": built.chunks}
        for name, overrides in variants:
            nexus = Assistant(base.index, encoder, build_settings.replace(**overrides))
            row = evaluate_tree(nexus, tree, answers=not args.no_answers)
            rows[name] = row
            cited = (
                f" quotes {row['answer_quotes_term']:.3f} refused {len(row['refused_answerable'])}"
                if "answer_quotes_term" in row
                else ""
            )
            print(
                f"{tree.name:7} {tree.split:6} {name:16} hit@1 {row['hit@1']:.3f} "
                f"hit@5 {row['hit@5']:.3f} MRR@10 {row['mrr@10']:.3f}{cited}",
                flush=True,
            )
        results["trees"][tree.name] = {"split": tree.split, **rows}
    report(results, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
