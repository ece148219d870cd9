"""Read and parse files, in this process or in worker processes, always in the order given.

Worker processes do two jobs. They share the parsing out over the cores when a build has many
files (docutils is the slowest step of a build before embedding). And they bound what any one
file can cost: each worker runs under a memory cap (``RLIMIT_AS``) and each file under a time
limit, so a PDF that decompresses to gigabytes or a page that sends a parser into a spin is
skipped with a reason while the build goes on. PDF and Word files, whose parsers unpack what
the file holds, are therefore always parsed in a worker.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path

from ..errors import first_line
from .documents import Document, SkipFile
from .files import Skipped, discover, read_file
from .readers import BINARY_SUFFIXES, parse

__all__ = [
    "MEMORY_LIMIT_BYTES",
    "PARALLEL_FILES",
    "TIME_LIMIT_SECONDS",
    "load_corpus",
    "parse_files",
    "worker_count",
]

log = logging.getLogger(__name__)

# What one worker may use: far above any real document, far below the machine.
MEMORY_LIMIT_BYTES = 2 * 2**30
TIME_LIMIT_SECONDS = 120.0
# Below this many files, starting workers costs more than it saves.
PARALLEL_FILES = 16
MAX_WORKERS = 4
_START_SECONDS = 60.0  # a worker interpreter starts in about a second; a minute means broken


def worker_count(paths: Sequence[Path]) -> int:
    """How many workers should parse ``paths``: none for a few text files, one when any file
    is binary (for its memory cap), one per core (up to four) for many files."""
    if len(paths) >= PARALLEL_FILES and (os.cpu_count() or 1) > 1:
        return min(os.cpu_count() or 1, MAX_WORKERS)
    return 1 if any(p.suffix.lower() in BINARY_SUFFIXES for p in paths) else 0


def parse_files(
    root: Path,
    paths: Iterable[Path],
    *,
    max_bytes: int,
    workers: int = 0,
    memory_bytes: int = MEMORY_LIMIT_BYTES,
    seconds: float = TIME_LIMIT_SECONDS,
) -> Iterator[Document | Skipped]:
    """Each file read and parsed (a :class:`Document`) or skipped with its reason, in order.

    Args:
        root: The corpus folder.
        paths: Files under it.
        max_bytes: Files larger than this are skipped.
        workers: Worker processes to parse in; 0 parses here (see :func:`worker_count`).
        memory_bytes: Memory one worker may use before its file is skipped.
        seconds: Time one file may take in a worker before it is skipped.
    """
    if workers <= 0:
        for path in paths:
            yield _parse_one(root, path, max_bytes)
        return
    with _Pool(workers, memory_bytes, seconds) as pool:
        yield from pool.map(root, paths, max_bytes)


def _parse_one(root: Path, path: Path, max_bytes: int) -> Document | Skipped:
    try:
        return parse(read_file(root, path, max_bytes=max_bytes))
    except SkipFile as exc:
        return Skipped(path.relative_to(root).as_posix(), str(exc))


def load_corpus(
    root: Path, *, max_bytes: int = 5_000_000, exclude: Sequence[Path] = ()
) -> tuple[list[Document], list[tuple[str, str]]]:
    """Discover, read and parse every document under `root`.

    Args:
        root: The corpus folder.
        max_bytes: Per-file size limit; defaults to 5 MB, far above any hand-written page.
        exclude: Paths to leave out, see `discover`.

    Returns:
        The parsed documents and a `(source, reason)` pair for each skipped file.

    Raises:
        CorpusNotFoundError: If `root` does not exist or is not a folder.
    """
    root = Path(root)
    paths = discover(root, exclude=exclude)
    documents: list[Document] = []
    skipped: list[tuple[str, str]] = []
    for result in parse_files(root, paths, max_bytes=max_bytes, workers=worker_count(paths)):
        if isinstance(result, Skipped):
            log.warning("Skipping %s: %s", result.source, result.reason)
            skipped.append((result.source, result.reason))
            continue
        for warning in result.warnings:
            log.warning("%s: %s", result.source, warning)
        documents.append(result)
    return documents, skipped


# --------------------------------------------------------------------------- workers


def _serve(conn: Connection, memory_bytes: int) -> None:
    """A worker: parse each (root, path, max_bytes) it is sent and send back what came of it,
    with whether it can take another file (not after running out of memory)."""
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    conn.send("ready")  # started and imported: the time limit counts from the next file
    while True:
        try:
            task = conn.recv()
        except EOFError:
            return
        if task is None:
            return
        root, path, max_bytes = task
        source = path.relative_to(root).as_posix()
        try:
            conn.send((_parse_one(root, path, max_bytes), True))
        except MemoryError:
            conn.send((Skipped(source, _too_big(memory_bytes)), False))
            return
        except Exception as exc:  # a parser bug on one odd file must not stop the build
            reason = f"the reader failed on this file ({first_line(exc)})"
            conn.send((Skipped(source, reason), True))


def _too_big(memory_bytes: int) -> str:
    return (
        f"reading it needs more than {memory_bytes / 2**20:,.0f} MB of memory (a compressed "
        "file that unpacks to far more than it holds?); not read"
    )


@dataclass
class _Worker:
    process: subprocess.Popen[bytes]
    conn: Connection
    task: int | None = None
    source: str = ""
    started: float = 0.0
    ready: bool = False


class _Pool:
    """Worker processes, each parsing one file at a time; a worker that dies or overruns the
    time limit is replaced and its file skipped.

    Workers are fresh interpreters running this module (``python -m``), talking over a socket
    pair: unlike multiprocessing's spawn, that never re-runs the caller's main script, and
    unlike fork it copies no threads of the parent (the model's) mid-step.
    """

    def __init__(self, workers: int, memory_bytes: int, seconds: float) -> None:
        self._memory = memory_bytes
        self._seconds = seconds
        self._workers: list[_Worker] = []
        try:
            for _ in range(workers):
                self._workers.append(self._start())
        except BaseException:
            self.__exit__()
            raise

    def __enter__(self) -> _Pool:
        return self

    def __exit__(self, *exc: object) -> None:
        for worker in self._workers:
            self._stop(worker)

    def _start(self) -> _Worker:
        ours, theirs = socket.socketpair()
        # The worker imports Nexus from wherever this process does.
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        with theirs:
            process = subprocess.Popen(
                [sys.executable, "-m", __name__, str(theirs.fileno()), str(self._memory)],
                pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL,
                env=env,
            )
        return _Worker(process, Connection(ours.detach()))

    def _stop(self, worker: _Worker, kill: bool = False) -> None:
        if not kill:
            with contextlib.suppress(OSError):
                worker.conn.send(None)
            with contextlib.suppress(subprocess.TimeoutExpired):
                worker.process.wait(timeout=5)
        if worker.process.poll() is None:
            worker.process.kill()
            worker.process.wait()
        worker.conn.close()

    def _replace(self, worker: _Worker) -> _Worker:
        self._stop(worker, kill=True)
        fresh = self._start()
        self._workers[self._workers.index(worker)] = fresh
        return fresh

    def map(
        self, root: Path, paths: Iterable[Path], max_bytes: int
    ) -> Iterator[Document | Skipped]:
        pending = deque(enumerate(paths))
        done: dict[int, Document | Skipped] = {}
        next_out = 0
        while pending or any(w.task is not None for w in self._workers):
            for worker in list(self._workers):
                if worker.task is None and pending:
                    self._send(worker, root, *pending.popleft(), max_bytes)
            busy = [w for w in self._workers if w.task is not None]
            deadline = min(w.started for w in busy) + self._seconds
            ready = wait([w.conn for w in busy], timeout=max(0.0, deadline - time.monotonic()))
            for worker in busy:
                index = worker.task
                assert index is not None
                if worker.conn in ready:
                    done[index] = self._receive(worker)
                elif time.monotonic() - worker.started >= self._seconds:
                    reason = f"reading it took longer than {self._seconds:g} s; not read"
                    done[index] = Skipped(worker.source, reason)
                    self._replace(worker)
            while next_out in done:
                yield done.pop(next_out)
                next_out += 1

    def _send(self, worker: _Worker, root: Path, index: int, path: Path, max_bytes: int) -> None:
        try:
            self._wait_ready(worker)
            worker.conn.send((root, path, max_bytes))
        except (OSError, EOFError):  # it died before or between files: a fresh one takes over
            worker = self._replace(worker)
            self._wait_ready(worker)
            worker.conn.send((root, path, max_bytes))
        worker.task, worker.started = index, time.monotonic()
        worker.source = path.relative_to(root).as_posix()

    def _wait_ready(self, worker: _Worker) -> None:
        if not worker.ready:
            if not worker.conn.poll(_START_SECONDS) or worker.conn.recv() != "ready":
                raise OSError("the parsing worker did not start")
            worker.ready = True

    def _receive(self, worker: _Worker) -> Document | Skipped:
        try:
            result, reusable = worker.conn.recv()
        except (EOFError, OSError):  # it died: killed at its memory cap, or crashed
            result, reusable = Skipped(worker.source, _too_big(self._memory)), False
        worker.task = None
        if not reusable:
            self._replace(worker)
        return result  # type: ignore[no-any-return]


if __name__ == "__main__":  # a worker, started by _Pool
    _serve(Connection(int(sys.argv[1])), int(sys.argv[2]))
