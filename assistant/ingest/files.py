"""Find the documentation files in a corpus folder and read their bytes, refusing bad files.

Builds, staleness checks and benchmarks all walk a corpus the same way: :func:`discover` the
files, :func:`read_files` them (each a :class:`RawFile` or a :class:`Skipped` with its
reason), and parse those that need it with :mod:`.parsing`.
"""

from __future__ import annotations

import codecs
import hashlib
import logging
import os
import stat
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import CorpusNotFoundError
from .documents import RawFile, SkipFile
from .readers import BINARY_SUFFIXES, SUPPORTED_SUFFIXES

__all__ = [
    "BINARY_SNIFF_BYTES",
    "Skipped",
    "affects_corpus",
    "discover",
    "read_file",
    "read_files",
]

logger = logging.getLogger(__name__)

# Build output, dependencies and tool caches hold copies or generated text, never source docs;
# Sphinx's _static, _templates and _theme hold a site's assets and page templates.
_SKIPPED_DIRS = frozenset(
    {"_build", "build", "dist", "node_modules", "__pycache__", "venv", "site-packages"}
    | {"_static", "_templates", "_theme"}
)
BINARY_SNIFF_BYTES = 8192


@dataclass(frozen=True)
class Skipped:
    """A file or folder left out of the index, and why (said once, in words)."""

    source: str
    reason: str


def discover(
    root: Path,
    *,
    exclude: Sequence[Path] = (),
    unreadable: list[tuple[str, str]] | None = None,
) -> list[Path]:
    """List the supported documentation files under `root`, sorted by relative path.

    Symlinked folders are followed, but each real folder is visited once, so a link back to a
    parent cannot loop. Hidden entries and build/tooling folders are skipped. Folders are told
    apart by device and inode rather than by resolving paths, which would cost time growing
    with the square of the depth in deeply nested trees.

    Args:
        root: The corpus folder.
        exclude: Paths to leave out with everything below them, e.g. an index folder that lives
            inside the corpus. Defaults to nothing.
        unreadable: If given, each folder that cannot be listed is appended to it as a
            `(relative path, reason)` pair; otherwise it is logged as a warning.

    Returns:
        Paths of the form `root / relative`, in tree order.

    Raises:
        CorpusNotFoundError: If `root` does not exist or is not a folder.
    """
    root = Path(root)
    if not root.is_dir():
        problem = "is not a folder" if root.exists() else "does not exist"
        raise CorpusNotFoundError(
            f"Corpus folder '{root}' {problem}; pass --corpus DIR pointing at your documents"
        )
    excluded = {_identity(Path(p)) for p in exclude} - {None}
    visited: set[tuple[int, int] | None] = set(excluded)
    found: list[Path] = []
    pending = [root]
    while pending:
        folder = pending.pop()
        try:
            identity = _identity(folder, strict=True)
            if identity in visited:
                continue
            visited.add(identity)
            with os.scandir(folder) as entries:
                listing = list(entries)
        except OSError as exc:
            reason = f"cannot read folder ({exc.strerror or exc})"
            if unreadable is None:
                logger.warning("Skipping folder %s: %s", folder, reason)
            else:
                unreadable.append((folder.relative_to(root).as_posix(), reason))
            continue
        for entry in listing:
            name = entry.name
            if name.startswith("."):
                continue
            path = folder / name
            try:
                is_dir, is_file = entry.is_dir(), entry.is_file()
            except OSError:  # a symlink loop cannot be stat'ed
                is_dir = is_file = False
            if is_dir:
                if not _skipped_folder(name):
                    pending.append(path)
            elif (
                # Broken or looping links are kept so that reading them reports why they fail.
                (is_file or entry.is_symlink())
                and path.suffix.lower() in SUPPORTED_SUFFIXES
                and not (excluded and _identity(path) in excluded)
            ):
                found.append(path)
    return sorted(found, key=lambda p: p.relative_to(root).parts)


def _skipped_folder(name: str) -> bool:
    return name in _SKIPPED_DIRS or name.endswith(".egg-info")


def affects_corpus(root: Path, path: Path, *, deleted: bool = False) -> bool:
    """Whether a change at ``path`` can change what :func:`discover` finds under ``root``.

    Hidden entries, and anything in a folder :func:`discover` skips, never can. A file counts
    when its suffix is one Nexus reads; a folder always counts (renaming one moves every
    document in it). A deleted path can no longer say whether it was a folder, so it counts
    unless its place alone rules it out.
    """
    try:
        parts = path.relative_to(root).parts
    except ValueError:
        return False
    if not parts or any(part.startswith(".") for part in parts):
        return False
    if any(_skipped_folder(part) for part in parts[:-1]):
        return False
    if deleted:
        return True
    if path.is_dir():
        return not _skipped_folder(parts[-1])
    return path.suffix.lower() in SUPPORTED_SUFFIXES


def _identity(path: Path, *, strict: bool = False) -> tuple[int, int] | None:
    """The (device, inode) pair naming what `path` points at; None if it cannot be stat'ed."""
    try:
        info = path.stat()
    except OSError:
        if strict:
            raise
        return None
    return info.st_dev, info.st_ino


def read_file(root: Path, path: Path, *, max_bytes: int) -> RawFile:
    """Read one file's bytes, refusing files that cannot or should not be indexed.

    Args:
        root: The corpus folder, used to compute the relative `source`.
        path: The file, as returned by `discover`.
        max_bytes: Files larger than this are skipped; the size is checked before reading.

    Raises:
        SkipFile: If the file vanished, is unreadable, too large, empty or binary.
    """
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise SkipFile("not a regular file")
        if info.st_size > max_bytes:
            raise SkipFile(_too_large(info.st_size, max_bytes))
        with path.open("rb") as handle:
            data = handle.read(max_bytes + 1)  # the file may have grown since stat()
    except FileNotFoundError:
        if path.is_symlink():
            raise SkipFile(f"broken symbolic link to {os.readlink(path)}") from None
        raise SkipFile("file vanished before it could be read") from None
    except OSError as exc:
        raise SkipFile(f"cannot read file ({exc.strerror or exc})") from None
    if len(data) > max_bytes:
        raise SkipFile(_too_large(len(data), max_bytes))
    if b"\x00" in data[:BINARY_SNIFF_BYTES] and path.suffix.lower() not in BINARY_SUFFIXES:
        raise SkipFile("binary file")
    if not data.removeprefix(codecs.BOM_UTF8).strip():
        raise SkipFile("empty file")
    source = path.relative_to(root).as_posix()
    try:
        source.encode("utf-8")
    except UnicodeEncodeError:  # the OS hands undecodable name bytes over as lone surrogates
        raise SkipFile("file name is not valid UTF-8; rename the file to index it") from None
    return RawFile(source, path, data, hashlib.sha256(data).hexdigest())


def _too_large(size: int, limit: int) -> str:
    return (
        f"larger than the {limit / 1e6:.1f} MB limit ({size / 1e6:.1f} MB); "
        "raise max_file_bytes to include it"
    )


def read_files(root: Path, paths: Iterable[Path], *, max_bytes: int) -> Iterator[RawFile | Skipped]:
    """Each of ``paths`` read (see :func:`read_file`), or skipped with its reason, in order."""
    for path in paths:
        try:
            yield read_file(root, path, max_bytes=max_bytes)
        except SkipFile as exc:
            yield Skipped(path.relative_to(root).as_posix(), str(exc))
