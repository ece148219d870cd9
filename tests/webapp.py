"""Helpers for tests of the web app: build a small index and serve it on a free port."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from assistant import Assistant, Settings, build_index

DATA = Path(__file__).parent / "data"

# A document an attacker could slip into a corpus: every line tries to run script.
HOSTILE = """# Hostile page

Cache poisoning notes <script>window.__pwned = "script"</script> for readers.

An image <img src="x" onerror="window.__pwned = 'img'"> about cache poisoning.

A [cache poisoning link](javascript:window.__pwned='link') and
<a href="javascript:window.__pwned='a'">another</a>.

<iframe src="javascript:window.__pwned='iframe'"></iframe>
"""


def make_index(root: Path, encoder: Any, *, hostile: bool = True) -> tuple[Settings, Assistant]:
    """Copy the mini corpus (plus a hostile document) under ``root``, index it, load it."""
    corpus = root / "corpus"
    shutil.copytree(DATA / "mini_corpus", corpus)
    if hostile:
        (corpus / "guides" / "hostile.md").write_text(HOSTILE, encoding="utf-8")
    settings = Settings(
        corpus_dir=corpus,
        index_dir=root / "index",
        chunk_tokens=120,
        chunk_overlap=16,
        min_chunk_tokens=24,
    )
    build_index(corpus, settings.index_dir, settings=settings, encoder=encoder)
    return settings, Assistant.load(settings.index_dir, settings=settings, encoder=encoder)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """Run an ASGI app with uvicorn in a thread; yields its base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=1
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
