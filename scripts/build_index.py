"""Build or update the Nexus index: ``python scripts/build_index.py [--corpus DIR] [--index DIR]``.

A thin wrapper over ``nexus build``; run with ``--help`` for every option.
"""

from __future__ import annotations

import sys

from assistant.cli import main

if __name__ == "__main__":
    sys.exit(main(["build", *sys.argv[1:]]))
