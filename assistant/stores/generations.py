"""Generations: each build writes a complete new folder and publishes it with one rename.

Layout of an index folder::

    index/
      CURRENT                 name of the generation being served (switched atomically)
      gen-<time>-<id>/        one complete, self-contained build
      .lock                   held while a build writes

A build writes its generation into a temporary folder, renames it into place and only then
points ``CURRENT`` at it, so a build that crashes at any step leaves the served generation
alone. What goes into a generation is the caller's business: this module only writes files
it is handed, fsyncs them and publishes.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import shutil
import sqlite3
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from ..errors import IndexCorruptError, IndexNotFoundError, IndexWriteError, first_line
from .manifest import MANIFEST, SCHEMA_VERSION, Manifest, library_versions

__all__ = [
    "CURRENT",
    "GenerationWriter",
    "Saver",
    "current_generation",
    "replace_file",
]

CURRENT = "CURRENT"

# Writes one file (or folder) of a generation at the path it is given.
Saver = Callable[[Path], object]


class GenerationWriter:
    """Writes one new generation of an index folder, atomically.

    Use as a context manager; nothing becomes visible until :meth:`commit` returns::

        with GenerationWriter(index_dir) as writer:
            writer.write([("chunks.sqlite", save_chunks), ...], manifest_fields)
            writer.commit()

    Raises:
        IndexWriteError: The folder cannot be written (permissions, disk full).
    """

    def __init__(self, index_dir: Path) -> None:
        self.index_dir = Path(index_dir)
        # Names sort by creation time, which pruning relies on; the suffix avoids collisions.
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S-%f")
        self.generation = f"gen-{stamp}-{secrets.token_hex(2)}"
        self._tmp = self.index_dir / f".tmp-{self.generation}"
        self._lock: Any = None
        self._manifest: Manifest | None = None

    def __enter__(self) -> GenerationWriter:
        try:
            self.index_dir.mkdir(parents=True, exist_ok=True)
            self._lock = open(self.index_dir / ".lock", "a")
            fcntl.flock(self._lock, fcntl.LOCK_EX)
            _remove_stale_temporaries(self.index_dir)
            self._tmp.mkdir()
        except OSError as exc:
            self._release()
            raise IndexWriteError(f"cannot write the index in {self.index_dir}: {exc}") from exc
        return self

    def __exit__(self, *exc_info: object) -> None:
        shutil.rmtree(self._tmp, ignore_errors=True)
        self._release()

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def write(self, files: Sequence[tuple[str, Saver]], manifest: dict[str, Any]) -> Manifest:
        """Write each ``(name, saver)`` into the temporary folder, then the manifest, which
        records every file's size (a truncated file is caught when the index is opened)."""
        steps = [*files, (MANIFEST, lambda path: self._write_manifest(path, manifest))]
        for name, save in steps:
            try:
                save(self._tmp / name)
            except (OSError, sqlite3.Error, RuntimeError) as exc:  # FAISS raises RuntimeError
                raise IndexWriteError(
                    f"writing {name} of the new index failed ({first_line(exc)}); check free "
                    f"space and permissions in {self.index_dir}; the previous index is unchanged"
                ) from exc
        assert self._manifest is not None
        return self._manifest

    def _write_manifest(self, path: Path, fields: dict[str, Any]) -> None:
        files = {
            p.relative_to(self._tmp).as_posix(): p.stat().st_size
            for p in sorted(self._tmp.rglob("*"))
            if p.is_file()
        }
        manifest = Manifest(
            schema_version=SCHEMA_VERSION,
            generation=self.generation,
            built_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            files=files,
            versions=library_versions(),
            **fields,
        )
        path.write_text(manifest.to_json(), encoding="utf-8")
        self._manifest = manifest

    def commit(self) -> Manifest:
        """Publish the generation: fsync it, rename it into place, then switch ``CURRENT``."""
        if self._manifest is None:
            raise RuntimeError("commit() called before write()")
        final = self.index_dir / self.generation
        served = _served_generation(self.index_dir)
        try:
            _fsync_tree(self._tmp)
            self._tmp.rename(final)
            pointer = self.index_dir / f".{CURRENT}.{self.generation}"
            pointer.write_text(self.generation + "\n", encoding="utf-8")
            _fsync_file(pointer)
            os.replace(pointer, self.index_dir / CURRENT)
            _fsync_file(self.index_dir)
        except OSError as exc:
            raise IndexWriteError(
                f"publishing the new index failed ({exc}); the previous index is unchanged"
            ) from exc
        _prune_generations(self.index_dir, keep={self.generation, served})
        return self._manifest


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    for path in root.rglob("*"):
        if path.is_file():
            _fsync_file(path)
    _fsync_file(root)


def _remove_stale_temporaries(index_dir: Path) -> None:
    """Leftovers of builds that died; safe to delete while we hold the build lock."""
    for path in index_dir.glob(".tmp-*"):
        shutil.rmtree(path, ignore_errors=True)
    for path in index_dir.glob(f".{CURRENT}.*"):
        path.unlink(missing_ok=True)


def _served_generation(index_dir: Path) -> str | None:
    try:
        return (index_dir / CURRENT).read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def _prune_generations(index_dir: Path, keep: set[str | None]) -> None:
    """Delete generations other than ``keep`` (the new one and the one served before it).

    A generation that a killed build renamed into place but never published is newer than the
    served one, so choosing by name alone would keep it and delete what readers still use.
    """
    for old in index_dir.glob("gen-*"):
        if old.is_dir() and old.name not in keep:
            shutil.rmtree(old, ignore_errors=True)


def current_generation(index_dir: Path) -> Path:
    """The folder of the generation ``CURRENT`` points at.

    Raises:
        IndexNotFoundError: There is no built index in ``index_dir``.
        IndexCorruptError: ``CURRENT`` names a generation that is not there.
    """
    index_dir = Path(index_dir)
    pointer = index_dir / CURRENT
    try:
        name = pointer.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise IndexNotFoundError(
            f"no index in {index_dir}; build one with `nexus build --corpus DIR --index "
            f"{index_dir}`"
        ) from None
    generation = index_dir / name
    if not name.startswith("gen-") or not generation.is_dir():
        raise IndexCorruptError(
            f"{pointer} names a missing generation {name!r}; rebuild with `nexus build --full`"
        )
    return generation


class _Saveable(Protocol):
    def save(self, path: Path) -> None: ...


def replace_file(store: _Saveable, path: Path) -> None:
    """Write a repaired file of a published generation beside it, then swap it in.

    The old file is never changed in place: a reader may have it memory-mapped.
    """
    tmp = path.with_name(path.name + ".repair")
    store.save(tmp)
    if path.is_dir():
        shutil.rmtree(path)
    os.replace(tmp, path)
