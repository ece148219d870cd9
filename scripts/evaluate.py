"""Score retrieval: ``python scripts/evaluate.py [--questions FILE] [--beir DIR --split test]``.

A thin wrapper over ``nexus eval``; run with ``--help`` for every option.
"""

from __future__ import annotations

import sys

from assistant.cli import main

if __name__ == "__main__":
    sys.exit(main(["eval", *sys.argv[1:]]))
