"""Start Nexus as a web app: ``python app.py [--index DIR] [--corpus DIR] [--host H] [--port P]``.

Builds the index (incrementally, with progress) when it is missing or older than the corpus,
then serves the chat UI at ``/`` and the REST API under ``/api`` (see ``nexus serve --help``).
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from assistant.cli import main  # imported after the environment is set

if __name__ == "__main__":
    sys.exit(main(["serve", *sys.argv[1:]]))
