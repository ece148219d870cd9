"""Builds that embed on Ray make the index a local build makes, and fail clearly otherwise."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from assistant import Assistant, Settings, build_index
from assistant.cli import main
from assistant.errors import ConfigError, MissingDependencyError
from assistant.stores import open_index
from assistant.testing import HashEncoder

QUERIES = ["preflight OPTIONS request", "row locking in transactions", "cache invalidation"]


@pytest.fixture(scope="module")
def ray_instance() -> Iterator[Any]:
    """One local Ray instance for the module, on two CPUs, reachable on localhost only."""
    ray = pytest.importorskip("ray")
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        logging_level=logging.WARNING,
        _node_ip_address="127.0.0.1",
    )
    yield ray
    ray.shutdown()


def _contents(index_dir: Path) -> tuple[list[tuple[str, str, int, str]], np.ndarray]:
    """Chunks in id order (source, key, start line, text) and the vectors of an index."""
    index = open_index(index_dir)
    try:
        ids = list(range(index.manifest.chunks))
        chunks = index.db.chunks(ids)
        rows = [
            (chunks[i].source, chunks[i].key, chunks[i].start_line, chunks[i].text) for i in ids
        ]
        return rows, np.array(index.stored_vectors())
    finally:
        index.close()


def _ranked(index_dir: Path) -> list[list[tuple[str, int, float]]]:
    nexus = Assistant.load(index_dir, encoder=HashEncoder())
    return [
        [(hit.source, hit.start_line, round(hit.score, 6)) for hit in nexus.search(q, k=5, mode=m)]
        for q in QUERIES
        for m in ("hybrid", "semantic", "keyword")
    ]


@pytest.mark.scale
def test_a_ray_build_makes_the_index_a_local_build_makes(
    ray_instance: Any,
    corpus: Path,
    tmp_path: Path,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    local, on_ray = tmp_path / "local", tmp_path / "ray"
    build_index(corpus, local, settings=settings, encoder=HashEncoder())
    # The command line loads the fake encoder; Ray workers receive a copy of it. Small
    # batches give both workers some of this tiny corpus.
    monkeypatch.setattr("assistant.build.load_encoder", lambda *_, **__: HashEncoder())
    monkeypatch.setenv("NEXUS_BATCH_SIZE", "4")
    for name in ("chunk_tokens", "chunk_overlap", "min_chunk_tokens"):
        monkeypatch.setenv(f"NEXUS_{name.upper()}", str(getattr(settings, name)))
    argv = ["build", "--corpus", str(corpus), "--index", str(on_ray), "--quiet"]
    assert main([*argv, "--executor", "ray", "--ray-workers", "2"]) == 0
    assert "embedded on Ray" in capsys.readouterr().out

    local_chunks, local_vectors = _contents(local)
    ray_chunks, ray_vectors = _contents(on_ray)
    assert ray_chunks == local_chunks
    np.testing.assert_allclose(ray_vectors, local_vectors, atol=1e-6)
    assert _ranked(on_ray) == _ranked(local)
    # Interchangeable: a local build over the Ray-built index reuses every vector.
    again = build_index(corpus, on_ray, settings=settings, encoder=HashEncoder())
    assert (again.embedded, again.executor) == (0, "local")


class _OtherModelOnWorkers(HashEncoder):
    """Embeds like HashEncoder here but reaches the workers as a different encoder, like a
    node where another version of the model is installed."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (HashEncoder, (32,))


@pytest.mark.scale
def test_a_worker_that_embeds_differently_stops_the_build(
    ray_instance: Any, corpus: Path, index_dir: Path, settings: Settings
) -> None:
    build_index(corpus, index_dir, settings=settings, encoder=HashEncoder())
    before = _ranked(index_dir)
    (corpus / "guides" / "locking.md").write_text("# Locking\n\nOptimistic locking checks.\n")
    with pytest.raises(ConfigError, match="embeds with hash-encoder differently") as caught:
        build_index(
            corpus,
            index_dir,
            settings=settings.replace(executor="ray"),
            encoder=_OtherModelOnWorkers(),
        )
    assert "same install" in str(caught.value)
    assert _ranked(index_dir) == before  # the previous index still serves


