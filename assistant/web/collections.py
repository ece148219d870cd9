"""Several indexes served by one app, each by its name: opened, reloaded and failing on its own.

A :class:`Collections` holds one :class:`~.service.NexusService` per collection, in the order
given; the first is the default for every request that names none. A collection whose index
cannot be opened (not built yet, damaged, its Milvus collection gone) is kept as unavailable
with the reason: requests for it get that reason, the others keep answering, and opening it is
tried again every ``retry_every`` seconds, so an index built later comes online by itself.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from ..errors import AssistantError, CollectionNotFoundError, CollectionUnavailableError
from .service import NexusService

__all__ = ["DEFAULT_NAME", "Collections", "OpenService"]

log = logging.getLogger(__name__)

DEFAULT_NAME = "default"  # the name of the one collection of a server given a single index

# Opens the service of one collection (name, index folder), or raises AssistantError.
OpenService = Callable[[str, Path], NexusService]


@dataclass
class _Slot:
    name: str
    index_dir: Path
    service: NexusService | None = None
    error: AssistantError | None = None
    tried_at: float = float("-inf")

    @property
    def problem(self) -> str | None:
        return None if self.error is None else str(self.error)


class Collections:
    """The collections one app answers from, by name; the first is the default.

    Args:
        index_dirs: Collection name → index folder, in the order the picker shows them.
        open_service: Opens one collection's service (loads its index and model).
        retry_every: Seconds between attempts to open an unavailable collection.
        on_open: Called with each service once it is open (the app starts its watcher here).
    """

    def __init__(
        self,
        index_dirs: Mapping[str, Path],
        open_service: OpenService,
        *,
        retry_every: float = 10.0,
        on_open: Callable[[NexusService], None] | None = None,
    ) -> None:
        if not index_dirs:
            raise ValueError("a server needs at least one collection")
        self._slots = {name: _Slot(name, Path(folder)) for name, folder in index_dirs.items()}
        self._open_service = open_service
        self._retry_every = retry_every
        self._on_open = on_open
        self._lock = threading.Lock()
        for slot in self._slots.values():
            self._try_open(slot)

    @property
    def names(self) -> list[str]:
        return list(self._slots)

    @property
    def default(self) -> str:
        return next(iter(self._slots))

    def __len__(self) -> int:
        return len(self._slots)

    def _try_open(self, slot: _Slot) -> None:
        slot.tried_at = time.monotonic()
        try:
            service = self._open_service(slot.name, slot.index_dir)
        except AssistantError as exc:
            if slot.problem != str(exc):
                log.warning("collection %s is unavailable: %s", slot.name, exc)
            slot.error = exc
            return
        slot.service, slot.error = service, None
        if self._on_open is not None:
            self._on_open(service)
        log.info("collection %s serves %s", slot.name, slot.index_dir)

    def _retried(self, slot: _Slot) -> _Slot:
        if slot.service is None and time.monotonic() - slot.tried_at >= self._retry_every:
            with self._lock:
                if slot.service is None and time.monotonic() - slot.tried_at >= self._retry_every:
                    self._try_open(slot)
        return slot

    def get(self, name: str | None = None) -> NexusService:
        """The service of collection ``name`` (the default when empty or None).

        Raises:
            CollectionNotFoundError: No collection has that name (the message lists them).
            CollectionUnavailableError: Its index cannot be opened now (the message says why).
        """
        slot = self._slots.get(name or self.default)
        if slot is None:
            raise CollectionNotFoundError(
                f"no collection {name!r} on this server; it has {', '.join(self._slots)}"
            )
        self._retried(slot)
        if slot.service is None:
            raise CollectionUnavailableError(
                f"collection {slot.name!r} is unavailable: {slot.problem}"
            )
        return slot.service

    def problem(self, name: str) -> str | None:
        """Why collection ``name`` cannot answer now, or None when it can."""
        return self._retried(self._slots[name]).problem

    def first_error(self) -> AssistantError:
        """Why the first unavailable collection cannot be opened (for a server that can open
        none: with one index, that index's own error, such as IndexNotFoundError)."""
        errors = [slot.error for slot in self._slots.values() if slot.error is not None]
        if not errors:
            raise ValueError("every collection is open")
        return errors[0]

    def services(self) -> Iterator[NexusService]:
        """The services open now, in collection order."""
        for slot in self._slots.values():
            if slot.service is not None:
                yield slot.service

    def index_dir(self, name: str) -> Path:
        return self._slots[name].index_dir
