"""Keep an index in step with its corpus: one build at a time, on request or after each change.

An :class:`IndexUpdater` owns the builds of one index. :meth:`~IndexUpdater.update` brings it
up to date now (the web app's Rebuild button); :meth:`~IndexUpdater.watch` does so after every
burst of changes under the corpus (``nexus serve --watch``, ``nexus build --watch``), found by
`watchfiles <https://watchfiles.helpmanual.io/>`_ (inotify on Linux: no polling, so an idle
watch costs next to nothing). Builds never overlap; changes made while one runs are taken in
by exactly one more build after it; a burst of saves (an editor's write-and-rename, a ``git
checkout``) makes one build. A build that fails is recorded with its reason, and the index it
could not replace keeps serving. What it does can be watched through an
:class:`UpdateObserver` (a server's metrics count bursts and time builds there).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from .build import BuildReport, prepare_index
from .config import Settings
from .encoders import Encoder
from .errors import AssistantError
from .ingest.files import affects_corpus

__all__ = [
    "QUIET_MS",
    "BuildOutcome",
    "BuildTrigger",
    "IndexUpdater",
    "UpdateObserver",
    "UpdateRunning",
    "UpdateState",
    "corpus_bursts",
]

log = logging.getLogger(__name__)

# A burst of changes is over once the corpus has been quiet this long. Editors save in a few
# milliseconds (write a temporary file, rename it over the old one); 250 ms also groups a
# script's or a checkout's writes, and adds little to the time before a save is searchable.
QUIET_MS = 250
# Changes still coming after this long are taken in without waiting for quiet, so a long copy
# is indexed as it goes rather than only at its end.
MAX_WAIT_MS = 2_000
# How often a waiting watcher checks that the corpus folder is still the one it watches (it
# may be deleted and made again, or mounted late).
CHECK_EVERY_MS = 5_000
# How long watchfiles collects events before handing them over; its own default.
_STEP_MS = 50


# How a build attempt ended: a new generation published, nothing to do (the index already
# matched the corpus), or failed (the previous index keeps serving).
BuildOutcome = Literal["published", "unchanged", "failed"]
# What started it: the watcher, after a burst of changes, or a request (the Rebuild button).
BuildTrigger = Literal["watch", "request"]


class UpdateRunning(AssistantError):
    """Another build of this index is running; it will take the latest files in."""


class UpdateObserver(Protocol):
    """What an :class:`IndexUpdater` reports as it works, for whoever counts it (a server's
    metrics); called on the thread that does the work, so it must be quick."""

    def burst(self, changes: int) -> None:
        """The watcher saw a burst of ``changes`` changes under the corpus."""

    def built(self, trigger: BuildTrigger, outcome: BuildOutcome, seconds: float) -> None:
        """A build attempt ended after ``seconds`` (waiting for another build not included)."""


@dataclass(frozen=True)
class UpdateState:
    """What the updater of one index is doing and last did, for status panels and health.

    ``last_change`` is when the watcher last saw a change under the corpus; ``finished`` when
    a build last published a generation (``report`` is that build's); ``failed`` and
    ``problem`` say when and why the last attempt failed, and are cleared by the next success.
    Times are UTC, ISO 8601, to the second.
    """

    corpus_dir: str
    watching: bool
    building: bool
    builds: int
    last_change: str | None
    finished: str | None
    report: BuildReport | None
    failed: str | None
    problem: str | None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class IndexUpdater:
    """Builds of one index from one corpus, never two at once.

    Args:
        settings: The build settings; ``settings.corpus_dir`` and ``settings.index_dir`` name
            the pair kept in step.
        encoder: The loaded model to embed with (a server passes the one it searches with).
        on_publish: Called after each build that published a generation, with its report
            (a server switches to the new generation there, before the next search).
        progress: Show progress bars for builds (the command line does; servers do not).
        observer: Told of every burst of changes and every build attempt.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        encoder: Encoder | None = None,
        on_publish: Callable[[BuildReport], None] | None = None,
        progress: bool = False,
        observer: UpdateObserver | None = None,
    ) -> None:
        self.settings = settings
        self._encoder = encoder
        self._on_publish = on_publish
        self._progress = progress
        self._observer = observer
        self._build_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._state = UpdateState(
            str(settings.corpus_dir), False, False, 0, None, None, None, None, None
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def corpus_dir(self) -> Path:
        return self.settings.corpus_dir

    def state(self) -> UpdateState:
        with self._state_lock:
            return self._state

    def _set(self, **changes: Any) -> None:
        with self._state_lock:
            self._state = replace(self._state, **changes)

    def update(self, *, wait: bool = True) -> BuildReport | None:
        """Build the index if the corpus changed since its last build (incrementally).

        Returns the build's report, or None when the index already matched the corpus.

        Args:
            wait: Wait for a build already running to end first; when False, raise
                :class:`UpdateRunning` instead.

        Raises:
            UpdateRunning: ``wait`` is False and a build is running.
            AssistantError: The build failed (an empty corpus, a full disk ...); the reason is
                also kept in :meth:`state`, and the previous index keeps serving. Any other
                exception is a bug, and is recorded the same way before it propagates.
        """
        return self._update(wait=wait, trigger="request")

    def _update(self, *, wait: bool, trigger: BuildTrigger) -> BuildReport | None:
        if not self._build_lock.acquire(blocking=wait):
            raise UpdateRunning("a build of this index is already running")
        try:
            self._set(building=True)
            started = time.perf_counter()
            try:
                report = prepare_index(
                    self.settings, encoder=self._encoder, progress=self._progress
                )
            except Exception as exc:  # any failure leaves the previous index in place
                problem = str(exc) if isinstance(exc, AssistantError) else f"{exc!r} (a bug)"
                self._set(failed=_now(), problem=problem)
                log.warning("update failed, the previous index keeps serving: %s", problem)
                self._built(trigger, "failed", started)
                raise
            if report is not None:
                builds = self.state().builds + 1
                self._set(finished=_now(), report=report, builds=builds, problem=None)
                if self._on_publish is not None:
                    self._on_publish(report)
            else:
                self._set(problem=None)
            # Reported once the new generation serves, so whoever counts builds sees it too.
            self._built(trigger, "unchanged" if report is None else "published", started)
            return report
        finally:
            self._set(building=False)
            self._build_lock.release()

    def _built(self, trigger: BuildTrigger, outcome: BuildOutcome, started: float) -> None:
        if self._observer is not None:
            self._observer.built(trigger, outcome, time.perf_counter() - started)

    def watch(self, stop: threading.Event | None = None) -> Iterator[BuildReport]:
        """Update the index after every burst of changes under the corpus, until ``stop``.

        Yields the report of each build that published; a failed build is logged and kept in
        :meth:`state`, and watching goes on. The caller's thread runs the builds, so a burst
        that arrives during one is taken in by the next.
        """
        stop = stop or self._stop
        self._set(watching=True)
        try:
            for changes in corpus_bursts(self.corpus_dir, stop, exclude=self.settings.index_dir):
                self._set(last_change=_now())
                if self._observer is not None:
                    self._observer.burst(changes)
                try:
                    report = self._update(wait=True, trigger="watch")
                except AssistantError:
                    continue  # said in the log and the state; the next change tries again
                except Exception:
                    log.exception("the update failed unexpectedly; watching goes on")
                    continue
                if report is not None:
                    yield report
        finally:
            self._set(watching=False)

    def start(self) -> None:
        """Watch in a background thread (see :meth:`watch`) until :meth:`stop`."""
        if self._thread is not None:
            return
        self._stop.clear()

        def run() -> None:
            for _ in self.watch(self._stop):
                pass

        self._thread = threading.Thread(target=run, name=f"watch {self.corpus_dir}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop a background watch, waiting up to ``timeout`` seconds for a build to end."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None


def corpus_bursts(
    corpus_dir: Path, stop: threading.Event, *, exclude: Path | None = None
) -> Iterator[int]:
    """Yield once per burst of changes that can alter what a build of ``corpus_dir`` reads
    (the number of changes in it), until ``stop`` is set.

    A burst ends when the corpus has been quiet for :data:`QUIET_MS`, or :data:`MAX_WAIT_MS`
    after it began. Changes :func:`~assistant.ingest.files.affects_corpus` rules out (hidden
    files, editor swap files, build folders, ``exclude`` such as an index inside the corpus)
    are ignored. A corpus folder that is missing, or replaced by a new folder of the same
    name, is waited for and watched afresh, with a burst yielded when it (re)appears.
    """
    root = corpus_dir.resolve()
    excluded = exclude.resolve() if exclude is not None else None
    news = False  # whether the folder appeared or was replaced since the last look
    while not stop.is_set():
        identity = _identity(root)
        if identity is None:
            news = True
            stop.wait(CHECK_EVERY_MS / 1000)
            continue
        if news:
            yield 1  # a corpus folder made anew: whatever it holds is news
        news = True  # from here on, leaving the watch below means the folder was replaced
        try:
            yield from _bursts(root, excluded, stop, identity)
        except OSError as exc:  # the folder vanished while the watch was being set up
            log.info("cannot watch %s (%s); trying again", root, exc)
            stop.wait(CHECK_EVERY_MS / 1000)


def _bursts(
    root: Path, excluded: Path | None, stop: threading.Event, identity: tuple[int, int]
) -> Iterator[int]:
    """Bursts under ``root`` until ``stop``, or until the folder is removed or replaced.

    watchfiles hands over a set of changes at a time, and repeated saves of one file are one
    change in that set; quiet is therefore measured as a wait of :data:`QUIET_MS` that brings
    no change at all (watchfiles' timeout). A folder removed and made again may get the same
    inode, so its removal is noticed from the event, not from the folder's identity alone.
    """
    import watchfiles

    removed = threading.Event()

    def relevant(change: watchfiles.Change, raw: str) -> bool:
        path = Path(raw)
        if path == root:
            if change == watchfiles.Change.deleted:
                removed.set()
            return True
        if excluded is not None and path.is_relative_to(excluded):
            return False
        return affects_corpus(root, path, deleted=change == watchfiles.Change.deleted)

    pending, began, checked = 0, 0.0, time.monotonic()
    for changes in watchfiles.watch(
        root,
        watch_filter=relevant,
        debounce=QUIET_MS,
        step=_STEP_MS,
        stop_event=stop,
        rust_timeout=QUIET_MS,
        yield_on_timeout=True,
        raise_interrupt=True,
        ignore_permission_denied=True,
    ):
        now = time.monotonic()
        if changes:
            began = began if pending else now
            pending += len(changes)
        if removed.is_set():
            log.info("%s was removed; watching it afresh once it is back", root)
            return  # what was pending is taken in by the build of the folder made anew
        if pending and (not changes or now - began >= MAX_WAIT_MS / 1000):
            yield pending
            pending = 0
        if now - checked >= CHECK_EVERY_MS / 1000:
            checked = now
            if _identity(root) != identity:
                log.info("%s was replaced; watching the new folder", root)
                return


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_dev, info.st_ino