@pytest.mark.scale
def test_a_model_the_workers_cannot_find_is_named_in_the_error(
    ray_instance: Any, corpus: Path, index_dir: Path, settings: Settings, tmp_path: Path
) -> None:
    # The build machine has the model (a stand-in here); the workers look for it by its path.
    model = str(tmp_path / "models" / "only-on-the-build-machine")
    with pytest.raises(ConfigError) as caught:
        build_index(
            corpus,
            index_dir,
            settings=settings.replace(executor="ray", model=model),
            encoder=HashEncoder(name=model),
        )
    message = str(caught.value)
    assert "Ray worker on " in message and "cannot load the encoder" in message
    assert model in message and "same install" in message


@pytest.mark.scale
def test_more_workers_than_cpus_is_a_clear_error(
    ray_instance: Any, corpus: Path, index_dir: Path, settings: Settings
) -> None:
    ray_settings = settings.replace(executor="ray", ray_workers=3)
    with pytest.raises(ConfigError, match="3 Ray workers need a CPU each but the cluster has 2"):
        build_index(corpus, index_dir, settings=ray_settings, encoder=HashEncoder())


@pytest.mark.scale
@pytest.mark.model
def test_ray_workers_loading_the_real_model_give_its_vectors(
    ray_instance: Any, corpus: Path, tmp_path: Path, settings: Settings, real_encoder: Any
) -> None:
    local, on_ray = tmp_path / "local", tmp_path / "ray"
    build_index(corpus, local, settings=settings, encoder=real_encoder)
    # The worker loads the model by its name, as it would on another node.
    ray_settings = settings.replace(executor="ray", ray_workers=1)
    build_index(corpus, on_ray, settings=ray_settings, encoder=real_encoder)
    local_chunks, local_vectors = _contents(local)
    ray_chunks, ray_vectors = _contents(on_ray)
    assert ray_chunks == local_chunks
    np.testing.assert_allclose(ray_vectors, local_vectors, atol=1e-6)


def test_without_ray_the_error_names_the_extra(
    corpus: Path, index_dir: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now fails, as when not installed
    with pytest.raises(MissingDependencyError, match=r"nexus-assistant\[scale\]"):
        build_index(
            corpus, index_dir, settings=settings.replace(executor="ray"), encoder=HashEncoder()
        )
    assert not index_dir.joinpath("CURRENT").exists()


@pytest.mark.parametrize(
    ("node_cpus", "requested", "plan"),
    [
        ([2], 0, (1, 2)),  # one machine: one worker holding every core
        ([2], 2, (2, 1)),
        ([8, 8, 8], 0, (3, 8)),  # one worker per node, each with the whole node
        ([8, 4], 0, (2, 4)),  # no worker larger than what lets both fit
        ([8, 8], 3, (3, 4)),  # 5 CPUs each would leave the third worker nowhere to run
        ([16, 2], 3, (3, 5)),
    ],
)
def test_workers_share_out_the_cluster_so_that_each_fits_on_a_node(
    node_cpus: list[int], requested: int, plan: tuple[int, int]
) -> None:
    from assistant.encoders.ray import plan_workers

    assert plan_workers(node_cpus, requested) == plan


def test_executor_settings_are_checked(capsys: pytest.CaptureFixture[str]) -> None:
    assert Settings.from_env({"NEXUS_EXECUTOR": "ray", "NEXUS_RAY_WORKERS": "2"}).ray_workers == 2
    with pytest.raises(ConfigError, match="executor must be one of local, ray"):
        Settings(executor="dask")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="ray_workers"):
        Settings(ray_workers=-1)
    assert main(["build", "--ray-workers", "2"]) == 1
    assert "--ray-address and --ray-workers need --executor ray" in capsys.readouterr().err
