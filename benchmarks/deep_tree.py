"""How long discovery and a build take over a pathologically deep folder tree.

Makes a corpus of ``--depth`` nested one-letter folders (deeper than PATH_MAX allows to name
from the root once depth passes about 2,000) with a page every few hundred levels, then times
``discover`` and a build with the hash encoder, so only the tree walk and the file handling
are measured, not the model.

Usage (from the repository root)::

    .venv/bin/python -m benchmarks.deep_tree --depth 2200 [--baseline REV] [--json OUT]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from assistant import build_index
from assistant.ingest.files import discover
from assistant.testing import HashEncoder
from benchmarks.common import ROOT, command_line, report


def make_tree(root: Path, depth: int, every: int = 500) -> None:
    """Nest ``depth`` folders named ``d`` under ``root`` through directory file descriptors,
    which reach depths that paths from the root cannot name."""
    (root / "top.md").write_text("# Top\n\nA page at the top.\n")
    fd = os.open(root, os.O_RDONLY)
    try:
        for level in range(1, depth + 1):
            os.mkdir("d", dir_fd=fd)
            inner = os.open("d", os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = inner
            if level % every == 0:
                page = os.open(f"p{level}.md", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
                os.write(page, f"# Level {level}\n\nA page {level} folders deep.\n".encode())
                os.close(page)
    finally:
        os.close(fd)


def discover_at(revision: str, work: Path) -> Callable[[Path], list[Path]]:
    """``discover`` as ``assistant/corpus.py`` defined it at a git revision (one from before
    the package was split into sub-packages, when that module stood on its own)."""
    source = subprocess.run(
        ["git", "show", f"{revision}:assistant/corpus.py"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout
    path = work / "corpus_baseline.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("corpus_baseline", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["corpus_baseline"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module.discover  # type: ignore[no-any-return]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--depth", type=int, default=2200)
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--baseline",
        metavar="REV",
        help="Also time discover() of assistant/corpus.py as of this git revision "
        "(one from before the sub-packages, e.g. f47dcd9).",
    )
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="nexus-deep-"))
    try:
        corpus = work / "corpus"
        corpus.mkdir()
        make_tree(corpus, args.depth)
        started = time.perf_counter()
        unreadable: list[tuple[str, str]] = []
        found = discover(corpus, unreadable=unreadable)
        scan = time.perf_counter() - started
        started = time.perf_counter()
        built = build_index(corpus, work / "index", encoder=HashEncoder())
        build = time.perf_counter() - started
        baseline = None
        if args.baseline:
            old_discover = discover_at(args.baseline, work)
            started = time.perf_counter()
            old_discover(corpus)
            baseline = round(time.perf_counter() - started, 2)
    finally:
        subprocess.run(["rm", "-rf", str(work)], check=False)  # too deep for shutil.rmtree
    result = {
        "depth": args.depth,
        "files_found": len(found),
        "folders_unreadable": len(unreadable),
        "discover_seconds": round(scan, 2),
        "baseline": args.baseline,
        "baseline_discover_seconds": baseline,
        "build_seconds": round(build, 2),
        "documents": built.documents,
        "skipped": [reason for _, reason in built.skipped],
        "command": command_line("benchmarks.deep_tree", argv),
    }
    report(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
