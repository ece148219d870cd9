"""Read BEIR-format datasets: ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/<split>.tsv``.

Each corpus line becomes a :class:`~assistant.ingest.documents.Document` with one section, so a
public benchmark goes through the same chunking, embedding, index and retrieval code as a folder
of Markdown. The title becomes the heading path, which makes a document that fits in one chunk
embed as its title followed by its text, the input MTEB and BEIR give the model.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError, CorpusNotFoundError
from .documents import Block, Document, Section

__all__ = ["BeirDataset", "load_beir", "read_beir_documents"]

CORPUS_FILE = "corpus.jsonl"
QUERIES_FILE = "queries.jsonl"


@dataclass(frozen=True)
class BeirDataset:
    """Queries and relevance judgements of one split; the corpus is streamed separately.

    ``qrels`` maps a query id to ``{doc id: grade}``; grade 0 means judged not relevant.
    ``queries`` holds only the queries that have judgements in this split.
    """

    name: str
    folder: Path
    split: str
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]


def _require(folder: Path, relative: str) -> Path:
    path = folder / relative
    if not path.is_file():
        raise CorpusNotFoundError(
            f"{path} does not exist; a BEIR folder holds corpus.jsonl, queries.jsonl and "
            f"qrels/<split>.tsv"
        )
    return path


def _json_lines(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
                if not isinstance(data, dict) or "_id" not in data:
                    raise ValueError("expected an object with an _id")
            except ValueError as exc:
                raise ConfigError(f"{path}:{number}: not a BEIR record ({exc})") from exc
            yield number, data


def read_beir_documents(folder: str | Path) -> Iterator[Document]:
    """The corpus of a BEIR folder as documents, in file order.

    A document's ``source`` is its ``_id``; its hash covers title and text, so an incremental
    build re-embeds only documents whose content changed.

    Raises:
        CorpusNotFoundError: ``corpus.jsonl`` is missing.
        ConfigError: A line is not a JSON object with an ``_id``.
    """
    path = _require(Path(folder), CORPUS_FILE)
    for _, data in _json_lines(path):
        title = str(data.get("title") or "").strip()
        text = str(data.get("text") or "").strip()
        if not text and not title:
            continue
        body = text or title
        lines = body.count("\n") + 1
        section = Section(
            headings=(title,) if title else (),
            start_line=1,
            end_line=lines,
            blocks=(Block(body, 1, lines, "text"),),
        )
        digest = hashlib.sha256(f"{title}\x00{text}".encode()).hexdigest()
        yield Document(
            source=str(data["_id"]),
            title=title,
            format="text",
            category="",
            text=body,
            sha256=digest,
            sections=(section,),
        )


def load_beir(folder: str | Path, split: str = "test") -> BeirDataset:
    """Queries and judgements of one split of a BEIR folder.

    Raises:
        CorpusNotFoundError: A required file is missing.
        ConfigError: A file is malformed or the split judges no query.
    """
    folder = Path(folder)
    qrels_path = _require(folder, f"qrels/{split}.tsv")
    qrels: dict[str, dict[str, int]] = {}
    with qrels_path.open(encoding="utf-8", newline="") as handle:
        rows = csv.reader(handle, delimiter="\t")
        for number, row in enumerate(rows, start=1):
            if number == 1 and row and row[0] == "query-id":
                continue
            if not row:
                continue
            try:
                query_id, doc_id, grade = row[0], row[1], int(row[2])
            except (IndexError, ValueError) as exc:
                raise ConfigError(
                    f"{qrels_path}:{number}: expected query-id, corpus-id, score"
                ) from exc
            qrels.setdefault(query_id, {})[doc_id] = grade
    if not qrels:
        raise ConfigError(f"{qrels_path} judges no query")
    queries = {
        str(data["_id"]): str(data.get("text", ""))
        for _, data in _json_lines(_require(folder, QUERIES_FILE))
        if str(data["_id"]) in qrels
    }
    missing = len(set(qrels) - set(queries))
    if missing:
        raise ConfigError(f"{missing} judged queries of {qrels_path} are not in {QUERIES_FILE}")
    return BeirDataset(folder.name, folder, split, queries, qrels)
