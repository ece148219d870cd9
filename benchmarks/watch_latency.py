"""How soon a saved file is found by search while ``app.py --watch`` serves, and what an idle
watch costs.

Copies the bundled corpus to a temporary folder, indexes it there with the default model and
backend, and serves it with ``app.py --watch`` in its own process (without a login). Then, one
file at a time, it appends a sentence holding a word no document has to a Markdown file of the
corpus, and asks ``GET /api/search?q=<word>&mode=keyword`` every 50 ms until that file is the
top hit: the time from the save to the first answer that finds the new text. Edits are spaced
out, so each is one build. Then it leaves the server alone for ``--idle`` seconds and reads the
CPU time the process spent meanwhile (user + system, from ``/proc``), as a share of one core,
in all and split between the event loop's thread and the others (the watcher's among them);
and the same for a server of the same index without ``--watch``, for comparison.

    .venv/bin/python -m benchmarks.watch_latency --json benchmarks/results/watch_latency.json
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import string
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from assistant import build_index
from benchmarks.common import ROOT, command_line, machine, percentile, report, served_app

CORPUS = ROOT / "corpus"
POLL_SECONDS = 0.05


def _cpu_seconds(stat: Path) -> float:
    """User and system CPU time so far of the process or thread a ``/proc`` stat file is of."""
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def _idle_share(process: subprocess.Popen[bytes], seconds: float) -> dict[str, float]:
    """The share of one core a process used while nobody asked it anything: in all, in its
    main thread (uvicorn's event loop, where Gradio's queue polls) and in every other thread
    (the watcher's among them)."""
    whole, main = (
        Path(f"/proc/{process.pid}/stat"),
        Path(f"/proc/{process.pid}/task/{process.pid}/stat"),
    )
    before, before_main, started = _cpu_seconds(whole), _cpu_seconds(main), time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - started
    total, in_main = _cpu_seconds(whole) - before, _cpu_seconds(main) - before_main
    return {
        "process": round(total / elapsed, 5),
        "event_loop_thread": round(in_main / elapsed, 5),
        "other_threads": round(max(total - in_main, 0.0) / elapsed, 5),
    }


def _word() -> str:
    """A word no document holds, of letters only (so keyword search keeps it whole)."""
    return "zq" + "".join(secrets.choice(string.ascii_lowercase) for _ in range(10))


def _found(client: httpx.Client, word: str, source: str) -> bool:
    response = client.get("/api/search", params={"q": word, "k": 1, "mode": "keyword"})
    hits = response.json()["hits"] if response.status_code == 200 else []
    return bool(hits) and hits[0]["source"] == source


def _save_to_found(
    client: httpx.Client, corpus: Path, page: Path, timeout: float
) -> dict[str, Any]:
    """Append a new word to ``page`` and time how long until search finds it there."""
    word, source = _word(), page.relative_to(corpus).as_posix()
    with page.open("a", encoding="utf-8") as out:
        out.write(f"\n\nA note added while the server watches: {word}.\n")
    saved = time.monotonic()
    while not _found(client, word, source):
        if time.monotonic() - saved > timeout:
            return {"source": source, "seconds": None}
        time.sleep(POLL_SECONDS)
    return {"source": source, "seconds": round(time.monotonic() - saved, 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--edits", type=int, default=20, help="Files saved, one at a time.")
    parser.add_argument("--pause", type=float, default=2.0, help="Seconds between edits.")
    parser.add_argument("--idle", type=float, default=60.0, help="Seconds of idle measured.")
    parser.add_argument("--timeout", type=float, default=60.0, help="Longest wait per edit.")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="nexus-watch-"))
    try:
        corpus, index = work / "corpus", work / "index"
        shutil.copytree(CORPUS, corpus)
        built = build_index(corpus, index)
        pages = sorted(p for p in corpus.rglob("*.md") if p.name != "README.md")
        result: dict[str, Any] = {
            "command": command_line("benchmarks.watch_latency", argv),
            "machine": machine(),
            "corpus": {"documents": built.documents, "chunks": built.chunks},
            "settings": {"edits": args.edits, "pause_s": args.pause, "idle_s": args.idle},
        }
        served = served_app(index, args=["--corpus", str(corpus), "--watch"], auth=False)
        with served as (url, server), httpx.Client(base_url=url, timeout=30) as client:
            time.sleep(3)  # the watcher starts with the app
            assert client.get("/api/health").json()["watch"]["watching"], "not watching"
            edits = []
            for i in range(args.edits):
                edits.append(_save_to_found(client, corpus, pages[i % len(pages)], args.timeout))
                print(f"edit {i + 1}: {edits[-1]}", file=sys.stderr, flush=True)
                time.sleep(args.pause)
            health = client.get("/api/health").json()
            time.sleep(3)  # let the last build's work settle before measuring idle
            idle_watching = _idle_share(server, args.idle)
        with served_app(index, auth=False) as (_, plain):
            time.sleep(3)
            idle_plain = _idle_share(plain, args.idle)
        seconds = [e["seconds"] for e in edits if e["seconds"] is not None]
        result["save_to_searchable_s"] = {
            "n": len(seconds),
            "missed": len(edits) - len(seconds),
            **{
                name: round(value, 3) if value is not None else None
                for name, value in (
                    ("p50", percentile(seconds, 50)),
                    ("p95", percentile(seconds, 95)),
                    ("max", max(seconds, default=None)),
                    ("mean", sum(seconds) / len(seconds) if seconds else None),
                )
            },
        }
        result["builds_published"] = health["watch"]["builds"]
        result["idle_cpu_share_of_one_core"] = {
            "watching": idle_watching,
            "not_watching": idle_plain,
        }
        result["edits"] = edits
        result["machine_after"] = machine()["load_average"]
        report(result, args.json)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
