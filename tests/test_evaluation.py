"""Evaluation tooling: BEIR reading, trec_eval scoring, the real pipeline on a tiny BEIR set."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from assistant import Assistant, Settings
from assistant.cli import main
from assistant.errors import ConfigError, CorpusNotFoundError
from assistant.evaluation import (
    build_beir_index,
    evaluate_beir,
    evaluate_conversation,
    evaluate_whole_documents,
    load_questions,
    score_run,
    trec_order,
)
from assistant.ingest.beir import load_beir, read_beir_documents
from assistant.ingest.chunking import chunk_document
from assistant.testing import HashEncoder

BEIR_MINI = Path(__file__).parent / "data" / "beir_mini"


def test_beir_documents_embed_as_title_then_text(encoder: HashEncoder) -> None:
    docs = {d.source: d for d in read_beir_documents(BEIR_MINI)}
    assert len(docs) == 8
    (chunk,) = chunk_document(docs["d1"], encoder.count_tokens, max_tokens=254)
    assert chunk.embed_text == (
        "Connection pooling\n\nA pool keeps database connections open and hands them to "
        "requests, so each request skips the handshake."
    )
    (untitled,) = chunk_document(docs["d4"], encoder.count_tokens, max_tokens=254)
    assert untitled.headings == () and untitled.embed_text.startswith("def retry(fn")


def test_a_split_keeps_only_its_judged_queries() -> None:
    test = load_beir(BEIR_MINI, "test")
    assert set(test.queries) == {"q1", "q2", "q3", "q4", "q5"}
    assert test.qrels["q5"] == {"d6": 1, "d5": 0}
    assert load_beir(BEIR_MINI, "train").qrels == {"q6": {"d8": 1}, "q7": {"d7": 2}}
    with pytest.raises(CorpusNotFoundError, match=r"qrels/dev\.tsv"):
        load_beir(BEIR_MINI, "dev")


def test_a_malformed_corpus_line_is_named(tmp_path: Path) -> None:
    (tmp_path / "corpus.jsonl").write_text('{"_id": "a", "text": "fine"}\n[1, 2]\n')
    with pytest.raises(ConfigError, match=r"corpus.jsonl:2"):
        list(read_beir_documents(tmp_path))


def test_scores_match_a_hand_computed_case() -> None:
    qrels = {"q1": {"a": 1, "c": 2, "z": 0}, "q2": {"b": 1}, "q3": {"x": 1}}
    run = {
        "q1": {"b": 3.0, "a": 2.0, "c": 1.0},  # relevant at ranks 2 (gain 1) and 3 (gain 2)
        "q2": {"a": 0.5, "b": 0.5},  # a tie: trec_eval ranks "b" (higher id) first
        # q3 retrieved nothing and still counts
    }
    dcg = 1 / math.log2(3) + 2 / math.log2(4)
    ideal = 2 / math.log2(2) + 1 / math.log2(3)
    scores = score_run(run, qrels)
    assert scores["ndcg_at_10"] == pytest.approx((dcg / ideal + 1.0 + 0.0) / 3)
    assert scores["mrr_at_10"] == pytest.approx((1 / 2 + 1 + 0) / 3)
    assert scores["recall_at_10"] == pytest.approx(2 / 3)
    assert trec_order(run["q2"]) == ["b", "a"]


def test_mrr_counts_only_the_ten_best_documents() -> None:
    run = {"q": {f"d{i:02d}": 1.0 - i / 100 for i in range(12)}}
    assert score_run(run, {"q": {"d10": 1}})["mrr_at_10"] == 0.0
    assert score_run(run, {"q": {"d09": 1}})["mrr_at_10"] == pytest.approx(0.1)


def test_the_real_pipeline_ranks_the_judged_documents(
    tmp_path: Path, encoder: HashEncoder, settings: Settings
) -> None:
    report = build_beir_index(BEIR_MINI, tmp_path / "idx", settings=settings, encoder=encoder)
    assert report.documents == 8 and report.embedded == 8
    nexus = Assistant.load(tmp_path / "idx", settings=settings, encoder=encoder)
    results = evaluate_beir(nexus, load_beir(BEIR_MINI), ["keyword", "hybrid"])
    keyword = results[0]
    assert keyword.queries == 5
    # Every query shares rare words with its document; the duplicate pair d5/d6 ties and
    # trec_eval puts d6 (the judged one) first.
    assert keyword.ndcg_at_10 == 1.0 and keyword.mrr_at_10 == 1.0
    assert 0.0 < results[1].ndcg_at_10 <= 1.0
    again = build_beir_index(BEIR_MINI, tmp_path / "idx", settings=settings, encoder=encoder)
    assert again.embedded == 0 and again.reused == 8


def test_whole_documents_embed_only_long_documents_once(tmp_path: Path) -> None:
    folder = tmp_path / "beir"
    shutil.copytree(BEIR_MINI, folder)
    lines = (folder / "corpus.jsonl").read_text().splitlines()
    twin = json.loads(lines[3]) | {"_id": "d4-copy"}  # a long document stored twice
    (folder / "corpus.jsonl").write_text("\n".join([*lines, json.dumps(twin)]) + "\n")
    encoder = HashEncoder()
    short_chunks = Settings(chunk_tokens=32, chunk_overlap=0, min_chunk_tokens=4)
    build_beir_index(folder, tmp_path / "idx", settings=short_chunks, encoder=encoder)
    nexus = Assistant.load(tmp_path / "idx", settings=short_chunks, encoder=encoder)
    rows = nexus.index.db.chunk_rows_by_source()
    long = {d.text for d in read_beir_documents(folder) if len(rows[d.source]) > 1}
    assert 0 < len(long) < 8  # some documents span chunks, some fit one
    dataset = load_beir(folder)
    before = encoder.texts_encoded
    first = evaluate_whole_documents(nexus, dataset, tmp_path / "whole.npz")
    assert encoder.texts_encoded - before == len(long) + len(dataset.queries)
    again = evaluate_whole_documents(nexus, dataset, tmp_path / "whole.npz")
    assert encoder.texts_encoded - before == len(long) + 2 * len(dataset.queries)  # cached
    assert first.ndcg_at_10 == again.ndcg_at_10 > 0.5 and first.mode == "semantic-whole"


def test_follow_ups_are_scored_alone_and_folded(
    corpus: Path, index_dir: Path, encoder: HashEncoder, settings: Settings, tmp_path: Path
) -> None:
    from assistant import build_index

    build_index(corpus, index_dir, settings=settings, encoder=encoder)
    nexus = Assistant.load(index_dir, settings=settings, encoder=encoder)
    questions = tmp_path / "q.jsonl"
    rows = [
        {
            "id": "f1",
            "question": "and how do I check it in an update?",
            "previous": "What is optimistic locking with a version column?",
            "relevant": ["guides/locking.md"],
            "kind": "follow-up",
        },
        {
            "id": "d1",
            "question": "How do I write a multi-stage Dockerfile with a slim runtime image?",
            "relevant": ["reference/docker.md"],
        },
    ]
    questions.write_text("\n".join(json.dumps(r) for r in rows))
    scores = evaluate_conversation(nexus, load_questions(questions), "keyword")
    follow = scores.follow_ups
    assert follow["questions"] == 1 and follow["folded"] == 1
    assert follow["with_context"]["hit@3"] == 1.0
    assert follow["with_context"]["mrr@10"] >= follow["alone"]["mrr@10"]
    # The one standalone question, asked after itself, is not rewritten.
    assert scores.topic_changes == {**scores.topic_changes, "questions": 1, "folded": 0}


def test_eval_command_writes_json_and_a_plot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("assistant.build.load_encoder", lambda *_, **__: HashEncoder())
    monkeypatch.setattr("assistant.search.assistant.load_encoder", lambda *_, **__: HashEncoder())
    out, plot = tmp_path / "r.json", tmp_path / "r.png"
    args = ["eval", "--beir", str(BEIR_MINI), "--work", str(tmp_path / "work"), "--quiet"]
    code = main([*args, "--split", "test", "--out", str(out), "--plot", str(plot)])
    assert code == 0
    report = json.loads(out.read_text())
    assert [r["mode"] for r in report["beir"]] == ["hybrid", "semantic", "keyword"]
    assert report["beir"][0]["build"]["documents"] == 8
    assert report["beir"][0]["keyword"]["split_identifiers"] == "none"  # the BM25 it ranked with
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "beir_mini test  keyword" in capsys.readouterr().out


def test_a_passage_counts_only_from_a_right_file_and_holding_a_key_term(
    corpus: Path, index_dir: Path, encoder: HashEncoder, settings: Settings, tmp_path: Path
) -> None:
    from assistant import build_index
    from assistant.evaluation import evaluate_answers, evaluate_questions

    build_index(corpus, index_dir, settings=settings, encoder=encoder)
    # Each passage alone, without its neighbours, so the first one lacks the SQL.
    alone = settings.replace(context_chunks=0)
    nexus = Assistant.load(index_dir, settings=alone, encoder=encoder)
    rows = [
        {  # the right file is first, but its first passage lacks the term
            "id": "lock",
            "question": "optimistic locking lost update",
            "relevant": ["guides/locking.md"],
            "terms": ["WHERE id = 7"],
        },
        {
            "id": "plain",
            "question": "optimistic locking lost update",
            "relevant": ["guides/locking.md"],
        },
        {
            "id": "none",
            "question": "quantum chromodynamics lattice",
            "relevant": [],
            "kind": "no-answer",
        },
    ]
    path = tmp_path / "q.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    questions = load_questions(path)
    scores = evaluate_questions(nexus, questions, "keyword")
    assert scores.hit_at[1] == 1.0  # both find the right document first
    assert scores.passage_hit_at[1] == 0.5  # but only "plain" is answered by the first passage
    assert 0.5 < scores.passage_mrr_at_10 < 1.0 and scores.misses == []

    answers = evaluate_answers(nexus, questions, "keyword")
    assert (answers.questions, answers.no_answer) == (2, 1)
    assert answers.quoted == 0.5  # answers quote locking.md, but never its SQL
    assert answers.refused_answerable == []
