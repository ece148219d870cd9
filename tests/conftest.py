"""Shared fixtures: a small corpus copied per test, a fake encoder, an isolated work folder."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from assistant import Settings
from assistant.testing import HashEncoder

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).parent.parent

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Default folders (``index``, ``corpus``) resolve inside the test's own temp dir."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """A writable copy of ``tests/data/mini_corpus``."""
    target = tmp_path / "corpus"
    shutil.copytree(DATA / "mini_corpus", target)
    return target


@pytest.fixture
def index_dir(tmp_path: Path) -> Path:
    return tmp_path / "index"


@pytest.fixture
def encoder() -> HashEncoder:
    return HashEncoder()


@pytest.fixture
def settings() -> Settings:
    return Settings(chunk_tokens=120, chunk_overlap=16, min_chunk_tokens=24)


@pytest.fixture(scope="session")
def real_encoder():  # type: ignore[no-untyped-def]
    """The real default model, loaded once per test session."""
    from assistant.embedding import SentenceTransformerEncoder

    return SentenceTransformerEncoder("all-MiniLM-L6-v2")
